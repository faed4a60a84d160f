"""Classification: an ImageNet checkpoint of either format loads whole into
an mmpretrain classifier and gives timm's logits."""
import copy
import glob
import json
import os
import os.path as osp
import pickle
import runpy
import shutil

import pytest
import torch
from helpers import REPO, in_process_loaders
from mmengine.registry import DefaultScope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from efficientvit_dense.analysis.reference import imagenet_classifier, official_state_dict, randomize_
from efficientvit_dense.engine.config import load_config
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import ConfigError, DataNotFoundError
from efficientvit_dense.models import EfficientViTClsHead
from efficientvit_dense.models.weights import load_classifier_weights

ARCHS = ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')


def _classifier(arch, distillation=False):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(imagenet_classifier(arch, distillation)).eval()


@pytest.mark.parametrize('fmt', ['timm', 'official'])
@pytest.mark.parametrize('arch', ARCHS)
def test_imagenet_checkpoint_loads_whole_and_gives_timms_logits(arch, fmt, timm_model, tmp_path):
    reference = timm_model(arch)
    state = dict(reference.state_dict()) if fmt == 'timm' else official_state_dict(reference)
    torch.save(state, tmp_path / 'imagenet.pth')
    classifier = _classifier(arch)
    report = load_classifier_weights(classifier, str(tmp_path / 'imagenet.pth'))
    assert not report['missing'] and not report['unexpected']
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = classifier(x, mode='tensor'), reference(x)
    assert ours.shape == (2, 1000)
    assert (ours - theirs).abs().max().item() <= 1e-4


def test_distilled_checkpoint_averages_both_heads(timm_model, tmp_path):
    reference = timm_model('m0')
    head_dist = randomize_(copy.deepcopy(reference.head), seed=5).eval()
    state = dict(reference.state_dict())
    state.update({f'head_dist.{k}': v for k, v in head_dist.state_dict().items()})
    torch.save({'model': state}, tmp_path / 'distilled.pth')
    classifier = _classifier('m0', distillation=True)
    assert isinstance(classifier.head, EfficientViTClsHead)
    report = load_classifier_weights(classifier, str(tmp_path / 'distilled.pth'))
    assert not report['missing'] and not report['unexpected']
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        pooled = reference.forward_head(reference.forward_features(x), pre_logits=True)
        expected = (reference.head(pooled) + head_dist(pooled)) / 2
        assert (classifier(x, mode='tensor') - expected).abs().max().item() <= 1e-4


def test_the_deploy_form_folds_the_heads_batchnorm_and_keeps_the_logits(timm_model, tmp_path):
    from efficientvit_dense.models import deploy
    classifier = _classifier('m4', distillation=True)
    randomize_(classifier, seed=3).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        eager = classifier(x, mode='tensor')
        folded = deploy(copy.deepcopy(classifier))
        assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
        assert isinstance(folded.head.head, torch.nn.Linear) and isinstance(folded.head.head_dist, torch.nn.Linear)
        assert (folded(x, mode='tensor') - eager).abs().max().item() <= 1e-4


# --------------------------------------------------------------------------
# Configs, data and tools

CLASSIFICATION_CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'cls_*.py')) +
                                glob.glob(osp.join(REPO, 'configs', 'demo', 'cls_*.py')) +
                                glob.glob(osp.join(REPO, 'configs', 'custom', 'cls_*.py')))


def _build_from(cfg, num_classes):
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.head.num_classes = model_cfg.head.num_classes or num_classes
    model_cfg.setdefault('data_preprocessor', dict(cfg.data_preprocessor, num_classes=model_cfg.head.num_classes))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(model_cfg)
    model.init_weights()
    return model


def _batch(num_classes, size=64):
    gen = torch.Generator().manual_seed(0)
    return dict(inputs=[torch.randint(0, 256, (3, size, size), generator=gen, dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i % num_classes) for i in range(2)])


@pytest.mark.parametrize('config', CLASSIFICATION_CONFIGS, ids=osp.basename)
def test_config_builds_and_runs_a_training_and_a_predict_step(config, train_and_predict_step):
    cfg = load_config(config)
    model = _build_from(cfg, num_classes=6)
    num_classes = model.head.num_classes

    results = train_and_predict_step(model, _batch(num_classes))
    assert results[0].pred_score.shape == (num_classes,)
    assert torch.allclose(results[0].pred_score.sum(), torch.tensor(1.0), atol=1e-5)


def test_transfer_configs_follow_the_authors_recipe():
    # microsoft/Cream#172 as EfficientViT/classification/main.py runs it: --lr 1e-3 scaled by batch / 512.
    cfg = load_config(osp.join(REPO, 'configs', 'cls_efficientvit_m5_pets.py'))
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', 1e-3 * 256 / 512, 1e-8)
    assert cfg.param_scheduler[0].start_factor * optimizer.lr == pytest.approx(1e-6)  # --warmup-lr
    assert cfg.train_cfg.max_epochs == 300
    assert cfg.train_dataloader.batch_size * 8 == cfg.auto_scale_lr.base_batch_size == 256
    assert (cfg.train_dataloader.sampler.type, cfg.train_dataloader.sampler.num_repeats) == ('RepeatAugSampler', 3)
    assert cfg.optim_wrapper.clip_grad == dict(type='agc', clip_factor=0.02)
    # A fine-tuned model is evaluated on the whole image at 224x224 (data/datasets.py), not a centre crop.
    assert [t.type for t in cfg.test_dataloader.dataset.pipeline] == ['LoadImageFromFile', 'Resize', 'PackInputs']
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (224, 224)
    steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert steps[:2] == ['LoadImageFromFile', 'RandomResizedCrop'] and 'RandAugment' in steps
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 37
    assert cfg.model.backbone.window_size == (7, 7, 4)  # the pretrained attention windows at 224


def test_the_transfer_recipe_clips_each_units_gradient_to_a_fiftieth_of_its_weight():
    from mmengine.optim import build_optim_wrapper

    cfg = load_config(osp.join(REPO, 'configs', 'cls_efficientvit_m5_pets.py'))
    model = torch.nn.Linear(4, 3)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    weight = model.weight.detach().clone()
    wrapper.backward((model(torch.ones(2, 4)) * 1000).sum())
    wrapper.step()  # clips, then steps: the gradients stay until zero_grad
    limit = 0.02 * weight.norm(dim=1)  # timm's unit-wise norm of a matrix: one per output row
    assert (model.weight.grad.norm(dim=1) <= limit * (1 + 1e-5)).all()
    assert model.weight.grad.norm(dim=1) == pytest.approx(limit, rel=1e-5)  # the loss made them larger
    # A norm clip merged into the recipe's would fail only at the first step: refused as the wrapper is built.
    for clip in (dict(max_norm=1.0), dict(type='norm', max_norm=1.0)):
        options = copy.deepcopy(cfg.optim_wrapper)
        options.clip_grad.update(clip)
        with DefaultScope.overwrite_default_scope('mmpretrain'), pytest.raises(ConfigError, match='_delete_=True'):
            build_optim_wrapper(model, options)


@pytest.mark.parametrize('name', ['cls_efficientvit_m5_cifar10.py', 'cls_efficientvit_m4_cifar100.py'])
def test_cifar_arrays_and_image_files_reach_the_network_in_the_same_colours(name, tmp_path):
    """mmpretrain's CIFAR datasets hold RGB arrays, image files are read in BGR, and the data preprocessor
    turns BGR into the RGB of the ImageNet weights: the arrays are put in the files' order first."""
    import cv2
    import numpy as np
    from mmcv.transforms import Compose
    from mmpretrain.models import ClsDataPreprocessor
    from mmpretrain.registry import TRANSFORMS

    cfg = load_config(osp.join(REPO, 'configs', name))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = Compose([TRANSFORMS.build(step) for step in cfg.test_dataloader.dataset.pipeline])
    preprocess = ClsDataPreprocessor(**{k: v for k, v in cfg.data_preprocessor.items() if k != 'type'})
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255  # RGB, as the dataset holds it
    cv2.imwrite(str(tmp_path / 'red.png'), red[..., ::-1])  # cv2 writes BGR: a red picture
    from_dataset = pipeline(dict(img=red, gt_label=0, sample_idx=0, img_shape=(32, 32), ori_shape=(32, 32)))
    from_file = pipeline(dict(img=cv2.imread(str(tmp_path / 'red.png')), img_shape=(32, 32), ori_shape=(32, 32)))
    seen = [preprocess(dict(inputs=[sample['inputs']], data_samples=[sample['data_samples']]))['inputs'][0]
            for sample in (from_dataset, from_file)]
    assert torch.equal(seen[0], seen[1])
    assert seen[0][0].mean() > 0 > seen[0][2].mean()  # red, where the weights expect it: channel 0


def test_missing_cifar_stops_with_one_clear_message(tmp_path):
    cfg = load_config(osp.join(REPO, 'configs', 'cls_efficientvit_m5_cifar10.py'),
                      work_dir=str(tmp_path / 'run'), data_root=str(tmp_path / 'no_cifar'))
    with pytest.raises(DataNotFoundError) as err:
        train(cfg)
    assert str(tmp_path / 'no_cifar') in str(err.value) and 'cifar-10-batches-py' in str(err.value)
    assert not (tmp_path / 'run').exists()


# Two iterations of batch 2, no worker processes.
TINY_RUN = {'train_cfg.max_epochs': 1, 'train_cfg.val_interval': 1, **in_process_loaders()}


def _user_folders(root, synthetic_root, classes=('star', 'ring', 'cross'), per_class=2):
    """A user's train/<class>/ and val/<class>/ folders, from the synthetic crops, named 0.png, 1.png, ... in
    each folder, as a camera or a script names them."""
    for split in ('train', 'val'):
        for name in classes:
            os.makedirs(root / split / name)
            crops = sorted(glob.glob(str(synthetic_root / 'classification' / split / name / '*.png')))[:per_class]
            for number, crop in enumerate(crops):
                shutil.copy(crop, root / split / name / f'{number}.png')


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory):
    from efficientvit_dense.apps.synthetic import SyntheticSpec, generate
    root = tmp_path_factory.mktemp('cls') / 'data'
    generate(str(root), SyntheticSpec(num_train=12, num_val=12, max_objects=5, image_size=96))
    return root


def test_custom_folders_train_and_evaluate_with_classes_read_from_the_folders(synthetic, tmp_path):
    _user_folders(tmp_path / 'my_images', synthetic)
    text = open(osp.join(REPO, 'configs', 'custom', 'cls_efficientvit_m5_custom_folder.py')).read()
    edits = {"_base_ = '../_base_/efficientvit_m5_finetune_224.py'":
             f"_base_ = '{osp.join(REPO, 'configs', '_base_', 'efficientvit_m5_finetune_224.py')}'",
             "data_root = 'data/my_images/'": f"data_root = '{tmp_path / 'my_images'}/'"}
    for old, new in edits.items():
        assert old in text
        text = text.replace(old, new)
    (tmp_path / 'my_config.py').write_text(text)
    tiny = dict(TINY_RUN, **{'model.backbone.arch': 'm0', 'model.head.in_channels': 192,
                             'param_scheduler': []})  # the recipe's cosine starts after epoch 5
    cfg = load_config(str(tmp_path / 'my_config.py'), tiny, work_dir=str(tmp_path / 'run'))
    assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 3
    assert tuple(cfg.val_evaluator.topk) == (1,)  # top-5 of 3 classes means nothing

    runner = train(cfg)
    assert runner.train_dataloader.dataset.metainfo['classes'] == ('cross', 'ring', 'star')
    metrics = evaluate(cfg, str(tmp_path / 'run' / 'epoch_1.pth'), out=str(tmp_path / 'preds.pkl'),
                       show_dir=str(tmp_path / 'show'))
    # The same weights on the same folder: what validation logged at the end of the epoch, and the scores the
    # trained model gives (top-1 of a barely trained model can match by chance).
    assert metrics['accuracy/top1'] == runner.message_hub.get_scalar('val/accuracy/top1').current()
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        dumped = [sample['pred_score'] for sample in pickle.load(f)]
    runner.model.eval()
    with torch.no_grad():
        live = [sample.pred_score for batch in runner.val_dataloader for sample in runner.model.test_step(batch)]
    assert len(dumped) == len(live) == 6 and all(torch.allclose(a, b, atol=1e-5) for a, b in zip(dumped, live))
    _assert_drawn_in_the_images_colours(tmp_path / 'show', tmp_path / 'my_images' / 'val', count=6)

    # --tta: each image's scores and its horizontal flip's, averaged (mmpretrain's AverageClsScoreTTA). The shapes
    # are mirror images of themselves, so the left half of each image is blacked out; and the weights are a new
    # model's, since the barely trained one gives every image the same features.
    import cv2
    from mmpretrain.registry import MODELS
    for path in glob.glob(str(tmp_path / 'my_images' / 'val' / '*' / '*.png')):
        image = cv2.imread(path)
        image[:, :image.shape[1] // 2] = 0
        cv2.imwrite(path, image)
    cfg = load_config(str(tmp_path / 'my_config.py'), tiny, work_dir=str(tmp_path / 'tta'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build({**cfg.model, 'data_preprocessor': cfg.data_preprocessor}).eval()
    model.head.head.linear.weight.data *= 1000  # a new head scores every class about equally
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'new.pth')
    with torch.no_grad():
        as_is, flipped = ([sample.pred_score for batch in runner.val_dataloader for sample in model.test_step(
            {**batch, 'inputs': [image.flip(-1) if flip else image for image in batch['inputs']]})]
            for flip in (False, True))
    assert max(float((a - b).abs().max()) for a, b in zip(as_is, flipped)) > 1e-3
    evaluate(cfg, str(tmp_path / 'new.pth'), out=str(tmp_path / 'tta.pkl'), tta=True)
    with open(tmp_path / 'tta.pkl', 'rb') as f:
        averaged = [sample['pred_score'] for sample in pickle.load(f)]
    assert len(averaged) == 6
    assert all(torch.allclose(both, (a + b) / 2, atol=1e-6) for both, a, b in zip(averaged, as_is, flipped))


def _assert_drawn_in_the_images_colours(show_dir, images_root, count):
    """--show-dir drew every test image (<class>/<image>_0.png: same-named images in two class folders get two
    drawings), in its own colours, not with red and blue swapped."""
    import cv2
    drawn = sorted(glob.glob(str(show_dir / '*' / '*_0.png')))
    assert len(drawn) == count
    compared = 0
    for path in drawn:
        source = str(images_root / osp.relpath(path, show_dir)[:-len('_0.png')])
        mean = lambda image: image.reshape(-1, 3).mean(0)  # noqa: E731
        picture, image = mean(cv2.imread(path)), mean(cv2.imread(source))
        if abs(image[0] - image[2]) > 10:  # blue and red tell apart
            compared += 1
            assert abs(picture - image).sum() < abs(picture - image[::-1]).sum(), (path, picture, image)
    assert compared >= count // 2


def test_tta_with_show_dir_is_refused_for_a_classifier():
    """mmpretrain's hook draws the network's inputs, which test-time augmentation multiplies (it would fail)."""
    from efficientvit_dense.engine.runner import Request, augmentation_at_test_time
    from efficientvit_dense.errors import UnsupportedError
    cfg = load_config(osp.join(REPO, 'configs', 'demo', 'cls_efficientvit_m0_synthetic.py'))
    with pytest.raises(UnsupportedError, match='draw without --tta'):
        augmentation_at_test_time(cfg, Request(tta=True, show_dir='drawn'))


def test_show_dir_draws_every_image_of_a_dataset_without_paths_once(tmp_path):
    """CIFAR's images have no path: a drawing is named after the image's index in the dataset (mmpretrain counted
    positions from the current batch size, so a smaller last batch drew over earlier images)."""
    from mmpretrain.structures import DataSample
    from mmpretrain.visualization import UniversalVisualizer

    from efficientvit_dense.engine.drawing import RGBVisualizationHook
    UniversalVisualizer.get_instance('pathless_drawings')
    hook = RGBVisualizationHook(enable=True, interval=1, out_dir=str(tmp_path))
    index = iter(range(5))
    for batch_idx, size in enumerate((2, 2, 1)):
        samples = [DataSample(metainfo=dict(sample_idx=next(index))).set_gt_label(0).set_pred_score(
            torch.tensor([0.9, 0.1])) for _ in range(size)]
        hook._draw_samples(batch_idx, dict(inputs=torch.zeros(size, 3, 16, 16, dtype=torch.uint8)), samples)
    assert sorted(os.listdir(tmp_path)) == [f'{i}_0.png' for i in range(5)]


def test_classification_demo_reports_top1_and_infer_prints_topk(synthetic, tmp_path):
    from efficientvit_dense.apps.demo import DEMOS, format_report, run_demo
    from efficientvit_dense.apps.synthetic import CLASSES, SyntheticSpec
    from efficientvit_dense.engine.inference import classify
    spec = SyntheticSpec(num_train=12, num_val=12, max_objects=5, image_size=96)  # as `synthetic`: reused
    result = run_demo('classification', str(tmp_path / 'run'), str(synthetic), dict(TINY_RUN), spec)
    # The demo's test and its validation at the end of training score the same weights on the same crops.
    logged = [json.loads(line) for path in glob.glob(str(tmp_path / 'run' / '*' / 'vis_data' / 'scalars.json'))
              for line in open(path)]
    validated = [record['accuracy/top1'] for record in logged if 'accuracy/top1' in record]
    assert validated and validated[0] == result['metrics']['top-1'] and result['images_per_s'] > 0
    assert 'top-1' in format_report(result)
    from efficientvit_dense.analysis.report import collect
    (row,) = collect([str(tmp_path / 'run')])  # tools/report.py reads what the demo leaves
    assert row['metric'] == 'top-1' and row['value'] == pytest.approx(result['metrics']['top-1'])
    assert row['speed']['images_per_s'] == pytest.approx(result['images_per_s'])

    cfg = load_config(DEMOS['classification'].config, dict(TINY_RUN), data_root=str(synthetic))
    images = sorted(glob.glob(str(synthetic / 'classification' / 'val' / 'ring' / '*.png')))[:2]
    predictions = classify(cfg, str(tmp_path / 'run' / 'epoch_1.pth'), images, topk=3)
    assert [image for image, _ in predictions] == images
    for _, top in predictions:
        assert len(top) == 3 and {name for name, _ in top} <= set(CLASSES)
        assert [score for _, score in top] == sorted((score for _, score in top), reverse=True)


def test_the_int8_export_calibrates_on_the_training_crops_and_checks_itself(synthetic, tmp_path, capsys):
    main = runpy.run_path(osp.join(REPO, 'tools', 'export_onnx.py'))['main']
    out = tmp_path / 'cls_int8.onnx'
    main([osp.join(REPO, 'configs', 'demo', 'cls_efficientvit_m0_synthetic.py'), '--shape', '96', '--precision',
          'int8', '--calibration-images', '4', '--data-root', str(synthetic), '--out', str(out)])
    printed = capsys.readouterr().out
    assert 'int8' in printed and 'max |difference| / max |PyTorch output| = ' in printed and out.stat().st_size > 0
    import onnx
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {'QuantizeLinear', 'DequantizeLinear'} <= ops  # what ONNX Runtime runs as int8 kernels
    with pytest.raises(SystemExit, match='int8 calibrates on the training images of a config'):
        main(['m0', '--precision', 'int8', '--out', str(tmp_path / 'm0.onnx')])


def test_a_class_count_that_disagrees_with_the_folders_names_both_settings(synthetic):
    template = osp.join(REPO, 'configs', 'custom', 'cls_efficientvit_m5_custom_folder.py')
    counted = load_config(template, data_root=str(synthetic / 'classification'))
    assert counted.model.head.num_classes == counted.data_preprocessor.num_classes == 6
    with pytest.raises(ConfigError, match=r'num_classes is 5, but .*train holds 6 class folders: set '
                                          r'model.head.num_classes and data_preprocessor.num_classes to 6'):
        load_config(template, {'model.head.num_classes': 5}, data_root=str(synthetic / 'classification'))
