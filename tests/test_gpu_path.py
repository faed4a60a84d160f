"""The GPU path: mixed-precision training, the benchmark's GPU-only modes and
the GPU check (`make gpu-check`). What a CPU can check runs everywhere; the
tests marked ``gpu`` need a CUDA GPU and are skipped without one."""
import json
import os.path as osp

import pytest
import torch
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC, in_process_loaders, run_tool, run_tool_in_process
from mmengine.optim import build_optim_wrapper
from mmengine.registry import MODELS, DefaultScope

from efficientvit_dense.analysis.benchmark import check_modes
from efficientvit_dense.apps.gpu_check import (
    DETECTOR,
    DETECTOR_PEER,
    Plan,
    check_plan,
    compare_cuda_ops,
    format_report,
    run_gpu_check,
    train_and_test,
)
from efficientvit_dense.apps.synthetic import generate
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import Request, mixed_precision, train
from efficientvit_dense.errors import ConfigError, UnsupportedError

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU (torch.cuda.is_available() is False)')
DEMOS = {task: osp.join(REPO, 'configs', 'demo', name) for task, name in (
    ('detection', 'retinanet_efficientvit_m0_synthetic.py'), ('segmentation', 'fpn_efficientvit_m0_synthetic.py'),
    ('classification', 'cls_efficientvit_m0_synthetic.py'))}
# A few iterations of the GPU check's steps at small sizes: minutes on a CPU become seconds.
SMALL = dict(amp=None, train_iters=2, backbone_size=(64, 64), backbone_batch=2, backbone_targets=('m0', 'm0@deploy'),
             detector_size=(128, 160), detector_batch=1, detector_targets=(DETECTOR_PEER, f'{DETECTOR}@deploy'),
             detector_cfg_options={'test_dataloader.dataset.pipeline.1.scale': (160, 128)},
             warmup=1, repeats=1,
             train_cfg_options={**in_process_loaders(), **{f'{loader}.dataset.pipeline.{step}.scale': (160, 128)
                                for loader, step in (('train_dataloader', 2), ('val_dataloader', 1),
                                                     ('test_dataloader', 1))}})


@pytest.mark.parametrize('dtype, loss_scale', [('float16', 'dynamic'), ('bfloat16', {'enabled': False})])
def test_amp_gives_each_demo_config_mmengines_mixed_precision_wrapper(monkeypatch, dtype, loss_scale):
    """What --amp makes of each task's config, built as the runner builds it
    (mmengine's wrapper asserts a GPU: one is pretended)."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    for task, config in DEMOS.items():
        cfg = load_config(config)
        if task == 'detection' and dtype == 'bfloat16':
            with pytest.raises(ConfigError, match='focal loss and RoIAlign, which mmdet.s detectors train with, '
                               'have no bfloat16 kernels'):
                mixed_precision(cfg, Request(amp=dtype))
            continue
        mixed_precision(cfg, Request(amp=dtype))
        assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype, cfg.optim_wrapper.loss_scale) == (
            'AmpOptimWrapper', dtype, loss_scale), task
        if task == ('detection' if dtype == 'float16' else 'segmentation'):
            with DefaultScope.overwrite_default_scope(cfg.default_scope):
                model = MODELS.build(cfg.model)
            wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
            assert wrapper.cast_dtype == getattr(torch, dtype)
            assert wrapper.loss_scaler.is_enabled() == (dtype == 'float16')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a machine without a GPU')
def test_amp_and_cuda_graphs_without_a_gpu_are_refused_by_name():
    cfg = load_config(DEMOS['detection'])
    with pytest.raises(ConfigError, match='--amp trains in mixed precision on a GPU'):
        mixed_precision(cfg, Request(amp='float16'))
    assert cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper'  # left as it was
    with pytest.raises(UnsupportedError, match='cudagraphs replays CUDA graphs, on a GPU'):
        check_modes(['compile', 'cudagraphs'], 'cpu')


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a machine without a GPU')
def test_amp_dtype_alone_asks_for_mixed_precision(tmp_path):
    """tools/train.py --amp-dtype bfloat16 without --amp: mixed precision in bfloat16, here refused (no GPU); it
    was ignored, and a float32 run started."""
    generate(str(tmp_path / 'data'), TINY_SPEC)
    result = run_tool_in_process('train.py', DEMOS['detection'], '--amp-dtype', 'bfloat16', '--work-dir',
                                 str(tmp_path / 'run'), '--data-root', str(tmp_path / 'data'))
    assert result.returncode == 1 and '--amp trains in mixed precision on a GPU' in result.stderr, result.stderr


def test_the_gpu_checks_targets_are_valid_modes_on_a_gpu():
    check_plan(Plan())  # decided from the device name: no GPU needed to know the plan would be refused
    with pytest.raises(UnsupportedError, match='fp16 is for GPUs'):
        check_plan(Plan(device='cpu'))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal on a machine without a GPU')
def test_the_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    result = run_tool('gpu_check.py', '--work-dir', tmp_path / 'check', timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        'error: No CUDA GPU is visible (torch.cuda.is_available() is False): the GPU check is for GPU machines; '
        'on this one run `make test`.']
    assert not (tmp_path / 'check').exists()


def small_plan(device: str, **changes) -> Plan:
    return Plan(device=device, **{**SMALL, **changes})


def test_the_gpu_checks_steps_run_and_report_on_a_small_plan(pristine, tmp_path):
    """Every step of the check (training, test pass, both speed tables, the
    JSON), at small sizes on a CPU; on a GPU the real check runs them."""
    result = run_gpu_check(str(tmp_path / 'check'), str(pristine), small_plan('cpu'), TINY_SPEC)
    training = result['training']
    assert training['iters'] == 2 and training['losses_logged'] >= 1 and training['test_images'] == 4
    assert training['image_size'] == [128, 160]
    assert all(map(torch.isfinite, torch.tensor([training['first_loss'], training['last_loss']])))
    assert [r['modes'] for r in result['backbone']] == [['eager'], ['deploy']]
    assert [r['input_size'] for r in result['detector']] == [[128, 160]] * 2
    saved, records = result['saved']
    assert json.load(open(saved))['training'] == training
    assert len(json.load(open(records))) == 4
    report = format_report(result)
    assert 'RetinaNet-M4, float32, 2 images of 128x160 per step' in report
    assert 'not compared (no GPU)' in report and 'retinanet_r50_fpn_1x_coco.py' in report
    # A second check trains anew in a folder of its own (the first's finished run was refused as an earlier run)
    assert train_and_test(small_plan('cpu'), str(tmp_path / 'check'), str(pristine))['iters'] == 2
    assert len([p for p in (tmp_path / 'check').iterdir() if p.name.startswith('train_')]) == 2


@gpu
def test_mmcv_cuda_ops_agree_with_the_cpu():
    assert all(result['same'] for result in compare_cuda_ops('cuda'))


@gpu
@pytest.mark.parametrize('task', sorted(DEMOS))
def test_each_task_trains_with_amp_on_a_gpu(task, pristine, tmp_path):
    tiny = {**DETECTION_TINY_RUN} if task == 'detection' else {
        **in_process_loaders(), 'default_hooks.checkpoint.interval': 2,
        **({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2} if task == 'segmentation'
           else {'train_cfg.max_epochs': 1})}
    cfg = load_config(DEMOS[task], tiny, work_dir=str(tmp_path / 'run'), data_root=str(pristine))
    runner = train(cfg, amp='float16')
    assert type(runner.optim_wrapper).__name__ == 'AmpOptimWrapper'
    assert torch.isfinite(torch.tensor(runner.message_hub.get_scalar('train/loss').current()))


@gpu
def test_the_gpu_checks_steps_run_on_a_gpu_with_a_small_plan(pristine, tmp_path):
    result = run_gpu_check(str(tmp_path / 'check'), str(pristine),
                           small_plan('cuda', amp='float16', backbone_targets=('m0', 'm0@deploy+fp16+cudagraphs')),
                           TINY_SPEC)
    assert all(op['same'] for op in result['cuda_ops'])
    assert result['training']['peak_memory_gib'] > 0
