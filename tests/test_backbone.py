import math
from pathlib import Path

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from efficientvit_dense.analysis.reference import IMAGENET_224_WINDOWS, official_state_dict, randomize_
from efficientvit_dense.errors import CheckpointError
from efficientvit_dense.models import ARCH_SETTINGS, EfficientViT
from efficientvit_dense.models.backbones.efficientvit import LocalWindowAttention, Residual, TokenWindowAttention
from efficientvit_dense.models.deploy import PackedWeightLayer, PointwiseLinear, fuse_batchnorm
from efficientvit_dense.models.weights import (
    extract_state_dict,
    load_backbone_weights,
    load_state_into,
    native_to_official,
    official_to_native,
)

ARCHS = sorted(ARCH_SETTINGS)
# Paper Table 1 (ImageNet models, millions of parameters).
PAPER_PARAMS_M = {'m0': 2.3, 'm1': 3.0, 'm2': 4.2, 'm3': 6.9, 'm4': 8.8, 'm5': 12.4}


def timm_stage_outputs(model, x):
    with torch.no_grad():
        return model.forward_intermediates(x, intermediates_only=True)


@pytest.mark.parametrize('arch', ARCHS)
def test_matches_timm_from_timm_and_official_weights(arch, timm_model, tmp_path):
    reference = timm_model(arch)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    expected = timm_stage_outputs(reference, x)

    from_timm = EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).eval()
    report = load_state_into(from_timm, dict(reference.state_dict()), strict=True)
    assert report['missing'] == [] and report['resized'] == []

    path = tmp_path / f'efficientvit_{arch}.pth'
    torch.save({'model': official_state_dict(reference)}, path)
    from_official = EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).eval()
    report = load_backbone_weights(from_official, str(path))
    assert report['format'] == 'official' and report['missing'] == []

    with torch.no_grad():
        for model in (from_timm, from_official):
            outputs = model(x)
            assert len(outputs) == 3
            for ours, theirs in zip(outputs, expected):
                assert ours.shape == theirs.shape
                assert (ours - theirs).abs().max().item() <= 1e-5


def test_official_and_native_names_round_trip(timm_model):
    state = timm_model('m5').state_dict()
    official = native_to_official(state)
    assert 'patch_embed.6.c.weight' in official and 'blocks2.3.mixer.m.attn.qkvs.0.c.weight' in official
    assert 'blocks3.1.se.fc1.weight' in official and 'head.l.weight' in official
    back = official_to_native(official)
    assert back.keys() == state.keys()
    assert all(back[k] is state[k] for k in state)


def test_dense_default_resizes_the_imagenet_stage3_bias_table(timm_model):
    model = EfficientViT('m4').eval()  # window 7 in every stage
    report = load_state_into(model, dict(timm_model('m4').state_dict()))
    assert len(report['resized']) == ARCH_SETTINGS['m4']['depths'][2]
    assert all('4x4 -> 7x7' in line for line in report['resized'])
    assert all(k.startswith('stages.2.') for k in report['resized'])
    assert model.stages[2].blocks[0].mixer.m.attn.attention_biases.shape == (4, 49)


def test_a_deployed_backbone_stays_in_eval_mode_and_a_cast_one_gives_intermediates():
    from efficientvit_dense.models.deploy import cast
    deployed = EfficientViT('m0', drop_path_rate=0.2).eval().switch_to_deploy()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = deployed(x)
        deployed.train()  # as a wrapper holding it does: half its drop paths are fused away, neither model
        assert not any(m.training for m in deployed.modules())
        assert all(torch.equal(a, b) for a, b in zip(deployed(x), expected))
    cast_only = cast(EfficientViT('m0').eval(), torch.bfloat16)  # a peer cast by hand, not deployed
    with torch.no_grad():
        maps = cast_only.forward_intermediates(torch.randn(1, 3, 64, 64), intermediates_only=True)
    assert [m.dtype for m in maps] == [torch.float32] * 3


def test_a_bias_table_shrunk_to_a_smaller_window_is_warned_about(caplog):
    dense = EfficientViT('m0')  # window 7 everywhere, as the detectors' backbones
    model = EfficientViT('m0', window_size=IMAGENET_224_WINDOWS)  # the 4x4 last stage of ImageNet at 224
    with caplog.at_level('WARNING'):
        report = load_state_into(model, dict(dense.state_dict()))
    assert all('7x7 -> 4x4' in line for line in report['resized'])
    assert 'attention bias table is shrunk to the model\'s 4x4; its trained values are lost' in caplog.text
    caplog.clear()
    with caplog.at_level('WARNING'):
        load_state_into(dense, dict(model.state_dict()))  # ImageNet's 4x4 grown to 7x7: the usual way, no warning
    assert 'shrunk' not in caplog.text


def test_a_prefix_without_its_dot_takes_the_part_it_names():
    backbone = EfficientViT('m0').state_dict()
    detector = {f'backbone.{k}': v for k, v in backbone.items()}
    assert extract_state_dict(detector, prefix='backbone').keys() == backbone.keys()  # mmengine's Pretrained form


@pytest.mark.parametrize('batch,height,width', [(1, 200, 333), (3, 97, 130), (1, 32, 32), (1, 800, 1333)])
def test_any_input_size_gives_ceil_divided_maps(batch, height, width):
    model = EfficientViT('m0').eval()
    with torch.no_grad():
        outputs = model(torch.randn(batch, 3, height, width))
    for out, stride, channels in zip(outputs, (16, 32, 64), ARCH_SETTINGS['m0']['embed_dims']):
        assert out.shape == (batch, channels, math.ceil(height / stride), math.ceil(width / stride))
        assert torch.isfinite(out).all()


def test_out_indices_select_stages():
    model = EfficientViT('m0', out_indices=(1,)).eval()
    (out,) = model(torch.randn(1, 3, 128, 128))
    assert out.shape == (1, 128, 4, 4)
    assert model.out_channels == (128,) and model.out_strides == (32,)


def test_out_indices_in_any_order_give_the_maps_finest_first():
    model = EfficientViT('m0', out_indices=(2, 0)).eval()
    outs = model(torch.randn(1, 3, 128, 128))
    assert [o.shape[1] for o in outs] == [64, 192] and model.out_channels == (64, 192)
    assert model.out_strides == (16, 64)
    with pytest.raises(ValueError, match='without repeats'):
        EfficientViT('m0', out_indices=(1, 1))


def _bn_stats(module):
    return [m.running_mean.clone() for m in module.modules() if isinstance(m, _BatchNorm)]


def test_frozen_stages_get_no_gradient_and_keep_bn_statistics():
    model = EfficientViT('m0', frozen_stages=1)
    model.train()
    frozen = [model.patch_embed, model.stages[0]]
    before = [_bn_stats(m) for m in frozen]
    trainable_before = _bn_stats(model.stages[1])
    sum(o.sum() for o in model(torch.randn(2, 3, 96, 96))).backward()
    for module, stats in zip(frozen, before):
        assert all(p.grad is None and not p.requires_grad for p in module.parameters())
        assert all(torch.equal(a, b) for a, b in zip(stats, _bn_stats(module)))
    assert all(p.grad is not None for p in model.stages[1].parameters())
    assert not all(torch.equal(a, b) for a, b in zip(trainable_before, _bn_stats(model.stages[1])))


def test_norm_eval_keeps_every_bn_statistic_fixed():
    model = EfficientViT('m0', norm_eval=True).train()
    before = _bn_stats(model)
    sum(o.sum() for o in model(torch.randn(2, 3, 64, 64))).backward()
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_stats(model)))
    assert model.training and all(p.grad is not None for p in model.parameters())


def _count_block_calls(model):
    from efficientvit_dense.models.backbones.efficientvit import EfficientViTBlock
    calls = []
    for block in model.modules():
        if isinstance(block, EfficientViTBlock):
            block.register_forward_pre_hook(lambda *_: calls.append(1))  # a recomputation may stop early
    return calls


def test_gradient_checkpointing_recomputes_each_block_and_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = EfficientViT('m0').train()
    checkpointed = EfficientViT('m0', with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    blocks = sum(ARCH_SETTINGS['m0']['depths'])
    for model, forwards in ((plain, 1), (checkpointed, 2)):
        calls = _count_block_calls(model)
        sum(o.sum() for o in model(x)).backward()
        # Checkpointing keeps no activations inside a block: the backward pass runs each block again.
        assert len(calls) == forwards * blocks
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def test_drop_path_is_random_in_training_only():
    # Randomised weights: at init the residual branches are zero (BN weight 0).
    model = randomize_(EfficientViT('m0', drop_path_rate=0.5))
    x = torch.randn(4, 3, 64, 64)
    model.train()
    assert not torch.equal(model(x)[-1], model(x)[-1])
    model.eval()
    assert torch.equal(model(x)[-1], model(x)[-1])


@pytest.mark.parametrize('arch', ['m0', 'm4'])
def test_deploy_mode_folds_every_batchnorm_and_keeps_outputs(arch, timm_model):
    model = EfficientViT(arch).eval()
    load_state_into(model, dict(timm_model(arch).state_dict()))
    x = torch.randn(2, 3, 160, 224)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        folded = model(x)
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    assert not any(PointwiseLinear.applies_to(m) for m in model.modules())  # all run as NHWC GEMMs
    assert not any(isinstance(m, LocalWindowAttention) for m in model.modules())  # attention on token matrices
    packed = {id(m.layer) for m in model.modules() if isinstance(m, PackedWeightLayer)}
    assert all(id(m) in packed for m in model.modules() if isinstance(m, torch.nn.Conv2d))  # on packed weights
    # The ReLUs and residual adds in the layers before them, but for SE's ReLU (on a 1x1 map)
    assert not any(isinstance(m, Residual) and not isinstance(m.m, TokenWindowAttention) for m in model.modules())
    fused = {id(m.act) for m in model.modules() if isinstance(m, PackedWeightLayer)}
    relus = [name for name, m in model.named_modules() if isinstance(m, torch.nn.ReLU) and id(m) not in fused]
    assert relus and all(name.endswith('se.act') for name in relus)
    assert all(f.is_contiguous(memory_format=torch.channels_last) for f in folded)
    for a, b in zip(folded, expected):
        assert ((a - b).norm() / b.norm()).item() <= 1e-4


@pytest.mark.parametrize('size', [(7, 7), (10, 17), (3, 4)])  # one window; padded windows; padded to one
def test_the_deploy_attention_in_token_layout_keeps_the_windows_outputs(size):
    # Weights large enough that scores spread the softmax: a wrong scale, bias or window order shows.
    attention = LocalWindowAttention(64, 16, 4, 7, kernels=[5, 5, 3, 3])
    randomize_(attention, seed=3)
    with torch.no_grad():
        for p in attention.parameters():
            p.mul_(10)
    fuse_batchnorm(attention.eval())
    x = torch.randn(2, 64, *size)
    with torch.no_grad():
        expected = attention(x)
        for layout in (torch.channels_last, torch.contiguous_format):  # the deploy form's maps, and any other
            ours = TokenWindowAttention(attention)(x.contiguous(memory_format=layout))
            assert ((ours - expected).norm() / expected.norm()).item() <= 1e-5
    assert expected.abs().mean() > 0.1


@pytest.mark.parametrize('arch', ARCHS)
def test_parameter_counts_match_timm_and_the_paper(arch, timm_model):
    reference = timm_model(arch)
    ours = sum(p.numel() for p in EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).parameters())
    head = sum(p.numel() for p in reference.head.parameters())
    assert ours == sum(p.numel() for p in reference.parameters()) - head
    # An ImageNet head is BatchNorm1d(C) + Linear(C, 1000).
    channels = ARCH_SETTINGS[arch]['embed_dims'][-1]
    with_head = ours + 2 * channels + channels * 1000 + 1000
    assert abs(with_head / 1e6 - PAPER_PARAMS_M[arch]) <= 0.1


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match=r"Unknown EfficientViT arch 'm9'.*'m0'"):
        EfficientViT('m9')


@pytest.mark.parametrize('window_size', [0, -1, (7, 0, 4), True])
def test_a_window_size_below_one_is_a_clear_error(window_size):
    with pytest.raises(ValueError, match='window_size takes whole numbers of 1 or more'):
        EfficientViT('m0', window_size=window_size)


def test_too_small_input_is_a_clear_error():
    with pytest.raises(ValueError, match='at least 32x32.*got 16x64'):
        EfficientViT('m0')(torch.randn(1, 3, 16, 64))


def test_weights_of_another_arch_are_a_clear_error(timm_model, tmp_path):
    path = tmp_path / 'm0.pth'
    torch.save(timm_model('m0').state_dict(), path)
    with pytest.raises(CheckpointError, match=r'EfficientViT-M0 weights\. The model is EfficientViT-M4\. Use the arch'):
        load_backbone_weights(EfficientViT('m4'), str(path))


def test_weights_of_another_model_are_a_clear_error(tmp_path):
    import torchvision
    path = tmp_path / 'resnet18.pth'
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(CheckpointError, match='not an EfficientViT checkpoint.*conv1.weight'):
        load_backbone_weights(EfficientViT('m0'), str(path))


@pytest.mark.parametrize('text', ['not weights', 'hello'])  # torch fails on each in another way
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(text, tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text(text)
    with pytest.raises(CheckpointError, match=r'notes.pth is not a PyTorch checkpoint: neither a zip archive nor'):
        load_backbone_weights(EfficientViT('m0'), str(path))


class _RunsCode:
    def __reduce__(self):
        import os
        return (os.system, ('echo pwned',))


def test_a_weights_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'model': {'x': torch.zeros(1)}, 'payload': _RunsCode()}, path)
    with pytest.raises(CheckpointError, match='Refusing to load .*could run code'):
        load_backbone_weights(EfficientViT('m0'), str(path))


def test_partial_weights_are_reported_in_one_message(timm_model):
    state = {k: v for k, v in timm_model('m0').state_dict().items() if not k.startswith('stages.2.')}
    state['extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        load_state_into(EfficientViT('m0'), state)
    message = str(err.value)
    assert 'missing keys' in message and 'stages.2.' in message and 'unexpected keys (1): extra.weight' in message
    report = load_state_into(EfficientViT('m0'), state, strict=False)
    assert report['missing'] and report['unexpected'] == ['extra.weight']
    # BatchNorm's batch counters are not weights: a file without them (some exports strip them) is whole, as
    # torch's own strict load has it
    counted = {k: v for k, v in timm_model('m0').state_dict().items() if not k.endswith('num_batches_tracked')}
    assert load_state_into(EfficientViT('m0'), counted)['missing'] == []


def test_init_cfg_pretrained_loads_either_format(timm_model, tmp_path):
    path = tmp_path / 'official.pth'
    torch.save({'model': official_state_dict(timm_model('m0'))}, path)
    model = EfficientViT('m0', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    expected = timm_model('m0').state_dict()['stages.1.blocks.0.mixer.m.attn.qkvs.0.conv.weight']
    assert torch.equal(model.state_dict()['stages.1.blocks.0.mixer.m.attn.qkvs.0.conv.weight'], expected)


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg', 'mmpretrain'])
def test_one_class_builds_from_each_toolbox_registry(scope):
    import importlib

    from mmengine.registry import DefaultScope
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        backbone = registry.build(dict(type='EfficientViT', arch='m0', out_indices=(1, 2)))
    assert type(backbone) is EfficientViT
    shapes = [o.shape for o in backbone.eval()(torch.randn(1, 3, 64, 96))]
    assert shapes == [(1, 128, 2, 3), (1, 192, 1, 2)]


def test_convert_checkpoint_tool_writes_the_project_format_and_never_overwrites(timm_model, tmp_path, capsys):
    import runpy
    tool = runpy.run_path(str(Path(__file__).parents[1] / 'tools' / 'convert_checkpoint.py'))
    source, converted = tmp_path / 'efficientvit_m0.pth', tmp_path / 'out' / 'm0_evd.pth'
    torch.save({'model': official_state_dict(timm_model('m0'))}, source)
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'm0_evd.pth.tmp').write_text('notes of the user\'s')  # once the converter's own temporary
    tool['main']([str(source), str(converted), '--drop-head'])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['m0_evd.pth', 'm0_evd.pth.tmp']
    assert (tmp_path / 'out' / 'm0_evd.pth.tmp').read_text() == "notes of the user's"
    assert 'official format, EfficientViT-M0, head dropped' in capsys.readouterr().out
    saved = torch.load(converted, weights_only=True)
    assert saved['meta']['arch'] == 'm0' and not any(k.startswith('head') for k in saved['state_dict'])
    model = EfficientViT('m0', window_size=IMAGENET_224_WINDOWS).eval()
    assert load_backbone_weights(model, str(converted))['format'] == 'native'
    x = torch.randn(1, 3, 224, 224)
    expected = timm_stage_outputs(timm_model('m0'), x)
    with torch.no_grad():
        assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(model(x), expected))
    before = converted.read_bytes()
    with pytest.raises(SystemExit, match='already exists'):
        tool['main']([str(source), str(converted)])
    assert converted.read_bytes() == before
