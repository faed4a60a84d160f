"""The low-precision deploy forms (bfloat16 cast; int8 by PyTorch 2 export
quantisation, run compiled, and by ONNX Runtime) against float32, the
refusals, and the note on CPUs that only emulate a precision. No test
asserts a speed."""
import copy
import io
import os
import re
import runpy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import REPO
from mmengine.registry import MODELS, DefaultScope
from torch.fx.passes.utils.source_matcher_utils import get_source_partitions
from torch.utils._pytree import tree_flatten

from efficientvit_dense.analysis import quantize
from efficientvit_dense.analysis import records as records_module
from efficientvit_dense.analysis.benchmark import check_modes, precision_notes
from efficientvit_dense.analysis.complexity import build_config_model
from efficientvit_dense.analysis.export import max_difference
from efficientvit_dense.analysis.precision import float32_parts_note
from efficientvit_dense.analysis.quantize import quantize_int8
from efficientvit_dense.analysis.reference import imagenet_classifier, randomize_
from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.errors import DataError, UnsupportedError
from efficientvit_dense.models import EfficientViT, deploy
from efficientvit_dense.models.deploy import DeployConv2d, DeployLinear, onednn_packs


@pytest.fixture(scope='module')
def backbone():
    """M0 with random weights and BatchNorm statistics: outputs of a size a
    trained network gives, not the near-zero ones of a fresh init."""
    return randomize_(EfficientViT('m0', window_size=(7, 7, 4)), seed=0).eval()


def _images(n, size=224, seed=1):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def test_bfloat16_deploy_form_keeps_the_backbones_maps(backbone):
    x = _images(2)
    reference = copy.deepcopy(backbone).switch_to_deploy()(x)
    low = copy.deepcopy(backbone).switch_to_deploy('bfloat16')
    assert all(p.dtype == torch.bfloat16 for p in low.parameters())
    out = low(x)
    assert all(o.dtype == torch.float32 and o.shape == r.shape for o, r in zip(out, reference))  # float32 out
    assert max_difference(reference, out, relative=True) < 0.03  # bfloat16, an 8-bit mantissa, through 10 blocks: 0.010
    assert max_difference(reference, out, relative=True) > 0  # it did run in bfloat16
    # deepcopy keeps the copy's forward its own (the cast forward is an instance attribute), and a saved
    # model loads again
    again = copy.deepcopy(low)
    assert again.forward.args[0] is again and torch.equal(again(x)[-1], out[-1])
    buffer = io.BytesIO()
    torch.save(low, buffer)
    loaded = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    assert torch.equal(loaded(x)[-1], out[-1])
    # timm's way to chosen stages gives the same maps, float32 too
    assert all(torch.equal(a, b) for a, b in zip(low.forward_intermediates(x, intermediates_only=True), out))
    with pytest.raises(UnsupportedError, match='already runs in torch.bfloat16; deploy a fresh copy'):
        low.switch_to_deploy('float32')


@torch.no_grad()
def test_int8_deploy_form_keeps_the_backbones_maps_at_another_batch_size(backbone, uncompiled_int8):
    # calibrated on batches of one, as a config's benchmark at --batch-size 1 is
    calibration = [_images(1, seed=s) for s in range(6)]
    x = _images(3, seed=9)
    reference = copy.deepcopy(backbone).switch_to_deploy()(x)
    quantised = quantize_int8(copy.deepcopy(backbone), calibration)
    out = quantised(x)
    assert [o.shape for o in out] == [r.shape for r in reference]
    assert 0 < max_difference(reference, out, relative=True) < 0.05  # measured: 0.013
    with pytest.raises(DataError, match=r"built for inputs of shape \[\(3, 224, 224\)\].*one input size"):
        quantised(_images(1, size=192))
    with pytest.raises(DataError, match='calibration images reach EfficientViT in 2 sizes'):
        quantize_int8(copy.deepcopy(backbone), [_images(2), _images(2, size=192)])


class SharedConvHead(nn.Module):
    """A dense head's shape: one convolution run on each pyramid level, the coarser map resized onto the finer one
    and added (a Semantic FPN head's merge), then, to have products too, a linear layer over the channels of the
    merged map and of the coarser one (two input ranges: two input scales for one layer)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 8)

    def forward(self, levels):
        maps = [torch.relu(self.conv(level)) for level in levels]
        merged = maps[0] + F.interpolate(maps[1], size=maps[0].shape[2:], mode='bilinear', align_corners=False)
        # the deploy form's channels_last
        return [self.fc(merged.permute(0, 2, 3, 1).contiguous()), self.fc(maps[1].permute(0, 2, 3, 1).contiguous()),
                *maps[1:]]


@torch.no_grad()
def test_int8_parts_compile_to_onednns_int8_kernels_a_shared_convolution_too_with_atens_resize(monkeypatch):
    from torch._inductor.utils import run_and_get_code
    converted, compile_int8 = [], quantize.compile_int8
    monkeypatch.setattr(quantize, 'compile_int8',
                        lambda graph, **settings: converted.append(graph) or compile_int8(graph, **settings))
    head = SharedConvHead().eval()
    levels = [torch.randn(2, 8, side, side, generator=torch.Generator().manual_seed(side)) for side in (16, 8)]
    reference = head(levels)
    quantize_int8(head, [levels])
    out, code = run_and_get_code(head, levels)
    assert 0 < max_difference(reference, out, relative=True) < 0.05
    # inductor runs a convolution as oneDNN's int8 kernel only when its quantised weight has one user (a RetinaNet
    # head's shared convolutions ran in float32 before each call got its own copy)
    (graph,) = converted
    weights = [node.args[0] for node in graph.graph.nodes
               if node.target == torch.ops.quantized_decomposed.dequantize_per_channel.default]
    assert len(set(weights)) == 4 and all(len(weight.users) == 1 for weight in weights)  # conv twice, fc twice
    # so both calls of the convolution and of the product run on int8 kernels, none on float32 ones, called from a
    # C++ wrapper (from Python, each of an int8 M4's ~120 calls cost tens of microseconds)
    code = '\n'.join(code)
    assert code.count('aoti_torch_cpu__qconv_pointwise_tensor(') == 2
    assert code.count('aoti_torch_cpu__qlinear_pointwise_tensor(') == 2
    assert not re.search(r'aoti_torch_cpu_(mkldnn__)?convolution|aten::convolution', code)
    # the bilinear resize is aten's kernel, not inductor's gathering loops (the FPN demo's int8 head ran 1.8x
    # slower than float32 with those)
    assert code.count('findSchemaOrThrow("efficientvit_dense::upsample_bilinear2d"') == 1
    # and compute what PT2E's converted graph says (quantise, dequantise, float32 op), with the products' contexts
    # cached: a cached context serves one weight at one input scale, and the product's two calls have two
    assert os.environ[quantize.INT8_CONTEXT_CACHE] == '1'
    assert _same_but_for_rare_rounding_steps(graph(*levels), out)
    for batch in (1, 3):  # compiled again for other batch sizes
        fewer = [level[:1].expand(batch, -1, -1, -1).contiguous() for level in levels]
        assert _same_but_for_rare_rounding_steps(graph(*fewer), head(fewer))
    # Again at a batch size seen before, after other small tensors took the memory freed since: a cached context
    # is met again here, and it must not read buffers of its first call (inductor computed a small layer's weight
    # scales and bias into new ones at each call: the classifier demo's int8 top-1 fell from 69 to 28-63).
    for seed in (1, 2):
        others = [torch.randn(2, 8, side, side, generator=torch.Generator().manual_seed(seed)) for side in (16, 8)]
        taking_freed_memory = [torch.full((8,), 1e30) for _ in range(256)]
        assert _same_but_for_rare_rounding_steps(graph(*others), head(others))
    del taking_freed_memory


# int8 products built and freed one after another in one process, each at its own input scale, with the contexts
# cached as the int8 deploy form caches them; each must compute its own product. Run in a fresh process: torch reads
# the switch at its first int8 product.
REBUILT_PRODUCTS_SCRIPT = """
import gc, torch
from efficientvit_dense.analysis.quantize import cache_int8_contexts
cache_int8_contexts()
x = torch.randint(0, 256, (16, 256), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
worst = 0.0
for i in range(8):
    g = torch.Generator().manual_seed(i + 1)
    weight = torch.randint(-127, 128, (256, 256), dtype=torch.int8, generator=g)
    scales, x_scale = torch.rand(256, generator=g) / 100 + 1e-3, 0.01 * (i + 1)
    packed = torch.ops.onednn.qlinear_prepack(weight, [16, 256])
    out = torch.ops.onednn.qlinear_pointwise(x, x_scale, 0, packed, scales, torch.zeros(256, dtype=torch.int64),
                                             None, 1.0, 0, torch.float32, 'none', [], '')
    reference = (x.float() * x_scale) @ (weight.float() * scales[:, None]).T
    worst = max(worst, float((out - reference).abs().max() / reference.abs().max()))
    del weight, packed, out
    gc.collect()
print(worst)
"""


def test_int8_products_built_after_others_were_freed_compute_their_own_with_contexts_cached():
    env = {k: v for k, v in os.environ.items() if k != quantize.INT8_CONTEXT_CACHE}
    done = subprocess.run([sys.executable, '-c', REBUILT_PRODUCTS_SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # A context cached for a freed weight and met again at its address would compute the old product (a probe
    # calling one weight at a second input scale, which is the same mistake, was 90% off).
    assert float(done.stdout.split()[-1]) < 1e-5


def _same_but_for_rare_rounding_steps(reference, outputs) -> bool:
    """Equal within float rounding, but for rare elements one quantisation step apart: a value the converted
    graph's float32 ops and oneDNN's int8 kernels compute on either side of a rounding boundary (one element
    flipped once in a run of the suite under load)."""
    reference, outputs = (torch.cat([x.float().flatten() for x in tree_flatten(tree)[0]]) for tree in
                          (reference, outputs))
    off = (outputs - reference).abs() / reference.abs().max()
    return float((off > 1e-4).float().mean()) < 1e-3 and float(off.max()) < 0.02


@torch.no_grad()
def test_the_deploy_form_exports_in_the_partitions_pt2e_quantisers_annotate(backbone):
    # PyTorch 2 export quantisation (torchao's X86InductorQuantizer) finds what to quantise by the module class that
    # made each node of the exported graph (nn.Linear, nn.Conv2d, nn.ReLU), skips a product made anywhere else, and
    # stops on a group with two outputs or one whose output is not the product (a ReLU module called twice did that).
    deployed = copy.deepcopy(backbone).switch_to_deploy()
    graph = torch.export.export(deployed, (_images(1, size=64),), strict=True).module().graph  # as quantize.py does
    partitions = get_source_partitions(graph, [nn.ReLU, nn.Conv2d, nn.Linear])
    assert set(partitions) == {nn.ReLU, nn.Conv2d, nn.Linear}
    assert all(len(p.output_nodes) == 1 for group in partitions.values() for p in group)
    for source, op in ((nn.Linear, torch.ops.aten.linear.default), (nn.Conv2d, torch.ops.aten.conv2d.default)):
        in_graph = [node for node in graph.nodes if node.target == op]
        grouped = [p.output_nodes[0] for p in partitions[source]]
        assert in_graph and grouped == in_graph  # every product and convolution, each the output of its group
    # The products as the quantiser knows them, not the packed oneDNN ones of eager CPU inference
    assert not any('mkldnn' in str(node.target) for node in graph.nodes)


@torch.no_grad()
def test_the_deploy_forms_packed_products_follow_their_weights(backbone):
    x = _images(2, size=64)
    deployed = copy.deepcopy(backbone).switch_to_deploy()
    first = deployed(x)  # eager CPU inference: oneDNN's products on weights packed for float32
    with torch.enable_grad():  # with gradients: the plain layers on the same weights
        with_gradients = [o.detach() for o in deployed(x)]
    assert max_difference(first, with_gradients, relative=True) < 1e-5
    linear = next(m for m in deployed.modules() if isinstance(m, DeployLinear) and m.relu)
    linear.weight.mul_(2)  # changed in place: packed again
    assert max_difference(first, deployed(x), relative=True) > 1e-3  # measured: 2e-3
    linear.weight.div_(2)
    assert max_difference(first, deployed(x), relative=True) < 1e-5
    conv = next(m for m in deployed.modules() if isinstance(m, DeployConv2d) and m.residual)
    conv.weight.mul_(2)  # the same for the convolutions' packed weights
    assert max_difference(first, deployed(x), relative=True) > 1e-3
    conv.weight.div_(2)
    assert max_difference(first, deployed(x), relative=True) < 1e-5
    deployed.switch_to_deploy('bfloat16')  # cast: packed again, for bfloat16
    assert 0 < max_difference(first, deployed(x), relative=True) < 0.03
    with torch.inference_mode():  # deployed there: weights without a version counter
        made_there = copy.deepcopy(backbone).switch_to_deploy()
        assert max_difference(first, made_there(x), relative=True) < 1e-5
        # ... and another model's weights loaded into it in place: packed again (the key alone did not change)
        other = randomize_(copy.deepcopy(backbone), seed=1).switch_to_deploy()
        made_there.load_state_dict(other.state_dict())
        assert max_difference(other(x), made_there(x), relative=True) < 1e-5


def test_a_cpu_without_onednns_bfloat16_runs_the_bfloat16_deploy_form_all_the_same(backbone, monkeypatch):
    def as_such_a_cpu_does(reorder):
        def reorder_there(weight, *args):
            if weight.dtype == torch.bfloat16:
                raise RuntimeError('bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq')
            return reorder(weight, *args)
        return reorder_there

    for name in ('_reorder_linear_weight', '_reorder_convolution_weight'):
        monkeypatch.setattr(torch.ops.mkldnn, name, as_such_a_cpu_does(getattr(torch.ops.mkldnn, name)))
    monkeypatch.setattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', lambda: False)
    onednn_packs.cache_clear()
    try:
        x = _images(2, size=64)
        with torch.no_grad():
            assert onednn_packs(torch.float32) and not onednn_packs(torch.bfloat16)
            reference = copy.deepcopy(backbone).switch_to_deploy()(x)  # float32 still packed
            out = copy.deepcopy(backbone).switch_to_deploy('bfloat16')(x)  # bfloat16 by the plain layers
        assert 0 < max_difference(reference, out, relative=True) < 0.03
    finally:
        onednn_packs.cache_clear()


def test_precisions_that_cannot_be_had_are_refused(backbone):
    with pytest.raises(UnsupportedError, match='int8 needs calibration images'):
        copy.deepcopy(backbone).switch_to_deploy('int8')
    with pytest.raises(UnsupportedError, match='use --modes deploy int8'):
        check_modes(['int8'], 'cpu')
    with pytest.raises(UnsupportedError, match='onnxruntime combines with deploy and int8 only'):
        check_modes(['deploy', 'onnxruntime', 'int8', 'compile'], 'cpu')
    # PT2E's int8 runs compiled, and the records say so; ONNX Runtime's does not
    assert check_modes(['int8', 'deploy'], 'cpu') == ['deploy', 'compile', 'int8']
    assert check_modes(['int8', 'deploy', 'onnxruntime'], 'cpu') == ['deploy', 'int8', 'onnxruntime']
    with pytest.raises(UnsupportedError, match='one precision'):
        check_modes(['deploy', 'bf16', 'int8'], 'cpu')
    assert check_modes(['bf16', 'deploy'], 'cpu') == ['deploy', 'bf16']


def test_a_cpu_without_native_bfloat16_is_told_before_timing(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(records_module, 'cpu_flags', lambda: {'avx2', 'fma'})  # an AVX2-only EPYC
    (note,) = precision_notes(['deploy', 'bf16'], 'cpu')
    assert 'none of avx512_bf16, amx_bf16' in note and 'emulated' in note
    assert precision_notes(['deploy'], 'cpu') == []
    main = runpy.run_path(os.path.join(REPO, 'tools', 'benchmark.py'))['main']
    main(['m0', '--modes', 'deploy', 'bf16', '--shape', '64', '--batch-size', '1', '--warmup', '1', '--repeats', '1',
          '--work-dir', str(tmp_path)])
    printed = capsys.readouterr().out
    assert printed.index('emulated') < printed.index('images/s')  # said before the figures
    monkeypatch.setattr(records_module, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16'})
    assert precision_notes(['deploy', 'bf16'], 'cpu') == []


@torch.no_grad()
def test_a_bfloat16_classifier_keeps_float32_where_its_head_hands_over():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        classifier = randomize_(MODELS.build(imagenet_classifier('m0')), seed=3).eval()
    x = _images(2)
    reference = deploy(copy.deepcopy(classifier))(x, mode='tensor')
    low = deploy(copy.deepcopy(classifier), 'bfloat16')
    assert low.backbone.compute_dtype == low.head.compute_dtype == torch.bfloat16
    out = low(x, mode='tensor')
    assert out.dtype == torch.float32 and max_difference(reference, out, relative=True) < 0.03


@pytest.mark.parametrize('task, kept', [
    ('detection', 'post-processing (anchors, box decoding and NMS)'),
    ('segmentation', 'post-processing (resizing the class scores to the image, argmax)'),
    ('classification', 'post-processing (softmax)')])
def test_the_note_names_what_stays_float32_in_each_kind_of_model(task, kept):
    model = build_config_model(load_config(DEMOS[task].config))
    assert float32_parts_note(model, 'int8').startswith('int8: float32 stays in data_preprocessor')
    assert float32_parts_note(model, 'int8').endswith(kept)
    assert float32_parts_note(model, 'float32') == ''


def test_evaluating_in_bfloat16_on_a_cpu_without_it_says_so_first(monkeypatch):
    from efficientvit_dense.analysis import precision as precision_module

    said = []
    monkeypatch.setattr(precision_module, 'print_log', lambda message, **kwargs: said.append(message))
    monkeypatch.setattr(records_module, 'cpu_flags', lambda: {'avx2', 'fma'})  # an AVX2-only EPYC
    model = build_config_model(load_config(DEMOS['classification'].config))
    runner = type('Runner', (), dict(model=model, world_size=1, cfg=None))
    precision_module.DeployHook('bfloat16').before_test(runner)  # tools/test.py --precision, precision_cost.py
    assert 'bfloat16 is emulated here and slower than float32' in said[0]
    said.clear()
    monkeypatch.setattr(records_module, 'cpu_flags', lambda: {'avx512_bf16', 'amx_bf16'})
    precision_module.DeployHook('bfloat16').before_test(type('Runner', (), dict(
        model=build_config_model(load_config(DEMOS['classification'].config)), world_size=1, cfg=None)))
    assert not any('emulated' in message for message in said)


def test_a_precision_reaches_the_network_inside_test_time_augmentation_and_int8_is_refused_there():
    """tools/test.py --tta --precision: the deploy form of the network the TTA model wraps; int8 would calibrate on
    the test pipeline's several views of each image."""
    from mmpretrain.models import AverageClsScoreTTA

    from efficientvit_dense.analysis.precision import DeployHook
    from efficientvit_dense.errors import UnsupportedError
    network = build_config_model(load_config(DEMOS['classification'].config)).eval()
    runner = type('Runner', (), dict(model=AverageClsScoreTTA(module=network), world_size=1, cfg=None))
    DeployHook('bfloat16').before_test(runner)
    assert next(network.backbone.parameters()).dtype == torch.bfloat16
    with pytest.raises(UnsupportedError, match='Evaluate int8 without --tta'):
        DeployHook('int8').before_test(runner)


def test_precision_cost_times_every_precision_as_the_test_loop_runs_it_with_autograd_off(tmp_path, monkeypatch):
    # mmengine's test_step keeps autograd on (only its TestLoop turns it off); with it on, the deploy form's layers
    # skip oneDNN's packed weights while int8's parts do not, and the speed ratio compared unequal things.
    from efficientvit_dense.apps import precision_cost as precision_cost_module

    grad_enabled = []

    class Evaluated(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(2, 2)

        def test_step(self, batch):
            grad_enabled.append(torch.is_grad_enabled())

    def evaluate(cfg, checkpoint, hooks):
        (hook,) = hooks
        hook.runner = type('Runner', (), dict(model=Evaluated(), test_dataloader=[dict(inputs=[torch.zeros(3, 8, 8)])]))
        return {'coco/bbox_mAP': 0.5}

    monkeypatch.setattr(precision_cost_module, 'test', evaluate)
    (tmp_path / 'trained.pth').write_bytes(b'weights')
    records = precision_cost_module.precision_cost(DEMOS['detection'].config, str(tmp_path / 'trained.pth'),
                                                   str(tmp_path), ['float32', 'bfloat16'], warmup=1, repeats=2)
    assert [r['precision'] for r in records] == ['float32', 'bfloat16'] and len(grad_enabled) == 2 * (1 + 2)
    assert not any(grad_enabled)


def test_precision_cost_stops_at_the_first_evaluation_without_a_metric_it_knows(tmp_path, monkeypatch):
    # An evaluator with another prefix (or VOC's metric): refused after one evaluation, not after int8's calibration
    # and compilation and every other precision's
    from efficientvit_dense.apps import precision_cost as precision_cost_module
    from efficientvit_dense.errors import ConfigError, InputNotFoundError

    evaluated = []
    monkeypatch.setattr(precision_cost_module, 'test', lambda cfg, checkpoint, hooks: evaluated.append(cfg) or
                        {'acc/top1': 70.0, 'acc/top5': 95.0})
    with pytest.raises(InputNotFoundError, match='Checkpoint not found: trained.pth'):  # before any evaluation
        precision_cost_module.precision_cost(DEMOS['classification'].config, 'trained.pth', str(tmp_path))
    assert evaluated == []
    (tmp_path / 'trained.pth').write_bytes(b'weights')
    with pytest.raises(ConfigError, match=r'None of .* is among the metrics \(acc/top1, acc/top5\)'):
        precision_cost_module.precision_cost(DEMOS['classification'].config, str(tmp_path / 'trained.pth'),
                                             str(tmp_path), ['float32', 'bfloat16'])
    assert len(evaluated) == 1


def test_int8_calibrates_on_images_spread_over_the_training_split_not_its_first_class(tmp_path, monkeypatch):
    # A class-folder dataset lists its images class by class: the first ones are one or two classes.
    from helpers import TINY_SPEC

    from efficientvit_dense.analysis import precision
    from efficientvit_dense.apps.synthetic import generate

    generate(str(tmp_path / 'data'), TINY_SPEC)
    cfg = load_config(DEMOS['classification'].config, data_root=str(tmp_path / 'data'))
    calibrated_on, held = [], []

    def quantize_int8(model, loader, run):
        calibrated_on.extend(int(sample.gt_label) for batch in loader for sample in batch['data_samples'])
        held.append(len(getattr(loader.dataset, 'dataset', loader.dataset)))  # not a view of the whole split

    monkeypatch.setattr(precision, 'quantize_int8', quantize_int8)
    model = nn.Linear(2, 2)
    model.test_step = lambda batch: None
    note = precision.calibrate_int8(model, cfg, 6)
    assert held == [6]  # what the dataloader deep-copies: the chosen records, not the split's (COCO's 118k)
    in_order = [int(label) for label in precision.split_images(cfg, 'train', 1000)[0].get_gt_labels()]
    assert len(set(in_order[:6])) == 2  # what the first six would have been (TINY_SPEC's crops)
    assert len(calibrated_on) == 6 and len(set(calibrated_on)) >= 4
    assert note == f'6 images spread evenly over the {len(in_order)} of the training split'
    assert precision.spread_evenly(10, 4) == [0, 2, 5, 7] and precision.spread_evenly(3, 8) == [0, 1, 2]
    # A transfer config (repeated augmentation, drop_last) calibrates on each chosen image once, the last batch too.
    calibrated_on.clear()
    custom = load_config(os.path.join(REPO, 'configs', 'custom', 'cls_efficientvit_m5_custom_folder.py'),
                         data_root=str(tmp_path / 'data' / 'classification'))
    assert custom.train_dataloader.sampler.type == 'RepeatAugSampler' and custom.train_dataloader.drop_last
    precision.calibrate_int8(model, custom, 10)
    assert len(calibrated_on) == 10
