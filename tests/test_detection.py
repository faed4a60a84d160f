import glob
import os.path as osp

import pytest
from helpers import REPO, detection_batch, run_tool_in_process
from mmdet.registry import MODELS
from mmengine.registry import DefaultScope

from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import DataNotFoundError
from efficientvit_dense.models import EfficientViT, EfficientViTFPN

DETECTION_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*_coco.py')) +
                           glob.glob(osp.join(REPO, 'configs', 'demo', 'retinanet_*.py')) +
                           glob.glob(osp.join(REPO, 'configs', 'custom', 'retinanet_*.py')))


@pytest.mark.parametrize('config', DETECTION_CONFIGS, ids=osp.basename)
def test_config_builds_and_runs_a_loss_and_a_predict_step(config, train_and_predict_step):
    cfg = load_config(config)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert isinstance(model.backbone, EfficientViT) and isinstance(model.neck, EfficientViTFPN)
    with_mask = 'mask' in osp.basename(config)

    results = train_and_predict_step(model, detection_batch(with_mask=with_mask))
    assert len(results) == 2 and 'bboxes' in results[0].pred_instances
    if with_mask:
        assert 'masks' in results[0].pred_instances


# Mask R-CNN has no TTA: mmdet's DetTTAModel merges boxes only.
@pytest.mark.parametrize('config', [c for c in DETECTION_CONFIGS if 'mask_rcnn' not in c] +
                         [osp.join(REPO, 'configs', 'gpu_check', 'retinanet_efficientvit_m4_synthetic.py')],
                         ids=osp.basename)
def test_test_time_augmentation_includes_the_configs_own_test_size(config):
    """--tta (ours and mmdet's) reads tta_pipeline: one of its sizes is the test pipeline's, stretched or not as
    there (the demo once inherited COCO's three scales, none its own, and scored less than half its AP)."""
    cfg = load_config(config)
    test_resize = next(t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'Resize')
    augmentation = next(t for t in cfg.tta_pipeline if t.type == 'TestTimeAug')
    sizes = [(t.scale, t.keep_ratio) for group in augmentation.transforms for t in group if t.type == 'Resize']
    assert (test_resize.scale, test_resize.keep_ratio) in sizes


def test_coco_config_follows_the_paper_recipe():
    cfg = load_config(osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-4, 0.05)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys['attention_biases'].decay_mult == 0.0
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.start_factor) == ('LinearLR', 500, 0.001)
    assert (steps.milestones, cfg.train_cfg.max_epochs) == ([8, 11], 12)
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.model.backbone.norm_eval is True
    resize = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'Resize')
    assert resize.scale == (1333, 800) and resize.keep_ratio


def test_missing_coco_stops_with_one_clear_message(tmp_path):
    cfg = load_config(osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py'),
                      work_dir=str(tmp_path / 'run'), data_root=str(tmp_path / 'no_coco'))
    with pytest.raises(DataNotFoundError) as err:
        train(cfg)
    message = str(err.value)
    assert str(tmp_path / 'no_coco') in message
    assert 'instances_{train,val}2017.json' in message and 'make demo' in message
    assert not (tmp_path / 'run').exists()  # stopped before building anything


def test_custom_dataset_recipe_sets_classes_and_num_classes_in_one_place(tmp_path):
    """A user's COCO-format dataset with its own class names: a copy of the
    custom template with the classes and paths named is all it takes."""
    from mmdet.registry import DATASETS

    from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
    generate(str(tmp_path / 'shapes'), SyntheticSpec(num_train=6, num_val=2, image_size=128))
    template = osp.join(REPO, 'configs', 'custom', 'retinanet_efficientvit_m4_custom_coco.py')
    text = open(template).read()
    edits = {  # what the template asks the user to change, plus _base_ for a copy outside configs/custom
        "_base_ = '../retinanet_efficientvit_m4_coco.py'":
            f"_base_ = '{osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py')}'",
        "classes = ('cat', 'dog')": "classes = ('star', 'ring')",
        "data_root = 'data/my_data/'": f"data_root = '{tmp_path / 'shapes'}/'",
        "'annotations/train.json'": "'annotations/instances_train.json'",
        "'annotations/val.json'": "'annotations/instances_val.json'",
    }
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    user_config = tmp_path / 'my_config.py'
    user_config.write_text(text)
    cfg = load_config(str(user_config))
    assert cfg.model.bbox_head.num_classes == 2
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert dataset.metainfo['classes'] == ('star', 'ring')
    labels = {inst['bbox_label'] for i in range(len(dataset)) for inst in dataset.get_data_info(i)['instances']}
    assert labels and labels <= {0, 1}
    assert cfg.val_evaluator.ann_file.endswith('shapes/annotations/instances_val.json')


def test_train_tool_reports_missing_data_in_one_message_without_a_traceback(tmp_path):
    result = run_tool_in_process('train.py', 'configs/retinanet_efficientvit_m4_coco.py', '--data-root',
                                 tmp_path / 'nowhere', '--work-dir', tmp_path / 'run')
    assert result.returncode == 1
    assert f'error: train_dataloader: data root not found: {tmp_path / "nowhere"}/' in result.stderr
    assert 'Traceback' not in result.stderr
