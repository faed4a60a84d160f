"""A run killed with SIGKILL resumes and logs the losses an uninterrupted run
logs; a kill while saving never leaves a corrupt latest checkpoint."""
import glob
import json
import logging
import os
import os.path as osp
import shutil
import signal
import subprocess
import sys
import time
from collections import deque

import pytest
import torch
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC
from mmengine.config import Config

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
from efficientvit_dense.engine.checkpointing import (
    MARKER,
    CrashSafeCheckpointHook,
    check_resume_from,
    checkpoint_folder,
    choose_resume,
    latest_checkpoint,
)
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import Request, train
from efficientvit_dense.errors import CheckpointError, OutputExistsError
from efficientvit_dense.files import write_atomically

MAX_ITERS = 12
DETERMINISTIC_RUN = [
    f'train_cfg.max_iters={MAX_ITERS}', 'train_cfg.val_interval=1000', 'default_hooks.checkpoint.interval=4',
    'param_scheduler.0.end=4', 'param_scheduler.1.end=12', 'train_dataloader.batch_size=2',
    # Every iteration's own loss, not a 10-iteration mean.
    'default_hooks.logger.interval=1', 'log_processor.window_size=1',
    'randomness.seed=0', 'randomness.deterministic=True']


def _train_command(data, work_dir, *extra):
    return [sys.executable, osp.join(REPO, 'tools', 'train.py'), DEMOS['detection'].config, '--work-dir', work_dir,
            '--data-root', data, *extra, '--cfg-options', *DETERMINISTIC_RUN]


def _logged_losses(work_dir):
    """{iteration: loss} from every run logged in ``work_dir``."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                if 'loss' in record:
                    losses[record['iter']] = record['loss']
    return losses


def _kill_after_iteration(command, work_dir, iteration, timeout=300):
    """Start ``command``, freeze it (SIGSTOP) as soon as it has logged
    ``iteration``, then SIGKILL it and its data workers; returns the
    iterations logged by then. Frozen before it can log another checkpoint
    interval, the run's checkpoints are known when it dies."""
    process = subprocess.Popen(command, cwd=REPO, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and process.poll() is None:
            if max(_logged_losses(work_dir), default=0) >= iteration:
                os.killpg(process.pid, signal.SIGSTOP)
                break
            time.sleep(0.02)
        logged = _logged_losses(work_dir)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    return logged


def test_a_killed_run_resumes_with_the_losses_of_an_uninterrupted_one(tmp_path):
    data = str(tmp_path / 'data')
    generate(data, SyntheticSpec(num_train=16, num_val=2, max_objects=3))
    uninterrupted, killed = str(tmp_path / 'whole'), str(tmp_path / 'killed')
    subprocess.run(_train_command(data, uninterrupted), cwd=REPO, check=True, capture_output=True, timeout=600)
    reference = _logged_losses(uninterrupted)
    assert sorted(reference) == list(range(1, MAX_ITERS + 1))

    before_kill = _kill_after_iteration(_train_command(data, killed), killed, iteration=5)
    # Checkpoints every 4 iterations: frozen after logging 5, 6 or 7, the run has saved iter_4 and no other.
    assert 5 <= max(before_kill) < 8, f'the run was frozen after iteration {max(before_kill)}, not between saves'
    resumed_from = latest_checkpoint(killed)
    assert resumed_from == osp.join(killed, 'iter_4.pth')

    result = subprocess.run(_train_command(data, killed, '--resume'), cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f'Load checkpoint from {resumed_from}' in result.stdout + result.stderr
    after_resume = {i: loss for i, loss in _logged_losses(killed).items() if i >= 5}
    assert sorted(after_resume) == list(range(5, MAX_ITERS + 1))
    for i, loss in after_resume.items():
        assert loss == pytest.approx(reference[i], rel=1e-6, abs=1e-7), f'iteration {i}'
    assert osp.isfile(osp.join(killed, f'iter_{MAX_ITERS}.pth'))
    # The config it saved is the recipe as written: a copy saying resume = True (and load_from this run's
    # checkpoint) made tools/test.py resume, and a new training of the copy continue this run
    saved = Config.fromfile(osp.join(killed, osp.basename(DEMOS['detection'].config)))
    assert (saved.resume, saved.load_from) == (False, None)


def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = str(tmp_path / 'iter_4.pth')
    write_atomically(b'old', path)

    def killed_midway(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, 'replace', killed_midway)
    with pytest.raises(KeyboardInterrupt):
        write_atomically(b'new, only half written', path)
    with open(path, 'rb') as f:
        assert f.read() == b'old'
    assert os.listdir(tmp_path) == ['iter_4.pth']  # no temporary file left behind


def _save(path, value):
    torch.save({'state_dict': {'w': torch.tensor(value)}}, path)


def test_a_resume_needs_no_longer_the_imagenet_file_the_run_started_from(tmp_path):
    """mmengine initialises the model (reading init_cfg's file) before it resumes, which replaces every weight:
    a moved or cleaned-up ImageNet file stopped the resume of a killed run."""
    from efficientvit_dense.models import EfficientViT

    generate(str(tmp_path / 'data'), TINY_SPEC)
    torch.save({'state_dict': EfficientViT('m0').state_dict()}, tmp_path / 'imagenet_m0.pth')

    def run(max_iters, **options):
        cfg = load_config(DEMOS['detection'].config, {**DETECTION_TINY_RUN, 'train_cfg.max_iters': max_iters},
                          work_dir=str(tmp_path / 'run'), data_root=str(tmp_path / 'data'))
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'imagenet_m0.pth'))
        return train(cfg, **options)

    run(2)
    os.rename(tmp_path / 'imagenet_m0.pth', tmp_path / 'moved.pth')
    runner = run(4, resume=True)
    assert runner.iter == 4 and osp.isfile(tmp_path / 'run' / 'iter_4.pth')
    # the config it saves is still the recipe, the ImageNet file named
    assert Config.fromfile(tmp_path / 'run' / osp.basename(DEMOS['detection'].config)).model.backbone.init_cfg == \
        dict(type='Pretrained', checkpoint=str(tmp_path / 'imagenet_m0.pth'))


def test_resume_skips_a_truncated_checkpoint_and_a_stale_marker(tmp_path):
    _save(tmp_path / 'iter_4.pth', 4.0)
    time.sleep(0.01)
    _save(tmp_path / 'iter_8.pth', 8.0)
    with open(tmp_path / 'iter_8.pth', 'r+b') as f:
        f.truncate(100)  # what a kill during a non-atomic save leaves
    (tmp_path / MARKER).write_text(str(tmp_path / 'iter_8.pth'))
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    (tmp_path / MARKER).write_text('')  # a kill between truncating and writing the marker
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    (tmp_path / MARKER).write_text(str(tmp_path / 'iter_4.pth'))
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_4.pth')
    assert latest_checkpoint(str(tmp_path / 'nothing here')) is None


def test_a_copied_work_dir_resumes_from_its_own_checkpoint_not_the_original_it_was_copied_from(tmp_path):
    original, copy = tmp_path / 'run', tmp_path / 'copy'
    original.mkdir()
    _save(original / 'iter_4.pth', 4.0)
    (original / MARKER).write_text(str(original / 'iter_4.pth'))  # as the checkpoint hook writes it: absolute
    shutil.copytree(original, copy)
    assert latest_checkpoint(str(copy)) == str(copy / 'iter_4.pth')
    shutil.rmtree(original)  # moved rather than copied
    assert latest_checkpoint(str(copy)) == str(copy / 'iter_4.pth')


class _Runner:
    """What CheckpointHook reads from a runner, saving like mmengine."""

    def __init__(self, work_dir, crash_on_save=None):
        from mmengine.logging import MessageHub
        self.work_dir, self.rank, self.iter, self.epoch = work_dir, 0, 0, 0
        self.message_hub = MessageHub.get_instance(f'crash-safe-test-{work_dir}')
        self.logger = logging.getLogger('crash-safe-test')
        self.crash_on_save = crash_on_save

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        if filename == self.crash_on_save:
            raise KeyboardInterrupt  # killed while writing: the new file never appears
        _save(osp.join(out_dir, filename), float(self.iter))


def test_old_checkpoints_are_removed_only_after_the_new_one_is_saved(tmp_path):
    from mmengine.fileio import get_file_backend
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False, max_keep_ckpts=1)
    hook.out_dir, hook.file_backend = str(tmp_path), get_file_backend(str(tmp_path))
    hook.keep_ckpt_ids = deque(maxlen=1)  # what before_train sets up
    runner = _Runner(str(tmp_path), crash_on_save='iter_3.pth')
    for step in (1, 2):
        runner.iter = step
        hook._save_checkpoint_with_step(runner, step, meta={})
    assert sorted(os.listdir(tmp_path)) == ['iter_2.pth', MARKER]
    assert (tmp_path / MARKER).read_text() == str(tmp_path / 'iter_2.pth')
    runner.iter = 3
    with pytest.raises(KeyboardInterrupt):
        hook._save_checkpoint_with_step(runner, 3, meta={})
    # mmengine's own hook deletes iter_2.pth before saving, which would leave nothing to resume from.
    assert latest_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_2.pth')


def test_the_best_checkpoint_is_removed_only_after_the_new_best_is_saved_and_never_another_runs(tmp_path):
    other_run, run = tmp_path / 'other', tmp_path / 'run'
    other_run.mkdir(), run.mkdir()
    _save(other_run / 'best_acc_iter_1.pth', 1.0)
    runner = _Runner(str(run), crash_on_save='best_acc_iter_3.pth')
    without = CrashSafeCheckpointHook(interval=1, by_epoch=False)  # mmengine calls it after every validation
    without.before_train(runner)
    without._save_best_checkpoint(runner, {'acc': 0.5})
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False, save_best='acc', rule='greater', max_keep_ckpts=1)
    # Resumed from the other run's checkpoint: mmengine restores its best path and would delete that file
    runner.message_hub.update_info('best_ckpt', str(other_run / 'best_acc_iter_1.pth'))
    hook.before_train(runner)
    for step, score in ((2, 0.5), (3, 0.6)):
        runner.iter = step
        hook._save_checkpoint_with_step(runner, step, meta={})  # after_train_iter
        try:
            hook._save_best_checkpoint(runner, {'acc': score})  # after_val_epoch: saves the latest one again too
        except KeyboardInterrupt:  # killed while saving the new best
            pass
    assert os.listdir(other_run) == ['best_acc_iter_1.pth']
    # mmengine deletes the best before saving the next: a kill then would leave no best checkpoint
    assert sorted(os.listdir(run)) == ['best_acc_iter_2.pth', 'iter_3.pth', MARKER]


def test_a_copied_work_dirs_best_checkpoint_is_retired_by_its_next_best_and_the_originals_kept(tmp_path):
    original, copy = tmp_path / 'run', tmp_path / 'copy'
    original.mkdir()
    _save(original / 'best_acc_iter_1.pth', 1.0)
    shutil.copytree(original, copy)
    runner = _Runner(str(copy))
    hook = CrashSafeCheckpointHook(interval=1, by_epoch=False, save_best='acc', rule='greater')
    runner.message_hub.update_info('best_ckpt', str(original / 'best_acc_iter_1.pth'))  # as the resume restores it
    runner.message_hub.update_info('best_score', 0.5)
    hook.before_train(runner)
    runner.iter = 2
    hook._save_best_checkpoint(runner, {'acc': 0.6})
    assert os.listdir(original) == ['best_acc_iter_1.pth']
    assert 'best_acc_iter_1.pth' not in os.listdir(copy) and 'best_acc_iter_2.pth' in os.listdir(copy)


def test_resuming_another_folders_checkpoint_into_a_work_dir_holding_a_run_is_refused(tmp_path):
    other_run, run = tmp_path / 'other', tmp_path / 'run'
    other_run.mkdir(), run.mkdir()
    _save(other_run / 'iter_6.pth', 6.0)
    _save(run / 'iter_8.pth', 8.0)
    cfg = load_config(DEMOS['detection'].config, work_dir=str(run))
    with pytest.raises(OutputExistsError, match=r'holds another run \(last checkpoint \S+iter_8.pth\); resuming '
                                                r'\S+other/iter_6.pth there would save over its checkpoints. Pass '
                                                r'--work-dir .* or --resume \S+iter_8.pth to continue'):
        choose_resume(cfg, Request(resume=str(other_run / 'iter_6.pth')))
    choose_resume(cfg, request := Request(resume=str(run / 'iter_8.pth')))  # one of its own: an earlier point
    assert request.resume_from == str(run / 'iter_8.pth')
    empty = load_config(DEMOS['detection'].config, work_dir=str(tmp_path / 'new'))
    choose_resume(empty, request := Request(resume=str(other_run / 'iter_6.pth')))  # into a folder of its own
    assert request.resume_from == str(other_run / 'iter_6.pth')


def test_checkpoints_saved_to_the_hooks_out_dir_count_as_the_work_dirs_run(tmp_path):
    (tmp_path / 'disk' / 'run').mkdir(parents=True)  # mmengine saves to OUT_DIR/<work dir's name>
    _save(tmp_path / 'disk' / 'run' / 'iter_8.pth', 8.0)
    cfg = load_config(DEMOS['detection'].config, {'default_hooks.checkpoint.out_dir': str(tmp_path / 'disk')},
                      work_dir=str(tmp_path / 'run'))
    with pytest.raises(OutputExistsError, match=r'holds an earlier run \(last checkpoint \S+disk/run/iter_8.pth\)'):
        choose_resume(cfg, Request())  # a new run would save over them
    choose_resume(cfg, Request(resume=str(tmp_path / 'disk' / 'run' / 'iter_8.pth')))  # its own, in the out_dir
    choose_resume(cfg, request := Request(resume=True))  # found there without the work dir's marker (a fresh node)
    assert request.resume_from == str(tmp_path / 'disk' / 'run' / 'iter_8.pth')
    same = load_config(DEMOS['detection'].config, {'default_hooks.checkpoint.out_dir': str(tmp_path / 'run')},
                       work_dir=str(tmp_path / 'run'))
    assert checkpoint_folder(same) == str(tmp_path / 'run')  # mmengine saves there, not to run/run


def test_a_resume_with_other_training_settings_stops_naming_them(tmp_path):
    """mmengine resumes whatever the work dir holds: a seed sweep into one work dir would re-evaluate the first
    seed's finished run for each. The checkpoint keeps its config; a resume must go on with the same settings."""
    def resuming(data_root=None, **options):
        return load_config(DEMOS['detection'].config, options, work_dir=str(tmp_path), data_root=data_root)

    checkpoint = str(tmp_path / 'iter_1100.pth')
    torch.save({'meta': {'cfg': resuming().pretty_text}, 'state_dict': {}}, checkpoint)
    check_resume_from(resuming(), checkpoint)  # the config read back from the checkpoint is the same run's
    # paths, loader mechanics, the run's length and how the model predicts may change
    moved = resuming(str(tmp_path / 'moved'), **{'train_dataloader.num_workers': 0, 'train_cfg.max_iters': 2200,
                                                 'model.test_cfg.score_thr': 0.0})
    assert moved.train_dataloader.dataset.data_root.startswith(str(tmp_path / 'moved'))
    check_resume_from(moved, checkpoint)
    with pytest.raises(OutputExistsError, match=r'randomness\.seed: None there, 1 now.*or --work-dir'):
        check_resume_from(resuming(**{'randomness.seed': 1}), checkpoint)
    with pytest.raises(OutputExistsError, match=r'optim_wrapper\.optimizer\.lr: 0\.002 there, 0\.001 now'):
        check_resume_from(resuming(**{'optim_wrapper.optimizer.lr': 0.001}), checkpoint)
    # Named with --resume PATH, another work dir would not help; its weights may start a new run
    with pytest.raises(OutputExistsError, match=f'or --cfg-options load_from={checkpoint} without --resume'):
        check_resume_from(resuming(**{'randomness.seed': 1}), checkpoint, explicit=True)

    # The seed mmengine drew (saved in the meta) is the run's seed, given again or not
    torch.save({'meta': {'cfg': resuming().pretty_text, 'seed': 1234}, 'state_dict': {}}, checkpoint)
    check_resume_from(resuming(**{'randomness.seed': 1234}), checkpoint)
    check_resume_from(resuming(), checkpoint)
    with pytest.raises(OutputExistsError, match=r'randomness\.seed: 1234 there, 1 now'):
        check_resume_from(resuming(**{'randomness.seed': 1}), checkpoint)

    # A run started with mmdet's own train.py --amp resumes with ours (float16 is AmpOptimWrapper's default);
    # without --amp it is told which option differs
    mmdet_amp = resuming(**{'optim_wrapper.type': 'AmpOptimWrapper', 'optim_wrapper.loss_scale': 'dynamic'})
    torch.save({'meta': {'cfg': mmdet_amp.pretty_text}, 'state_dict': {}}, checkpoint)
    check_resume_from(resuming(**{'optim_wrapper.type': 'AmpOptimWrapper', 'optim_wrapper.loss_scale': 'dynamic',
                                  'optim_wrapper.dtype': 'float16'}), checkpoint)
    with pytest.raises(OutputExistsError, match=r"optim_wrapper\.dtype \(--amp\): 'float16' there, None now"):
        check_resume_from(resuming(), checkpoint)


def test_the_config_a_checkpoint_holds_is_read_as_data_never_run(tmp_path):
    """mmengine's resume reads a meta['config'] with Config.fromstring, which runs it: a checkpoint's code must
    never run (its pickles are loaded with weights_only=True for that reason)."""
    cfg = load_config(DEMOS['detection'].config, work_dir=str(tmp_path))
    ran = tmp_path / 'ran'
    code = f"model = dict(type='RetinaNet')\nopen({str(ran)!r}, 'w')\n"
    checkpoint = str(tmp_path / 'iter_2.pth')
    torch.save({'meta': {'config': code}, 'state_dict': {}}, checkpoint)
    with pytest.raises(CheckpointError, match=r"its meta\['config'\] is Python code.*line 2 is not a `name = value`"):
        check_resume_from(cfg, checkpoint)
    # In meta['cfg'] (which mmengine does not run on resume) it is not compared, and not run either
    torch.save({'meta': {'cfg': code.replace('open(', 'x = open(')}, 'state_dict': {}}, checkpoint)
    check_resume_from(cfg, checkpoint)
    assert not ran.exists()
    # Plain data can still name code that Config.fromstring would run: a _base_ file, custom_imports modules
    torch.save({'meta': {'config': f"_base_ = {str(tmp_path / 'evil.py')!r}\n"}, 'state_dict': {}}, checkpoint)
    with pytest.raises(CheckpointError, match=r"its _base_ would be loaded"):
        check_resume_from(cfg, checkpoint)


@pytest.mark.parametrize('config', [
    dict(optim_wrapper=dict(paramwise_cfg=dict(custom_keys={'.cls_token': dict(decay_mult=0.0)}))),  # dict({...})
    dict(clip=float('inf'), steps=[dict(a=1), (1, -2.5)], quote='it\'s "q"', none=None, flag=True)])
def test_the_config_text_mmengine_saves_reads_back_as_the_same_data(config):

    from efficientvit_dense.engine.config import config_from_text
    assert config_from_text(Config(config).pretty_text).to_dict() == Config(config).to_dict()


@pytest.mark.parametrize('text, refusal', [
    ('x = {[1]: 2}\n', 'a dict key that is not a plain value'), ('filename = 1\n', 'which a config may not'),
    ('x = dict(**y)\n', 'holds an expression'), ('x = y.z\n', 'holds an expression'),
    ('import os\n', 'not a `name = value`')])
def test_config_text_that_is_not_plain_data_is_refused_not_run(text, refusal):
    from efficientvit_dense.engine.config import config_from_text
    with pytest.raises(ValueError, match=refusal):
        config_from_text(text)
