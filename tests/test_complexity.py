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


def test_a_two_stage_detector_counts_its_roi_heads_on_the_proposals_it_names():
    """mmdet's two-stage tensor forward needs the image's meta data (it was a TypeError) and runs its RoI heads
    on the RPN's proposals: the count depends on how many, and says so."""
    cfg = load_config(osp.join(REPO, 'configs', 'mask_rcnn_efficientvit_m4_coco.py'))
    many = count(build_config_model(cfg), 256, 256)
    cfg.model.test_cfg.rpn.max_per_img = 10
    few = count(build_config_model(cfg), 256, 256)
    assert few['rois'] == [10, 10]  # the box head's RoIs, then the first 100 of them for the mask head
    boxes, masks = many['rois']
    assert boxes > 100 and masks == 100
    # Multiply-adds per RoI: the box head's fully connected layers on 256x7x7 features (two of 1024, then 81
    # scores and 320 deltas); the mask head's four 3x3 convolutions at 14x14, its 2x2 deconvolution and 80 logits
    per_box = 256 * 49 * 1024 + 1024 * 1024 + 1024 * (81 + 320)
    per_mask = 4 * 256 * 256 * 9 * 196 + 256 * 256 * 4 * 196 + 256 * 80 * 784
    assert many['flops'] - few['flops'] == pytest.approx((boxes - 10) * per_box + 90 * per_mask, rel=0.02)

    printed = run_tool_in_process('get_flops.py', 'configs/mask_rcnn_efficientvit_m4_coco.py', '--shape', '128', '128')
    assert printed.returncode == 0, printed.stderr
    assert 'The RoI heads ran on ' in printed.stdout
    assert " boxes: the RPN's proposals on a blank image" in printed.stdout


def test_a_segmentors_auxiliary_head_is_named_apart_from_what_inference_runs():
    cfg = load_config(osp.join(REPO, 'configs', 'upernet_efficientvit_m4_ade20k.py'))
    result = count(build_config_model(cfg), 128, 128)
    del cfg.model['auxiliary_head']
    inference_only = count(build_config_model(cfg), 128, 128)
    assert result['params'] - result['training_only_params'] == inference_only['params']
    assert result['training_only_params'] > 0 and result['flops'] == inference_only['flops']
