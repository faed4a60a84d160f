"""Checks on a config's input data, before a run builds anything and while
it reads images, so that bad input stops with one message naming the file,
what is wrong with it and what to do, or, where the config asks for it, is
skipped with a warning naming the file. Nothing the user made is changed.

Two switches, top level of a config (defaults shown)::

    data_checks = dict(
        unknown_categories='error',  # 'ignore': train on a subset of a COCO file's categories
        bad_images='stop',           # 'skip': training skips unreadable images, with a warning
        bad_boxes='error',           # 'drop': leave out boxes mmdet cannot use (NaN, empty, outside), counted
    )

Validation and test never skip: a metric over a silently smaller split is
not the split's metric. A training run checks the annotations alongside its
own start (:class:`BackgroundChecks`, :class:`DataChecksHook`); evaluation
and tools/check_dataset.py check them first.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import os.path as osp
import re
import traceback

import cv2
import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import TRANSFORMS

from ..errors import BadImageError, ConfigError, DataError, DataNotFoundError, UserError
from .annotation_checks import SplitSummary, check_splits, format_summary
from .config import DATALOADERS, evaluators, iter_datasets, type_name

DEMO_HINT = 'To try the project without any dataset, run `make demo` (it generates synthetic data).'
DEFAULT_OPTIONS = dict(unknown_categories='error', bad_images='stop', bad_boxes='error')
CHOICES = dict(unknown_categories=('error', 'ignore'), bad_images=('stop', 'skip'), bad_boxes=('error', 'drop'))

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


def expected_layout(dataset) -> str:
    """What ``dataset`` (a config's dict) expects under its data root, in
    words. A COCO-format dataset of the user's own names its files (the
    custom template's annotations/train.json and train/), not COCO 2017's."""
    kind = type_name(dataset)  # 'mmdet.CocoDataset' too
    if kind == 'CocoDataset' and not re.search(r'instances_\w*2017\.json$', str(dataset.get('ann_file', ''))):
        prefix = dataset.get('data_prefix') or {}
        images = prefix.get('img') if isinstance(prefix, dict) else prefix
        return (f'{dataset.get("ann_file")} (a COCO-format JSON file) and the images its file_name fields name '
                f'in {images or "the data root"}')
    return EXPECTED_LAYOUTS.get(kind, 'the layout its dataset class documents')


def data_check_options(cfg) -> dict:
    given = cfg.get('data_checks') or {}
    if not isinstance(given, dict):
        raise ConfigError(f'data_checks must be a dict of switches, e.g. data_checks = dict(bad_images=\'skip\'), '
                          f'not {given!r}; it has {sorted(CHOICES)}.')
    options = dict(DEFAULT_OPTIONS, **given)
    for key, value in options.items():
        if key not in CHOICES:
            raise ConfigError(f'data_checks has no option {key!r}; it has {sorted(CHOICES)}.')
        if value not in CHOICES[key]:
            raise ConfigError(f'data_checks.{key} must be one of {CHOICES[key]}, not {value!r}.')
    return options


def check_data(cfg, splits=DATALOADERS) -> None:
    """Raise one clear :class:`DataNotFoundError` naming the first missing
    dataset path, before anything heavy is built; then refuse a COCO
    evaluator that would score another file than its split's."""
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
                layout = expected_layout(dataset)
                where = '' if osp.isabs(path) else f' (from the current directory, {os.getcwd()})'
                raise DataNotFoundError(
                    f'{name}: {what} not found: {path}{where}\n'
                    f'  {dataset.get("type", "The dataset")} expects under {root or "its data_root"}: {layout}.\n'
                    f'  Put the data there (a symlink works), or pass --data-root PATH.\n'
                    f'  {DEMO_HINT}')
    check_coco_metric_files(cfg, splits)


def check_coco_metric_files(cfg, splits=DATALOADERS) -> None:
    """Refuse a COCO evaluator that scores against another annotation file
    than its split reads: mmdet's CocoMetric takes the images and boxes of
    its own ``ann_file``, so predictions for one split would be scored on
    another (an AP near zero, or nonsense where image ids overlap)."""
    for split in splits:
        if split == 'train_dataloader':
            continue
        read = [osp.join(dataset.get('data_root') or '', dataset['ann_file'])
                for name, dataset in iter_datasets(cfg) if name == split and dataset.get('ann_file')]
        evaluator_name = split.replace('dataloader', 'evaluator')
        for evaluator in evaluators(cfg, (evaluator_name,)):
            scored = evaluator.get('ann_file')
            if (len(read) != 1 or not isinstance(scored, str) or evaluator.get('format_only')
                    or type_name(evaluator) != 'CocoMetric'):
                continue
            if osp.realpath(scored) != osp.realpath(read[0]):
                raise ConfigError(f'{evaluator_name}.ann_file is {scored}, but {split} reads {read[0]}: the COCO '
                                  'metric scores the predictions against its own file, so the AP would be of '
                                  f'another split. Set {evaluator_name}.ann_file to {read[0]}.')


def check_inputs(cfg, splits=DATALOADERS, label_values: bool = False) -> list[SplitSummary]:
    """Everything that can be checked before a run builds: paths exist,
    annotations are what the dataset reads and hold nothing it would drop or
    misread without a word (:mod:`.annotation_checks`; ``label_values``: the
    values in every label map too). Returns a summary per dataset checked."""
    check_data(cfg, splits)
    return check_splits(cfg, splits, data_check_options(cfg), label_values)


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


@TRANSFORMS.register_module()
class CheckLabelValues(BaseTransform):
    """Stops at a label map holding a value that is neither a class index
    nor the ignore index, naming the file: mmseg would ignore such pixels in
    validation (a wrong mIoU) and stop training with an IndexError."""

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def transform(self, results: dict) -> dict:
        labels = results.get('gt_seg_map')
        if labels is not None:
            bad = (labels >= self.num_classes) & (labels != self.ignore_index)
            if bad.any():
                values = np.unique(labels[bad])
                raise DataError(
                    f'{results.get("seg_map_path")}: {int(bad.sum())} pixels have label values '
                    f'{values[:5].tolist()}{" ..." if len(values) > 5 else ""} that are neither a class '
                    f'(0..{self.num_classes - 1}) nor the ignore index {self.ignore_index}. Fix the label map, or '
                    'the number of classes in the config.')
        return results


def check_label_values_while_loading(cfg, dataloaders: dict) -> None:
    """Put :class:`CheckLabelValues` after the label-map loader of every
    segmentation pipeline in ``dataloaders`` (a runner's dataloader
    settings by split name), inside test-time augmentation too."""
    model = cfg.get('model') or {}
    while isinstance(model, dict) and 'module' in model:  # tools/test.py --tta wraps the segmentor
        model = model['module']
    head = model.get('decode_head') if isinstance(model, dict) else None
    if cfg.get('default_scope') != 'mmseg' or not isinstance(head, dict) or not head.get('num_classes'):
        return
    check = dict(type='CheckLabelValues', num_classes=head['num_classes'], ignore_index=head.get('ignore_index', 255))
    for _, dataset in iter_datasets(dataloaders):
        pipeline = dataset.get('pipeline') or []
        _insert_after_label_loader(pipeline, [type_name(step) for step in pipeline], dict(check))
        for step in pipeline:  # TestTimeAug: groups of alternatives, each applied in turn
            if type_name(step) == 'TestTimeAug':
                groups = step['transforms']
                _insert_after_label_loader(groups, [type_name(group[0]) if group else '' for group in groups],
                                           [dict(check)])


def _insert_after_label_loader(steps: list, kinds: list[str], check) -> None:
    """Put ``check`` after the step of ``steps`` whose kind is
    LoadAnnotations, unless it is there already."""
    if 'LoadAnnotations' in kinds:
        after = kinds.index('LoadAnnotations') + 1
        if kinds[after:after + 1] != ['CheckLabelValues']:
            steps.insert(after, check)


# --------------------------------------------------------------------------
# Alongside the run's own start


class BackgroundChecks:
    """The annotation checks of a training run (:func:`check_splits`), in a
    forked process that works while mmengine builds the run: mmdet parses
    the same COCO file meanwhile (longer than the checks' first pass on a
    train2017-sized file: docs/reliability.md, tools/time_data_checks.py), so on a
    machine with a core to spare they add nothing to the time before the
    first iteration. :meth:`result` waits for them and raises what they
    found."""

    def __init__(self, cfg, splits, options: dict):
        context = multiprocessing.get_context('fork')  # the child reads this cfg as it is now, without pickling
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_send_outcome, args=(send, check_splits, (cfg, splits, options)),
                                        name='data-checks')
        self._process.start()
        send.close()
        self._outcome = None

    def result(self) -> list[SplitSummary]:
        if self._outcome is None:
            try:
                self._outcome = self._receive.recv()
            except EOFError:
                self._outcome = ('error', RuntimeError(
                    f'The data checks ended without a result (exit code {self._process.exitcode}); was their '
                    'process killed? tools/check_dataset.py runs them on their own.'))
            finally:
                self.stop()
        kind, value = self._outcome
        if kind == 'error':
            raise value
        return value

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
        self._process.join()


def _send_outcome(send, function, args) -> None:
    try:
        outcome = ('ok', function(*args))
    except UserError as err:  # pickles with its message
        outcome = ('error', err)
    except BaseException:  # a bug: its traceback, as text
        outcome = ('error', RuntimeError('The data checks failed:\n' + traceback.format_exc()))
    send.send(outcome)
    send.close()


class DataChecksHook(Hook):
    """Waits for the :class:`BackgroundChecks` once mmengine has built the
    run's dataloaders, before anything trains, and logs what each split
    holds."""
    priority = 'HIGHEST'

    def __init__(self, checks: BackgroundChecks):
        self.checks = checks

    def before_run(self, runner) -> None:
        print_log('The data, as this run reads it:\n' + format_summary(self.checks.result()), logger='current')
