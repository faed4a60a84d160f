"""Nothing a user made is lost: one training run per work dir, a resume that
cannot read its checkpoints stops and keeps them, files follow the umask,
and inference outputs never collide or read themselves back in. Each fault
is made for real and met by the real tool (in this test's process where the
fault needs no process of its own)."""
import errno
import fcntl
import os
import signal
import stat
import subprocess
import sys
import time
from unittest import mock

import pytest
import torch
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC, run_tool, run_tool_in_process
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import generate
from efficientvit_dense.engine.checkpointing import LOCK, hold_work_dir, release_work_dir
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import train

CONFIG = DEMOS['detection'].config


def _options(**extra):
    run = {**DETECTION_TINY_RUN, **extra}
    return ['--cfg-options', *(f'{k}={v}' for k, v in run.items())]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('lost') / 'data'
    generate(str(root), TINY_SPEC)
    return root


def test_a_second_run_in_a_busy_work_dir_stops_and_the_first_finishes(data, tmp_path):
    work_dir = tmp_path / 'run'
    first = subprocess.Popen([sys.executable, 'tools/train.py', CONFIG, '--data-root', str(data), '--work-dir',
                              str(work_dir), *_options(**{'train_cfg.max_iters': 4})], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        while not list(work_dir.glob('*/vis_data/scalars.json')) and time.time() < deadline:
            time.sleep(0.2)  # training has begun: the lock is held
        assert first.poll() is None, first.stderr.read()
        first.send_signal(signal.SIGSTOP)  # keep it mid-run, however fast this machine is
        second = run_tool_in_process('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, *_options())
        first.send_signal(signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert second.returncode == 1 and 'Traceback' not in second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: {work_dir} is in use by another training run (process {first.pid} on ')
    assert '--work-dir' in last
    assert len(list(work_dir.glob('2*'))) == 1  # the second run made no log folder of its own
    assert torch.load(work_dir / 'iter_4.pth', weights_only=False)['meta']['iter'] == 4
    # Finished, the folder is free again: resuming it is allowed (and there is nothing left to train).
    assert run_tool_in_process('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, '--resume',
                               *_options(**{'train_cfg.max_iters': 4})).returncode == 0
    assert (work_dir / LOCK).exists()


def test_a_resume_that_can_read_no_checkpoint_stops_and_keeps_them(data, tmp_path):
    work_dir = tmp_path / 'run'
    train(load_config(CONFIG, dict(DETECTION_TINY_RUN), work_dir=str(work_dir), data_root=str(data)))
    checkpoint = work_dir / 'iter_2.pth'
    with open(checkpoint, 'r+b') as f:
        f.truncate(1000)  # a disk that filled up, a copy cut off
    damaged = checkpoint.read_bytes()

    result = run_tool_in_process('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, '--resume',
                                 *_options())
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: --resume found checkpoints in {work_dir} but none it can read ({checkpoint}: truncated or damaged '
        '(not a complete checkpoint archive)). Nothing was started and they are kept; restore a copy, or pass '
        '--resume PATH, or --work-dir to start anew elsewhere.')
    result = run_tool_in_process('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, *_options())
    assert result.returncode == 1 and f'error: {work_dir} holds an earlier run' in result.stderr
    assert checkpoint.read_bytes() == damaged


def test_checkpoints_follow_the_umask(data, tmp_path):
    previous = os.umask(0o027)
    try:
        train(load_config(CONFIG, dict(DETECTION_TINY_RUN), work_dir=str(tmp_path / 'run'), data_root=str(data)))
    finally:
        os.umask(previous)
    for name in ('iter_2.pth', 'last_checkpoint'):
        assert stat.S_IMODE(os.stat(tmp_path / 'run' / name).st_mode) == 0o640, name  # as open() would make it


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A detector as mmengine saves one, initialised as for training."""
    cfg = Config.fromfile(CONFIG)
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    path = tmp_path_factory.mktemp('ckpt') / 'detector.pth'
    torch.save({'meta': {'dataset_meta': {'classes': cfg.classes}}, 'state_dict': model.state_dict()}, path)
    return path


def test_infer_keeps_the_folder_structure_and_never_reads_its_own_outputs(data, checkpoint, tmp_path):
    photos = tmp_path / 'photos'
    for folder in ('monday', 'tuesday'):  # the same file names in two folders
        (photos / folder).mkdir(parents=True)
        for name in sorted(os.listdir(data / 'val'))[:2]:
            os.link(data / 'val' / name, photos / folder / name)
    out = photos / 'drawn'  # inside the input folder
    for attempt in (1, 2):
        result = run_tool_in_process('infer.py', CONFIG, checkpoint, photos, '--out-dir', out, '--score-thr', '0',
                                     *(['--overwrite'] if attempt == 2 else []))
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'wrote 4 pictures' in result.stdout  # the second run did not read the first one's pictures
    drawn = sorted(str(p.relative_to(out)) for p in out.rglob('*.jpg'))
    assert drawn == sorted(f'vis/{day}/{name}' for day in ('monday', 'tuesday')
                           for name in sorted(os.listdir(data / 'val'))[:2])
    before = {p: p.read_bytes() for p in out.rglob('*.jpg')}
    result = run_tool_in_process('infer.py', CONFIG, checkpoint, photos, '--out-dir', out)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert 'already holds outputs for these images (4 files' in result.stderr and '--overwrite' in result.stderr
    assert {p: p.read_bytes() for p in out.rglob('*.jpg')} == before


def test_infer_names_an_unreadable_image_in_one_line(data, checkpoint, tmp_path):
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'holiday.jpg').write_bytes(b'not a picture')
    result = run_tool('infer.py', CONFIG, checkpoint, tmp_path / 'in', '--out-dir', tmp_path / 'out', timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {tmp_path / "in" / "holiday.jpg"} cannot be read as an image (truncated, or not an image). '
        'Replace it or leave it out.')


def _lock_is_free(work_dir) -> bool:
    """Whether another process could take the work dir's lock now."""
    probe = ('import fcntl, sys\nf = open(sys.argv[1], "a")\n'
             'try:\n    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError:\n    sys.exit(1)\n')
    return subprocess.run([sys.executable, '-c', probe, str(work_dir / LOCK)], timeout=60).returncode == 0


def test_a_forked_worker_does_not_keep_the_work_dir_locked(tmp_path):
    cfg = Config(dict(work_dir=str(tmp_path / 'run')))
    hold_work_dir(cfg)
    assert not _lock_is_free(tmp_path / 'run')
    child = os.fork()  # as a dataloader worker is made
    if child == 0:
        time.sleep(3)  # outlives the trainer's hold
        os._exit(0)
    try:
        release_work_dir(cfg.work_dir)  # the trainer ends (or is killed) while its worker lives on
        assert _lock_is_free(tmp_path / 'run')
    finally:
        os.waitpid(child, 0)


def test_a_file_system_without_locks_trains_with_a_warning(tmp_path, monkeypatch):
    def no_locks(*args):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(fcntl, 'flock', no_locks)
    cfg = Config(dict(work_dir=str(tmp_path / 'run')))
    with mock.patch('efficientvit_dense.engine.checkpointing.print_log') as logged:
        hold_work_dir(cfg)  # no error: training goes on
    assert 'nothing stops a second run from writing into' in logged.call_args[0][0]
    release_work_dir(cfg.work_dir)


def test_infer_into_its_own_input_folder_reads_only_the_images(data, checkpoint, tmp_path):
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in sorted(os.listdir(data / 'val'))[:2]:
        os.link(data / 'val' / name, photos / name)
    for attempt in (1, 2):  # the second run must not read the first one's pictures in photos/vis
        result = run_tool_in_process('infer.py', CONFIG, checkpoint, photos, '--out-dir', photos, '--overwrite')
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'wrote 2 pictures' in result.stdout
    assert sorted(p.name for p in (photos / 'vis').iterdir()) == sorted(os.listdir(data / 'val'))[:2]


def test_show_dir_never_draws_over_an_earlier_runs_drawings(tmp_path, monkeypatch):
    """A detector's relative --show-dir is a new folder each run (under the run's log folder); an absolute one is
    the same folder every run, and drawings are named after the images."""
    from efficientvit_dense.engine.runner import Request, pictures_of_predictions
    from efficientvit_dense.errors import OutputExistsError
    (tmp_path / 'drawn').mkdir()
    (tmp_path / 'drawn' / '000000.jpg').write_bytes(b'an earlier run')
    monkeypatch.chdir(tmp_path)
    cfg = load_config(DEMOS['detection'].config)
    cfg.default_hooks.visualization.type = 'EveryImageDetVisualizationHook'  # as a config may name this package's
    pictures_of_predictions(cfg, Request(show_dir='drawn'))
    assert (cfg.default_hooks.visualization.draw, cfg.default_hooks.visualization.test_out_dir) == (True, 'drawn')
    with pytest.raises(OutputExistsError, match='drawn is not empty: the drawings .* would replace an earlier'):
        pictures_of_predictions(load_config(DEMOS['detection'].config), Request(show_dir=str(tmp_path / 'drawn')))


def test_drawings_keep_the_images_path_under_the_split_folder_through_dataset_wrappers():
    from types import SimpleNamespace as Dataset

    from efficientvit_dense.engine.drawing import image_folders, path_under
    coco = Dataset(data_prefix=dict(img='data/coco/val2017/'), data_root='data/coco/')  # mmdet
    city = Dataset(data_prefix=dict(img_path='data/cityscapes/leftImg8bit/val'), data_root='data/cityscapes/')  # mmseg
    folders = image_folders(Dataset(datasets=[coco, Dataset(dataset=city)]))  # a ConcatDataset, a RepeatDataset
    assert path_under('data/coco/val2017/000001.jpg', folders) == '000001.jpg'
    assert path_under('data/cityscapes/leftImg8bit/val/frankfurt/f_1.png', folders) == 'frankfurt/f_1.png'
    assert path_under('data/..hidden/1.jpg', ['data']) == '..hidden/1.jpg'
    assert path_under('elsewhere/1.jpg', folders) == '1.jpg'
