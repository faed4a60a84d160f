"""Every path that loads a checkpoint (evaluate, resume, infer, the CLI)
refuses a file that would run code, says so in one message, and the code
never runs."""

import pytest
import torch
from helpers import in_process_loaders, run_tool

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.inference import infer
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import CheckpointError

TINY = {'train_cfg.max_iters': 1, 'train_cfg.val_interval': 1, **in_process_loaders()}


class _WritesAFile:
    """Unpickling this runs code: it would create ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f'open({self.path!r}, "w").close()',))


@pytest.fixture(scope='module')
def planted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('unsafe')
    generate(str(tmp / 'data'), SyntheticSpec(num_train=2, num_val=2, max_objects=2, image_size=96))
    evil = tmp / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {}, 'message_hub': _WritesAFile(tmp / 'pwned')}, evil)
    return tmp, evil


def _cfg(tmp, work_dir):
    return load_config(DEMOS['detection'].config, dict(TINY), work_dir=str(tmp / work_dir),
                       data_root=str(tmp / 'data'))


@pytest.mark.parametrize('path', ['evaluate', 'resume', 'infer'])
def test_a_checkpoint_that_would_run_code_is_refused(planted, path):
    tmp, evil = planted
    with pytest.raises(CheckpointError, match=r'Refusing to load .*evil\.pth.*could run code') as err:
        if path == 'evaluate':
            evaluate(_cfg(tmp, 'eval'), str(evil))
        elif path == 'resume':
            train(_cfg(tmp, 'resume'), resume=str(evil))
        else:
            infer(_cfg(tmp, 'infer'), str(evil), [str(tmp / 'data' / 'val')], str(tmp / 'vis'))
    assert 'exec' in str(err.value)  # torch's reason: the global it refused
    assert not (tmp / 'pwned').exists()


def test_the_test_tool_refuses_it_in_one_line_without_a_traceback(planted):
    tmp, evil = planted
    result = run_tool('test.py', DEMOS['detection'].config, evil, '--data-root', tmp / 'data',
                      '--work-dir', tmp / 'cli', timeout=300)
    assert result.returncode == 1
    assert f'error: Refusing to load {evil}' in result.stderr and 'Traceback' not in result.stderr
    assert not (tmp / 'pwned').exists()
