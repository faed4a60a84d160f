"""Timing a forward pass: warm-up, repeats, medians, CUDA synchronisation.

Figures on shared machines are noisy, so compare models measured in the
same run (a ratio) rather than against numbers from another day.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import statistics
import time
from typing import Callable

import numpy as np
import torch
import torch.nn as nn


def time_calls(fn: Callable[[], object], warmup: int = 3, repeats: int = 10,
               device: torch.device | str = 'cpu') -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn`` after ``warmup``
    untimed calls (see :func:`interleaved_times`)."""
    return interleaved_times([fn], warmup, repeats, device)[0]


def interleaved_times(fns: list[Callable[[], object]], warmup: int = 3, repeats: int = 10,
                      device: torch.device | str = 'cpu') -> list[list[float]]:
    """Seconds taken by each call of each function: after ``warmup`` untimed
    calls of each, ``repeats`` rounds that call every function once, so a
    slow spell of a shared machine falls on all of them alike. On CUDA the
    device is synchronised around every call so that the time covers the
    kernels, not just their launch."""
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, seconds in zip(fns, times):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            seconds.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def images_per_second(models: list[nn.Module], batch_size: int = 16, size: int | tuple[int, int] = 224,
                      warmup: int = 3, repeats: int = 10, device: torch.device | str = 'cpu') -> list[float]:
    """Median inference throughput of each model in eval mode on one random
    batch, the models timed in turns."""
    height, width = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch_size, 3, height, width, device=device)
    models = [model.eval().to(device) for model in models]
    times = interleaved_times([functools.partial(model, x) for model in models], warmup, repeats, device)
    return [batch_size / statistics.median(seconds) for seconds in times]


@torch.no_grad()
def predict_images_per_second(model: nn.Module, dataloader, num_batches: int = 5, warmup: int = 1) -> float:
    """Throughput of an mmengine model's whole predict path (``test_step``:
    data preprocessing, forward and post-processing such as NMS) on batches
    from ``dataloader``. Loading and decoding the files is not timed."""
    model.eval()
    batches = []
    for batch in dataloader:
        batches.append(batch)
        if len(batches) == warmup + num_batches:
            break
    if len(batches) <= warmup:
        raise ValueError(f'The dataloader gave {len(batches)} batches; timing needs more than {warmup}.')
    for batch in batches[:warmup]:
        model.test_step(batch)
    device = next(model.parameters()).device
    images, seconds = 0, 0.0
    for batch in batches[warmup:]:
        (elapsed,) = time_calls(lambda: model.test_step(batch), warmup=0, repeats=1, device=device)
        seconds += elapsed
        images += len(batch['inputs'])
    return images / seconds


# --------------------------------------------------------------------------
# What tools/benchmark.py measures: a model, in some modes, on some device.

MODES = ('deploy', 'channels_last', 'compile', 'fp16', 'bf16', 'onnxruntime')  # none of them: eager
MODE_HELP = {
    'deploy': 'BatchNorm folded; EfficientViT\'s 1x1 convolutions as matrix products on channels_last maps',
    'channels_last': 'NHWC memory format for weights and input',
    'compile': 'torch.compile (inductor)',
    'fp16': 'float16 autocast (GPU)',
    'bf16': 'bfloat16 autocast (GPU)',
    'onnxruntime': 'exported to ONNX and run by ONNX Runtime (backbones and classifiers)',
}


class BenchmarkError(ValueError):
    """A model or a combination of modes the benchmark cannot time."""


def check_modes(modes, device: torch.device | str, predict_path: bool = False) -> list[str]:
    modes = sorted(set(modes), key=MODES.index) if all(m in MODES for m in modes) else None
    if modes is None:
        raise BenchmarkError(f'Modes are {", ".join(MODES)} (none: eager).')
    if 'fp16' in modes and 'bf16' in modes:
        raise BenchmarkError('Choose one of fp16 and bf16.')
    if {'fp16', 'bf16'} & set(modes) and torch.device(device).type != 'cuda':
        raise BenchmarkError('fp16/bf16 autocast is for GPUs; on a CPU, time float32.')
    if 'onnxruntime' in modes:
        if predict_path:
            raise BenchmarkError('onnxruntime times backbones and classifiers; export a detector with '
                                 'tools/export_onnx.py instead.')
        if set(modes) - {'onnxruntime', 'deploy'}:
            raise BenchmarkError('onnxruntime combines with deploy only.')
    return modes


def deploy(model: nn.Module) -> nn.Module:
    """The deploy form of any model, in place: EfficientViT backbones switched
    to theirs (:meth:`EfficientViT.switch_to_deploy`), this project's other
    Conv-BN and BN-Linear pairs folded (:func:`fuse_batchnorm`), then every
    other convolution followed by a BatchNorm (ResNets, necks) by mmcv's
    ``fuse_conv_bn``."""
    from mmcv.cnn import fuse_conv_bn

    from .models.backbones.efficientvit import EfficientViT, fuse_batchnorm
    model.eval()
    for module in model.modules():
        if isinstance(module, EfficientViT):
            module.switch_to_deploy()
    return fuse_conv_bn(fuse_batchnorm(model))


def apply_modes(model: nn.Module, modes) -> nn.Module:
    """``model`` in eval mode with ``modes`` applied (autocast is applied per
    call, by :func:`autocast`). An mmengine model (detector, segmentor,
    classifier) is compiled per network part: its post-processing has
    data-dependent shapes."""
    model = model.eval()
    if 'deploy' in modes:
        model = deploy(model)
    if 'channels_last' in modes:
        model = model.to(memory_format=torch.channels_last)
    if 'compile' in modes:
        if hasattr(model, 'data_preprocessor'):
            for part in ('backbone', 'neck'):
                if getattr(model, part, None) is not None:
                    setattr(model, part, torch.compile(getattr(model, part), dynamic=False))
        else:
            model = torch.compile(model, dynamic=False)
    return model


def autocast(modes, device: torch.device | str):
    """The autocast context of an fp16/bf16 mode, else a no-op."""
    dtypes = [{'fp16': torch.float16, 'bf16': torch.bfloat16}[m] for m in modes if m in ('fp16', 'bf16')]
    return torch.autocast(torch.device(device).type, dtype=dtypes[0]) if dtypes else contextlib.nullcontext()


def prepare(model: nn.Module, modes, device: torch.device | str, example: torch.Tensor,
            work_dir: str = '.') -> Callable[[torch.Tensor], object]:
    """``model`` on ``device`` in ``modes``, as a function of an input batch."""
    model = model.to(device)
    if 'onnxruntime' in modes:
        from .export import export_onnx, onnx_runtime_session
        model = apply_modes(model, [m for m in modes if m == 'deploy'])
        path = export_onnx(model, example, os.path.join(work_dir, 'benchmark.onnx'), overwrite=True)
        session = onnx_runtime_session(path, device)
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x.cpu().numpy()})
    model = apply_modes(model, modes)
    memory_format = torch.channels_last if 'channels_last' in modes else torch.contiguous_format

    @torch.no_grad()
    def run(x):
        with autocast(modes, device):
            return model(x.to(memory_format=memory_format))

    return run


def throughput_and_latency(fns: list[Callable], make_inputs: list[Callable[[int], object]], batch_size: int,
                           device: torch.device | str, warmup: int = 3, repeats: int = 10) -> list[dict]:
    """For each ``fn`` with its ``make_input``: images/s of
    ``fn(make_input(batch_size))`` (median over repeats) and batch-1 latency
    (median and 90th percentile, ms), the functions timed in turns."""
    batches = [make(batch_size) for make in make_inputs]
    singles = [make(1) for make in make_inputs]
    batch_times = interleaved_times([functools.partial(fn, x) for fn, x in zip(fns, batches)],
                                    warmup, repeats, device)
    single_times = interleaved_times([functools.partial(fn, x) for fn, x in zip(fns, singles)],
                                     warmup, max(repeats, 10), device)
    figures = []
    for batch, single in zip(batch_times, single_times):
        single = sorted(single)
        figures.append(dict(images_per_s=batch_size / statistics.median(batch),
                            latency_ms_median=1e3 * statistics.median(single),
                            latency_ms_p90=1e3 * single[min(len(single) - 1, round(0.9 * (len(single) - 1)))]))
    return figures


def environment(device: torch.device | str) -> dict:
    """Where a figure was measured: the device, threads and versions."""
    import importlib.metadata
    import platform

    device = torch.device(device)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open('/proc/cpuinfo') as f:
                name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name)
        except OSError:
            pass
    versions = {}
    for package in ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation', 'mmpretrain',
                    'onnxruntime'):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return dict(device=f'{device.type}: {name}', threads=torch.get_num_threads(),
                python=platform.python_version(), versions=versions)


# --------------------------------------------------------------------------
# Targets: an arch, a peer backbone, or a config's whole predict path.


def stage_windows(size: tuple[int, int], window: int = 7) -> tuple[int, ...]:
    """Each stage's window clamped to its map (as timm's ImageNet models do):
    (7, 7, 4) at 224, 7 everywhere at detection sizes."""
    sides = [(min(size) + 15) // 16]
    for _ in range(2):
        sides.append((sides[-1] + 1) // 2)
    return tuple(min(window, side) for side in sides)


class _Features(nn.Module):
    """A classifier's feature extractor, for peers timed as backbones."""

    def __init__(self, forward):
        super().__init__()
        self.owner, self.forward_features = forward.__self__, forward

    def forward(self, x):
        return self.forward_features(x)


def build_backbone(spec: str, size: tuple[int, int]) -> tuple[nn.Module, str]:
    """An arch ('m0'..'m5': this project's backbone), 'timm:NAME' (timm's
    ``forward_features``) or 'torchvision:NAME' (its ``features``), with
    random weights. Returns the module and what is timed."""
    from .models import ARCH_SETTINGS, EfficientViT
    if spec in ARCH_SETTINGS:
        windows = stage_windows(size)
        return EfficientViT(spec, window_size=windows), f'backbone forward (windows {windows})'
    library, _, name = spec.partition(':')
    if library == 'timm':
        import timm
        model = timm.create_model(name, pretrained=False)
        return _Features(model.forward_features), 'forward_features'
    if library == 'torchvision':
        import torchvision
        return torchvision.models.get_model(name, weights=None).features, 'features'
    raise BenchmarkError(f'{spec!r}: expected an arch ({", ".join(ARCH_SETTINGS)}), timm:NAME, torchvision:NAME '
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


def predict_path(cfg, checkpoint: str | None, modes, device) -> tuple[Callable[[list], object], str]:
    """A function running a config's whole predict path on a list of images
    (HxWx3 uint8): the toolbox inferencer's preprocessing (resize, pack),
    then ``test_step`` (normalise, pad, forward, post-processing such as
    NMS), in ``modes``. Random weights without ``checkpoint``."""
    from mmengine.registry import DefaultScope

    from .inference import build_inferencer
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
    model = apply_modes(inferencer.model, modes)

    @torch.no_grad()
    def run(images):
        with in_scope():
            item = next(iter(inferencer.preprocess(images, batch_size=len(images))))
            data = item if isinstance(item, dict) else item[-1]  # mmdet yields [inputs, data]
            with autocast(modes, device):
                return model.test_step(data)

    return run, 'predict path: preprocessing, normalisation and padding, forward, post-processing'


def timed_target(spec: str, size: tuple[int, int], batch_size: int, modes=(), device='cpu',
                 checkpoint: str | None = None, work_dir: str = '.', cfg_options: dict | None = None) -> dict:
    """One target (see :func:`build_backbone`, or a config file) ready to
    time: ``run``, ``make_input`` (a batch of n) and the record's fields."""
    is_config = spec.endswith('.py')
    modes = check_modes(modes, device, predict_path=is_config)
    if is_config:
        from .runner import load_config
        run, what = predict_path(load_config(spec, cfg_options, work_dir=work_dir), checkpoint, modes, device)
        images = [np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8) for i in range(batch_size)]
        make_input = lambda n: images[:n]  # noqa: E731
    else:
        model, what = build_backbone(spec, size)
        run = prepare(model, modes, device, torch.randn(1, 3, *size), work_dir)
        make_input = lambda n: torch.randn(n, 3, *size, device=device)  # noqa: E731
    return dict(run=run, make_input=make_input,
                record=dict(model=spec, what=what, modes=list(modes) or ['eager'], input_size=list(size),
                            batch_size=batch_size, checkpoint=checkpoint))


def benchmark_together(targets: list[dict], batch_size: int = 16, device='cpu', warmup: int = 3,
                       repeats: int = 10) -> list[dict]:
    """JSON-ready records for targets from :func:`timed_target`, timed in
    turns (:func:`interleaved_times`) so that their ratios are fair."""
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


def format_table(records: list[dict]) -> str:
    """One line per record, with each model's ratio to the first."""
    first = records[0]
    lines = [f'{first["device"]}, {first["threads"]} threads, torch {first["versions"].get("torch")}; '
             f'input {first["input_size"][0]}x{first["input_size"][1]}, batch {first["batch_size"]} '
             f'(latency: batch 1), median of {first["repeats"]} after {first["warmup"]} warm-up calls'
             + (', models timed in turns' if first.get('interleaved') else ''),
             f'{"model":<44} {"modes":<22} {"images/s":>9} {"first÷":>6} {"lat. median":>11} {"p90 ms":>7}  timed']
    for r in records:
        lines.append(f'{r["model"][-44:]:<44} {"+".join(r["modes"]):<22} {r["images_per_s"]:>9.2f} '
                     f'{first["images_per_s"] / r["images_per_s"]:>5.2f}x {r["latency_ms_median"]:>8.1f} ms '
                     f'{r["latency_ms_p90"]:>7.1f}  {r["what"]}')
    return '\n'.join(lines)


def new_stem(directory: str, name: str, extensions=('.json',)) -> str:
    """``directory/name_<time>`` (with ``_1``, ``_2``... if needed) such that
    no file of that stem with any of ``extensions`` exists yet."""
    os.makedirs(directory, exist_ok=True)
    stamp = os.path.join(directory, f'{name}_{time.strftime("%Y%m%d_%H%M%S")}')
    for stem in (stamp, *(f'{stamp}_{i}' for i in range(1, 100))):
        if not any(os.path.exists(stem + ext) for ext in extensions):
            return stem
    raise FileExistsError(f'Too many files named {stamp}* in {directory}.')


def save_records(records: list[dict], work_dir: str) -> str:
    """Write ``records`` to a new ``benchmark_<time>.json`` in ``work_dir``
    (what tools/report.py reads); never replaces a file."""
    path = new_stem(work_dir, 'benchmark') + '.json'
    with open(path, 'x') as f:  # 'x': a file appearing meanwhile is refused, not replaced
        json.dump(records, f, indent=1)
    return path
