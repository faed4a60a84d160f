"""Predictions on image files with the toolboxes' own inferencers."""
from __future__ import annotations

import collections
import glob
import os
import os.path as osp
import shutil
import tempfile

import cv2
from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..errors import BadImageError, InputNotFoundError, OutputExistsError, UnsupportedError
from ..models.weights import safe_loading_errors
from .checkpoint_fit import check_checkpoint_fits, without_mmengine_key_dump
from .config import config_errors, dataset_setting, iter_datasets

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: list[str], skip: tuple[str, ...] = ()) -> list[str]:
    """Image files named directly or found (recursively) in folders, leaving
    out anything under the folders in ``skip`` (outputs of an earlier run
    inside the input)."""
    skip = tuple(osp.abspath(folder) + os.sep for folder in skip)
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(p for p in glob.glob(osp.join(item, '**', '*'), recursive=True)
                           if p.lower().endswith(IMAGE_EXTENSIONS) and not osp.abspath(p).startswith(skip))
            if not found:
                raise InputNotFoundError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in folder {item}')
            files += found
        elif osp.isfile(item):
            files.append(item)
        else:
            raise InputNotFoundError(f'Input not found: {item}')
    return files


def check_readable(images: list[str]) -> None:
    """Stop at the first file that does not decode as an image, naming it,
    before a model is built (the inferencers would fail deep inside)."""
    for path in images:
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            raise BadImageError(f'{path} cannot be read as an image (truncated, or not an image). '
                                'Replace it or leave it out.')


def output_names(images: list[str]) -> list[str]:
    """Where each image's outputs go, relative to the output folder: its
    path below the folder that holds all the inputs, so that two images of
    the same name in different subfolders never write one file."""
    folders = [osp.dirname(osp.abspath(p)) for p in images]
    root = osp.commonpath(folders) if folders else ''
    return [osp.relpath(osp.abspath(p), root) for p in images]


def build_inferencer(cfg: Config, checkpoint: str | None, device: str = 'cpu'):
    """The config's toolbox inferencer (mmdet's DetInferencer, mmseg's
    MMSegInferencer, mmpretrain's ImageClassificationInferencer) with the
    weights of ``checkpoint``, refused before any prediction unless they
    cover the whole model (the inferencers load as they are built, with
    ``strict=False``, and only warn). Without a checkpoint the model keeps
    the weights it was built with."""
    if checkpoint is not None and not osp.isfile(checkpoint):
        raise InputNotFoundError(f'Checkpoint not found: {checkpoint}')
    scope = cfg.get('default_scope')
    # Inferencers build their pipelines in the current scope, which an earlier one may have left set.
    with safe_loading_errors(checkpoint or 'the checkpoint'), DefaultScope.overwrite_default_scope(scope), \
            without_mmengine_key_dump(), config_errors(cfg.filename or 'the config'):
        if scope == 'mmdet':
            from mmdet.apis import DetInferencer
            inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, show_progress=False)
        elif scope == 'mmseg':
            from mmseg.apis import MMSegInferencer
            inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device)
        elif scope == 'mmpretrain':
            from mmpretrain.apis import ImageClassificationInferencer
            inferencer = ImageClassificationInferencer(model=cfg, pretrained=checkpoint or False, device=device)
        else:
            raise UnsupportedError(f'No inferencer for default_scope {scope!r}: configs of mmdet, mmseg '
                                   'and mmpretrain have one.')
    if checkpoint is not None:
        check_checkpoint_fits(inferencer.model, checkpoint, 'evaluate')
    return inferencer


def _count_classes_from_one(label_map: str) -> None:
    labels = cv2.imread(label_map, cv2.IMREAD_UNCHANGED)
    cv2.imwrite(label_map, (labels.astype('uint16') + 1).clip(0, 255).astype('uint8'))


def infer(cfg: Config, checkpoint: str, inputs: list[str], out_dir: str, score_thr: float = 0.3,
          opacity: float = 0.5, device: str = 'cpu', overwrite: bool = False) -> list[str]:
    """Draw ``checkpoint``'s predictions on every input image into
    ``out_dir/vis``: boxes (and masks) above ``score_thr`` for detectors,
    the class map blended over the image at ``opacity`` for segmentors, which
    also write the raw label maps to ``out_dir/pred`` (``<image stem>.png``,
    as mmseg's format_only: where the test split reduces label zero, as
    ADE20K's does, the classes count from 1, 0 being unlabelled, as in its
    own maps). Outputs keep the inputs' folder structure
    (:func:`output_names`); ``out_dir/vis`` and ``out_dir/pred`` are never
    read as input; outputs of an earlier run are replaced only with
    ``overwrite``. Returns the drawings."""
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise UnsupportedError(f'Drawing predictions needs a detection (mmdet) or segmentation (mmseg) '
                               f'config; this config is for {scope} (classifiers: use classify()).')
    outputs = ('vis', 'pred') if scope == 'mmseg' else ('vis',)
    images = list_images(inputs, skip=tuple(osp.join(out_dir, kind) for kind in outputs))
    names = output_names(images)
    places = {kind: [osp.join(out_dir, kind, _output_file(kind, name)) for name in names] for kind in outputs}
    for kind, paths in places.items():
        repeated = [path for path, n in collections.Counter(paths).items() if n > 1]
        if repeated:
            raise UnsupportedError(f'Images that differ only in their extension would write one output file '
                                   f'({repeated[0]}); rename one of them.')
    earlier = [path for paths in places.values() for path in paths if osp.exists(path)]
    if earlier and not overwrite:
        raise OutputExistsError(f'{out_dir} already holds outputs for these images ({len(earlier)} files, e.g. '
                                f'{earlier[0]}); they are not overwritten. Choose another output folder, or pass '
                                '--overwrite.')
    check_readable(images)
    inferencer = build_inferencer(cfg, checkpoint, device)
    # mmseg's inferencer writes the model's class indices; its format_only writes them as the dataset's maps hold
    # them. The dataset's class default counts (ADE20KDataset reduces label zero unless told otherwise).
    shifted = scope == 'mmseg' and any(dataset_setting(dataset, 'reduce_zero_label', scope, False)
                                       for split, dataset in iter_datasets(cfg) if split == 'test_dataloader')
    # The inferencers name a drawing after the image alone and a label map after a running count: run them
    # per input folder into a staging folder and move each output to its place.
    staging = tempfile.mkdtemp(prefix='.infer-', dir=_made(out_dir))
    try:
        by_folder = {}
        for i, name in enumerate(names):
            by_folder.setdefault(osp.dirname(name), []).append(i)
        for indices in by_folder.values():
            group = [images[i] for i in indices]
            with DefaultScope.overwrite_default_scope(scope):
                if scope == 'mmdet':
                    inferencer(group, out_dir=staging, pred_score_thr=score_thr, no_save_pred=True)
                    made = {'vis': [osp.basename(image) for image in group]}
                else:
                    first = inferencer.num_pred_imgs
                    inferencer(group, out_dir=staging, opacity=opacity)
                    made = {'vis': [osp.basename(image) for image in group],
                            'pred': [f'{first + n:08}_pred.png' for n in range(len(group))]}
            for kind, files in made.items():
                for i, file in zip(indices, files):
                    if kind == 'pred' and shifted:
                        _count_classes_from_one(osp.join(staging, kind, file))
                    _move(osp.join(staging, kind, file), places[kind][i], overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return places['vis']


def _output_file(kind: str, name: str) -> str:
    return osp.splitext(name)[0] + '.png' if kind == 'pred' else name


def _move(made: str, place: str, overwrite: bool) -> None:
    if osp.exists(place) and not overwrite:  # written meanwhile, by another run
        raise OutputExistsError(f'{place} appeared while this run was writing; it is not overwritten. Choose '
                                'another output folder.')
    _made(osp.dirname(place))
    os.replace(made, place)


def _made(*parts: str) -> str:
    path = osp.join(*parts)
    os.makedirs(path, exist_ok=True)
    return path


def classify(cfg: Config, checkpoint: str, inputs: list[str], topk: int = 5,
             device: str = 'cpu') -> list[tuple[str, list[tuple[str, float]]]]:
    """The ``topk`` classes and scores of a classifier checkpoint for every
    input image, best first: ``[(image, [(class, score), ...]), ...]``."""
    if cfg.get('default_scope') != 'mmpretrain':
        raise UnsupportedError(f'classify() needs a classification (mmpretrain) config; '
                               f'this config is for {cfg.get("default_scope")}.')
    images = list_images(inputs)
    check_readable(images)
    inferencer = build_inferencer(cfg, checkpoint, device)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        predictions = inferencer(images)
    classes = inferencer.classes
    results = []
    for image, prediction in zip(images, predictions):
        scores = prediction['pred_scores']
        best = scores.argsort()[::-1][:topk]
        results.append((image, [(classes[i] if classes else str(i), float(scores[i])) for i in best]))
    return results
