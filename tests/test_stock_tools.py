"""The toolboxes' own tools start on the environment the setup builds: every
module they import is installed (pyproject.toml lists what the OpenMMLab
packages import without declaring it)."""
import os.path as osp
import subprocess
import sys

import mmdet
import mmpretrain
import mmseg
import pytest
from helpers import REPO

TOOLS = {  # the stock tools that failed at import before their modules were declared
    'mmdet benchmark': osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools', 'benchmark.py'),
    'mmdet analyze_logs': osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'analysis_tools', 'analyze_logs.py'),
    'mmseg analyze_logs': osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'analysis_tools', 'analyze_logs.py'),
}


@pytest.mark.parametrize('tool', TOOLS)
def test_stock_tool_imports_everything_it_needs(tool):
    result = subprocess.run([sys.executable, TOOLS[tool], '--help'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-1500:]
    assert 'usage:' in result.stdout


def test_mmpretrains_own_tools_train_and_test_the_classification_demo(tmp_path):
    """The classification demo states its class count, so mmpretrain's
    train.py and test.py run it as they are (they cannot count folders)."""
    from efficientvit_dense.apps.demo import DEMOS
    from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
    generate(str(tmp_path / 'data'), SyntheticSpec(num_train=12, num_val=12, max_objects=5, image_size=96))
    tools = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
    options = ['--cfg-options', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
               'default_hooks.checkpoint.interval=1']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={tmp_path / "data"}/', f'{loader}.batch_size=8',
                    f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
    config = DEMOS['classification'].config
    for command in (['train.py', config, '--work-dir', str(tmp_path / 'run')],
                    ['test.py', config, str(tmp_path / 'run' / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test')]):
        result = subprocess.run([sys.executable, osp.join(tools, command[0]), *command[1:], *options], cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert 'accuracy/top1' in result.stdout + result.stderr


def test_mmdets_own_tools_train_resume_and_test_the_detection_demo(pristine, tmp_path):
    from efficientvit_dense.apps.demo import DEMOS
    tools = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools')
    data = f'{pristine}/'
    options = ['--cfg-options', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
               'train_dataloader.batch_size=2', f'val_evaluator.ann_file={data}annotations/instances_val.json',
               f'test_evaluator.ann_file={data}annotations/instances_val.json']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        options += [f'{loader}.dataset.data_root={data}', f'{loader}.num_workers=0',
                    f'{loader}.persistent_workers=False']
    config, work_dir = DEMOS['detection'].config, str(tmp_path / 'run')
    for command in (['train.py', config, '--work-dir', work_dir, *options, 'train_cfg.max_iters=2'],
                    ['train.py', config, '--work-dir', work_dir, '--resume', *options, 'train_cfg.max_iters=4'],
                    ['test.py', config, osp.join(work_dir, 'iter_4.pth'), '--work-dir', str(tmp_path / 'test'),
                     *options, 'model.test_cfg.score_thr=0.0']):  # two iterations score below the default
        result = subprocess.run([sys.executable, osp.join(tools, command[0]), *command[1:]], cwd=REPO,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        if '--resume' in command:
            assert 'resumed epoch: 0, iter: 2' in result.stdout + result.stderr
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
