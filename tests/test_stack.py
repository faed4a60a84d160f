"""The installed stack is whole: the toolboxes import and mmcv's compiled
ops run on CPU and agree with torchvision's."""
import importlib

import pytest
import torch
import torchvision


@pytest.mark.parametrize('module', ['mmdet.models', 'mmseg.models', 'mmpretrain.models', 'mmcv.ops'])
def test_toolbox_imports(module):
    importlib.import_module(module)


def _random_boxes(n, gen):
    xy = torch.rand(n, 2, generator=gen) * 200
    wh = torch.rand(n, 2, generator=gen) * 60 + 1
    return torch.cat([xy, xy + wh], dim=1)


def test_nms_matches_torchvision():
    from mmcv.ops import nms
    gen = torch.Generator().manual_seed(0)
    boxes, scores = _random_boxes(300, gen), torch.rand(300, generator=gen)
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert torch.equal(keep, torchvision.ops.nms(boxes, scores, 0.5))


def test_batched_nms_matches_torchvision():
    from mmcv.ops import batched_nms
    gen = torch.Generator().manual_seed(1)
    boxes, scores = _random_boxes(300, gen), torch.rand(300, generator=gen)
    labels = torch.randint(0, 5, (300,), generator=gen)
    _, keep = batched_nms(boxes, scores, labels, dict(type='nms', iou_threshold=0.5))
    expected = torchvision.ops.batched_nms(boxes, scores, labels, 0.5)
    assert torch.equal(keep, expected)


def test_roi_align_matches_torchvision():
    from mmcv.ops import RoIAlign
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(2, 8, 32, 48, generator=gen)
    boxes = _random_boxes(20, gen) / 5
    rois = torch.cat([torch.randint(0, 2, (20, 1), generator=gen).float(), boxes], dim=1)
    ours = RoIAlign((7, 7), spatial_scale=0.5, sampling_ratio=2, aligned=True)(features, rois)
    expected = torchvision.ops.roi_align(features, rois, (7, 7), spatial_scale=0.5, sampling_ratio=2,
                                         aligned=True)
    assert torch.allclose(ours, expected, atol=1e-5)
