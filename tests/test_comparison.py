"""The offline backbone comparison end to end on a tiny budget: two
backbones trained, timed in one run, and reported with their settings."""
import os.path as osp

import pytest
from helpers import DETECTION_TINY_RUN, TINY_SPEC, detection_batch
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

from efficientvit_dense.apps.comparison import COMPARISON_CONFIGS, compare_backbones
from efficientvit_dense.engine.config import load_config


@pytest.mark.parametrize('config', COMPARISON_CONFIGS, ids=osp.basename)
def test_comparison_config_builds_and_runs_a_loss_and_a_predict_step(config, train_and_predict_step):
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    results = train_and_predict_step(model, detection_batch())
    assert len(results) == 2 and 'bboxes' in results[0].pred_instances


def test_every_comparison_config_trains_and_tests_alike():
    configs = [load_config(c) for c in COMPARISON_CONFIGS]
    assert len({c.model.backbone.type for c in configs}) == 3  # EfficientViT twice, two baselines
    for key in ('train_cfg', 'param_scheduler', 'optim_wrapper', 'train_dataloader', 'val_dataloader',
                'test_dataloader'):
        assert len({str(c[key]) for c in configs}) == 1, f'{key} differs between the compared configs'
    assert len({str(c.model.bbox_head) for c in configs}) == 1


def test_comparison_trains_times_and_reports_each_backbone(tmp_path):
    configs = [c for c in COMPARISON_CONFIGS if 'efficientvit_m0' in c or 'mobilenetv2' in c]
    run = dict(configs=configs, work_root=str(tmp_path / 'compare'), data_root=str(tmp_path / 'data'),
               batch_size=2, warmup=0, repeats=1, cfg_options=DETECTION_TINY_RUN, spec=TINY_SPEC)
    first = compare_backbones(**run)
    rows = [line for line in first['table'].splitlines() if line.startswith('| retinanet_')]
    assert [row.split(' | ')[0] for row in rows] == ['| retinanet_efficientvit_m0_synthetic',
                                                      '| retinanet_mobilenetv2_synthetic']
    for row in rows:  # accuracy, speed and the settings it was measured under
        assert 'box AP' in row and '| 2 | 192x192 | cpu: ' in row and '| deploy |' in row
    assert '†' not in first['table']  # measured alike
    assert osp.getsize(first['plot']) > 0

    run_dir = tmp_path / 'compare' / 'retinanet_efficientvit_m0_synthetic'
    saved = (run_dir / 'iter_2.pth').stat().st_mtime_ns
    second = compare_backbones(**run)  # finished runs are not trained again; the first report stays
    assert second['markdown'] != first['markdown'] and osp.exists(first['markdown'])
    assert sorted(p.name for p in run_dir.glob('*.pth')) == ['iter_2.pth']
    assert (run_dir / 'iter_2.pth').stat().st_mtime_ns == saved  # a second training would have saved it anew


@pytest.mark.parametrize('setting, refusal', [
    ('train_cfg = dict(max_iters=4)', r'different training budgets \(retinanet_efficientvit_m0_synthetic.py: \d+ '
                                      r'iterations of batch \d+; mobilenet_longer.py: 4 iterations'),
    # The pipeline's scale, not the image_size variable, which a child's pipelines need not read
    ("train_dataloader = dict(dataset=dict(pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', "
     "with_bbox=True), dict(type='Resize', scale=(160, 160), keep_ratio=True), dict(type='PackDetInputs')]))",
     r'different input sizes \(retinanet_efficientvit_m0_synthetic.py: training at 192x192, testing at 192x192; '
     r'mobilenet_longer.py: training at 160x160, testing at 192x192\)')])
def test_comparison_refuses_unequal_runs_before_training_any(tmp_path, monkeypatch, setting, refusal):
    from efficientvit_dense.apps import comparison
    from efficientvit_dense.errors import ConfigError

    m0, mobilenet = (next(c for c in COMPARISON_CONFIGS if name in c) for name in ('efficientvit_m0', 'mobilenetv2'))
    other = tmp_path / 'mobilenet_longer.py'
    other.write_text(f'_base_ = {mobilenet!r}\n{setting}\n')
    monkeypatch.setattr(comparison, 'train', lambda *args, **kwargs: pytest.fail('trained before the check'))
    with pytest.raises(ConfigError, match=refusal):
        compare_backbones([m0, str(other)], work_root=str(tmp_path / 'compare'), data_root=str(tmp_path / 'data'))
    assert not (tmp_path / 'data').exists()  # nor was the dataset generated


def test_comparison_refuses_two_configs_that_would_share_a_work_dir(tmp_path, monkeypatch):
    from efficientvit_dense.apps import comparison
    from efficientvit_dense.errors import ConfigError

    m0, mobilenet = (next(c for c in COMPARISON_CONFIGS if name in c) for name in ('efficientvit_m0', 'mobilenetv2'))
    twin = tmp_path / osp.basename(m0)
    twin.write_text(f'_base_ = {m0!r}\n')
    monkeypatch.setattr(comparison, 'train', lambda *args, **kwargs: pytest.fail('trained before the check'))
    with pytest.raises(ConfigError, match=f'{m0} and {twin} would share .*retinanet_efficientvit_m0_synthetic.$'):
        compare_backbones([m0, mobilenet, str(twin)], work_root=str(tmp_path / 'compare'),
                          data_root=str(tmp_path / 'data'))


def test_comparison_refuses_a_work_dir_trained_another_way_before_training_any(tmp_path, monkeypatch):
    import torch

    from efficientvit_dense.apps import comparison
    from efficientvit_dense.errors import OutputExistsError

    m0, mobilenet = (next(c for c in COMPARISON_CONFIGS if name in c) for name in ('efficientvit_m0', 'mobilenetv2'))
    run_dir = tmp_path / 'compare' / 'retinanet_mobilenetv2_synthetic'
    run_dir.mkdir(parents=True)
    trained_so = load_config(mobilenet, {'randomness.seed': 7}, work_dir=str(run_dir), data_root=str(tmp_path / 'data'))
    torch.save({'meta': {'cfg': trained_so.pretty_text}, 'state_dict': {}}, run_dir / 'iter_2.pth')
    monkeypatch.setattr(comparison, 'train', lambda *args, **kwargs: pytest.fail('trained before the check'))
    with pytest.raises(OutputExistsError, match=r'iter_2.pth was trained with other settings .*randomness.seed: 7'):
        compare_backbones([m0, mobilenet], work_root=str(tmp_path / 'compare'), data_root=str(tmp_path / 'data'))


def test_comparison_refuses_modes_it_cannot_time_before_training_any(tmp_path, monkeypatch):
    from efficientvit_dense.apps import comparison
    from efficientvit_dense.errors import UnsupportedError

    monkeypatch.setattr(comparison, 'train', lambda *args, **kwargs: pytest.fail('trained before the check'))
    with pytest.raises(UnsupportedError, match='fp16 is for GPUs'):  # the comparison times on the CPU
        compare_backbones(COMPARISON_CONFIGS[:2], work_root=str(tmp_path / 'compare'), data_root=str(tmp_path / 'data'),
                          modes=('deploy', 'fp16'))
    with pytest.raises(UnsupportedError, match='export a detector with tools/export_onnx.py'):
        compare_backbones(COMPARISON_CONFIGS[:2], work_root=str(tmp_path / 'compare'), data_root=str(tmp_path / 'data'),
                          modes=('onnxruntime',))
    assert not (tmp_path / 'data').exists()
