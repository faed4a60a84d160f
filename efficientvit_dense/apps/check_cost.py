"""What the data checks cost a training start on a dataset of COCO
train2017's size (docs/reliability.md): a generated COCO-format dataset of
that size, and the seconds from starting tools/train.py to mmengine's
``before_train``, with nothing remembered and with a file that passed
before. Only the annotations are real-sized: every image is a hard link to
one of a few 640x480 JPEGs."""
from __future__ import annotations

import contextlib
import io
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time
from unittest import mock

import cv2
import numpy as np

from ..errors import OutputExistsError
from . import REPO_ROOT

COCO_TRAIN2017 = dict(images=118_287, boxes=860_068)  # instances_train2017.json
CLASSES = tuple(f'class{i}' for i in range(80))
LINKS_PER_FILE = 60_000  # ext4 allows 65,000 hard links to one file
VAL_IMAGES = 500
CONFIG = osp.join(REPO_ROOT, 'configs', 'retinanet_efficientvit_m4_coco.py')
STARTED = 'Checkpoints will be saved to'  # mmengine's CheckpointHook.before_train
MANIFEST = 'generated.json'  # the sizes a dataset was made with, written last


def make_coco_sized(root: str, images: int = COCO_TRAIN2017['images'], boxes: int = COCO_TRAIN2017['boxes'],
                    seed: int = 0) -> None:
    """``root/annotations/instances_{train,val}2017.json`` and the images
    they name (``train2017/``; ``val2017/`` holds the first 500), in COCO's
    layout: boxes inside their 640x480 image, each with a 12-point polygon
    as COCO's have, 80 categories."""
    if osp.exists(root):
        raise OutputExistsError(f'{root} exists; choose a new folder for the generated dataset.')
    rng = np.random.default_rng(seed)
    sources = [osp.join(root, f'source_{k}.jpg') for k in range(images // LINKS_PER_FILE + 1)]
    for folder in ('annotations', 'train2017', 'val2017'):
        os.makedirs(osp.join(root, folder))
    for source in sources:
        cv2.imwrite(source, rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    entries = []
    for i in range(images):
        name = f'{i:012d}.jpg'
        os.link(sources[i // LINKS_PER_FILE], osp.join(root, 'train2017', name))
        if i < VAL_IMAGES:
            os.link(sources[0], osp.join(root, 'val2017', name))
        entries.append(dict(id=i, file_name=name, width=640, height=480))
    owners = rng.integers(0, images, boxes)
    corners, sizes = rng.uniform(0, 340, (boxes, 2)).round(2), rng.uniform(2, 130, (boxes, 2)).round(2)
    polygons = rng.uniform(0, 480, (boxes, 12)).round(2)
    annotations = [dict(id=k, image_id=int(owners[k]), category_id=1 + k % 80, iscrowd=0,
                        bbox=[*corners[k].tolist(), *sizes[k].tolist()], area=round(float(sizes[k].prod()), 2),
                        segmentation=[polygons[k].tolist()]) for k in range(boxes)]
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)]
    _dump(osp.join(root, 'annotations', 'instances_train2017.json'), entries, annotations, categories)
    _dump(osp.join(root, 'annotations', 'instances_val2017.json'), entries[:VAL_IMAGES],
          [ann for ann in annotations if ann['image_id'] < VAL_IMAGES], categories)
    with open(osp.join(root, MANIFEST), 'w') as f:
        json.dump(dict(images=images, boxes=boxes, seed=seed), f)


def coco_sized(root: str, images: int = COCO_TRAIN2017['images'], boxes: int = COCO_TRAIN2017['boxes']) -> bool:
    """Make the dataset of :func:`make_coco_sized` under ``root``, or reuse
    the one there if it was made whole with these sizes (a timing of
    another size must not pass for this one). True if it was reused."""
    try:
        with open(osp.join(root, MANIFEST)) as f:
            made = json.load(f)
    except FileNotFoundError:
        make_coco_sized(root, images, boxes)  # refuses a folder that exists
        return False
    if (made['images'], made['boxes']) != (images, boxes):
        raise OutputExistsError(f'{root} holds a dataset made with {made["images"]} images and {made["boxes"]} boxes, '
                                f'not {images} and {boxes}; pass those sizes, or choose a new folder.')
    return True


def _dump(path: str, images: list, annotations: list, categories: list) -> None:
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def seconds_to_training(data_root: str, work_dir: str, cache_dir: str, timeout: float = 1800) -> float:
    """Start ``tools/train.py`` with the COCO RetinaNet-M4 config on
    ``data_root`` (data checks remembered under ``cache_dir``) and return
    the seconds until training would begin; the run is stopped there."""
    classes = f'({",".join(CLASSES)})'
    command = [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), CONFIG, '--data-root', data_root,
               '--work-dir', work_dir, '--cfg-options', f'train_dataloader.dataset.metainfo.classes={classes}',
               f'val_dataloader.dataset.metainfo.classes={classes}', 'model.backbone.init_cfg=None',
               *(f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader')
                 for key in ('num_workers=0', 'persistent_workers=False'))]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=dict(os.environ, EVD_CACHE_DIR=cache_dir))
    output = []
    try:
        for line in process.stdout:
            output.append(line)
            if STARTED in line:
                return time.perf_counter() - start
            if time.perf_counter() - start > timeout:
                break
    finally:
        process.kill()
        process.wait()
    raise RuntimeError('tools/train.py ended before training began:\n' + ''.join(output[-20:]))


def time_checks(data_root: str) -> dict[str, float]:
    """Seconds, in this process, of the training split's checks on a first
    pass and once remembered, and of mmdet's own CocoDataset build of the
    same split (what the checks overlap in a training run)."""
    from mmdet.registry import DATASETS
    from mmengine.registry import DefaultScope

    from ..engine.config import load_config
    from ..engine.data_checks import check_inputs
    cfg = load_config(CONFIG, {'train_dataloader.dataset.metainfo.classes': CLASSES}, data_root=data_root)
    times = {}
    with tempfile.TemporaryDirectory(prefix='check-cost-') as cache, mock.patch.dict(os.environ,
                                                                                       EVD_CACHE_DIR=cache):
        for name in ('checks, first pass', 'checks, remembered'):
            start = time.perf_counter()
            check_inputs(cfg, ('train_dataloader',))
            times[name] = time.perf_counter() - start
    start = time.perf_counter()
    with DefaultScope.overwrite_default_scope('mmdet'), contextlib.redirect_stdout(io.StringIO()):  # pycocotools'
        DATASETS.build(cfg.train_dataloader.dataset).full_init()
    times["mmdet's CocoDataset build"] = time.perf_counter() - start
    return times


def time_starts(data_root: str) -> dict[str, float]:
    """Seconds to training on a first start (nothing remembered) and on a
    second (the files passed before), each in a new work dir."""
    with tempfile.TemporaryDirectory(prefix='check-cost-') as scratch:
        cache = osp.join(scratch, 'cache')
        return {name: seconds_to_training(data_root, osp.join(scratch, name), cache)
                for name in ('first start', 'later start')}
