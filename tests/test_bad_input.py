"""Bad input stops with one message naming the file and what to do, or is
skipped with a warning where the config asks for it (docs/reliability.md)."""
import json
import os
import os.path as osp
import runpy

import pytest
import torch
import torch.nn as nn
from helpers import DETECTION_TINY_RUN, REPO, edit_annotations, run_tool, run_tool_in_process
from mmengine.config import Config
from mmengine.registry import MODELS

from efficientvit_dense import cli
from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.cli import user_message
from efficientvit_dense.engine.checkpoint_fit import check_checkpoint_fits
from efficientvit_dense.engine.config import check_top_level_keys, load_config, set_data_root
from efficientvit_dense.engine.data_checks import check_inputs
from efficientvit_dense.engine.runner import test as evaluate
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import (
    BadImageError,
    CheckpointError,
    ConfigError,
    DataError,
    DataNotFoundError,
    UserError,
)

TINY_RUN = {**DETECTION_TINY_RUN, 'train_cfg.val_interval': 1000}  # no validation unless a test asks


def _cfg(data, **options):
    return load_config(DEMOS['detection'].config, {**TINY_RUN, **options}, work_dir=str(data.parent / 'run'),
                       data_root=str(data))


def test_missing_data_of_ones_own_coco_dataset_is_described_by_its_config_not_by_coco_2017(tmp_path):
    cfg = load_config(osp.join(REPO, 'configs', 'custom', 'retinanet_efficientvit_m4_custom_coco.py'),
                      data_root=str(tmp_path))
    with pytest.raises(DataNotFoundError) as err:
        check_inputs(cfg)
    hint = str(err.value).splitlines()[1]
    assert 'annotations/train.json (a COCO-format JSON file)' in hint and 'in train/' in hint, hint
    assert '2017' not in hint
    coco = load_config(osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py'), data_root=str(tmp_path))
    with pytest.raises(DataNotFoundError, match=r'instances_\{train,val\}2017.json and images in train2017/'):
        check_inputs(coco)


def test_a_relative_data_root_that_does_not_exist_names_where_it_was_looked_for(data, monkeypatch):
    monkeypatch.chdir(data.parent)
    cfg = load_config(DEMOS['detection'].config, dict(TINY_RUN), work_dir=str(data.parent / 'run'),
                      data_root='not_here/shapes')
    with pytest.raises(DataNotFoundError) as err:
        check_inputs(cfg)
    assert str(err.value).splitlines()[0] == (
        f'train_dataloader: data root not found: not_here/shapes/ (from the current directory, {data.parent})')


def test_an_annotation_file_that_is_not_json_stops_before_training(data):
    path = data / 'annotations' / 'instances_train.json'
    path.write_text(path.read_text()[:500])  # cut off mid-write
    with pytest.raises(DataError, match=rf'{path} is not valid JSON \(.*: line 1, column \d+\)'):
        train(_cfg(data))
    assert not list((data.parent / 'run').glob('*.pth'))  # mmengine made its log folder meanwhile


def test_a_json_file_that_is_not_coco_stops_before_training(data):
    path = data / 'annotations' / 'instances_val.json'
    path.write_text(json.dumps({'images': [], 'labels': []}))
    with pytest.raises(DataError, match=rf"{path} is JSON but not COCO annotations: it has no 'annotations', "
                                        r"'categories' list"):
        train(_cfg(data))


def test_an_image_named_in_the_annotations_that_does_not_exist_stops_naming_it(data):
    image = data / 'train' / '000003.jpg'
    os.remove(image)
    with pytest.raises(DataError, match=rf'names 1 images that do not exist: {image}\. .*bad_images=.skip.'):
        check_inputs(_cfg(data))
    check_inputs(_cfg(data, data_checks=dict(bad_images='skip')))  # training may go on without it
    os.remove(data / 'val' / os.listdir(data / 'val')[0])
    with pytest.raises(DataError, match='val_dataloader: .* evaluation needs every image'):
        check_inputs(_cfg(data, data_checks=dict(bad_images='skip')))


def _break_images(data):
    """One file that is not an image, one truncated JPEG."""
    not_image, truncated = data / 'train' / '000001.jpg', data / 'train' / '000005.jpg'
    not_image.write_text('this is not an image')
    truncated.write_bytes(truncated.read_bytes()[:2000])
    return not_image, truncated


def test_a_file_that_is_not_an_image_stops_before_training_naming_it(data):
    not_image, _ = _break_images(data)
    with pytest.raises(DataError, match=rf'train_dataloader: .* names 1 files that are not readable images: '
                                        rf'{not_image}\. .*bad_images=.skip.'):
        train(_cfg(data))
    assert not (data.parent / 'run' / 'iter_2.pth').exists()


def test_a_truncated_image_stops_the_run_with_one_line_naming_it(data):
    truncated = data / 'train' / '000005.jpg'
    truncated.write_bytes(truncated.read_bytes()[:2000])  # its header is whole: only decoding finds it
    result = run_tool('train.py', DEMOS['detection'].config, '--data-root', data, '--work-dir', data.parent / 'run',
                      '--cfg-options', *[f'{k}={v}' for k, v in TINY_RUN.items()
                                         if 'num_workers' not in k and 'persistent' not in k])
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f'error: train_dataloader: cannot read {truncated}: ')  # raised in a data worker
    assert 'cannot be decoded as an image' in last and "bad_images='skip'" in last
    assert 'Traceback' not in result.stderr


def test_unreadable_images_are_skipped_with_a_warning_when_the_config_asks(data):
    not_image, truncated = _break_images(data)
    runner = train(_cfg(data, data_checks=dict(bad_images='skip')))
    assert runner.iter == 2
    log = open(runner.log_dir + f'/{runner.timestamp}.log').read()
    assert f'Skipping {not_image}: it cannot be decoded' in log
    assert f'Skipping {truncated}: it cannot be decoded' in log


def test_validation_never_skips_an_unreadable_image(data):
    bad = data / 'val' / '000002.jpg'
    bad.write_bytes(bad.read_bytes()[:2000])  # found while loading, when validation reads it
    cfg = _cfg(data, data_checks=dict(bad_images='skip'), **{'train_cfg.val_interval': 2})
    with pytest.raises(BadImageError, match=rf'val_dataloader: cannot read {bad}: .*evaluation needs every image'):
        train(cfg)  # training may skip, as asked; validation must not


def test_an_annotation_of_a_category_outside_the_classes_stops_unless_ignored(data):
    def add_unknown(coco):
        coco['categories'].append(dict(id=99, name='hexagon', supercategory='shape'))
        coco['annotations'].append({**coco['annotations'][0], 'id': 10_000, 'category_id': 99})
    path = edit_annotations(data, 'train', add_unknown)
    with pytest.raises(DataError, match=rf"{path}: 1 annotations have categories .* \(id 99 \(hexagon\): 1\); "
                                        r"mmdet would drop them silently.*unknown_categories='ignore'"):
        check_inputs(_cfg(data))
    check_inputs(_cfg(data, data_checks=dict(unknown_categories='ignore')))


def test_classes_missing_from_the_file_or_in_another_order_stop(data):
    with pytest.raises(DataError, match=r"the config's classes \['hexagon'\] are not among the file's categories"):
        check_inputs(_cfg(data, **{'train_dataloader.dataset.metainfo.classes': ['circle', 'hexagon']}))
    with pytest.raises(DataError, match=r"another order .* Set metainfo.classes = \('circle', 'square'\)"):
        check_inputs(_cfg(data, **{'train_dataloader.dataset.metainfo.classes': ['square', 'circle'],
                                   'data_checks': dict(unknown_categories='ignore')}))


def test_an_empty_split_stops_instead_of_spinning(data):
    edit_annotations(data, 'train', lambda coco: coco.update(images=[], annotations=[]))
    with pytest.raises(DataError, match=r'CocoDataset found no samples in .*instances_train.json'):
        train(_cfg(data))


def test_an_unknown_data_checks_option_is_named(data):
    with pytest.raises(ConfigError, match=r"data_checks.bad_images must be one of \('stop', 'skip'\), not 'drop'"):
        check_inputs(_cfg(data, data_checks=dict(bad_images='drop')))
    cfg = _cfg(data)
    cfg.data_checks = 'skip'
    with pytest.raises(ConfigError, match=r"data_checks must be a dict of switches, e.g. .* not 'skip'"):
        check_inputs(cfg)


def test_a_coco_evaluator_scoring_another_file_than_its_split_reads_is_refused(data):
    # The test split moved to the training file, its evaluator left on the validation file: mmdet would score
    # the predictions for one split against the other's boxes.
    cfg = _cfg(data, **{'test_dataloader.dataset.ann_file': 'annotations/instances_train.json',
                        'test_dataloader.dataset.data_prefix.img': 'train/'})
    with pytest.raises(ConfigError, match=r'test_evaluator.ann_file is \S+instances_val.json, but test_dataloader '
                                          r'reads \S+instances_train.json: the COCO metric scores .* Set '
                                          r'test_evaluator.ann_file to \S+instances_train.json\.$'):
        check_inputs(cfg, ('test_dataloader',))
    cfg.test_evaluator.ann_file = str(data / 'annotations' / 'instances_train.json')
    check_inputs(cfg, ('test_dataloader',))
    check_inputs(_cfg(data), ('test_dataloader',))  # the demo as it is: one file, written two ways


def test_the_test_tools_outputs_are_checked_before_the_model_is_built(data, tmp_path):
    from efficientvit_dense.engine.runner import Request, checkpoint_to_evaluate, dumped_predictions
    cfg = _cfg(data)
    with pytest.raises(ConfigError, match=r'--out \S+preds.json: the predictions are dumped as a pickle; name a \.pkl'):
        dumped_predictions(cfg, Request(out=str(tmp_path / 'preds.json')))  # mmengine: a ValueError traceback
    checkpoint_to_evaluate(cfg, Request(checkpoint='https://example.org/retinanet_efficientvit_m4.pth'))
    assert cfg.load_from.startswith('https://')  # mmengine fetches it; "not found" was wrong


def test_a_data_root_moves_an_evaluator_file_from_the_deepest_old_root():
    cfg = Config(dict(data_root='data/', val_dataloader=dict(dataset=dict(data_root='data/coco/')),
                      val_evaluator=dict(type='CocoMetric', ann_file='data/coco/annotations/val.json')))
    set_data_root(cfg, '/mnt/coco')
    assert cfg.val_evaluator.ann_file == '/mnt/coco/annotations/val.json'  # not /mnt/coco/coco/annotations/...


@pytest.fixture(scope='module')
def m0_detector_checkpoint(tmp_path_factory):
    """A checkpoint of the M0 demo detector, as mmengine saves one."""
    cfg = Config.fromfile(DEMOS['detection'].config)
    import mmdet.models  # noqa: F401  (registers the detector)
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    path = tmp_path_factory.mktemp('ckpt') / 'iter_2.pth'
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, path)
    return str(path)


def test_a_checkpoint_of_another_architecture_is_refused(data, m0_detector_checkpoint):
    cfg = _cfg(data, **{'model.backbone.arch': 'm1', 'model.neck.in_channels': [128, 144, 192]})
    with pytest.raises(CheckpointError, match=rf'{m0_detector_checkpoint} was trained for another model: '
                                              r'\d+ tensors have other shapes \(backbone\.'):
        evaluate(cfg, m0_detector_checkpoint)


@pytest.mark.parametrize('content', [b'not a checkpoint at all\n', b'{"state_dict": {}}'])
def test_a_file_that_is_not_a_checkpoint_is_refused(data, tmp_path, content):
    path = tmp_path / 'weights.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=rf'{path} is not a (readable )?PyTorch checkpoint'):
        evaluate(_cfg(data), str(path))


def test_a_checkpoint_without_this_models_weights_is_refused(data, tmp_path):
    path = tmp_path / 'backbone_only.pth'
    torch.save({'stages.0.blocks.0.dw0.m.conv.weight': torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"holds none of the weights of the model's backbone .*init_cfg is not"):
        evaluate(_cfg(data), str(path))


def test_fine_tuning_may_bring_another_head_but_not_another_backbone(tmp_path):
    model = nn.ModuleDict(dict(backbone=nn.Linear(4, 4), bbox_head=nn.Linear(4, 3)))
    other_head = {'backbone.weight': torch.zeros(4, 4), 'bbox_head.weight': torch.zeros(80, 4)}
    torch.save({'state_dict': other_head}, tmp_path / 'coco.pth')
    check_checkpoint_fits(model, str(tmp_path / 'coco.pth'), 'fine-tune')
    with pytest.raises(CheckpointError, match='bbox_head.weight: file \\(80, 4\\) vs model \\(3, 4\\)'):
        check_checkpoint_fits(model, str(tmp_path / 'coco.pth'), 'evaluate')
    torch.save({'state_dict': {'backbone.weight': torch.zeros(8, 4), 'bbox_head.weight': torch.zeros(80, 4)}},
               tmp_path / 'other.pth')
    with pytest.raises(CheckpointError, match='backbone.weight'):
        check_checkpoint_fits(model, str(tmp_path / 'other.pth'), 'fine-tune')


def test_an_unknown_arch_is_named_in_one_line(data):
    with pytest.raises(ConfigError) as err:
        train(_cfg(data, **{'model.backbone.arch': 'm9'}))
    assert user_message(err.value).startswith("Unknown EfficientViT arch 'm9'; choose one of ['m0',")


def test_a_wrong_model_argument_is_one_line_from_the_tool_not_a_traceback(data):
    result = run_tool_in_process('train.py', DEMOS['detection'].config, '--data-root', data, '--work-dir',
                                 data.parent / 'run', '--cfg-options', 'model.backbone.out_indices=[0,5]')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'error: out_indices must be a non-empty subset of (0, 1, 2) without repeats, got [0, 5].')


def test_the_tools_print_a_user_error_in_one_line_and_keep_a_bugs_traceback():
    def user_mistake():
        raise ConfigError('CONFIG: the mistake and what to do')

    with pytest.raises(SystemExit, match='^error: CONFIG: the mistake and what to do$'):
        cli.run(user_mistake)
    with pytest.raises(ZeroDivisionError):  # a bug is not a user's mistake: its traceback stays
        cli.run(lambda: 1 / 0)


def test_a_missing_base_config_and_a_misspelt_type_are_named_in_one_line(tmp_path):
    get_flops = runpy.run_path(osp.join(REPO, 'tools', 'get_flops.py'))['main']
    (tmp_path / 'mine.py').write_text("_base_ = './not_there.py'\n")
    with pytest.raises(SystemExit, match=r'^error: .*mine\.py: .*not_there\.py.*\. A relative _base_ is found from the '
                                         r'folder of the config that names it'):
        get_flops([str(tmp_path / 'mine.py')])
    with pytest.raises(SystemExit, match=r"^error: .*: no type 'EfficientViTx' in the mmdet::model registry; check "):
        get_flops([DEMOS['detection'].config, '--cfg-options', 'model.backbone.type=EfficientViTx'])


def test_a_misspelt_key_is_named(data):
    with pytest.raises(ConfigError, match=r"unknown key 'trian_cfg', did you mean 'train_cfg'\?"):
        _cfg(data, **{'trian_cfg.max_iters': 2})
    with pytest.raises(ConfigError, match=r"--cfg-options model.backbone.archh: EfficientViT \(model.backbone\) has "
                                          r"no option 'archh'; did you mean 'arch'\?"):
        _cfg(data, **{'model.backbone.archh': 'm0'})
    # The demo trains from scratch (init_cfg=None): mmengine's merge would end in a traceback about inheritance.
    with pytest.raises(ConfigError, match=r"--cfg-options model.backbone.init_cfg.checkpoint: model.backbone.init_cfg "
                                          r"is None in this config, not a dict or list, .* Set model.backbone.init_cfg "
                                          r"whole"):
        _cfg(data, **{'model.backbone.init_cfg.checkpoint': 'efficientvit_m0.pth'})
    with pytest.raises(ConfigError, match=r"model.backbone.arch is 'm0' in this config, not a dict or list"):
        _cfg(data, **{'model.backbone.arch.depths': (1, 2, 3)})
    mine = data.parent / 'mine.py'  # the same mistake in a config file: found when the model is built
    mine.write_text(f"_base_ = '{DEMOS['detection'].config}'\nmodel = dict(backbone=dict(archh='m0'))\n")
    cfg = load_config(str(mine), dict(TINY_RUN), work_dir=str(data.parent / 'run'), data_root=str(data))
    with pytest.raises(ConfigError, match=r"EfficientViT has no option 'archh'; check its spelling"):
        train(cfg)


def test_setting_a_variable_that_other_keys_were_built_from_is_refused_naming_those_keys(tmp_path):
    demo = DEMOS['detection'].config
    # mmengine would keep the new value beside the old one it put into the pipelines, and train at 192.
    with pytest.raises(ConfigError, match=r'--cfg-options image_size: image_size is a variable of the config, which '
                                          r'mmengine put into test_pipeline, train_pipeline, tta_pipeline when it read '
                                          r'the file; '
                                          r'.*\(e\.g\. test_dataloader\.dataset\.pipeline\.1\.scale, '
                                          r'train_dataloader\.dataset\.pipeline\.2\.scale, '):
        load_config(demo, {'image_size': (256, 256)})
    with pytest.raises(ConfigError, match=r'--cfg-options train_pipeline\.2\.scale: train_pipeline is a variable'):
        load_config(demo, {'train_pipeline.2.scale': (256, 256)})
    with pytest.raises(ConfigError, match=r'data_root is a variable .* take --data-root DIR instead'):
        load_config(osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py'), {'data_root': str(tmp_path)})
    (tmp_path / 'base.py').write_text('size = 8\nnote = 1\n')
    (tmp_path / 'child.py').write_text("_base_ = './base.py'\nmodel = dict(width={{_base_.size}})\n")
    with pytest.raises(ConfigError, match=r'size is a variable of the config, which mmengine put into model'):
        load_config(str(tmp_path / 'child.py'), {'size': 16})
    # The keys themselves, a key the runner reads that another was copied from, a variable nothing reads
    cfg = load_config(demo, {'train_dataloader.dataset.pipeline.2.scale': (256, 256), 'val_dataloader.batch_size': 2})
    assert (cfg.train_dataloader.dataset.pipeline[2].scale, cfg.val_dataloader.batch_size) == ((256, 256), 2)
    assert load_config(str(tmp_path / 'child.py'), {'note': 2}).note == 2


@pytest.mark.parametrize('config', sorted(
    osp.relpath(os.path.join(d, f), REPO) for d, _, fs in os.walk(osp.join(REPO, 'configs'))
    for f in fs if f.endswith('.py') and '_base_' not in d))
def test_each_shipped_config_is_spelt_right_and_imports_the_package(config):
    cfg = Config.fromfile(osp.join(REPO, config))
    check_top_level_keys(cfg, config)
    # The toolboxes' own tools import nothing of ours (and tests/test_stock_tools.py runs several in one
    # process, where one config's import would hide another's lack).
    assert 'efficientvit_dense' in cfg.get('custom_imports', {}).get('imports', [])


@pytest.mark.parametrize('shape', [[-5], [64, 0]])
def test_a_shape_below_one_pixel_is_refused_in_one_line(shape):
    import argparse
    with pytest.raises(UserError, match=r'--shape takes a height and a width, .* in pixels; got'):
        cli.shape(argparse.Namespace(shape=shape))
