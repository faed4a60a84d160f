"""tools/dist_train.sh and dist_test.sh: mmengine's DDP through torchrun, here
2 CPU processes over gloo (what the scripts do on GPUs, minus NCCL)."""
import glob
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
from helpers import REPO

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import SyntheticSpec, generate


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_processes_train_the_detection_demo_write_one_checkpoint_and_draw_every_test_image(tmp_path):
    generate(str(tmp_path / 'data'), SyntheticSpec(num_train=8, num_val=2, max_objects=3))
    work_dir = tmp_path / 'run'
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), DEMOS['detection'].config, '2',
         '--work-dir', str(work_dir), '--data-root', str(tmp_path / 'data'), '--cfg-options',
         'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
         'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
         'val_dataloader.batch_size=1', 'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False'],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, 'MASTER_PORT': str(_free_port()), 'PYTHON': sys.executable})
    assert result.returncode == 0, result.stderr[-3000:]  # torchrun fails if either rank does
    assert sorted(p.name for p in work_dir.glob('*.pth')) == ['iter_2.pth']
    log = open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'Iter(train) [2/2]' in log

    # tools/dist_test.sh: each process evaluates one of the two images and draws it (mmengine's visualisers draw
    # on the first process only: open-mmlab/mmengine#1081)
    result = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), DEMOS['detection'].config, str(work_dir / 'iter_2.pth'),
         '2', '--work-dir', str(tmp_path / 'eval'), '--data-root', str(tmp_path / 'data'),
         '--show-dir', str(tmp_path / 'drawn'), '--cfg-options', 'test_dataloader.batch_size=1',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False'],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, 'MASTER_PORT': str(_free_port()), 'PYTHON': sys.executable})
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / 'drawn')) == ['000000.jpg', '000001.jpg']


def test_every_launcher_tells_each_process_its_rank_before_the_process_group_exists(monkeypatch):
    """Rank 0 alone takes the work dir's lock and runs the data checks: under mpirun every process taking itself
    for rank 0 would find the work dir in use by another."""
    from efficientvit_dense.engine.checkpointing import launch_rank

    for variable in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        monkeypatch.delenv(variable, raising=False)
    assert launch_rank() == 0
    for variable in ('OMPI_COMM_WORLD_RANK', 'SLURM_PROCID', 'RANK'):  # mpirun, srun, torchrun (which sets RANK)
        monkeypatch.setenv(variable, '3')
        assert launch_rank() == 3, variable


def test_a_distributed_tool_that_finished_takes_its_process_group_down(monkeypatch):
    # Gloo's threads left to the interpreter's teardown aborted a rank after all its work (pytorch/pytorch#190489)
    import torch.distributed as dist

    from efficientvit_dense import cli
    from efficientvit_dense.errors import UserError

    destroyed = []
    monkeypatch.setattr(dist, 'is_initialized', lambda: True)
    monkeypatch.setattr(dist, 'destroy_process_group', lambda: destroyed.append(True))
    cli.run(lambda: None)
    assert destroyed == [True]

    def refused():
        raise UserError('a refusal')
    with pytest.raises(SystemExit, match='a refusal'):
        cli.run(refused)
    assert destroyed == [True]  # not after an error: other ranks may still wait in a collective
