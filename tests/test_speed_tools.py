"""Plumbing of the speed tools on tiny inputs: benchmark records, ONNX
export round trips, deploy mode keeps outputs. No test asserts a speed."""
import copy
import json
import math
import os
import platform
import re
import runpy
import subprocess
import sys

import pytest
import torch
from helpers import REPO

from efficientvit_dense.analysis import benchmark as benchmark_module
from efficientvit_dense.analysis import quantize
from efficientvit_dense.analysis.benchmark import benchmark, check_modes, stage_windows, timed_targets
from efficientvit_dense.analysis.complexity import build_config_model
from efficientvit_dense.analysis.export import TensorOutputs, export_onnx, max_difference_to_pytorch
from efficientvit_dense.analysis.records import NATIVE_FLAGS, RELEVANT_ISA, format_table
from efficientvit_dense.analysis.timing import interleaved_times
from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.errors import UnsupportedError
from efficientvit_dense.models import deploy

TINY = dict(size=(64, 64), batch_size=2, warmup=1, repeats=2)


def _sane(record, what):
    assert record['images_per_s'] > 0 and math.isfinite(record['images_per_s'])
    assert 0 < record['latency_ms_median'] <= record['latency_ms_p90']
    assert what in record['what']
    assert record['threads'] == torch.get_num_threads() and record['device'].startswith('cpu')
    assert {'torch', 'mmengine', 'mmcv', 'timm'} <= set(record['versions'])
    json.dumps(record)  # what the tool saves


@pytest.mark.parametrize('spec, modes, what', [
    ('m0', [], 'backbone forward'), ('m0', ['deploy', 'channels_last'], 'backbone forward'),
    ('m0', ['deploy', 'onnxruntime'], 'backbone forward'),
    ('m0', ['deploy', 'int8', 'onnxruntime'], 'backbone forward'),
    ('timm:efficientvit_m0', [], 'forward_features'), ('torchvision:mobilenet_v3_large', ['deploy'], 'features')])
def test_a_backbone_benchmark_gives_a_sane_record(spec, modes, what, tmp_path):
    record = benchmark(spec, modes=modes, work_dir=str(tmp_path), **TINY)
    _sane(record, what)
    assert record['modes'] == (modes or ['eager']) and record['input_size'] == [64, 64]


@pytest.mark.parametrize('task', ['detection', 'segmentation', 'classification'])
def test_a_config_is_timed_on_its_whole_predict_path(task, tmp_path):
    # No data here: the classification demo would count its classes from the training folders.
    options = {'model.head.num_classes': 6} if task == 'classification' else None
    record = benchmark(DEMOS[task].config, modes=['deploy'], work_dir=str(tmp_path / 'run'), cfg_options=options,
                       **TINY)
    _sane(record, 'predict path: preprocessing, normalisation and padding, forward, post-processing')
    # The record's input is the network's: the detection demo's pipeline resizes the 64x64 images, the
    # segmentation demo's keeps them
    network_input = {'detection': [192, 192], 'segmentation': [64, 64], 'classification': [96, 96]}[task]
    assert record['image_size'] == [64, 64] and record['input_size'] == network_input


@pytest.mark.parametrize('autotune', [False, True])
def test_int8_is_timed_on_the_quantised_parts_compiled_and_the_record_says_so(autotune, tmp_path, monkeypatch):
    # The compiled int8 graph is checked against float32 and against the converted graph in test_precision.py;
    # compiling here too would cost a minute on 2 cores (once for the batch, once for batch-1 latency), and
    # minutes with autotune.
    compiled = []
    monkeypatch.setattr(quantize, 'compile_int8', lambda graph, **settings: compiled.append((graph, settings)) or graph)
    record = benchmark('m0', modes=['deploy', 'int8'] + ['autotune'] * autotune, work_dir=str(tmp_path), **TINY)
    _sane(record, 'backbone forward')
    assert record['modes'] == ['deploy', 'compile'] + ['autotune'] * autotune + ['int8']
    assert record['precision'] == 'int8'
    ((graph, settings),) = compiled  # the backbone's converted graph, with quantise ops in it
    assert any('quantize_per_tensor' in str(node.target) for node in graph.graph.nodes)
    assert settings == {'autotune': autotune}


def test_autotune_compiles_with_inductors_max_autotune_and_implies_compile():
    assert check_modes(['deploy', 'bf16', 'autotune'], 'cpu') == ['deploy', 'compile', 'autotune', 'bf16']
    model = torch.nn.Linear(4, 4)
    for modes, autotune in ((['compile'], False), (['compile', 'autotune'], True)):
        assert benchmark_module.apply_modes(copy.deepcopy(model), modes).settings.get('max_autotune', False) == autotune
    with pytest.raises(UnsupportedError, match="not ONNX Runtime's graph"):
        check_modes(['deploy', 'onnxruntime', 'autotune'], 'cpu')


def test_modes_that_cannot_be_combined_are_refused():
    with pytest.raises(UnsupportedError, match='for GPUs'):
        check_modes(['fp16'], 'cpu')
    with pytest.raises(UnsupportedError, match='combines with deploy and int8 only'):
        check_modes(['onnxruntime', 'compile'], 'cpu')
    with pytest.raises(UnsupportedError, match='export a detector with tools/export_onnx.py'):
        check_modes(['onnxruntime'], 'cpu', predict_path=True)
    with pytest.raises(UnsupportedError, match='Modes are'):
        check_modes(['turbo'], 'cpu')


def test_the_benchmark_tool_prints_a_table_and_saves_json(tmp_path, capsys):
    main = runpy.run_path(os.path.join(REPO, 'tools', 'benchmark.py'))['main']
    main(['m0', '--against', 'timm:efficientvit_m0', '--shape', '64', '--batch-size', '2', '--warmup', '1',
          '--repeats', '2', '--work-dir', str(tmp_path)])
    out = capsys.readouterr().out
    assert 'cpu' in out and 'threads' in out
    (saved,) = tmp_path.glob('benchmark_*.json')
    records = json.loads(saved.read_text())
    assert [r['model'] for r in records] == ['m0', 'timm:efficientvit_m0']
    # Each row's ratio is the first model's images/s over its own, from the figures saved.
    (peer_row,) = [line for line in out.splitlines() if line.startswith('timm:efficientvit_m0')]
    ratio = records[0]['images_per_s'] / records[1]['images_per_s']
    assert f'{ratio:>5.2f}x' in peer_row and f'{records[1]["images_per_s"]:.2f}' in peer_row


def test_models_compared_in_one_run_are_timed_in_turns():
    calls = []
    times = interleaved_times([lambda: calls.append('a'), lambda: calls.append('b')], warmup=1, repeats=3)
    assert calls == ['a', 'b'] + ['a', 'b'] * 3  # warm-ups, then one call of each per round
    assert [len(t) for t in times] == [3, 3]


# A fresh process (the pytest worker's malloc settings are its history), timing a call that frees 64 MiB, which
# glibc by default maps on its own and hands back at every call, as an eager model's activations.
FAULTS_SCRIPT = """
import resource, torch
from efficientvit_dense.analysis.records import environment
from efficientvit_dense.analysis.timing import interleaved_times
touch = lambda: torch.empty(64 << 20, dtype=torch.uint8).fill_(1)
interleaved_times([touch], warmup=3, repeats=3)  # the heap settles within a few calls
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, environment('cpu')['allocator'])
"""


@pytest.mark.skipif(platform.libc_ver()[0] != 'glibc' or 'LD_PRELOAD' in os.environ, reason="glibc's malloc")
def test_timed_calls_reuse_freed_memory_instead_of_page_faulting_on_fresh_memory():
    """An eager model's speed must not depend on what its process did before: glibc's moving threshold made timm's
    M4 run at 139 to 193 images/s, and every ratio against it swing (docs/design.md, "Timing: what the allocator
    costs")."""
    done = subprocess.run([sys.executable, '-c', FAULTS_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    faults, allocator = done.stdout.split(maxsplit=1)
    assert int(faults) < 1000, f'{faults} page faults for four 64 MiB blocks (16384 pages each when mapped afresh)'
    assert allocator.strip() == 'glibc malloc holding freed memory (no mmap, no trim)'


@torch.no_grad()
def test_the_compile_mode_freezes_the_weights_into_onednns_packed_kernels():
    # Given as torch.compile's options, freezing silently did nothing (pytorch/pytorch#139272): the products ran
    # as aten::addmm and the convolutions unpacked, at the speed of an unfrozen graph.
    from torch._inductor.utils import run_and_get_code
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(2),
                                torch.nn.Linear(64, 16)).eval()
    x = torch.randn(2, 3, 8, 8)
    compiled = benchmark_module.apply_modes(copy.deepcopy(model), ['compile'])
    out, code = run_and_get_code(compiled, x)
    code = '\n'.join(code)
    # float32 products run on MKL's packed weights, bfloat16 ones on oneDNN's
    assert 'aoti_torch_cpu__mkl_linear(' in code and 'aoti_torch_cpu_mkldnn__convolution_pointwise(' in code
    assert not re.search(r'aoti_torch_cpu_(addmm|mm|convolution)\(', code)  # the C++ wrapper's calls
    assert torch.allclose(out, model(x), atol=1e-5)


def test_windows_are_clamped_to_each_stage_as_timm_does():
    assert stage_windows((224, 224)) == (7, 7, 4)
    assert stage_windows((800, 1333)) == (7, 7, 7)


def test_deploy_mode_keeps_a_detectors_outputs():
    model = build_config_model(load_config(DEMOS['detection'].config)).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        before = TensorOutputs(model)(x)
        folded = deploy(copy.deepcopy(model))
        after = TensorOutputs(folded)(x)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.backbone.modules())
    assert max(float((a - b).abs().max()) for a, b in zip(before, after)) < 1e-4


@pytest.mark.parametrize('target', ['backbone', 'detector'])
def test_onnx_export_round_trips_within_tolerance(target, tmp_path):
    if target == 'backbone':
        from efficientvit_dense.analysis.benchmark import build_backbone
        model, _ = build_backbone('m0', (64, 64))
        size = (64, 64)
    else:
        model, size = build_config_model(load_config(DEMOS['detection'].config)), (96, 128)
    model = deploy(model.eval())
    path = export_onnx(model, torch.randn(1, 3, *size), str(tmp_path / f'{target}.onnx'))
    assert max_difference_to_pytorch(model, path, torch.randn(2, 3, *size)) < 1e-4  # batch is dynamic
    with pytest.raises(FileExistsError):
        export_onnx(model, torch.randn(1, 3, *size), path)


def test_compare_timm_prints_equal_outputs_and_the_three_speeds(capsys):
    main = runpy.run_path(os.path.join(REPO, 'tools', 'compare_timm.py'))['main']
    main(['--archs', 'm0', '--batch-size', '2', '--repeats', '1'])
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[0] == 'M0' and float(row[1]) < 1e-4 and float(row[2]) < 1e-4  # timm and official formats
    assert all(float(v) > 0 for v in row[3:6]) and row[6].endswith('x')


def test_the_export_tool_prints_the_difference(tmp_path, capsys):
    main = runpy.run_path(os.path.join(REPO, 'tools', 'export_onnx.py'))['main']
    main(['m0', '--shape', '64', '--out', str(tmp_path / 'm0.onnx')])
    assert 'ONNX Runtime vs PyTorch float32 on 2 images: max |difference| = ' in capsys.readouterr().out


def _fake_run(root, name, metric_line, speed, trained='retinanet_efficientvit_m4_coco.py'):
    run = root / name
    (run / '20260101_000000' / 'vis_data').mkdir(parents=True)
    (run / trained).write_text('# the config as mmengine dumps it into the work dir\n')
    (run / '20260101_000000' / 'vis_data' / 'scalars.json').write_text(
        json.dumps({'loss': 1.0, 'step': 1}) + '\n' + json.dumps(metric_line) + '\n')
    if speed:
        (run / 'benchmark_20260101_000000.json').write_text(json.dumps([speed]))
    return run


def test_the_report_tool_writes_a_table_and_a_plot(tmp_path, capsys):
    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', modes=['deploy'],
                 input_size=[800, 1333], batch_size=1, images_per_s=2.5, device='cpu: X', threads=2)
    _fake_run(tmp_path, 'retinanet_m4', {'coco/bbox_mAP': 0.327, 'step': 12}, speed)
    _fake_run(tmp_path, 'retinanet_r50', {'coco/bbox_mAP': 0.365, 'step': 12},
              {**speed, 'model': 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', 'images_per_s': 1.7, 'threads': 16},
              trained='retinanet_r50_fpn_1x_coco.py')
    _fake_run(tmp_path, 'fpn_m4', {'mIoU': 38.2, 'step': 5}, None)
    # A record of another model than the one trained there is not paired with the run's accuracy
    _fake_run(tmp_path, 'retinanet_m4_backbone_timed', {'coco/bbox_mAP': 0.327, 'step': 12},
              {**speed, 'model': 'm4', 'what': 'backbone forward', 'images_per_s': 90.0})
    # Timed in int8 after training validated in float32: no accuracy is shown for it
    _fake_run(tmp_path, 'retinanet_m4_timed_in_int8', {'coco/bbox_mAP': 0.327, 'step': 12},
              {**speed, 'modes': ['deploy', 'compile', 'int8'], 'precision': 'int8', 'images_per_s': 4.0})
    _fake_run(tmp_path, 'mask_rcnn_m4', {'coco/bbox_mAP': 0.339, 'coco/segm_mAP': 0.31, 'step': 12}, None)
    main = runpy.run_path(os.path.join(REPO, 'tools', 'report.py'))['main']
    out = tmp_path / 'reports' / 'report'  # a folder the tool makes
    main([str(tmp_path / '*'), '--out', str(out)])
    table = out.with_suffix('.md').read_text()
    assert ('| retinanet_m4 | box AP 32.70 | 2.5 | 1 | 800x1333 | cpu: X | 2 | deploy | float32 | predict path |'
            in table)
    assert '| retinanet_r50 | box AP 36.50 | 1.7 † |' in table and 'other settings' in table  # 16 threads
    assert '| fpn_m4 | mIoU 38.20 | not measured |' in table
    assert '| retinanet_m4_backbone_timed | box AP 32.70 | not measured § |' in table and '90.0' not in table
    assert '§ retinanet_m4_backbone_timed: its newest benchmark record timed m4, not the config' in table
    assert '| retinanet_m4_timed_in_int8 | — ‡ | 4.0 |' in table and '‡ the run validated in float32 only' in table
    assert '| mask_rcnn_m4 | mask AP 31.00 | not measured |' in table  # a Mask R-CNN's headline metric
    assert out.with_suffix('.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(SystemExit, match='already exists'):
        main([str(tmp_path / '*'), '--out', str(out)])


def test_a_precision_record_stands_for_its_work_dir_until_a_newer_measurement(tmp_path):
    import shutil

    import torch

    from efficientvit_dense.analysis.report import collect, to_markdown

    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', input_size=[800, 1333],
                 batch_size=1, images_per_s=2.5, device='cpu: X', threads=2)
    run = _fake_run(tmp_path, 'm4', {'coco/bbox_mAP': 0.327, 'step': 12}, None)
    torch.save({}, run / 'iter_12.pth')
    evaluated = dict(speed, checkpoint=str(run / 'iter_12.pth'), metric='box AP')
    (run / 'precision_20260102_000000.json').write_text(json.dumps([
        {**evaluated, 'modes': ['deploy'], 'precision': 'float32', 'value': 32.7},
        {**evaluated, 'modes': ['deploy', 'int8'], 'precision': 'int8', 'value': 31.9, 'images_per_s': 5.0}]))
    assert [row['name'] for row in collect([str(run)])] == ['m4 (float32)', 'm4 (int8)']
    # Copied elsewhere, its files' mtimes are the copy's, in no order: the names say which came when
    (run / 'benchmark_20260101_000000.json').write_text(json.dumps([{**speed, 'modes': ['deploy']}]))
    copy = shutil.copytree(run, tmp_path / 'copied' / 'm4', copy_function=shutil.copy)
    os.utime(copy / 'precision_20260102_000000.json', (1e9, 1e9))
    assert [row['name'] for row in collect([str(copy)])] == ['m4 (float32)', 'm4 (int8)']
    # A checkpoint after the one it evaluated (training resumed) changed the model it measured; a benchmark
    # after it (the comparison's, another --modes) is the figure asked for: the work dir's row instead, the
    # record named
    torch.save({}, run / 'iter_24.pth')
    table = to_markdown(collect([str(run)]))
    assert '| m4 | box AP 32.70 | 2.5 |' in table and 'int8' not in table
    assert ('¶ m4: precision_20260102_000000.json (tools/precision_cost.py) evaluated iter_12.pth, not the newest '
            'checkpoint iter_24.pth' in table)
    os.rename(run / 'iter_12.pth', run / 'best_coco_bbox_mAP_iter_12.pth')  # save_best's, which it evaluated
    (evaluated_file := run / 'precision_20260102_000000.json').write_text(
        evaluated_file.read_text().replace('iter_12.pth', 'best_coco_bbox_mAP_iter_12.pth'))
    assert [row['name'] for row in collect([str(run)])] == ['m4 (float32)', 'm4 (int8)']
    (run / 'iter_24.pth').unlink()
    (run / 'benchmark_20260103_000000.json').write_text(json.dumps([{**speed, 'modes': ['deploy'],
                                                                      'images_per_s': 3.0}]))
    os.utime(run / 'benchmark_20260103_000000.json', (1e9, 1e9))
    table = to_markdown(collect([str(run)]))
    assert '| m4 | box AP 32.70 | 3.0 |' in table and 'int8' not in table
    assert '¶ m4: precision_20260102_000000.json (tools/precision_cost.py) is older than benchmark_20260103' in table


def test_a_record_stands_for_a_work_dir_only_if_it_measured_the_weights_and_config_trained_there(tmp_path):
    from efficientvit_dense.analysis.records import checkpoint_fields
    from efficientvit_dense.analysis.report import collect, to_markdown

    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', modes=['deploy'],
                 input_size=[800, 1333], batch_size=1, images_per_s=2.5, device='cpu: X', threads=2)
    run = _fake_run(tmp_path, 'm4', {'coco/bbox_mAP': 0.327, 'step': 12}, None)
    torch.save({'weight': torch.ones(1)}, run / 'epoch_12.pth')
    # Another run of the recipe saved its own epoch_12.pth; its precision_cost.py went into this work dir
    (other := tmp_path / 'seed_1' / 'epoch_12.pth').parent.mkdir()
    torch.save({'weight': torch.zeros(1)}, other)
    precision = [{**speed, **checkpoint_fields(str(other)), 'precision': p, 'metric': 'box AP', 'value': 99.0}
                 for p in ('float32', 'int8')]
    (run / 'precision_20260102_000000.json').write_text(json.dumps(precision))
    table = to_markdown(collect([str(run)]))
    assert '| m4 | box AP 32.70 | not measured |' in table and '99.00' not in table
    assert (f'¶ m4: precision_20260102_000000.json (tools/precision_cost.py) evaluated {other}, whose contents are '
            'neither the newest checkpoint here (epoch_12.pth) nor a best one') in table
    # This run's weights under any name or folder (a copy evaluated elsewhere) are this run's
    (copied := tmp_path / 'copy.pth').write_bytes((run / 'epoch_12.pth').read_bytes())
    for record in precision:
        record.update(checkpoint_fields(str(copied)))
    (run / 'precision_20260102_000000.json').write_text(json.dumps(precision))
    assert [row['name'] for row in collect([str(run)])] == ['m4 (float32)', 'm4 (int8)']
    # ... evaluated with another config
    (run / 'precision_20260102_000000.json').write_text(json.dumps([{**r, 'model': 'configs/other.py'}
                                                                     for r in precision]))
    assert 'evaluated configs/other.py, not the config trained there' in to_markdown(collect([str(run)]))
    (run / 'precision_20260102_000000.json').unlink()
    # A benchmark record of other weights is not paired with this run's accuracy; of these weights it is
    (run / 'benchmark_20260101_000000.json').write_text(json.dumps([{**speed, **checkpoint_fields(str(other))}]))
    table = to_markdown(collect([str(run)]))
    assert '| m4 | box AP 32.70 | not measured § |' in table and 'its newest benchmark record timed' in table
    (run / 'benchmark_20260101_000000.json').write_text(json.dumps([{**speed, **checkpoint_fields(str(copied))}]))
    assert '| m4 | box AP 32.70 | 2.5 |' in to_markdown(collect([str(run)]))


def test_the_report_marks_speeds_measured_on_other_instruction_sets_or_paths_and_plots_each_metric_apart(tmp_path):
    from PIL import Image

    from efficientvit_dense.analysis.report import collect, plot, to_markdown

    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', modes=['deploy'],
                 input_size=[800, 1333], batch_size=1, images_per_s=2.5, device='cpu: AMD EPYC', isa=['avx2'],
                 threads=2, versions={'torch': '2.14.1'})
    runs = [_fake_run(tmp_path, 'avx2', {'coco/bbox_mAP': 0.327, 'step': 12}, speed),
            _fake_run(tmp_path, 'avx512', {'coco/bbox_mAP': 0.327, 'step': 12},
                      {**speed, 'isa': ['avx2', 'avx512f', 'avx512_bf16'], 'images_per_s': 4.0}),
            _fake_run(tmp_path, 'forward_only', {'accuracy/top1': 70.0, 'step': 12},
                      {**speed, 'model': 'cls.py', 'what': 'test_step, one test batch', 'images_per_s': 90.0},
                      trained='cls.py')]
    rows = collect([str(run) for run in runs])
    table = to_markdown(rows)
    assert '| avx2 | box AP 32.70 | 2.5 |' in table and '| avx512 | box AP 32.70 | 4.0 † |' in table
    assert ('† measured with other settings than the first timed row (avx2): avx512: instruction sets; '
            'forward_only: what was timed.') in table
    plot(rows, str(tmp_path / 'report.png'))
    assert Image.open(tmp_path / 'report.png').size[0] == 2 * 6 * 120  # box AP and top-1: a panel each


def test_a_damaged_record_or_log_is_named_and_a_log_cut_off_by_a_kill_is_read_to_its_last_whole_line(tmp_path):
    from efficientvit_dense.analysis.report import collect
    from efficientvit_dense.errors import DataError

    run = _fake_run(tmp_path, 'run', {'coco/bbox_mAP': 0.327, 'step': 12}, None)
    log = run / '20260101_000000' / 'vis_data' / 'scalars.json'
    log.write_text(log.read_text() + '{"loss": 0.9, "st')  # killed while logging
    (row,) = collect([str(run)])
    assert row['value'] == pytest.approx(32.7)
    log.write_text('{"loss": 1.0, "st\n' + json.dumps({'coco/bbox_mAP': 0.327, 'step': 12}) + '\n')
    with pytest.raises(DataError, match=r'scalars.json, line 1, is not a JSON record'):
        collect([str(run)])
    log.unlink()
    for damaged in ('[]', '[{"model": "m4", "images_per'):
        (run / 'benchmark_20260101_000000.json').write_text(damaged)
        with pytest.raises(DataError, match=r'benchmark_20260101_000000.json holds no benchmark records'):
            collect([str(run)])


def test_rows_of_work_dirs_with_one_name_are_marked_each_on_its_own(tmp_path):
    from efficientvit_dense.analysis.report import collect, to_markdown

    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', modes=['deploy'],
                 input_size=[800, 1333], batch_size=1, images_per_s=2.5, device='cpu: X', threads=2)
    runs = [_fake_run(tmp_path / 'seed0', 'm4', {'coco/bbox_mAP': 0.327, 'step': 12}, speed),
            _fake_run(tmp_path / 'seed1', 'm4', {'coco/bbox_mAP': 0.327, 'step': 12}, speed),
            _fake_run(tmp_path / 'seed2', 'm4', {'coco/bbox_mAP': 0.327, 'step': 12}, {**speed, 'threads': 4})]
    rows = to_markdown(collect([str(run) for run in runs])).splitlines()[2:5]
    assert [' †' in row for row in rows] == [False, False, True]


def test_a_checkpoint_url_is_recorded_by_the_digest_of_its_download(tmp_path, monkeypatch):
    from efficientvit_dense.analysis import records
    from efficientvit_dense.errors import CheckpointError
    from efficientvit_dense.models import weights

    torch.save({'state_dict': {}}, tmp_path / 'downloaded.pth')
    monkeypatch.setattr(records, 'downloaded', lambda url: str(tmp_path / 'downloaded.pth'))
    fields = records.checkpoint_fields('https://example.org/release/pytorch_model.bin')
    assert fields == dict(checkpoint='https://example.org/release/pytorch_model.bin',
                          checkpoint_sha256=records.file_digest(str(tmp_path / 'downloaded.pth')))
    # a server that answered with an error page: the cached file to delete is named
    (tmp_path / 'page.html').write_text('<html>rate limited</html>')
    monkeypatch.setattr(weights, 'downloaded', lambda url: str(tmp_path / 'page.html'))
    with pytest.raises(CheckpointError, match=r'downloaded to .*page.html; delete it to download again'):
        weights.read_checkpoint('https://example.org/release/pytorch_model.bin')


def test_a_toolbox_config_can_be_named_as_in_base_to_compare_with():
    cfg = load_config('mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', work_dir='unused')
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 50
    with pytest.raises(FileNotFoundError, match='Config not found: mmdet::nothing/here.py'):
        load_config('mmdet::nothing/here.py')


def test_without_a_checkpoint_the_detector_starts_from_its_prior_not_from_noise(tmp_path):
    """PyTorch's default init scores every anchor near 0.5, flooding NMS; the
    focal-loss prior (0.01) is what the timing of an untrained model should use."""
    import numpy as np

    from efficientvit_dense.analysis.benchmark import predict_path
    images = [np.zeros((96, 96, 3), dtype=np.uint8)]
    run, *_ = predict_path(load_config(DEMOS['detection'].config, work_dir=str(tmp_path)), None, [], 'cpu', images)
    (prediction,) = run(images)
    assert len(prediction.pred_instances) == 0  # every score below the 0.05 threshold


def test_a_checkpoint_goes_to_the_first_model_and_peers_of_its_config_only(monkeypatch):
    built = []
    monkeypatch.setattr(benchmark_module, 'timed_target', lambda spec, **kwargs: built.append((spec, kwargs)))
    config = DEMOS['detection'].config
    same_file = os.path.join(os.path.dirname(config), '.', os.path.basename(config))
    timed_targets(config, ['deploy'], [f'{same_file}@deploy+int8', 'timm:efficientvit_m0'], checkpoint='trained.pth',
                  cfg_options={'model.bbox_head.num_classes': 6}, size=(64, 64))
    assert [(spec, list(kwargs['modes']), kwargs['checkpoint'], kwargs['cfg_options']) for spec, kwargs in built] == [
        (config, ['deploy'], 'trained.pth', {'model.bbox_head.num_classes': 6}),
        (same_file, ['deploy', 'int8'], 'trained.pth', {'model.bbox_head.num_classes': 6}),  # the same model
        ('timm:efficientvit_m0', [], None, None)]
    # Another detector with random weights keeps almost no boxes for NMS: an unequal ratio, refused before
    # anything is built
    built.clear()
    with pytest.raises(UnsupportedError, match='would run with random weights'):
        timed_targets(config, [], ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'], checkpoint='trained.pth')
    assert built == []


def test_a_checkpoint_for_a_backbone_is_refused_not_recorded_unused(tmp_path):
    with pytest.raises(UnsupportedError, match='m0 is a backbone, timed with random weights'):
        benchmark('m0', checkpoint=str(tmp_path / 'trained.pth'), **TINY)


def test_records_name_every_flag_that_makes_a_precision_native():
    # An AVX-VNNI CPU runs int8 natively (no 7-bit activations); its records must say why
    assert {flag for flags in NATIVE_FLAGS.values() for flag in flags} <= set(RELEVANT_ISA)


def test_the_table_shows_long_names_and_modes_whole_in_aligned_columns():
    first = dict(device='cpu: AMD EPYC', isa=['avx2'], threads=2, versions={'torch': '2.14.1'}, input_size=[224, 224],
                 batch_size=16, repeats=20, warmup=3, interleaved=True, model='m4', modes=['eval'],
                 images_per_s=100.0, latency_ms_median=10.0, latency_ms_p90=11.0, what='backbone forward')
    second = {**first, 'model': 'configs/fpn_efficientvit_m4_ade20k.py with a name past forty-four characters',
              'modes': ['deploy', 'onnxruntime', 'int8'], 'images_per_s': 250.0}
    header, row1, row2 = format_table([first, second]).splitlines()[1:]
    assert second['model'] in row2 and ' deploy+onnxruntime+int8 ' in row2
    assert header.index('images/s') + len('images/s') == row1.index('100.00') + 6 == row2.index('250.00') + 6
    assert '0.40x' in row2  # the first's images/s over this one's


def test_the_table_gives_the_networks_input_and_each_rows_where_they_differ():
    first = dict(device='cpu: AMD EPYC', isa=['avx2'], threads=2, versions={'torch': '2.14.1'}, input_size=[800, 800],
                 image_size=[224, 224], batch_size=1, repeats=20, warmup=3, model='retinanet.py', modes=['deploy'],
                 images_per_s=2.0, latency_ms_median=500.0, latency_ms_p90=510.0, what='predict path')
    assert 'images 224x224, network input 800x800, batch 1' in format_table([first])
    backbone = {**first, 'model': 'm4', 'input_size': [224, 224], 'what': 'backbone forward'}
    del backbone['image_size']
    header, *rows = format_table([first, backbone]).splitlines()
    assert 'network inputs differ' in header
    assert ' 800x800 ' in rows[1] and ' 224x224 ' in rows[2] and rows[0].index('input') == rows[1].index('800x800')


def test_a_report_reads_each_work_dirs_own_logs_and_pairs_a_speed_only_with_the_config_trained_there(tmp_path):
    from efficientvit_dense.analysis.report import collect, to_markdown

    speed = dict(model='configs/retinanet_efficientvit_m4_coco.py', what='predict path', modes=['deploy'],
                 input_size=[800, 1333], batch_size=1, images_per_s=2.5, device='cpu: X', threads=2)
    # work_dirs/* names the comparison's folder too: its runs are rows of their own, not one row for the folder
    folder = tmp_path / 'compare'
    _fake_run(folder, 'a', {'coco/bbox_mAP': 0.1, 'step': 1}, speed)
    _fake_run(folder, 'b', {'coco/bbox_mAP': 0.2, 'step': 1}, speed)
    assert collect([str(folder)]) == []
    # The GPU check's work dir: the detector trained under train/, the backbone timed at the top
    gpu_check = tmp_path / 'gpu_check'
    _fake_run(gpu_check, 'train', {'coco/bbox_mAP': 0.3, 'step': 1}, None)
    (gpu_check / 'benchmark_20260101_000000.json').write_text(json.dumps([{**speed, 'model': 'm4'}]))
    (row,) = collect([str(gpu_check)])
    assert row['metric'] is None and row['speed']['model'] == 'm4'
    # A run's logs without the config it trained (copied without it): what was timed is not known to be it
    bare = _fake_run(tmp_path, 'bare', {'coco/bbox_mAP': 0.327, 'step': 12}, {**speed, 'model': 'm4'})
    (bare / 'retinanet_efficientvit_m4_coco.py').unlink()
    table = to_markdown(collect([str(bare)]))
    assert '| bare | box AP 32.70 | not measured § |' in table and 'no config in it says what was trained' in table
    # The trained config timed with random weights (tools/benchmark.py without --checkpoint): not the trained model
    untrained = _fake_run(tmp_path, 'untrained', {'coco/bbox_mAP': 0.327, 'step': 12}, {**speed, 'checkpoint': None})
    table = to_markdown(collect([str(untrained)]))
    assert '| untrained | box AP 32.70 | not measured § |' in table and 'with random weights' in table
    trained = _fake_run(tmp_path, 'trained', {'coco/bbox_mAP': 0.327, 'step': 12}, {**speed, 'checkpoint': 'x.pth'})
    assert '| trained | box AP 32.70 | 2.5 |' in to_markdown(collect([str(trained)]))


def test_the_report_tool_refuses_a_work_dir_that_matches_nothing(tmp_path):
    _fake_run(tmp_path, 'run', {'coco/bbox_mAP': 0.327, 'step': 12}, None)
    main = runpy.run_path(os.path.join(REPO, 'tools', 'report.py'))['main']
    with pytest.raises(SystemExit, match=r'No folder matches .*/rnu: name existing work dirs'):
        main([str(tmp_path / 'run'), str(tmp_path / 'rnu'), '--out', str(tmp_path / 'report')])
    assert not (tmp_path / 'report.md').exists()


@pytest.mark.parametrize('tool, args', [
    ('benchmark.py', ['m0', '--repeats', '0']), ('benchmark.py', ['m0', '--batch-size', '-1']),
    ('benchmark.py', ['m0', '--warmup', '0']),  # the first call packs weights or compiles: timed, not a speed
    ('compare_backbones.py', ['--repeats', '0']), ('compare_backbones.py', ['--batch-size', '0']),
    ('precision_cost.py', ['config.py', 'trained.pth', '--calibration-images', '0']),
    ('export_onnx.py', ['m0', '--out', 'm0.onnx', '--calibration-images', '0'])])
def test_counts_below_one_are_refused_by_the_parser(tool, args, capsys, monkeypatch, tmp_path):
    from efficientvit_dense import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, 'run', lambda run: pytest.fail('the parser let it through'))  # no comparison trains
    main = runpy.run_path(os.path.join(REPO, 'tools', tool))['main']
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2 and 'is not at least 1' in capsys.readouterr().err


@pytest.mark.parametrize('tool, device, why', [
    ('benchmark.py', 'cuda', 'no CUDA GPU is visible here'), ('benchmark.py', 'gpu0', "'gpu0' is not a device"),
    ('benchmark.py', 'meta', 'the tools run on cpu or cuda'), ('infer.py', 'cuda:1', 'no CUDA GPU is visible here')])
def test_a_device_this_machine_lacks_is_refused_by_the_parser(tool, device, why, capsys, monkeypatch):
    from efficientvit_dense import cli

    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 0)
    monkeypatch.setattr(cli, 'run', lambda run: pytest.fail('the parser let it through'))
    main = runpy.run_path(os.path.join(REPO, 'tools', tool))['main']
    with pytest.raises(SystemExit) as stopped:
        main(['m0', 'image.jpg', '--device', device] if tool == 'infer.py' else ['m0', '--device', device])
    assert stopped.value.code == 2 and why in capsys.readouterr().err


def test_a_gpu_is_timed_by_waiting_for_the_device_timed_not_the_current_one(monkeypatch):
    waited = []
    monkeypatch.setattr(torch.cuda, 'synchronize', lambda device=None: waited.append(device))
    interleaved_times([lambda: None], warmup=0, repeats=1, device='cuda:1')
    assert waited == [torch.device('cuda:1')] * 2  # before and after the call


def test_a_file_where_the_records_folder_would_be_is_refused_before_timing(tmp_path, monkeypatch):
    from efficientvit_dense.analysis import benchmark as benchmark_lib

    monkeypatch.setattr(benchmark_lib, 'timed_targets', lambda *a, **k: pytest.fail('it went on to time'))
    (tmp_path / 'results').write_text('a file of the user\'s')
    main = runpy.run_path(os.path.join(REPO, 'tools', 'benchmark.py'))['main']
    with pytest.raises(SystemExit, match=r'results/m0 cannot be made: .*/results is a file. Name another folder.'):
        main(['m0', '--work-dir', str(tmp_path / 'results' / 'm0')])
    assert (tmp_path / 'results').read_text() == "a file of the user's"


def test_an_arch_exported_with_a_checkpoint_carries_its_weights(tmp_path, capsys):
    from efficientvit_dense.analysis.benchmark import build_backbone
    from efficientvit_dense.analysis.export import onnx_runtime_session
    from efficientvit_dense.analysis.reference import randomize_
    from efficientvit_dense.models import EfficientViT
    from efficientvit_dense.models.weights import load_backbone_weights, native_to_official

    trained = randomize_(EfficientViT('m0'), seed=5).state_dict()
    # A detector's file in the authors' names: its backbone is what an arch exports
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in native_to_official(trained).items()}},
               tmp_path / 'detector.pth')
    main = runpy.run_path(os.path.join(REPO, 'tools', 'export_onnx.py'))['main']
    main(['m0', '--checkpoint', str(tmp_path / 'detector.pth'), '--shape', '64', '--out', str(tmp_path / 'm0.onnx')])
    assert '(official format)' in capsys.readouterr().out
    reference, _ = build_backbone('m0', (64, 64))
    load_backbone_weights(reference, str(tmp_path / 'detector.pth'))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = deploy(reference.eval())(x)
    session = onnx_runtime_session(str(tmp_path / 'm0.onnx'))
    exported = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert max(float((torch.from_numpy(e) - r).abs().max()) for e, r in zip(exported, expected)) < 1e-4


def test_the_int8_export_is_checked_on_images_calibration_did_not_see(pristine, tmp_path, monkeypatch, capsys):
    from efficientvit_dense.analysis import export

    calibrated, checked = [], []

    def quantise(model, example, path, calibration):  # ONNX Runtime's quantisation itself is tested elsewhere
        calibrated.extend(torch.cat(calibration))
        open(path, 'wb').close()
        return path

    monkeypatch.setattr(quantize, 'export_onnx_int8', quantise)
    monkeypatch.setattr(export, 'max_difference_to_pytorch', lambda model, path, x, relative: checked.extend(x) or 0.0)
    main = runpy.run_path(os.path.join(REPO, 'tools', 'export_onnx.py'))['main']
    main([DEMOS['classification'].config, '--shape', '96', '--precision', 'int8', '--calibration-images', '4',
          '--data-root', str(pristine), '--out', str(tmp_path / 'int8.onnx')])
    assert len(calibrated) == 4 and len(checked) == 2
    assert not any(torch.equal(seen, image) for seen in calibrated for image in checked)
    printed = capsys.readouterr().out
    assert 'int8 calibrated on 4 images spread evenly over the 16 of the training split' in printed
    assert 'on 2 images of the test split (not calibrated on): max |difference| / max |PyTorch output| = ' in printed


def test_a_torchvision_resnet_is_timed_on_its_trunk_and_other_models_without_features_are_refused(tmp_path):
    record = benchmark('torchvision:resnet18', work_dir=str(tmp_path), **TINY)
    _sane(record, 'conv1..layer4')
    with pytest.raises(UnsupportedError, match="ShuffleNetV2 has neither"):
        benchmark('torchvision:shufflenet_v2_x0_5', work_dir=str(tmp_path), **TINY)


def test_onnx_runtime_is_refused_on_a_gpu():
    with pytest.raises(UnsupportedError, match='onnxruntime runs on the CPU'):
        check_modes(['deploy', 'onnxruntime'], 'cuda')
