"""Nothing a user made is lost: one training run per work dir, a resume that
cannot read its checkpoints stops and keeps them, files follow the umask,
and inference outputs never collide or read themselves back in. Each fault
is made for real and met by the real tool."""
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC, run_tool
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import DefaultScope

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import generate
from efficientvit_dense.engine.checkpointing import LOCK
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
        second = run_tool('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, *_options(), timeout=300)
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
    assert run_tool('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, '--resume',
                    *_options(**{'train_cfg.max_iters': 4}), timeout=300).returncode == 0
    assert (work_dir / LOCK).exists()


def test_a_resume_that_can_read_no_checkpoint_stops_and_keeps_them(data, tmp_path):
    work_dir = tmp_path / 'run'
    train(load_config(CONFIG, dict(DETECTION_TINY_RUN), work_dir=str(work_dir), data_root=str(data)))
    checkpoint = work_dir / 'iter_2.pth'
    with open(checkpoint, 'r+b') as f:
        f.truncate(1000)  # a disk that filled up, a copy cut off
    damaged = checkpoint.read_bytes()

    result = run_tool('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, '--resume', *_options(),
                      timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: --resume found checkpoints in {work_dir} but none it can read ({checkpoint}: truncated or damaged '
        '(not a complete checkpoint archive)). Nothing was started and they are kept; restore a copy, or pass '
        '--resume PATH, or --work-dir to start anew elsewhere.')
    result = run_tool('train.py', CONFIG, '--data-root', data, '--work-dir', work_dir, *_options(), timeout=300)
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
        result = run_tool('infer.py', CONFIG, checkpoint, photos, '--out-dir', out, '--score-thr', '0',
                          *(['--overwrite'] if attempt == 2 else []), timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert 'wrote 4 pictures' in result.stdout  # the second run did not read the first one's pictures
    drawn = sorted(str(p.relative_to(out)) for p in out.rglob('*.jpg'))
    assert drawn == sorted(f'vis/{day}/{name}' for day in ('monday', 'tuesday')
                           for name in sorted(os.listdir(data / 'val'))[:2])
    before = {p: p.read_bytes() for p in out.rglob('*.jpg')}
    result = run_tool('infer.py', CONFIG, checkpoint, photos, '--out-dir', out, timeout=300)
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
