"""A deterministic synthetic dataset for offline demos and tests.

Scenes hold several shape classes that differ by outline, not colour (every
object gets a random colour and texture), from a few pixels to most of the
image, overlapping one another, on cluttered textured backgrounds with
distractor strokes. One generation writes all the task formats:

``root/``
  ``annotations/instances_{train,val}.json``  COCO boxes + RLE instance masks
  ``{train,val}/NNNNNN.jpg``                   images
  ``semantic/{train,val}/NNNNNN.png``          label maps: 0 background, k = class k
  ``classification/{train,val}/<class>/*.png`` one object per crop

The same seed always gives the same files.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from ..errors import OutputExistsError

CLASSES = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
GENERATOR_VERSION = 1
META_FILE = 'synthetic_meta.json'


@dataclass(frozen=True)
class SyntheticSpec:
    seed: int = 0
    num_train: int = 800
    num_val: int = 200
    image_size: int = 192
    max_objects: int = 7
    min_object_size: int = 16
    crop_size: int = 64
    version: int = GENERATOR_VERSION


def _polygon(kind: str, center, size: float, angle: float) -> np.ndarray:
    """Vertices of a shape of the given kind, ``size`` across, rotated."""
    r = size / 2
    if kind == 'square':
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
        pts = [(x * 0.8, y * 0.8) for x, y in pts]
    elif kind == 'triangle':
        pts = [(r * math.cos(a), r * math.sin(a)) for a in np.deg2rad([-90, 30, 150])]
    elif kind == 'star':
        pts = [((r if i % 2 == 0 else r * 0.42) * math.cos(a), (r if i % 2 == 0 else r * 0.42) * math.sin(a))
               for i, a in enumerate(np.deg2rad(np.arange(-90, 270, 36)))]
    elif kind == 'cross':
        t = r * 0.33
        pts = [(-t, -r), (t, -r), (t, -t), (r, -t), (r, t), (t, t), (t, r), (-t, r), (-t, t), (-r, t),
               (-r, -t), (-t, -t)]
    else:
        raise ValueError(kind)
    c, s = math.cos(angle), math.sin(angle)
    return np.array([(center[0] + x * c - y * s, center[1] + x * s + y * c) for x, y in pts], np.float32)


def _shape_mask(kind: str, shape_hw, center, size: float, angle: float) -> np.ndarray:
    mask = np.zeros(shape_hw, np.uint8)
    # Sub-pixel precision keeps small shapes recognisable.
    shift = 4
    scale = 1 << shift
    if kind in ('circle', 'ring'):
        cx, cy = (int(round(v * scale)) for v in center)
        cv2.circle(mask, (cx, cy), int(round(size / 2 * scale)), 1, -1, cv2.LINE_8, shift)
        if kind == 'ring':
            cv2.circle(mask, (cx, cy), int(round(size / 2 * 0.55 * scale)), 0, -1, cv2.LINE_8, shift)
    else:
        pts = np.round(_polygon(kind, center, size, angle) * scale).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, shift)
    return mask.astype(bool)


def _texture(rng: np.random.Generator, shape_hw, cells: int) -> np.ndarray:
    """Smooth random field in [0, 1] with about ``cells`` blobs across."""
    grid = rng.random((cells + 1, cells + 1)).astype(np.float32)
    return cv2.resize(grid, (shape_hw[1], shape_hw[0]), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    hw = (size, size)
    colours = rng.integers(0, 256, (2, 3)).astype(np.float32)
    mix = _texture(rng, hw, int(rng.integers(2, 9)))[..., None]
    image = colours[0] * mix + colours[1] * (1 - mix)
    image += (_texture(rng, hw, int(rng.integers(12, 40)))[..., None] - 0.5) * rng.uniform(20, 70)
    # Distractor strokes: lines and arcs that belong to no class.
    for _ in range(int(rng.integers(3, 12))):
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        thickness = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            p1, p2 = rng.integers(0, size, 2), rng.integers(0, size, 2)
            cv2.line(image, (int(p1[0]), int(p1[1])), (int(p2[0]), int(p2[1])), colour, thickness)
        else:
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(5, size // 2, 2))
            start = int(rng.integers(0, 360))
            cv2.ellipse(image, centre, axes, 0, start, start + int(rng.integers(40, 200)), colour, thickness)
    return image


def render_scene(rng: np.random.Generator, spec: SyntheticSpec):
    """(image HxWx3 uint8 RGB, [(class index, visible mask)]) for one scene."""
    size = spec.image_size
    image = _background(rng, size)
    placed = []  # (class index, full mask), in drawing order
    for _ in range(int(rng.integers(1, spec.max_objects + 1))):
        kind_index = int(rng.integers(len(CLASSES)))
        # Log-uniform sizes cover small, medium and large objects alike.
        obj = math.exp(rng.uniform(math.log(spec.min_object_size), math.log(size * 0.6)))
        centre = rng.uniform(obj * 0.3, size - obj * 0.3, 2)
        mask = _shape_mask(CLASSES[kind_index], (size, size), centre, obj, rng.uniform(0, 2 * math.pi))
        if mask.sum() < 16:
            continue
        colour = rng.integers(0, 256, 3).astype(np.float32)
        shade = (_texture(rng, (size, size), int(rng.integers(3, 10)))[..., None] - 0.5) * rng.uniform(10, 60)
        image[mask] = (colour + shade[mask]).clip(0, 255)
        placed.append((kind_index, mask))
    image = (image + rng.normal(0, 4, image.shape)).clip(0, 255).astype(np.uint8)

    instances = []
    covered = np.zeros((size, size), bool)
    for kind_index, mask in reversed(placed):  # later objects cover earlier ones
        visible = mask & ~covered
        covered |= mask
        # Objects mostly hidden by others are not labelled (as in COCO, where
        # nobody can draw them), but still clutter the scene.
        if visible.sum() >= max(16, 0.3 * mask.sum()):
            instances.append((kind_index, visible))
    return image, instances[::-1]


def _coco_annotation(ann_id: int, image_id: int, kind_index: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return dict(id=ann_id, image_id=image_id, category_id=kind_index + 1, segmentation=rle,
                area=float(mask.sum()), bbox=[x, y, w, h], iscrowd=0)


def _crop(image: np.ndarray, mask: np.ndarray, out_size: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half = max(ys.max() - ys.min(), xs.max() - xs.min()) * 0.65 + 4
    y0, y1 = int(max(cy - half, 0)), int(min(cy + half, image.shape[0]))
    x0, x1 = int(max(cx - half, 0)), int(min(cx + half, image.shape[1]))
    return cv2.resize(image[y0:y1, x0:x1], (out_size, out_size), interpolation=cv2.INTER_AREA)


def _write_rgb(path: str, image: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.endswith('.jpg') else []
    cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)


def _write_split(root: str, split: str, count: int, spec: SyntheticSpec, split_index: int) -> None:
    for sub in (split, f'semantic/{split}'):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    for name in CLASSES:
        os.makedirs(os.path.join(root, 'classification', split, name), exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        # One generator per image: the files do not depend on generation order.
        rng = np.random.default_rng([spec.seed, split_index, index])
        image, instances = render_scene(rng, spec)
        file_name = f'{index:06d}.jpg'
        _write_rgb(os.path.join(root, split, file_name), image)
        semantic = np.zeros(image.shape[:2], np.uint8)
        for obj_index, (kind_index, mask) in enumerate(instances):
            annotations.append(_coco_annotation(len(annotations) + 1, index, kind_index, mask))
            semantic[mask] = kind_index + 1
            if mask.sum() >= 100:
                crop = _crop(image, mask, spec.crop_size)
                _write_rgb(os.path.join(root, 'classification', split, CLASSES[kind_index],
                                        f'{index:06d}_{obj_index}.png'), crop)
        cv2.imwrite(os.path.join(root, 'semantic', split, f'{index:06d}.png'), semantic)
        images.append(dict(id=index, file_name=file_name, height=image.shape[0], width=image.shape[1]))
    coco = dict(images=images, annotations=annotations,
                categories=[dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)])
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    with open(os.path.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
        json.dump(coco, f)


def generate(root: str, spec: SyntheticSpec = SyntheticSpec()) -> bool:
    """Write the dataset under ``root``; returns False when ``root`` already
    holds exactly this dataset (nothing to do). A folder that holds anything
    else is never touched."""
    meta_path = os.path.join(root, META_FILE)
    if os.path.isfile(meta_path):
        with open(meta_path) as f:
            if json.load(f) == asdict(spec):
                return False
        shutil.rmtree(root)  # our own earlier dataset with other settings
    elif os.path.exists(root) and os.listdir(root):
        raise OutputExistsError(f'{root} exists and is not a synthetic dataset written by this tool; '
                                'choose an empty or new folder.')
    tmp = root.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    _write_split(tmp, 'train', spec.num_train, spec, 0)
    _write_split(tmp, 'val', spec.num_val, spec, 1)
    with open(os.path.join(tmp, META_FILE), 'w') as f:
        json.dump(asdict(spec), f)
    if os.path.exists(root):
        os.rmdir(root)  # empty, checked above
    os.replace(tmp, root)  # appears whole or not at all
    return True
