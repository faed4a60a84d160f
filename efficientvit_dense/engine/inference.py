"""Predictions on image files with the toolboxes' own inferencers."""
from __future__ import annotations

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
from .config import config_errors

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: list[str], skip: str | None = None) -> list[str]:
    """Image files named directly or found (recursively) in folders, leaving
    out anything under ``skip`` (an output folder inside the input)."""
    skip = osp.abspath(skip) + os.sep if skip else None
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(p for p in glob.glob(osp.join(item, '**', '*'), recursive=True)
                           if p.lower().endswith(IMAGE_EXTENSIONS)
                           and not (skip and osp.abspath(p).startswith(skip)))
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


def infer(cfg: Config, checkpoint: str, inputs: list[str], out_dir: str, score_thr: float = 0.3,
          opacity: float = 0.5, device: str = 'cpu', overwrite: bool = False) -> list[str]:
    """Draw ``checkpoint``'s predictions on every input image into
    ``out_dir/vis``: boxes (and masks) above ``score_thr`` for detectors,
    the class map blended over the image at ``opacity`` for segmentors, which
    also write the raw label maps to ``out_dir/pred``. Outputs keep the
    inputs' folder structure (:func:`output_names`); the output folder is
    skipped when it lies inside an input folder; outputs of an earlier run
    are replaced only with ``overwrite``. Returns the drawings."""
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise UnsupportedError(f'Drawing predictions needs a detection (mmdet) or segmentation (mmseg) '
                               f'config; this config is for {scope} (classifiers: use classify()).')
    images = list_images(inputs, skip=out_dir)
    names = output_names(images)
    outputs = ('vis', 'pred') if scope == 'mmseg' else ('vis',)
    earlier = [osp.join(out_dir, kind, name) for kind in outputs for name in names
               if osp.exists(osp.join(out_dir, kind, name))]
    if earlier and not overwrite:
        raise OutputExistsError(f'{out_dir} already holds outputs for these images ({len(earlier)} files, e.g. '
                                f'{earlier[0]}); they are not overwritten. Choose another output folder, or pass '
                                '--overwrite.')
    check_readable(images)
    inferencer = build_inferencer(cfg, checkpoint, device)
    # The inferencers name their outputs after the image alone: run them per input folder into a staging
    # folder and move each output to its place.
    staging = tempfile.mkdtemp(prefix='.infer-', dir=_made(out_dir))
    try:
        by_folder = {}
        for image, name in zip(images, names):
            by_folder.setdefault(osp.dirname(name), []).append(image)
        for folder, group in by_folder.items():
            with DefaultScope.overwrite_default_scope(scope):
                if scope == 'mmdet':
                    inferencer(group, out_dir=staging, pred_score_thr=score_thr, no_save_pred=True)
                else:
                    inferencer(group, out_dir=staging, opacity=opacity)
            for kind in outputs:
                for made in os.listdir(osp.join(staging, kind)):
                    os.replace(osp.join(staging, kind, made), osp.join(_made(out_dir, kind, folder), made))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [osp.join(out_dir, 'vis', name) for name in names]


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
