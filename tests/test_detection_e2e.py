"""A tiny train-then-test run of the demo config on generated data."""
import copy
import glob
import json
import os.path as osp
import pickle

import pytest
import torch
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC, ModelUnderTest
from mmdet.registry import MODELS
from mmdet.structures.bbox import bbox_overlaps
from mmengine.registry import DefaultScope

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import generate
from efficientvit_dense.engine.checkpoint_fit import check_checkpoint_fits
from efficientvit_dense.engine.checkpointing import CrashSafeCheckpointHook
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.inference import infer
from efficientvit_dense.engine.runner import Request, augmentation_at_test_time, train
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.errors import CheckpointError, ConfigError, UnsupportedError
from efficientvit_dense.models import deploy

METRICS = ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_75', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l')


def _cfg(tmp, work_dir='run'):
    return load_config(DEMOS['detection'].config, dict(DETECTION_TINY_RUN), work_dir=str(tmp / work_dir),
                       data_root=str(tmp / 'data'))


@torch.no_grad()
def _predictions(model, dataloader):
    model.eval()
    return [sample.pred_instances for batch in dataloader for sample in model.test_step(batch)]


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('det')
    generate(str(tmp / 'data'), TINY_SPEC)
    runner = train(_cfg(tmp))
    return tmp, runner


def test_training_writes_a_checkpoint_through_the_crash_safe_hook(trained):
    tmp, runner = trained
    assert osp.isfile(tmp / 'run' / 'iter_2.pth')
    assert (tmp / 'run' / 'last_checkpoint').read_text() == str(tmp / 'run' / 'iter_2.pth')
    assert sum(isinstance(hook, CrashSafeCheckpointHook) for hook in runner.hooks) == 1
    log = open(f'{runner.log_dir}/{runner.timestamp}.log').read()
    assert 'The data, as this run reads it:' in log  # the summary of every split, as a run starts
    summary = log.split('The data, as this run reads it:')[1].splitlines()
    train_row = next(line for line in summary if line.startswith('train_dataloader'))
    boxes = len(json.loads((tmp / 'data' / 'annotations' / 'instances_train.json').read_text())['annotations'])
    assert train_row.split()[1:4] == [str(TINY_SPEC.num_train), str(boxes), '6']
    assert not any(type(hook).__name__ == 'CheckpointHook' for hook in runner.hooks)
    # mmengine's line per parameter group is in the log file, not on the console (tests/test_console.py)
    assert 'paramwise_options -- ' in log
    assert any(type(f).__name__ == 'FileOnly' for h in runner.logger.handlers for f in h.filters)


def test_test_tool_reports_the_metrics_validation_gave_and_dumps_predictions(trained):
    tmp, runner = trained
    metrics = evaluate(_cfg(tmp, 'eval'), str(tmp / 'run' / 'iter_2.pth'), out=str(tmp / 'preds.pkl'),
                       show_dir='vis')
    # The same weights on the same split: the metrics validation logged at the end of training ...
    validated = {key: runner.message_hub.get_scalar(f'val/coco/{key}').current() for key in METRICS}
    assert {key: metrics[f'coco/{key}'] for key in METRICS} == validated
    # ... and, since two iterations score about zero AP anyway, the very predictions of the trained model.
    with open(tmp / 'preds.pkl', 'rb') as f:
        dumped = pickle.load(f)
    expected = _predictions(runner.model, runner.val_dataloader)
    assert len(dumped) == len(expected) == TINY_SPEC.num_val
    for saved, live in zip(dumped, expected):
        assert len(live.scores) > 0
        assert torch.allclose(saved['pred_instances']['scores'], live.scores, atol=1e-5)
        assert torch.allclose(saved['pred_instances']['bboxes'], live.bboxes, atol=1e-3)
    drawn = glob.glob(str(tmp / 'eval' / '*' / 'vis' / '*.jpg'))  # --show-dir is under the run's log folder
    assert len(drawn) == TINY_SPEC.num_val


def test_a_config_that_says_resume_is_evaluated_by_loading_the_weights(trained):
    """A work dir's copy of the config, as earlier versions saved it, said resume = True, under which mmengine's
    test resumed: it built the training loop and split and read a training state, which weights alone (a release,
    a converted file) lack (a KeyError)."""
    tmp, runner = trained
    weights = torch.load(tmp / 'run' / 'iter_2.pth', weights_only=False)['state_dict']
    torch.save({'state_dict': weights}, tmp / 'weights_only.pth')
    cfg = _cfg(tmp, 'eval_resume')
    cfg.resume = True
    metrics = evaluate(cfg, str(tmp / 'weights_only.pth'))
    assert metrics['coco/bbox_mAP'] == runner.message_hub.get_scalar('val/coco/bbox_mAP').current()


def test_a_checkpoint_evaluated_at_other_attention_windows_is_refused_and_may_start_a_fine_tuning(trained):
    # Its bias tables would be interpolated to the model's windows: another model's metrics, said in one INFO line
    tmp, _ = trained
    cfg = _cfg(tmp, 'other_windows')
    cfg.model.backbone.window_size = 5
    with pytest.raises(CheckpointError, match=r'trained with other attention windows than this model\'s: \d+ bias '
                                              r'tables would be resized \(backbone\.stages\.0\.blocks\.0\.mixer\.m'
                                              r'\.attn\.attention_biases \(7x7 -> 5x5\)'):
        evaluate(cfg, str(tmp / 'run' / 'iter_2.pth'))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    check_checkpoint_fits(model, str(tmp / 'run' / 'iter_2.pth'), 'fine-tune')


def test_checkpoints_at_urls_ending_in_the_same_file_name_are_two_checkpoints(trained, tmp_path, monkeypatch):
    """torch's and mmengine's downloads are named after the URL's last part: every timm file on the Hugging Face
    hub is a pytorch_model.bin, and the second one evaluated the first one's weights."""
    import functools
    import http.server
    import threading

    from efficientvit_dense.models.weights import read_checkpoint

    tmp, runner = trained
    ckpt = torch.load(tmp / 'run' / 'iter_2.pth', weights_only=False)
    for name, scale in (('other', 0.5), ('this', 1.0)):
        (tmp_path / name).mkdir()
        state = {k: v * scale if v.is_floating_point() else v for k, v in ckpt['state_dict'].items()}
        torch.save({'state_dict': state}, tmp_path / name / 'pytorch_model.bin')
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f'http://127.0.0.1:{server.server_port}/{{}}/pytorch_model.bin'
        read_checkpoint(url.format('other'))  # downloaded first, as a hub model or an init_cfg would
        evaluate(_cfg(tmp, 'from_url'), url.format('this'), out=str(tmp_path / 'preds.pkl'))
    finally:
        server.shutdown()
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        dumped = pickle.load(f)
    for saved, live in zip(dumped, _predictions(runner.model, runner.val_dataloader), strict=True):
        assert torch.allclose(saved['pred_instances']['scores'], live.scores, atol=1e-5)


def test_a_misspelt_evaluator_option_is_one_line_naming_it(trained):
    # mmengine builds the evaluator as the test starts, after the runner: a TypeError traceback there
    tmp, _ = trained
    cfg = _cfg(tmp, 'misspelt')
    cfg.test_evaluator.metirc = 'bbox'
    with pytest.raises(ConfigError, match=r"CocoMetric has no option 'metirc'; check its spelling"):
        evaluate(cfg, str(tmp / 'run' / 'iter_2.pth'))


def test_tta_evaluates_the_checkpoint_inside_mmdets_test_time_augmentation(trained):
    """--tta: mmdet's DetTTAModel around the trained weights (the checkpoint check and the load reach inside it),
    with the demo's flips at its own size; Mask R-CNN, whose masks it cannot merge, is refused."""
    tmp, runner = trained
    seen = ModelUnderTest()
    cfg = _cfg(tmp, 'tta')
    metrics = evaluate(cfg, str(tmp / 'run' / 'iter_2.pth'), hooks=[seen], tta=True)
    assert 'coco/bbox_mAP' in metrics and type(seen.model).__name__ == 'DetTTAModel'
    assert cfg.test_dataloader.dataset.pipeline[-1].type == 'TestTimeAug'
    assert [step.scale for step in cfg.test_dataloader.dataset.pipeline[-1].transforms[0]] == [(192, 192)]  # not COCO's
    trained_weights = runner.model.state_dict()
    assert all(torch.equal(value, trained_weights[key]) for key, value in seen.model.module.state_dict().items())
    with pytest.raises(UnsupportedError, match='merges boxes only; this config predicts masks'):
        augmentation_at_test_time(load_config(osp.join(REPO, 'configs', 'mask_rcnn_efficientvit_m4_coco.py')),
                               Request(tta=True))


def test_an_earlier_run_is_never_overwritten(trained):
    tmp, _ = trained
    with pytest.raises(FileExistsError, match='holds an earlier run.*--resume'):
        train(_cfg(tmp))
    # Resumed with another seed (a sweep into one work dir), it would only re-evaluate this run
    cfg = _cfg(tmp)
    cfg.randomness = dict(seed=1)
    with pytest.raises(FileExistsError, match=r'iter_2.pth was trained with other settings .*randomness.seed: \d+ '
                                              'there, 1 now'):
        train(cfg, resume=True)
    # Named with --resume PATH (another run's checkpoint, say), its weights may start a new run instead
    with pytest.raises(FileExistsError, match=r'or --cfg-options load_from=\S+iter_2.pth without --resume'):
        train(cfg, resume=str(tmp / 'run' / 'iter_2.pth'))


@pytest.mark.parametrize('config', ['shipped', 'saved by the run'])
def test_infer_writes_pictures_with_predictions(trained, config):
    tmp, _ = trained
    saved = tmp / 'run' / osp.basename(DEMOS['detection'].config)
    # The run checks images while loading, but the config it saves is the user's, for any tool to use.
    assert 'CheckedLoadImageFromFile' not in saved.read_text() and 'LoadImageFromFile' in saved.read_text()
    cfg = _cfg(tmp, 'infer') if config == 'shipped' else load_config(str(saved), work_dir=str(tmp / 'infer'))
    out = tmp / f'vis {config}'
    written = infer(cfg, str(tmp / 'run' / 'iter_2.pth'), [str(tmp / 'data' / 'val')], str(out), score_thr=0.0)
    assert len(written) == TINY_SPEC.num_val and all(osp.getsize(p) > 0 for p in written)


def test_an_existing_predictions_file_is_never_overwritten(trained):
    tmp, _ = trained
    (tmp / 'mine.pkl').write_bytes(b'a user file')
    with pytest.raises(FileExistsError, match='mine.pkl already exists'):
        evaluate(_cfg(tmp, 'eval2'), str(tmp / 'run' / 'iter_2.pth'), out=str(tmp / 'mine.pkl'))
    assert (tmp / 'mine.pkl').read_bytes() == b'a user file'


@torch.no_grad()
@pytest.mark.parametrize('precision, tolerance', [('bfloat16', 0.15), ('int8', 0.2)])
def test_a_detector_in_low_precision_keeps_its_outputs_and_its_detections_after_nms(trained, precision, tolerance,
                                                                                    uncompiled_int8):
    from efficientvit_dense.analysis.precision import to_precision
    tmp, runner = trained
    batch = next(iter(runner.test_dataloader))
    reference = deploy(copy.deepcopy(runner.model).eval())
    low = to_precision(copy.deepcopy(runner.model).eval(), precision, runner.cfg, calibration_images=4)
    # The head's class logits and box deltas at every level, against float32: their error in units of
    # their spread. Both precisions give up to 0.075; bfloat16 weights rounded further to float8 gave
    # 0.49, int8 calibrated on activations scaled by 0.2 gave 0.76.
    inputs = reference.data_preprocessor(batch)['inputs']
    for low_levels, levels in zip(low._forward(inputs), reference._forward(inputs)):
        for ours, theirs in zip(low_levels, levels):
            assert ours.dtype == torch.float32
            assert (ours - theirs).pow(2).mean().sqrt() < tolerance * theirs.std()
    # After NMS, on a model trained for two iterations: thousands of anchors score within a rounding error
    # of each other, so rounding reorders them and NMS keeps other neighbours. What greedy NMS still
    # guarantees: each of float32's best detections is kept, or suppressed by a kept one that overlaps it
    # by more than NMS's threshold.
    iou_threshold = runner.cfg.model.test_cfg.nms.iou_threshold
    for ours, theirs in zip(low.test_step(batch), reference.test_step(batch)):
        ours, theirs = ours.pred_instances, theirs.pred_instances
        assert len(theirs.scores) > 0 and ours.bboxes.dtype == torch.float32
        top = min(len(theirs.scores), len(ours.scores), 20)
        torch.testing.assert_close(ours.scores[:top], theirs.scores[:top], rtol=tolerance / 2, atol=0)
        assert bbox_overlaps(theirs.bboxes[:5], ours.bboxes).max(dim=1).values.min() > iou_threshold


def test_the_cost_of_each_precision_is_measured_and_reported(trained, uncompiled_int8):
    from efficientvit_dense.analysis.records import cpu_isa
    from efficientvit_dense.analysis.report import collect, to_markdown
    from efficientvit_dense.apps.precision_cost import format_cost, precision_cost
    tmp, _ = trained
    records = precision_cost(DEMOS['detection'].config, str(tmp / 'run' / 'iter_2.pth'), str(tmp / 'precisions'),
                             cfg_options=dict(DETECTION_TINY_RUN), data_root=str(tmp / 'data'),
                             calibration_images=4, warmup=0, repeats=1)
    assert [r['precision'] for r in records] == ['float32', 'bfloat16', 'int8']
    assert all(r['metric'] == 'box AP' and r['images_per_s'] > 0 and r['isa'] == cpu_isa() for r in records)
    assert abs(records[1]['value'] - records[0]['value']) <= 100 * 0.02  # near-random weights: a loose bound
    table = format_cost(records)
    assert 'bfloat16' in table and 'int8' in table and 'float32 stays in' in table
    rows = collect([str(tmp / 'precisions')])
    assert [row['name'] for row in rows] == [f'precisions ({p})' for p in ('float32', 'bfloat16', 'int8')]
    assert '| deploy+compile+int8 | int8 |' in to_markdown(rows)


def test_a_checkpoint_opens_with_safe_loading_in_a_process_that_never_imported_the_project(trained):
    import subprocess
    import sys
    tmp, _ = trained
    code = ('import sys, torch; c = torch.load(sys.argv[1], weights_only=True); '
            'assert "efficientvit_dense" not in sys.modules; print(sorted(c), len(c["state_dict"]))')
    done = subprocess.run([sys.executable, '-c', code, str(tmp / 'run' / 'iter_2.pth')], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'message_hub'" in done.stdout and "'state_dict'" in done.stdout
    # mmdet's checkpoint-only API (image_demo.py WEIGHTS) reads the config from the file, then imports us
    code = ('import sys; from mmdet.apis import DetInferencer; '
            'print(type(DetInferencer(weights=sys.argv[1], device="cpu").model.backbone).__name__)')
    done = subprocess.run([sys.executable, '-c', code, str(tmp / 'run' / 'iter_2.pth')], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split()[-1] == 'EfficientViT', done.stderr[-2000:]
