"""A timm or torch.hub user's code works on our backbone with nothing but
the constructor changed: torch.hub.load from the repository, feature_info,
forward_intermediates, forward_features, all equal to timm's efficientvit_m* on the same
weights."""
import pytest
import torch
from helpers import REPO

from efficientvit_dense.errors import ConfigError

SELECTIONS = [dict(), dict(indices=2), dict(indices=[0, 2]), dict(indices=[-1]), dict(indices=1, stop_early=True)]


@pytest.fixture(scope='module')
def hub_pair(timm_model, tmp_path_factory):
    """timm's M4 (random weights) and ours from torch.hub with those weights."""
    reference = timm_model('m4')
    path = tmp_path_factory.mktemp('hub') / 'efficientvit_m4.pth'
    torch.save(reference.state_dict(), path)
    ours = torch.hub.load(REPO, 'efficientvit_m4', source='local', pretrained=str(path), trust_repo=True)
    return reference.eval(), ours.eval()


def test_hub_loads_every_arch_and_the_given_weights(hub_pair):
    reference, ours = hub_pair
    assert torch.equal(ours.stages[2].blocks[0].mixer.m.attn.attention_biases,
                       reference.stages[2].blocks[0].mixer.m.attn.attention_biases)  # timm's 4x4 windows kept
    for arch in ('m0', 'm5'):
        model = torch.hub.load(REPO, f'efficientvit_{arch}', source='local', trust_repo=True, out_indices=(2,))
        assert model.out_indices == (2,) and len(model.eval()(torch.zeros(1, 3, 64, 64))) == 1


def test_pretrained_true_asks_for_the_checkpoints_path():
    from efficientvit_dense.errors import InputNotFoundError
    with pytest.raises(InputNotFoundError, match=r"pretrained takes the checkpoint's path or URL .*"
                                                 r"pretrained='efficientvit_m4.pth'\), not True"):
        torch.hub.load(REPO, 'efficientvit_m4', source='local', trust_repo=True, pretrained=True)


def test_feature_info_is_timms(hub_pair):
    reference, ours = hub_pair
    assert ours.feature_info == reference.feature_info


@pytest.mark.parametrize('selection', SELECTIONS, ids=str)
def test_forward_intermediates_equal_timms(hub_pair, selection):
    reference, ours = hub_pair
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        final, maps = ours.forward_intermediates(x, **selection)
        expected_final, expected = reference.forward_intermediates(x, **selection)
        only = ours.forward_intermediates(x, intermediates_only=True, **selection)
    assert len(maps) == len(expected) == len(only)
    for mine, theirs, alone in zip(maps, expected, only):
        assert (mine - theirs).abs().max().item() <= 1e-5 and torch.equal(mine, alone)
    assert (final - expected_final).abs().max().item() <= 1e-5


def test_forward_features_is_timms(hub_pair):
    reference, ours = hub_pair
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        mine, theirs = ours.forward_features(x), reference.forward_features(x)
    assert mine.shape == theirs.shape == (2, 384, 4, 4) and (mine - theirs).abs().max().item() <= 1e-5


def test_stage_numbers_out_of_range_are_a_clear_error(hub_pair):
    _, ours = hub_pair
    for indices in (4, [3], [-4], 0):
        with pytest.raises(ConfigError, match='forward_intermediates'):
            ours.forward_intermediates(torch.zeros(1, 3, 64, 64), indices=indices)
