"""Semantic segmentation configs: each builds and trains a step, the recipes
are the published ones, missing data stops with one message, and a user's
own images + label maps work through the custom template."""
import glob
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from helpers import REPO, SEGMENTATION_SIZE, ModelUnderTest, in_process_loaders, segmentation_batch
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmseg.registry import MODELS

from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import DataNotFoundError, OutputExistsError
from efficientvit_dense.models import EfficientViT, EfficientViTFPN

SEGMENTATION_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*_ade20k.py')) +
                              glob.glob(osp.join(REPO, 'configs', '*_cityscapes.py')) +
                              glob.glob(osp.join(REPO, 'configs', 'demo', 'fpn_*.py')) +
                              glob.glob(osp.join(REPO, 'configs', 'custom', 'fpn_*.py')))
def _build(cfg):
    cfg.model.data_preprocessor.size = SEGMENTATION_SIZE
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    return revert_sync_batchnorm(model)  # the configs use SyncBN, which the runner reverts on one process


@pytest.mark.parametrize('config', SEGMENTATION_CONFIGS, ids=osp.basename)
def test_config_builds_and_runs_a_loss_and_a_predict_step(config, train_and_predict_step):
    cfg = load_config(config)
    model = _build(cfg)
    assert isinstance(model.backbone, EfficientViT) and isinstance(model.neck, EfficientViTFPN)
    num_classes = cfg.model.decode_head.num_classes

    results = train_and_predict_step(model, segmentation_batch(num_classes))
    prediction = results[0].pred_sem_seg.data
    assert prediction.shape == (1, *SEGMENTATION_SIZE)
    assert 0 <= prediction.min() and prediction.max() < num_classes


def test_the_neck_gives_the_head_strides_4_to_64():
    cfg = load_config(osp.join(REPO, 'configs', 'fpn_efficientvit_m4_ade20k.py'))
    model = _build(cfg).eval()
    with torch.no_grad():
        levels = model.neck(model.backbone(torch.zeros(1, 3, 256, 256)))
    assert [256 // level.shape[-1] for level in levels] == cfg.model.decode_head.feature_strides == [4, 8, 16, 32, 64]


def test_ade20k_config_follows_the_published_protocol():
    cfg = load_config(osp.join(REPO, 'configs', 'fpn_efficientvit_m4_ade20k.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 2e-4, 1e-4)
    (poly,) = cfg.param_scheduler
    assert (poly.type, poly.power, poly.end) == ('PolyLR', 0.9, 40000) and cfg.train_cfg.max_iters == 40000
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 32
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop')
    assert crop.crop_size == (512, 512)
    assert cfg.model.decode_head.num_classes == 150

    cityscapes = load_config(osp.join(REPO, 'configs', 'fpn_efficientvit_m4_cityscapes.py'))
    crop = next(t for t in cityscapes.train_dataloader.dataset.pipeline if t.type == 'RandomCrop')
    assert crop.crop_size == (512, 1024) and cityscapes.train_cfg.max_iters == 80000
    assert cityscapes.model.decode_head.num_classes == 19


def test_per_class_iou_metric_returns_each_classs_iou_and_skips_ignored_pixels():
    from efficientvit_dense.engine.evaluation import PerClassIoUMetric
    metric = PerClassIoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=('sea', 'boat', 'sky', 'absent'))
    truth = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    prediction = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 2]])
    metric.process([], [dict(pred_sem_seg=dict(data=prediction[None]), gt_sem_seg=dict(data=truth[None]))])
    metrics = metric.evaluate(1)
    assert metrics['IoU.sea'] == pytest.approx(100 / 3, abs=0.01)  # 1 of 3 pixels in the union
    assert metrics['IoU.boat'] == pytest.approx(200 / 3, abs=0.01)  # the pixel under 255 does not count
    assert metrics['IoU.sky'] == pytest.approx(50.0)
    assert np.isnan(metrics['IoU.absent'])
    assert metrics['mIoU'] == pytest.approx(50.0, abs=0.01)


def test_missing_ade20k_stops_with_one_clear_message(tmp_path):
    cfg = load_config(osp.join(REPO, 'configs', 'fpn_efficientvit_m4_ade20k.py'),
                      work_dir=str(tmp_path / 'run'), data_root=str(tmp_path / 'no_ade'))
    with pytest.raises(DataNotFoundError) as err:
        train(cfg)
    message = str(err.value)
    assert str(tmp_path / 'no_ade') in message
    assert 'annotations/{training,validation}/*.png' in message and 'make demo' in message
    assert not (tmp_path / 'run').exists()


# Two iterations of batch 2 on a CPU, evaluated in batches of 2, no worker processes.
TINY_RUN = {'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2, 'default_hooks.checkpoint.interval': 2,
            **in_process_loaders()}


def _write_user_dataset(root, synthetic_root):
    """A user's layout (images/<split>, labels/<split>) with their own
    classes: the synthetic background becomes 'water', circles and rings
    'buoy', every other shape is left unlabelled (255)."""
    for split in ('train', 'val'):
        os.makedirs(osp.join(root, 'images', split))
        os.makedirs(osp.join(root, 'labels', split))
        for name in sorted(os.listdir(osp.join(synthetic_root, split))):
            stem = osp.splitext(name)[0]
            os.link(osp.join(synthetic_root, split, name), osp.join(root, 'images', split, name))
            shapes = cv2.imread(osp.join(synthetic_root, 'semantic', split, f'{stem}.png'), cv2.IMREAD_UNCHANGED)
            labels = np.full_like(shapes, 255)
            labels[shapes == 0] = 0
            labels[(shapes == 1) | (shapes == 6)] = 1
            cv2.imwrite(osp.join(root, 'labels', split, f'{stem}.png'), labels)


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
    root = tmp_path_factory.mktemp('seg') / 'data'
    generate(str(root), SyntheticSpec(num_train=4, num_val=4, max_objects=4, image_size=96))
    return root


def test_custom_template_trains_and_evaluates_a_users_classes_with_an_ignore_index(synthetic, tmp_path):
    _write_user_dataset(str(tmp_path / 'harbour'), str(synthetic))
    text = open(osp.join(REPO, 'configs', 'custom', 'fpn_efficientvit_m4_custom_seg.py')).read()
    edits = {  # what the template asks the user to change, plus _base_ for a copy outside configs/custom
        "_base_ = '../fpn_efficientvit_m4_ade20k.py'":
            f"_base_ = '{osp.join(REPO, 'configs', 'fpn_efficientvit_m4_ade20k.py')}'",
        "classes = ('sky', 'building', 'road')": "classes = ('water', 'buoy')",
        "palette = [[70, 130, 180], [70, 70, 70], [128, 64, 128]]": "palette = [[0, 90, 200], [255, 140, 0]]",
        "data_root = 'data/my_seg_data/'": f"data_root = '{tmp_path / 'harbour'}/'",
    }
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    (tmp_path / 'my_config.py').write_text(text)
    cfg = load_config(str(tmp_path / 'my_config.py'), dict(TINY_RUN), work_dir=str(tmp_path / 'run'))
    assert cfg.model.decode_head.num_classes == 2
    cfg.train_dataloader.dataset.pipeline[2].scale = (192, 96)  # RandomResize: small, for speed
    cfg.train_dataloader.dataset.pipeline[3].crop_size = (64, 64)
    cfg.val_dataloader.dataset.pipeline[1].scale = (192, 96)
    cfg.model.data_preprocessor.size = (64, 64)

    runner = train(cfg)
    from mmseg.registry import DATASETS
    with DefaultScope.overwrite_default_scope('mmseg'):
        sample = DATASETS.build(cfg.val_dataloader.dataset)[0]
    labels = sample['data_samples'].gt_sem_seg.data
    assert set(labels.unique().tolist()) <= {0, 1, 255} and (labels == 255).any()

    metrics = evaluate(cfg, str(tmp_path / 'run' / 'iter_2.pth'))
    assert runner.train_dataloader.dataset.metainfo['classes'] == ('water', 'buoy')
    assert set(metrics) >= {'mIoU', 'mAcc', 'aAcc', 'IoU.water', 'IoU.buoy'}


TINY_DEMO = {**TINY_RUN, 'model.data_preprocessor.size': (96, 96)}


@pytest.fixture(scope='module')
def demo_run(synthetic, tmp_path_factory):
    """The segmentation demo end to end (generate, train, test, time) at a tiny size."""
    from efficientvit_dense.apps.demo import run_demo
    from efficientvit_dense.apps.synthetic import SyntheticSpec
    work_dir = tmp_path_factory.mktemp('seg_demo') / 'run'
    spec = SyntheticSpec(num_train=4, num_val=4, max_objects=4, image_size=96)  # as `synthetic`: reused
    result = run_demo('segmentation', str(work_dir), str(synthetic), dict(TINY_DEMO), spec)
    return work_dir, result


def test_segmentation_demo_reports_miou_per_class(demo_run):
    from efficientvit_dense.apps.demo import format_report
    from efficientvit_dense.apps.synthetic import CLASSES
    _, result = demo_run
    assert 0.0 <= result['metrics']['mIoU'] <= 100.0 and result['images_per_s'] > 0
    assert list(result['per_class']) == ['background', *CLASSES]
    report = format_report(result)
    assert 'mIoU' in report and 'IoU per class' in report and 'ring' in report


def test_test_tool_reports_the_demos_miou_dumps_predictions_and_draws_them(demo_run, synthetic, tmp_path):
    from efficientvit_dense.apps.demo import DEMOS
    work_dir, demo = demo_run
    # A test needs no training split (mmseg's drawing hook built the training loop, and read that split).
    cfg = load_config(DEMOS['segmentation'].config, {**TINY_DEMO, 'train_dataloader.dataset.data_prefix.img_path':
                                                     'not_here'}, work_dir=str(tmp_path / 'eval'),
                      data_root=str(synthetic))
    metrics = evaluate(cfg, str(work_dir / 'iter_2.pth'), out=str(tmp_path / 'preds.pkl'),
                       show_dir=str(tmp_path / 'show'))
    # The same checkpoint on the same split: what the demo's own test reported.
    assert {key: metrics[key] for key in ('mIoU', 'mAcc', 'aAcc')} == demo['metrics']
    assert {key[len('IoU.'):]: value for key, value in metrics.items() if key.startswith('IoU.')} == pytest.approx(
        demo['per_class'], nan_ok=True)
    assert osp.getsize(tmp_path / 'preds.pkl') > 0
    drawn = glob.glob(str(tmp_path / 'show' / '**' / '*.png'), recursive=True)
    assert len(drawn) == 4 and all(re.search(r'/vis_data/vis_image/test_[^/]+_0\.png$', path) for path in drawn)
    # mmseg names a drawing after its image and a step that starts at 0 each run: a second run would replace them
    cfg = load_config(DEMOS['segmentation'].config, dict(TINY_DEMO), work_dir=str(tmp_path / 'again'),
                      data_root=str(synthetic))
    with pytest.raises(OutputExistsError, match=r'vis_image is not empty: the drawings .* would replace an earlier '
                                                r'run\'s or mix with other files; choose another --show-dir'):
        evaluate(cfg, str(work_dir / 'iter_2.pth'), show_dir=str(tmp_path / 'show'))


def test_tta_evaluates_the_checkpoint_inside_mmsegs_test_time_augmentation(demo_run, synthetic, tmp_path):
    """--tta: mmseg's SegTTAModel around the demo's weights, with the demo's flips (at its own size: the base's
    are ADE20K's six ratios), the network's own preprocessor, and the label-value check inside the augmentation."""
    from efficientvit_dense.apps.demo import DEMOS
    work_dir, _ = demo_run
    cfg = load_config(DEMOS['segmentation'].config, dict(TINY_DEMO), work_dir=str(tmp_path / 'tta'),
                      data_root=str(synthetic))
    seen = ModelUnderTest()
    metrics = evaluate(cfg, str(work_dir / 'iter_2.pth'), hooks=[seen], tta=True)
    assert 'mIoU' in metrics and type(seen.model).__name__ == 'SegTTAModel'
    assert [[step.type for step in views] for views in cfg.test_dataloader.dataset.pipeline[-1].transforms] == [
        ['RandomFlip', 'RandomFlip'], ['LoadAnnotations'], ['PackSegInputs']]
    assert seen.model.module.data_preprocessor.size == (96, 96)  # TINY_DEMO's, set on the model's own
    views = seen.pipeline.transforms[-1].subroutines  # each image as it is and flipped
    assert len(views) == 2 and all('CheckLabelValues' in [type(step).__name__ for step in view.transforms]
                                   for view in views)
    saved = torch.load(work_dir / 'iter_2.pth', map_location='cpu', weights_only=True)['state_dict']
    assert all(torch.equal(value, saved[key]) for key, value in seen.model.module.state_dict().items())


def test_infer_writes_blended_pictures_and_label_maps(demo_run, synthetic, tmp_path):
    from efficientvit_dense.apps.demo import DEMOS
    from efficientvit_dense.engine.inference import infer
    work_dir, _ = demo_run
    cfg = load_config(DEMOS['segmentation'].config, dict(TINY_DEMO), work_dir=str(tmp_path / 'infer'))
    checkpoint = str(work_dir / 'iter_2.pth')
    written = infer(cfg, checkpoint, [str(synthetic / 'val')], str(tmp_path / 'out'))
    assert len(written) == 4 and all(osp.getsize(p) > 0 for p in written)
    label_maps = sorted(glob.glob(str(tmp_path / 'out' / 'pred' / '*.png')))
    images = sorted(glob.glob(str(synthetic / 'val' / '*')))
    assert [osp.basename(p) for p in label_maps] == [osp.splitext(osp.basename(p))[0] + '.png' for p in images]
    # Two folders in one run (mmseg's count goes on from the first): each map still lands under its image's name.
    infer(cfg, checkpoint, [str(synthetic / 'train'), str(synthetic / 'val')], str(tmp_path / 'two'))
    assert len(glob.glob(str(tmp_path / 'two' / 'pred' / 'train' / '*.png'))) == 4
    for path in label_maps:
        with open(path, 'rb') as one, open(tmp_path / 'two' / 'pred' / 'val' / osp.basename(path), 'rb') as two:
            assert one.read() == two.read()
    labels = cv2.imread(label_maps[0], cv2.IMREAD_UNCHANGED)
    assert labels.shape == (96, 96) and labels.max() < 7
    # With reduce_zero_label (ADE20K's): the classes count from 1 in the maps, as in the dataset's and in mmseg's
    # format_only; 0 is "unlabelled"
    cfg.test_dataloader.dataset.reduce_zero_label = True
    infer(cfg, checkpoint, [str(synthetic / 'val')], str(tmp_path / 'from_one'))
    assert (cv2.imread(str(tmp_path / 'from_one' / 'pred' / osp.basename(label_maps[0])), cv2.IMREAD_UNCHANGED)
            == labels + 1).all()
