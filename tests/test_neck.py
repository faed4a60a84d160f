import math

import pytest
import torch
from mmengine.registry import DefaultScope

from efficientvit_dense.models import EfficientViT, EfficientViTFPN


def _neck_outputs(neck, height, width):
    backbone = EfficientViT('m0').eval()
    with torch.no_grad():
        return neck.eval()(backbone(torch.randn(2, 3, height, width)))


@pytest.mark.parametrize('extra_trans,add_extra_convs,strides', [
    (1, 'on_input', (8, 16, 32, 64, 128)),   # RetinaNet
    (2, False, (4, 8, 16, 32, 64)),          # Mask R-CNN
])
def test_levels_and_strides(extra_trans, add_extra_convs, strides):
    neck = EfficientViTFPN([64, 128, 192], 32, num_outs=5, num_extra_trans_convs=extra_trans,
                           add_extra_convs=add_extra_convs)
    outs = _neck_outputs(neck, 256, 320)
    assert [o.shape for o in outs] == [(2, 32, math.ceil(256 / s), math.ceil(320 / s)) for s in strides]


def test_finer_levels_come_from_the_top_down_lateral():
    """The stride-8 level depends on coarser backbone maps through the
    top-down path, not only on the stride-16 map."""
    neck = EfficientViTFPN([4, 4, 4], 4, num_outs=4, num_extra_trans_convs=1).eval()
    fine, mid, coarse = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 4, 4), torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        base = neck((fine, mid, coarse))[0]
        changed = neck((fine, mid, coarse + 1))[0]
    assert base.shape == (1, 4, 16, 16) and not torch.allclose(base, changed)


def test_parameter_names_match_the_reference_detector():
    neck = EfficientViTFPN([128, 256, 384], 256, num_outs=5, num_extra_trans_convs=1,
                           add_extra_convs='on_input')
    shapes = {k: tuple(v.shape) for k, v in neck.state_dict().items()}
    assert shapes['extra_trans_convs.0.conv.weight'] == (256, 256, 2, 2)
    assert shapes['extra_fpn_convs.0.conv.weight'] == (256, 256, 3, 3)
    assert shapes['fpn_convs.3.conv.weight'] == (256, 384, 3, 3)  # the stride-128 conv on the input
    assert shapes['lateral_convs.0.conv.weight'] == (256, 128, 1, 1)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_from_mmdet_and_mmseg(scope):
    import importlib
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        neck = registry.build(dict(type='EfficientViTFPN', in_channels=[64, 128, 192], out_channels=16,
                                   num_outs=5, num_extra_trans_convs=2))
    assert isinstance(neck, EfficientViTFPN)


def test_bad_level_count_is_a_clear_error():
    with pytest.raises(ValueError, match='num_extra_trans_convs'):
        EfficientViTFPN([64, 128, 192], 16, num_outs=2, num_extra_trans_convs=2)
