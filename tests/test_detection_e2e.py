"""A tiny train-then-test run of the demo config on generated data."""
import glob
import os.path as osp

import pytest

from efficientvit_dense.datasets.synthetic import SyntheticSpec, generate
from efficientvit_dense.demo import DEMOS
from efficientvit_dense.inference import infer
from efficientvit_dense.runner import load_config, train
from efficientvit_dense.runner import test as evaluate

TINY = SyntheticSpec(num_train=8, num_val=4, max_objects=3)
TINY_RUN = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
            'train_dataloader.batch_size': 4, 'val_dataloader.batch_size': 2,
            'train_dataloader.num_workers': 0, 'train_dataloader.persistent_workers': False,
            'val_dataloader.num_workers': 0, 'val_dataloader.persistent_workers': False,
            # Two iterations teach nothing: keep every score so the metric has predictions to rank.
            'model.test_cfg.score_thr': 0.0}


def _cfg(tmp, work_dir='run'):
    return load_config(DEMOS['detection'].config, dict(TINY_RUN), work_dir=str(tmp / work_dir), data_root=str(tmp / 'data'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('det')
    generate(str(tmp / 'data'), TINY)
    runner = train(_cfg(tmp))
    return tmp, runner


def test_training_writes_a_checkpoint_and_validation_gives_coco_metrics(trained):
    tmp, runner = trained
    assert osp.isfile(tmp / 'run' / 'iter_2.pth')
    assert 'val/coco/bbox_mAP' in runner.message_hub.log_scalars


def test_test_tool_reports_coco_metrics_and_dumps_predictions(trained):
    tmp, _ = trained
    metrics = evaluate(_cfg(tmp, 'eval'), str(tmp / 'run' / 'iter_2.pth'), out=str(tmp / 'preds.pkl'),
                       show_dir='vis')
    for key in ('bbox_mAP', 'bbox_mAP_50', 'bbox_mAP_s', 'bbox_mAP_m', 'bbox_mAP_l'):
        assert 0.0 <= metrics[f'coco/{key}'] <= 1.0 or metrics[f'coco/{key}'] == -1.0
    assert osp.getsize(tmp / 'preds.pkl') > 0
    drawn = glob.glob(str(tmp / 'eval' / '*' / 'vis' / '*.jpg'))  # --show-dir is under the run's log folder
    assert len(drawn) == TINY.num_val


def test_an_earlier_run_is_never_overwritten(trained):
    tmp, _ = trained
    with pytest.raises(FileExistsError, match='holds an earlier run.*--resume'):
        train(_cfg(tmp))


@pytest.mark.parametrize('config', ['shipped', 'saved by the run'])
def test_infer_writes_pictures_with_predictions(trained, config):
    tmp, _ = trained
    cfg = (_cfg(tmp, 'infer') if config == 'shipped' else
           load_config(str(tmp / 'run' / osp.basename(DEMOS['detection'].config)), work_dir=str(tmp / 'infer')))
    out = tmp / f'vis {config}'
    written = infer(cfg, str(tmp / 'run' / 'iter_2.pth'), [str(tmp / 'data' / 'val')], str(out), score_thr=0.0)
    assert len(written) == TINY.num_val and all(osp.getsize(p) > 0 for p in written)


def test_an_existing_predictions_file_is_never_overwritten(trained):
    tmp, _ = trained
    (tmp / 'mine.pkl').write_bytes(b'a user file')
    with pytest.raises(FileExistsError, match='mine.pkl already exists'):
        evaluate(_cfg(tmp, 'eval2'), str(tmp / 'run' / 'iter_2.pth'), out=str(tmp / 'mine.pkl'))
    assert (tmp / 'mine.pkl').read_bytes() == b'a user file'
