"""tools/get_flops.py: the paper's counting convention, for archs and configs."""
import os.path as osp

import pytest
from helpers import REPO, run_tool_in_process

from efficientvit_dense.analysis.complexity import build_arch_classifier, build_config_model, count
from efficientvit_dense.engine.config import load_config

# The paper's table: millions of parameters and of multiply-adds at 224x224
PAPER = {'m0': (2.3, 79), 'm1': (3.0, 167), 'm2': (4.2, 201), 'm3': (6.9, 263), 'm4': (8.8, 299), 'm5': (12.4, 522)}


@pytest.mark.parametrize('arch', sorted(PAPER))
def test_each_arch_counts_as_the_papers_table(arch):
    result = count(build_arch_classifier(arch), 224, 224)
    params, flops = PAPER[arch]
    assert result['params'] / 1e6 == pytest.approx(params, abs=0.1)
    # to the million: with BatchNorm counted (mmengine's default) M0 was 80.8M
    assert result['flops'] / 1e6 == pytest.approx(flops, abs=0.5)


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
