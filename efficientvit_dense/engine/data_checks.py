"""Checks on a config's input data, before a run builds anything and while
it reads images, so that bad input stops with one message naming the file,
what is wrong with it and what to do, or, where the config asks for it, is
skipped with a warning naming the file. Nothing the user made is changed.

Two switches, top level of a config (defaults shown)::

    data_checks = dict(
        unknown_categories='error',  # 'ignore': train on a subset of a COCO file's categories
        bad_images='stop',           # 'skip': training skips unreadable images, with a warning
    )

Validation and test never skip: a metric over a silently smaller split is
not the split's metric.
"""
from __future__ import annotations

import collections
import json
import logging
import os.path as osp

import cv2
from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS

from ..errors import BadImageError, ConfigError, DataError, DataNotFoundError
from .config import DATALOADERS, iter_datasets

DEMO_HINT = 'To try the project without any dataset, run `make demo` (it generates synthetic data).'
DEFAULT_OPTIONS = dict(unknown_categories='error', bad_images='stop')
CHOICES = dict(unknown_categories=('error', 'ignore'), bad_images=('stop', 'skip'))

# What users should find under data_root, per dataset class.
EXPECTED_LAYOUTS = {
    'CocoDataset': 'annotations/instances_{train,val}2017.json and images in train2017/ and val2017/',
    'ADE20KDataset': 'images/{training,validation}/*.jpg and annotations/{training,validation}/*.png '
                     '(the ADEChallengeData2016 release)',
    'CityscapesDataset': 'leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine/{train,val}/<city>/'
                         '*_gtFine_labelTrainIds.png (made from the release by mmseg\'s '
                         'tools/dataset_converters/cityscapes.py)',
    'BaseSegDataset': 'the image and label-map folders named by data_prefix (img_path, seg_map_path)',
    'CIFAR10': 'cifar-10-batches-py/ (the python version of the release; nothing is downloaded)',
    'CIFAR100': 'cifar-100-python/ (the python version of the release; nothing is downloaded)',
    'StanfordCars': 'car_ims/ and cars_annos.mat, or cars_{train,test}/ and devkit/',
    'Flowers102': 'jpg/*.jpg, imagelabels.mat and setid.mat',
    'OxfordIIITPet': 'images/*.jpg and annotations/{trainval,test}.txt',
    'CustomDataset': 'one folder per class, <data_prefix>/<class>/<image>',
}


def data_check_options(cfg) -> dict:
    options = dict(DEFAULT_OPTIONS, **(cfg.get('data_checks') or {}))
    for key, value in options.items():
        if key not in CHOICES:
            raise ConfigError(f'data_checks has no option {key!r}; it has {sorted(CHOICES)}.')
        if value not in CHOICES[key]:
            raise ConfigError(f'data_checks.{key} must be one of {CHOICES[key]}, not {value!r}.')
    return options


def check_data(cfg, splits=DATALOADERS) -> None:
    """Raise one clear :class:`DataNotFoundError` naming the first missing
    dataset path, before anything heavy is built."""
    for name, dataset in iter_datasets(cfg):
        if name not in splits:
            continue
        root = dataset.get('data_root') or ''
        paths = []
        if dataset.get('ann_file'):
            paths.append(('annotation file', osp.join(root, dataset['ann_file'])))
        prefix = dataset.get('data_prefix') or {}
        prefixes = prefix.items() if isinstance(prefix, dict) else [('image', prefix)]
        for key, value in prefixes:
            if value:
                paths.append((f'{key} folder', osp.join(root, value)))
        if root:
            paths.insert(0, ('data root', root))
        for what, path in paths:
            if not osp.exists(path):
                layout = EXPECTED_LAYOUTS.get(dataset.get('type', ''), 'the layout its dataset class documents')
                raise DataNotFoundError(
                    f'{name}: {what} not found: {path}\n'
                    f'  {dataset.get("type", "The dataset")} expects under {root or "its data_root"}: {layout}.\n'
                    f'  Put the data there (a symlink works), or pass --data-root PATH.\n'
                    f'  {DEMO_HINT}')


def _type_name(dataset: dict) -> str:
    kind = dataset.get('type', '')
    return kind.split('.')[-1] if isinstance(kind, str) else getattr(kind, '__name__', '')


def read_coco(path: str) -> dict:
    """A COCO annotation file's contents, or one :class:`DataError` saying
    why it is not one."""
    try:
        with open(path, encoding='utf-8') as f:
            coco = json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f'{path} is not valid JSON ({err.msg}: line {err.lineno}, column {err.colno}). '
                        'Is it the right file, and was it written completely?') from err
    except UnicodeDecodeError as err:
        raise DataError(f'{path} is not a JSON text file (it is binary). Point ann_file at the COCO '
                        'annotation JSON.') from err
    missing = [key for key in ('images', 'annotations', 'categories')
               if not isinstance(coco, dict) or not isinstance(coco.get(key), list)]
    if missing:
        raise DataError(f'{path} is JSON but not COCO annotations: it has no {", ".join(map(repr, missing))} '
                        'list. COCO files hold {"images": [...], "annotations": [...], "categories": [...]}.')
    return coco


def _check_categories(path: str, coco: dict, classes, unknown_categories: str) -> None:
    """mmdet maps the config's classes to the file's categories by name,
    numbering them in the file's order, and drops annotations of other
    categories: a class missing from the file, or listed in another order,
    gives every later object a wrong label without a word."""
    names = {cat['id']: cat['name'] for cat in coco['categories']}
    absent = [name for name in classes if name not in names.values()]
    if absent:
        raise DataError(f'{path}: the config\'s classes {absent} are not among the file\'s categories '
                        f'{list(names.values())}. Class names must equal category names exactly.')
    in_file_order = [name for name in names.values() if name in classes]
    if in_file_order != list(classes):
        raise DataError(f'{path}: the config lists its classes in another order than the file\'s categories; '
                        f'mmdet numbers labels in the file\'s order. Set metainfo.classes = {tuple(in_file_order)}.')
    unknown = collections.Counter(ann.get('category_id') for ann in coco['annotations']
                                  if names.get(ann.get('category_id')) not in classes)
    if unknown and unknown_categories == 'error':
        found = ', '.join(f'id {cat_id} ({names.get(cat_id, "not in categories")}): {count}'
                          for cat_id, count in unknown.most_common(5))
        raise DataError(f'{path}: {sum(unknown.values())} annotations have categories that are not among the '
                        f'config\'s classes {tuple(classes)} ({found}); mmdet would drop them silently. Add the '
                        "classes, or set data_checks = dict(unknown_categories='ignore') to train without them.")


def _check_image_files(split: str, dataset: dict, coco: dict, path: str, bad_images: str) -> None:
    folder = osp.join(dataset.get('data_root') or '', (dataset.get('data_prefix') or {}).get('img', ''))
    paths = (osp.join(folder, image['file_name']) for image in coco['images'])
    missing = [path for path in paths if not osp.isfile(path)]
    if not missing:
        return
    shown = ', '.join(missing[:3]) + (f' and {len(missing) - 3} more' if len(missing) > 3 else '')
    if bad_images == 'skip' and split == 'train_dataloader':
        print_log(f'{path} names {len(missing)} images that do not exist ({shown}); training skips them.',
                  logger='current', level=logging.WARNING)
        return
    hint = ("or set data_checks = dict(bad_images='skip') to train without them" if split == 'train_dataloader'
            else 'evaluation needs every image of the split')
    raise DataError(f'{split}: {path} names {len(missing)} images that do not exist: {shown}. '
                    f'Put them under {folder}, remove them from the file, {hint}.')


def check_coco_annotations(cfg, splits=DATALOADERS) -> None:
    """Read each COCO annotation file once and check it is COCO, that its
    categories match the config's classes and that its images exist."""
    options = data_check_options(cfg)
    seen = set()
    for split, dataset in iter_datasets(cfg):
        if split not in splits or _type_name(dataset) != 'CocoDataset' or not dataset.get('ann_file'):
            continue
        path = osp.join(dataset.get('data_root') or '', dataset['ann_file'])
        if (path, split == 'train_dataloader') in seen:
            continue
        seen.add((path, split == 'train_dataloader'))
        coco = read_coco(path)
        classes = (dataset.get('metainfo') or {}).get('classes')
        if classes is None:
            from mmdet.datasets import CocoDataset
            classes = CocoDataset.METAINFO['classes']
        _check_categories(path, coco, tuple(classes), options['unknown_categories'])
        _check_image_files(split, dataset, coco, path, options['bad_images'])


def check_inputs(cfg, splits=DATALOADERS) -> None:
    """Everything that can be checked before a run builds: paths exist,
    annotation files are what the dataset reads."""
    check_data(cfg, splits)
    check_coco_annotations(cfg, splits)


# --------------------------------------------------------------------------
# While running


@TRANSFORMS.register_module()
class CheckedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` that names the file it cannot read. With
    ``bad_images='skip'`` it warns and returns None, which mmengine's dataset
    answers by drawing another sample."""

    def __init__(self, *args, bad_images: str = 'stop', split: str = 'train_dataloader', **kwargs):
        super().__init__(*args, **kwargs)
        self.bad_images, self.split = bad_images, split

    def transform(self, results: dict):
        try:
            return super().transform(results)
        # What reading and decoding raise: the file system's error, cv2 on empty bytes, mmcv's assertion
        # when the decoder returns nothing, Pillow's on what it does not recognise. Anything else is a bug.
        except (OSError, AssertionError, ValueError, cv2.error) as err:
            path = results.get('img_path')
            reason = ('it does not exist' if isinstance(err, FileNotFoundError)
                      else 'it cannot be decoded as an image (truncated, or not an image)')
            if self.bad_images == 'skip':
                print_log(f'Skipping {path}: {reason}.', logger='current', level=logging.WARNING)
                return None
            hint = ("or set data_checks = dict(bad_images='skip') to skip such images"
                    if self.split == 'train_dataloader' else 'evaluation needs every image of the split')
            raise BadImageError(f'{self.split}: cannot read {path}: {reason}. Replace or remove it, {hint}.') from err


def _image_loaders(cfg, types):
    for split, dataset in iter_datasets(cfg):
        for step in dataset.get('pipeline') or []:
            if isinstance(step, dict) and step.get('type') in types:
                yield split, step


def check_images_while_loading(cfg, dataloaders: dict) -> None:
    """Give every dataset pipeline in ``dataloaders`` (a runner's dataloader
    settings by split name) the checked image loader, with the config's
    ``bad_images`` option for training; validation and test never skip."""
    bad_images = data_check_options(cfg)['bad_images']
    for split, step in _image_loaders(dataloaders, ('LoadImageFromFile', 'mmcv.LoadImageFromFile')):
        step.update(type='CheckedLoadImageFromFile', split=split,
                    bad_images=bad_images if split == 'train_dataloader' else 'stop')
