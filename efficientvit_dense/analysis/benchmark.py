"""What tools/benchmark.py measures: a target (an arch, a peer backbone or a
config's whole predict path), in some modes, on some device, timed with
:mod:`.timing` and recorded with :mod:`.records`.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from ..engine.config import load_config
from ..engine.inference import build_inferencer
from ..errors import UnsupportedError
from ..models import ARCH_SETTINGS, EfficientViT, deploy
from ..models.deploy import CAST_PRECISIONS, cast
from .compiling import CompiledForInference
from .export import export_onnx, onnx_runtime_session
from .modes import MODES, PRECISION_MODES, precision_of, split_target
from .quantize import export_onnx_int8, quantize_int8
from .records import checkpoint_fields, emulation_note, environment
from .timing import throughput_and_latency


def check_modes(modes, device: torch.device | str, predict_path: bool = False) -> list[str]:
    modes = sorted(set(modes), key=MODES.index) if all(m in MODES for m in modes) else None
    if modes is None:
        raise UnsupportedError(f'Modes are {", ".join(MODES)} (none: eager).')
    if len(set(modes) & set(PRECISION_MODES)) > 1:
        raise UnsupportedError(f'Choose one precision of {", ".join(PRECISION_MODES)}.')
    on_cpu = torch.device(device).type == 'cpu'
    if 'cudagraphs' in modes and on_cpu:
        raise UnsupportedError('cudagraphs replays CUDA graphs, on a GPU; on a CPU, time compile.')
    if 'fp16' in modes and on_cpu:
        raise UnsupportedError('fp16 is for GPUs; on a CPU, time bf16 (native where lscpu lists amx_bf16 or '
                               'avx512_bf16) or int8.')
    if 'int8' in modes:
        if not on_cpu:
            raise UnsupportedError('int8 runs on the CPU (oneDNN / ONNX Runtime); on a GPU, time fp16 or bf16.')
        if 'deploy' not in modes or set(modes) - {'int8', 'deploy', 'compile', 'autotune', 'onnxruntime'}:
            raise UnsupportedError("int8 quantises the deploy form: use --modes deploy int8 (PyTorch 2 export "
                                   "quantisation, compiled), or deploy onnxruntime int8 (ONNX Runtime's).")
        if 'onnxruntime' not in modes:  # PT2E's int8 runs compiled: say so in the records
            modes = sorted({*modes, 'compile'}, key=MODES.index)
    if 'autotune' in modes:
        if 'onnxruntime' in modes:
            raise UnsupportedError('autotune tunes what torch.compile makes (inductor\'s max_autotune), not ONNX '
                                   'Runtime\'s graph.')
        modes = sorted({*modes, 'compile'}, key=MODES.index)
    if 'onnxruntime' in modes:
        if not on_cpu:
            raise UnsupportedError('onnxruntime runs on the CPU (the project installs ONNX Runtime\'s CPU package and '
                                   'feeds it host arrays): time it with --device cpu, or the PyTorch modes on the GPU.')
        if predict_path:
            raise UnsupportedError('onnxruntime times backbones and classifiers; export a detector with '
                                   'tools/export_onnx.py instead.')
        if set(modes) - {'onnxruntime', 'deploy', 'int8'}:
            raise UnsupportedError('onnxruntime combines with deploy and int8 only.')
    return modes


def precision_notes(modes, device: torch.device | str) -> list[str]:
    """One line for each precision in ``modes`` this CPU only emulates, to
    print before timing it."""
    if torch.device(device).type != 'cpu':
        return []
    note = emulation_note(precision_of(modes))
    return [note] if note else []


def apply_modes(model: nn.Module, modes, calibration=(), run=None) -> nn.Module:
    """``model`` in eval mode with ``modes`` applied: the deploy form, a
    precision (:func:`..models.deploy.cast`: float32 in and out, so the
    input and post-processing are untouched; int8: :func:`.quantize.quantize_int8`
    on the ``calibration`` batches, passed through ``run``), then the
    memory format and compilation. An mmengine model (detector, segmentor,
    classifier) is compiled per network part: its post-processing has
    data-dependent shapes."""
    model = model.eval()
    if 'int8' in modes:
        return quantize_int8(model, calibration, run, autotune='autotune' in modes)
    dtype = CAST_PRECISIONS.get(precision_of(modes), torch.float32)
    model = deploy(model, 'float32') if 'deploy' in modes else model
    model = cast(model, dtype)
    if 'channels_last' in modes:
        model = model.to(memory_format=torch.channels_last)
    if {'compile', 'autotune', 'cudagraphs'} & set(modes):
        compiled = functools.partial(
            CompiledForInference, device=next(model.parameters()).device, autotune='autotune' in modes,
            dynamic=False, **(dict(mode='reduce-overhead') if 'cudagraphs' in modes else {}))
        if hasattr(model, 'data_preprocessor'):
            for part in ('backbone', 'neck'):
                if getattr(model, part, None) is not None:
                    setattr(model, part, compiled(getattr(model, part)))
        else:
            model = compiled(model)
    return model


def prepare(model: nn.Module, modes, device: torch.device | str, example: torch.Tensor,
            work_dir: str = '.') -> Callable[[torch.Tensor], object]:
    """``model`` on ``device`` in ``modes``, as a function of an input batch."""
    model = model.to(device)
    # int8: any values calibrate well enough for timing
    calibration = [torch.randn_like(example).repeat(2, 1, 1, 1) for _ in range(2)] if 'int8' in modes else []
    if 'onnxruntime' in modes:
        model = apply_modes(model, [m for m in modes if m == 'deploy'])
        path = os.path.join(work_dir, 'benchmark.onnx')
        if 'int8' in modes:
            export_onnx_int8(model, example, path, calibration, overwrite=True)
        else:
            export_onnx(model, example, path, overwrite=True)
        session = onnx_runtime_session(path, device, torch.get_num_threads())
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.cpu().numpy()})
    model = apply_modes(model, modes, calibration)
    memory_format = torch.channels_last if 'channels_last' in modes else torch.contiguous_format

    @torch.no_grad()
    def run(x):
        return model(x.to(memory_format=memory_format))

    return run


# --------------------------------------------------------------------------
# Targets: an arch, a peer backbone, or a config's whole predict path.


def stage_windows(size: tuple[int, int], window: int = 7) -> tuple[int, ...]:
    """Each stage's window clamped to its map (as timm's ImageNet models do):
    (7, 7, 4) at 224, 7 everywhere at detection sizes."""
    sides = [(min(size) + 15) // 16]
    for _ in range(2):
        sides.append((sides[-1] + 1) // 2)
    return tuple(min(window, side) for side in sides)


class ForwardFeatures(nn.Module):
    """A classifier's feature extractor as a module, so that it is timed as a backbone (no head)."""

    def __init__(self, forward):
        super().__init__()
        self.owner, self.forward_features = forward.__self__, forward

    def forward(self, x):
        return self.forward_features(x)


def build_backbone(spec: str, size: tuple[int, int]) -> tuple[nn.Module, str]:
    """An arch ('m0'..'m5': this project's backbone), 'timm:NAME' (timm's
    ``forward_features``) or 'torchvision:NAME' (its ``features``, or a
    ResNet's layers up to ``layer4``), with random weights. Returns the
    module and what is timed."""
    if spec in ARCH_SETTINGS:
        windows = stage_windows(size)
        return EfficientViT(spec, window_size=windows), f'backbone forward (windows {windows})'
    library, _, name = spec.partition(':')
    if library == 'timm':
        import timm
        if name not in timm.list_models():
            raise UnsupportedError(f'{spec!r}: timm has no model {name!r} (timm.list_models() lists them).')
        model = timm.create_model(name, pretrained=False)
        return ForwardFeatures(model.forward_features), 'forward_features'
    if library == 'torchvision':
        import torchvision
        if name not in torchvision.models.list_models():
            raise UnsupportedError(f'{spec!r}: torchvision has no model {name!r} '
                                   '(torchvision.models.list_models() lists them).')
        model = torchvision.models.get_model(name, weights=None)
        if isinstance(model, torchvision.models.ResNet):  # the trunk a detector's ResNet backbone runs
            return nn.Sequential(*list(model.children())[:-2]), 'conv1..layer4 (no pooling, no fc)'
        if not isinstance(getattr(model, 'features', None), nn.Module):
            raise UnsupportedError(f'{spec!r}: the benchmark times a torchvision model\'s feature trunk: its '
                                   '`features` (MobileNet, EfficientNet, ConvNeXt, VGG ...) or a ResNet\'s layers; '
                                   f'{type(model).__name__} has neither. Time timm:NAME, or a config file.')
        return model.features, 'features'
    raise UnsupportedError(f'{spec!r}: expected an arch ({", ".join(ARCH_SETTINGS)}), timm:NAME, torchvision:NAME '
                           'or a config file.')


def _drop_pretrained(node) -> None:
    """Remove every ``init_cfg=dict(type='Pretrained', ...)`` in a model config."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            node['init_cfg'] = None
        for value in node.values():
            _drop_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _drop_pretrained(value)


def predict_path(cfg, checkpoint: str | None, modes, device,
                 images: list) -> tuple[Callable[[list], object], str, list[int]]:
    """A function running a config's whole predict path on a list of images
    (HxWx3 uint8): the toolbox inferencer's preprocessing (resize, pack),
    then ``test_step`` (normalise, pad, forward, post-processing such as
    NMS), in ``modes``; what it times; and the size the pipeline resizes
    ``images`` to, which the network sees. Random weights without
    ``checkpoint``; int8 calibrates on ``images``, which is enough for
    timing, not for accuracy (tools/precision_cost.py calibrates on the
    training split)."""
    from mmengine.registry import DefaultScope

    if checkpoint is None:
        _drop_pretrained(cfg.model)  # no downloads; the weights' values do not change the timing
    scope = cfg.get('default_scope')
    # The scope a previous inferencer left current would resolve this one's transforms.
    in_scope = lambda: DefaultScope.overwrite_default_scope(scope)  # noqa: E731
    inferencer = build_inferencer(cfg, checkpoint, str(device))
    if checkpoint is None:
        # Initialised as for training: a detection head then scores anchors at its prior (RetinaNet: 0.01),
        # not at PyTorch's default 0.5, which would send every anchor to NMS.
        with in_scope():
            inferencer.model.init_weights()
    def packed(images):
        with in_scope():
            item = next(iter(inferencer.preprocess(images, batch_size=len(images))))
        return item if isinstance(item, dict) else item[-1]  # mmdet yields [inputs, data]

    def in_scope_test_step(data):
        with in_scope():
            return inferencer.model.test_step(data)

    model = apply_modes(inferencer.model, modes, [packed(images)] if 'int8' in modes else [], run=in_scope_test_step)

    @torch.no_grad()
    def run(images):
        data = packed(images)
        with in_scope():
            return model.test_step(data)

    network_input = list(packed(images[:1])['inputs'][0].shape[-2:])
    return run, 'predict path: preprocessing, normalisation and padding, forward, post-processing', network_input


def timed_target(spec: str, size: tuple[int, int], batch_size: int, modes=(), device='cpu',
                 checkpoint: str | None = None, work_dir: str = '.', cfg_options: dict | None = None) -> dict:
    """One target (see :func:`build_backbone`, or a config file) ready to
    time: ``run``, ``make_input`` (a batch of n) and the record's fields."""
    is_config = spec.endswith('.py')
    modes = check_modes(modes, device, predict_path=is_config)
    if is_config:
        images = [np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8) for i in range(batch_size)]
        run, what, network_input = predict_path(load_config(spec, cfg_options, work_dir=work_dir), checkpoint,
                                                modes, device, images)
        make_input = lambda n: images[:n]  # noqa: E731
        # The record's input is what the network ran at: a config's pipeline resizes the images (RetinaNet's
        # 224x224 to 800x800).
        sizes = dict(input_size=network_input, image_size=list(size))
    else:
        if checkpoint:
            raise UnsupportedError(f'--checkpoint is a config\'s trained weights; {spec} is a backbone, timed with '
                                   'random weights (they do not change its timing). Drop --checkpoint, or time '
                                   'the config the checkpoint was trained with.')
        model, what = build_backbone(spec, size)
        run = prepare(model, modes, device, torch.randn(1, 3, *size), work_dir)
        make_input = lambda n: torch.randn(n, 3, *size, device=device)  # noqa: E731
        sizes = dict(input_size=list(size))
    return dict(run=run, make_input=make_input,
                record=dict(model=spec, what=what, modes=list(modes) or ['eager'], precision=precision_of(modes),
                            **sizes, batch_size=batch_size, **checkpoint_fields(checkpoint)))


def timed_targets(model: str, modes, peers=(), peer_modes=(), checkpoint: str | None = None,
                  cfg_options: dict | None = None, **common) -> list[dict]:
    """``model`` and its peers (``SPEC`` or ``SPEC@mode+mode``; ``peer_modes``
    for those without their own) as :func:`timed_target`, ready to time
    together. The checkpoint and config overrides go to ``model`` and to the
    peers naming its config file (the same model in other modes); with a
    checkpoint, another config is refused: with random weights its head
    keeps almost no boxes for NMS, so the ratio would compare unequal work."""
    plan = [(model, modes, True)]
    for peer in peers:
        spec, own = split_target(peer)
        same = spec == model or (spec.endswith('.py') and os.path.isfile(spec) and os.path.isfile(model)
                                 and os.path.samefile(spec, model))
        if checkpoint and spec.endswith('.py') and not same:
            raise UnsupportedError(f'--checkpoint loads into {model} only, and its peer {spec} would run with random '
                                   'weights: their post-processing would differ (a random head keeps almost no '
                                   'boxes for NMS). Time both with random weights (drop --checkpoint), or '
                                   f'{model}@MODES peers of the checkpoint\'s own config.')
        plan.append((spec, peer_modes if own is None else own, same))
    # Built once every peer is known to be timed fairly: building a detector and loading its weights takes seconds.
    return [timed_target(spec, modes=modes, checkpoint=checkpoint if same else None,
                         cfg_options=cfg_options if same else None, **common) for spec, modes, same in plan]


def benchmark_together(targets: list[dict], batch_size: int = 16, device='cpu', warmup: int = 3,
                       repeats: int = 10) -> list[dict]:
    """JSON-ready records for targets from :func:`timed_target`, timed in
    turns (:func:`.timing.interleaved_times`) so that their ratios are fair."""
    figures = throughput_and_latency([t['run'] for t in targets], [t['make_input'] for t in targets],
                                     batch_size, device, warmup, repeats)
    env = environment(device)
    return [dict(**t['record'], warmup=warmup, repeats=repeats, interleaved=len(targets) > 1, **f, **env)
            for t, f in zip(targets, figures)]


def benchmark(spec: str, size: tuple[int, int], batch_size: int = 16, modes=(), device='cpu',
              checkpoint: str | None = None, warmup: int = 3, repeats: int = 10, work_dir: str = '.',
              cfg_options: dict | None = None) -> dict:
    """Throughput and latency of one target in ``modes``; a JSON-ready record."""
    target = timed_target(spec, size, batch_size, modes, device, checkpoint, work_dir, cfg_options)
    return benchmark_together([target], batch_size, device, warmup, repeats)[0]


