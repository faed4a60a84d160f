"""`make gpu-check` (tools/gpu_check.py): what a GPU user, or a machine lent
for it, runs once to know the GPU path works and how fast it is:

1. the stack: torch's CUDA, the GPU, and whether mmcv was built with CUDA ops;
2. mmcv's CUDA ops that the models call (NMS, RoIAlign, mmdet's focal loss)
   against their CPU results;
3. a few iterations of RetinaNet-M4 as configured for COCO, with mixed
   precision, on the synthetic shapes at COCO's 1333x800, then a test pass;
4. the speed of the M4 backbone (float32, float16, compiled, CUDA graphs) and
   of RetinaNet-M4 against mmdet's RetinaNet-R50 at 800x1333.

It prints a short report and saves everything as JSON (the speed records
also as ``benchmark_<time>.json`` for tools/report.py).
"""
from __future__ import annotations

import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass

import torch

from ..analysis.benchmark import benchmark_together, check_modes, timed_target
from ..analysis.modes import split_target
from ..analysis.records import environment, format_table, new_stem, save_records
from ..engine.config import load_config
from ..engine.runner import train
from ..errors import UnsupportedError
from . import REPO_ROOT
from .synthetic import SyntheticSpec, generate

CONFIG = osp.join(REPO_ROOT, 'configs', 'gpu_check', 'retinanet_efficientvit_m4_synthetic.py')
# Timed as configured for COCO (80 classes), as is the peer.
DETECTOR = osp.join(REPO_ROOT, 'configs', 'retinanet_efficientvit_m4_coco.py')
DETECTOR_PEER = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'


@dataclass(frozen=True)
class Plan:
    """What the check runs; the defaults are the GPU check, smaller values
    let the same steps run quickly (the test suite runs them on a CPU)."""
    device: str = 'cuda'
    amp: str | None = 'float16'
    train_iters: int = 20
    train_cfg_options: dict | None = None    # e.g. a smaller image size
    backbone_size: tuple[int, int] = (224, 224)
    backbone_batch: int = 256
    # PEER@MODES, the first the reference of the ratios (this project's own spelling, as tools/benchmark.py's)
    backbone_targets: tuple[str, ...] = ('m4', 'm4@deploy', 'm4@deploy+fp16', 'm4@deploy+fp16+compile',
                                         'm4@deploy+fp16+cudagraphs', 'timm:efficientvit_m4@fp16')
    detector_size: tuple[int, int] = (800, 1333)
    detector_batch: int = 2
    detector_cfg_options: dict | None = None  # e.g. another test scale
    detector_targets: tuple[str, ...] = (DETECTOR_PEER, f'{DETECTOR_PEER}@fp16', DETECTOR, f'{DETECTOR}@deploy+fp16')
    warmup: int = 5
    repeats: int = 20


def mmcv_cuda_version() -> str | None:
    """The CUDA version mmcv's ops were compiled with; None for CPU ops only."""
    from mmcv.ops import get_compiling_cuda_version
    version = get_compiling_cuda_version()
    return None if version == 'not available' else version


def stack_facts(device: str) -> dict:
    facts = dict(torch=torch.__version__, torch_cuda=torch.version.cuda, mmcv_cuda_ops=mmcv_cuda_version())
    if torch.device(device).type == 'cuda':
        facts.update(gpu=torch.cuda.get_device_name(device),
                     capability='{}.{}'.format(*torch.cuda.get_device_capability(device)),
                     gpus_visible=torch.cuda.device_count())
    return facts


def check_gpu_ready(device: str) -> None:
    """Stop with what to do when this machine cannot run the GPU check."""
    if torch.device(device).type != 'cuda':
        return
    if not torch.cuda.is_available():
        raise UnsupportedError('No CUDA GPU is visible (torch.cuda.is_available() is False): the GPU check is for '
                               'GPU machines; on this one run `make test`.')
    if mmcv_cuda_version() is None:
        raise UnsupportedError('mmcv here has CPU ops only, so mmdet cannot train on the GPU (its focal loss calls '
                               'mmcv\'s CUDA kernel): run `make setup` on this GPU machine, which builds mmcv with '
                               'CUDA ops for the GPUs it sees (README: GPU machines).')


def compare_cuda_ops(device: str = 'cuda') -> list[dict]:
    """mmcv's CUDA ops that the models call, each against the same call on
    the CPU: NMS and batched NMS (same boxes kept), RoIAlign, and mmdet's
    FocalLoss, which calls mmcv's CUDA kernel on a GPU and its own PyTorch
    code on a CPU."""
    from mmcv.ops import RoIAlign, batched_nms, nms
    from mmdet.models.losses import FocalLoss

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(500, 2, generator=gen) * 300
    boxes = torch.cat([xy, xy + torch.rand(500, 2, generator=gen) * 80 + 1], 1)
    scores, labels = torch.rand(500, generator=gen), torch.randint(0, 6, (500,), generator=gen)
    features = torch.randn(2, 16, 40, 48, generator=gen)
    rois = torch.cat([torch.randint(0, 2, (64, 1), generator=gen).float(), boxes[:64] / 4], 1)
    logits, targets = torch.randn(300, 6, generator=gen), torch.randint(0, 7, (300,), generator=gen)
    calls = {
        'nms': lambda d: nms(boxes.to(d), scores.to(d), iou_threshold=0.5)[1],
        'batched_nms': lambda d: batched_nms(boxes.to(d), scores.to(d), labels.to(d),
                                             dict(type='nms', iou_threshold=0.5))[1],
        'roi_align': lambda d: RoIAlign((7, 7), spatial_scale=0.25, sampling_ratio=2, aligned=True)(
            features.to(d), rois.to(d)),
        'focal_loss (mmdet)': lambda d: FocalLoss(reduction='none')(logits.to(d), targets.to(d)),
    }
    results = []
    for name, call in calls.items():
        try:
            on_device = call(device).cpu()
        except RuntimeError as err:  # e.g. "no kernel image is available": built for other GPUs
            raise UnsupportedError(f'mmcv\'s CUDA {name} fails on {torch.cuda.get_device_name(device)}: {err}; '
                                   'the mmcv wheel was built for other GPUs or another CUDA: run `make setup` '
                                   'on this machine.') from err
        on_cpu = call('cpu')
        if on_cpu.dtype.is_floating_point:
            difference = (on_device - on_cpu).abs().max().item()
            same = difference <= 1e-4 * max(1.0, on_cpu.abs().max().item())
        else:
            difference, same = None, torch.equal(on_device, on_cpu)
        results.append(dict(op=name, same=bool(same), max_difference=difference))
    wrong = [r['op'] for r in results if not r['same']]
    if wrong:
        raise UnsupportedError(f'mmcv\'s CUDA ops give other results than on the CPU: {", ".join(wrong)} '
                               f'({results}); the mmcv wheel does not match this GPU or CUDA: rebuild it with '
                               '`make setup`.')
    return results


def train_and_test(plan: Plan, work_dir: str, data_root: str) -> dict:
    """A few iterations of the GPU check's config, then a test pass, in a
    new ``work_dir/train_<time>``: each check measures a training of its own
    (one folder would hold the last check's run, which is not retrained)."""
    cfg = load_config(CONFIG, plan.train_cfg_options, work_dir=new_stem(work_dir, 'train', extensions=('',)),
                      data_root=data_root)
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = plan.train_iters
    cfg.default_hooks.checkpoint.interval = plan.train_iters
    if torch.device(plan.device).type == 'cuda':
        torch.cuda.reset_peak_memory_stats(plan.device)
    start = time.perf_counter()
    runner = train(cfg, resume=False, amp=plan.amp)
    train_s = time.perf_counter() - start
    losses = runner.message_hub.get_scalar('train/loss').data[0].tolist()
    iter_times = runner.message_hub.get_scalar('train/time').data[0].tolist()
    peak = torch.cuda.max_memory_allocated(plan.device) / 2**30 if torch.device(plan.device).type == 'cuda' else None
    metrics = runner.test()
    resize = next(step for step in cfg.train_dataloader.dataset.pipeline if step['type'] == 'Resize')
    settled = iter_times[len(iter_times) // 2:] or iter_times  # the first iterations include start-up
    return dict(iters=plan.train_iters, amp=plan.amp, batch_size=cfg.train_dataloader.batch_size,
                image_size=list(resize['scale'][::-1]), first_loss=losses[0], last_loss=losses[-1],
                losses_logged=len(losses), seconds_per_iter=sum(settled) / len(settled), train_s=train_s,
                peak_memory_gib=peak, test_images=len(runner.test_dataloader.dataset),
                bbox_mAP=metrics.get('coco/bbox_mAP'))


def speed(plan: Plan, work_dir: str, targets: tuple[str, ...], size: tuple[int, int], batch_size: int,
          cfg_options: dict | None = None) -> list[dict]:
    timed = []
    for target in targets:
        spec, modes = split_target(target)
        timed.append(timed_target(spec, size, batch_size, modes or (), plan.device,
                                  work_dir=osp.join(work_dir, 'speed'), cfg_options=cfg_options))
    return benchmark_together(timed, batch_size, plan.device, plan.warmup, plan.repeats)


def check_plan(plan: Plan) -> None:
    """Every target's modes are valid on the plan's device, before anything runs."""
    for target in (*plan.backbone_targets, *plan.detector_targets):
        spec, modes = split_target(target)
        check_modes(modes or (), plan.device, predict_path=spec.endswith('.py'))


def run_gpu_check(work_dir: str = 'work_dirs/gpu_check', data_root: str = 'data/synthetic',
                  plan: Plan = Plan(), spec: SyntheticSpec = SyntheticSpec()) -> dict:
    check_gpu_ready(plan.device)
    check_plan(plan)
    if torch.device(plan.device).type == 'cuda':
        torch.cuda.set_device(plan.device)  # mmengine trains on the current GPU
    os.makedirs(work_dir, exist_ok=True)
    generate(data_root, spec)
    result = dict(stack=stack_facts(plan.device), plan=asdict(plan))
    if torch.device(plan.device).type == 'cuda':
        result['cuda_ops'] = compare_cuda_ops(plan.device)
    result['training'] = train_and_test(plan, work_dir, data_root)
    result['backbone'] = speed(plan, work_dir, plan.backbone_targets, plan.backbone_size, plan.backbone_batch)
    result['detector'] = speed(plan, work_dir, plan.detector_targets, plan.detector_size, plan.detector_batch,
                               plan.detector_cfg_options)
    result['environment'] = environment(plan.device)
    path = new_stem(work_dir, 'gpu_check') + '.json'
    with open(path, 'w') as f:
        json.dump(result, f, indent=1, default=str)
    result['saved'] = [path, save_records(result['backbone'] + result['detector'], work_dir)]
    return result


def format_report(result: dict) -> str:
    stack, training = result['stack'], result['training']
    where = (f'{stack["gpu"]} (compute capability {stack["capability"]})' if 'gpu' in stack
             else result['environment']['device'])
    ops = result.get('cuda_ops')
    lines = [f'GPU check on {where}: torch {stack["torch"]} (CUDA {stack["torch_cuda"]}), mmcv ops '
             + (f'with CUDA {stack["mmcv_cuda_ops"]}' if stack['mmcv_cuda_ops'] else 'CPU only'),
             'mmcv CUDA ops vs CPU: ' + (', '.join(
                 f'{o["op"]} ' + ('same' if o['max_difference'] is None else f'max diff {o["max_difference"]:.1e}')
                 for o in ops) if ops else 'not compared (no GPU)'),
             f'training: {training["iters"]} iterations of RetinaNet-M4, '
             f'{"AMP " + training["amp"] if training["amp"] else "float32"}, {training["batch_size"]} images of '
             f'{training["image_size"][0]}x{training["image_size"][1]} per step: loss {training["first_loss"]:.3f} '
             f'-> {training["last_loss"]:.3f}, {training["seconds_per_iter"]:.3f} s/iteration'
             + (f', peak memory {training["peak_memory_gib"]:.1f} GiB' if training['peak_memory_gib'] else ''),
             f'test: {training["test_images"]} images, box mAP {training["bbox_mAP"]} (means nothing after so few '
             'iterations: the pass ran)',
             '', 'M4 backbone', format_table(result['backbone']),
             '', 'RetinaNet, whole predict path', format_table(result['detector'])]
    lines += [f'saved {path}' for path in result['saved']]
    return '\n'.join(lines)
