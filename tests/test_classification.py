"""Classification: an ImageNet checkpoint of either format loads whole into
an mmpretrain classifier and gives timm's logits."""
import copy

import pytest
import torch
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS

from efficientvit_dense.models import EfficientViTClsHead
from efficientvit_dense.models.weights import load_classifier_weights
from efficientvit_dense.reference import imagenet_classifier, official_state_dict, randomize_

ARCHS = ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')


def _classifier(arch, distillation=False):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(imagenet_classifier(arch, distillation)).eval()


@pytest.mark.parametrize('fmt', ['timm', 'official'])
@pytest.mark.parametrize('arch', ARCHS)
def test_imagenet_checkpoint_loads_whole_and_gives_timms_logits(arch, fmt, timm_model, tmp_path):
    reference = timm_model(arch)
    state = dict(reference.state_dict()) if fmt == 'timm' else official_state_dict(reference)
    torch.save(state, tmp_path / 'imagenet.pth')
    classifier = _classifier(arch)
    report = load_classifier_weights(classifier, str(tmp_path / 'imagenet.pth'))
    assert not report['missing'] and not report['unexpected']
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = classifier(x, mode='tensor'), reference(x)
    assert ours.shape == (2, 1000)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_distilled_checkpoint_averages_both_heads(timm_model, tmp_path):
    reference = timm_model('m0')
    head_dist = randomize_(copy.deepcopy(reference.head), seed=5).eval()
    state = dict(reference.state_dict())
    state.update({f'head_dist.{k}': v for k, v in head_dist.state_dict().items()})
    torch.save({'model': state}, tmp_path / 'distilled.pth')
    classifier = _classifier('m0', distillation=True)
    assert isinstance(classifier.head, EfficientViTClsHead)
    report = load_classifier_weights(classifier, str(tmp_path / 'distilled.pth'))
    assert not report['missing'] and not report['unexpected']
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pooled = reference.forward_head(reference.forward_features(x), pre_logits=True)
        expected = (reference.head(pooled) + head_dist(pooled)) / 2
        assert (classifier(x, mode='tensor') - expected).abs().max().item() <= 1e-4
