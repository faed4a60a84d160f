"""Baseline backbones under the EfficientViT recipes: each config changes the
backbone and the neck's inputs only, names where its ImageNet weights come
from, builds, and trains and predicts a step."""
import glob
import os.path as osp

import pytest
from helpers import REPO, SEGMENTATION_SIZE, detection_batch, segmentation_batch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import MODELS, DefaultScope

from efficientvit_dense.engine.config import load_config

BASELINES = sorted(glob.glob(osp.join(REPO, 'configs', 'baselines', '*.py')))
EFFICIENTVIT = {'retinanet': 'retinanet_efficientvit_m4_coco.py', 'fpn': 'fpn_efficientvit_m4_ade20k.py'}
# What a baseline may change: its backbone, the neck's inputs, and which levels the segmentation head reads.
MAY_DIFFER = {'retinanet': {'backbone', 'neck'}, 'fpn': {'backbone', 'neck', 'decode_head'}}
RECIPE_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg', 'optim_wrapper',
               'param_scheduler', 'val_evaluator', 'auto_scale_lr', 'default_hooks')


def _task(config):
    return osp.basename(config).split('_')[0]


def test_every_backbone_of_the_issue_has_a_detection_and_a_segmentation_config():
    names = {osp.basename(c) for c in BASELINES}
    for backbone in ('resnet18', 'mobilenetv2', 'mobilenetv3_large', 'efficientformer_l1', 'mobilevit_s'):
        assert {f'retinanet_{backbone}_coco.py', f'fpn_{backbone}_ade20k.py'} <= names


@pytest.mark.parametrize('config', BASELINES, ids=osp.basename)
def test_baseline_keeps_the_efficientvit_recipe_and_names_its_weights(config):
    cfg = load_config(config)
    reference = load_config(osp.join(REPO, 'configs', EFFICIENTVIT[_task(config)]))
    for key in RECIPE_KEYS:
        assert cfg.get(key) == reference.get(key), key
    for key in set(cfg.model) | set(reference.model):
        if key not in MAY_DIFFER[_task(config)]:
            assert cfg.model.get(key) == reference.model.get(key), f'model.{key}'
    if _task(config) == 'fpn':  # the head's classes, loss and width stay
        for key in ('num_classes', 'channels', 'loss_decode', 'dropout_ratio'):
            assert cfg.model.decode_head[key] == reference.model.decode_head[key]
    init_cfg = cfg.model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained' and init_cfg.checkpoint
    assert cfg.model.backbone.type != 'EfficientViT'


@pytest.mark.parametrize('config', BASELINES, ids=osp.basename)
def test_baseline_builds_and_runs_a_loss_and_a_predict_step(config, train_and_predict_step):
    cfg = load_config(config)
    cfg.model.backbone.init_cfg = None  # no downloads in tests; the previous test checks the source
    if _task(config) == 'fpn':
        cfg.model.data_preprocessor.size = SEGMENTATION_SIZE
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    model = revert_sync_batchnorm(model)
    if _task(config) == 'retinanet':
        results = train_and_predict_step(model, detection_batch())
        assert len(results) == 2 and 'bboxes' in results[0].pred_instances
    else:
        num_classes = cfg.model.decode_head.num_classes
        results = train_and_predict_step(model, segmentation_batch(num_classes))
        prediction = results[0].pred_sem_seg.data
        assert prediction.shape == (1, *SEGMENTATION_SIZE) and prediction.max() < num_classes
