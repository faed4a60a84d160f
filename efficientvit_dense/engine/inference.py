"""Predictions on image files with the toolboxes' own inferencers."""
from __future__ import annotations

import glob
import os
import os.path as osp

from mmengine.config import Config
from mmengine.registry import DefaultScope

from ..errors import InputNotFoundError, UnsupportedError
from ..models.weights import safe_loading_errors
from .checkpoint_fit import check_checkpoint_fits, without_mmengine_key_dump
from .config import config_errors

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(inputs: list[str]) -> list[str]:
    """Image files named directly or found (recursively) in folders."""
    files = []
    for item in inputs:
        if osp.isdir(item):
            found = sorted(p for p in glob.glob(osp.join(item, '**', '*'), recursive=True)
                           if p.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise InputNotFoundError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in folder {item}')
            files += found
        elif osp.isfile(item):
            files.append(item)
        else:
            raise InputNotFoundError(f'Input not found: {item}')
    return files


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
          opacity: float = 0.5, device: str = 'cpu') -> list[str]:
    """Draw ``checkpoint``'s predictions on every input image into
    ``out_dir/vis``: boxes (and masks) above ``score_thr`` for detectors,
    the class map blended over the image at ``opacity`` for segmentors, which
    also write the raw label maps to ``out_dir/pred``. Returns the drawings."""
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise UnsupportedError(f'Drawing predictions needs a detection (mmdet) or segmentation (mmseg) '
                               f'config; this config is for {scope} (classifiers: use classify()).')
    images = list_images(inputs)
    inferencer = build_inferencer(cfg, checkpoint, device)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmdet':
            inferencer(images, out_dir=out_dir, pred_score_thr=score_thr, no_save_pred=True)
        else:
            inferencer(images, out_dir=out_dir, opacity=opacity)
    vis_dir = osp.join(out_dir, 'vis')
    return [osp.join(vis_dir, f) for f in sorted(os.listdir(vis_dir))] if osp.isdir(vis_dir) else []


def classify(cfg: Config, checkpoint: str, inputs: list[str], topk: int = 5,
             device: str = 'cpu') -> list[tuple[str, list[tuple[str, float]]]]:
    """The ``topk`` classes and scores of a classifier checkpoint for every
    input image, best first: ``[(image, [(class, score), ...]), ...]``."""
    if cfg.get('default_scope') != 'mmpretrain':
        raise UnsupportedError(f'classify() needs a classification (mmpretrain) config; '
                               f'this config is for {cfg.get("default_scope")}.')
    images = list_images(inputs)
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
