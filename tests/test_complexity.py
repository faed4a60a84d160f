"""tools/get_flops.py: the paper's counting convention, for archs and configs."""
import os.path as osp

import pytest
from helpers import REPO, run_tool_in_process

from efficientvit_dense.analysis.complexity import build_arch_classifier, build_config_model, count
from efficientvit_dense.engine.config import load_config


def test_m0_counts_as_the_papers_table():
    result = count(build_arch_classifier('m0'), 224, 224)
    assert result['params'] / 1e6 == pytest.approx(2.35, abs=0.01)  # paper: 2.3M
    assert result['flops'] / 1e6 == pytest.approx(79, rel=0.03)  # paper: 79M multiply-adds


def test_flops_grow_with_the_input_of_a_detector():
    cfg = load_config(osp.join(REPO, 'configs', 'demo', 'retinanet_efficientvit_m0_synthetic.py'))
    model = build_config_model(cfg)
    small, large = count(model, 128, 128), count(model, 256, 256)
    assert small['params'] == large['params']
    assert large['flops'] == pytest.approx(4 * small['flops'], rel=0.1)  # convolutions dominate: ~ pixels


def test_tool_prints_the_figures_and_the_convention_or_one_error_line():
    result = run_tool_in_process('get_flops.py', 'configs/demo/fpn_efficientvit_m0_synthetic.py',
                                 '--shape', '96', '128')
    assert result.returncode == 0, result.stderr
    assert 'input 3x96x128' in result.stdout and 'GFLOPs' in result.stdout
    assert 'multiply-add once' in result.stdout

    result = run_tool_in_process('get_flops.py', 'm9')
    assert result.returncode == 1 and "'m9' is neither an arch" in result.stderr
    assert 'Traceback' not in result.stderr
