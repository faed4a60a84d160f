"""What a dataset's annotations hold, checked before the first iteration.

The toolboxes drop or merge what does not fit without a word: mmdet merges
images that share an id, drops boxes that are NaN, empty or outside the
image, scores a validation split without annotations as -1; mmseg ignores
label values past its classes in validation and crashes on them in
training; mmpretrain numbers each split's class folders on their own. Each
fault here is one :class:`DataError` naming the file, the first offenders
and the count, with a ``data_checks`` switch where skipping is a reasonable
choice (then the count skipped is logged). Every split also gets a summary
(images, instances, classes, what was dropped) for the line printed at the
start of training and for tools/check_dataset.py.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
import math
import os
import os.path as osp
from dataclasses import dataclass, field

import mmcv
import numpy as np
from mmengine.fileio import list_dir_or_file
from mmengine.logging import print_log

from ..errors import DataError
from .config import class_folder_root, class_folders, dataset_setting, evaluators, iter_datasets, type_name
from .file_facts import cache_dir, image_facts

SHOWN = 3  # offenders named in a message
CHECKS_VERSION = 4  # part of the key of a remembered pass: a check added or changed runs again on every file


@dataclass
class SplitSummary:
    """What one split holds, as the run will read it."""
    split: str
    source: str  # the annotation file or folder
    images: int = 0
    instances: int = 0
    classes: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # what a data_checks switch let through, by kind


def _examples(items, count: int | None = None) -> str:
    items = list(items)
    count = len(items) if count is None else count
    shown = ', '.join(map(str, items[:SHOWN]))
    return shown + (f' and {count - SHOWN} more' if count > SHOWN else '')


def _duplicates(values) -> tuple[list, int]:
    counts = collections.Counter(values)
    repeated = [value for value, n in counts.items() if n > 1]
    return repeated, sum(counts[value] - 1 for value in repeated)


# --------------------------------------------------------------------------
# COCO files (mmdet's CocoDataset)


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


def _check_categories(path: str, coco: dict, classes, unknown_categories: str) -> tuple[set, int]:
    """mmdet maps the config's classes to the file's categories by name,
    numbering them in the file's order, and drops annotations of other
    categories: a class missing from the file, or listed in another order,
    gives every later object a wrong label without a word. Returns the ids
    of the config's categories and how many annotations fall outside them."""
    for what, values in (('an id', [cat['id'] for cat in coco['categories']]),
                         ('a name', [cat['name'] for cat in coco['categories']])):
        repeated, _ = _duplicates(values)
        if repeated:
            raise DataError(f'{path}: categories repeat {what} another category has ({_examples(repeated)}); '
                            'mmdet maps the config\'s classes to categories by name and labels by id. Give every '
                            'category its own id and name.')
    names = {cat['id']: cat['name'] for cat in coco['categories']}
    absent = [name for name in classes if name not in names.values()]
    if absent:
        raise DataError(f'{path}: the config\'s classes {absent} are not among the file\'s categories '
                        f'{list(names.values())}. Class names must equal category names exactly.')
    in_file_order = [name for name in names.values() if name in classes]
    if in_file_order != list(classes):
        raise DataError(f'{path}: the config lists its classes in another order than the file\'s categories; '
                        f'mmdet numbers labels in the file\'s order. Set metainfo.classes = {tuple(in_file_order)}.')
    wanted = {cat_id for cat_id, name in names.items() if name in classes}
    unknown = collections.Counter(ann.get('category_id') for ann in coco['annotations']
                                  if ann.get('category_id') not in wanted)
    if unknown and unknown_categories == 'error':
        found = ', '.join(f'id {cat_id} ({names.get(cat_id, "not in categories")}): {count}'
                          for cat_id, count in unknown.most_common(5))
        raise DataError(f'{path}: {sum(unknown.values())} annotations have categories that are not among the '
                        f'config\'s classes {tuple(classes)} ({found}); mmdet would drop them silently. Add the '
                        "classes, or set data_checks = dict(unknown_categories='ignore') to train without them.")
    return wanted, sum(unknown.values())


# What mmdet's CocoDataset (and pycocotools' index) read from every entry;
# a missing one ends in a KeyError deep in the dataset.
IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANNOTATION_KEYS = ('id', 'image_id', 'category_id', 'bbox', 'area')
CATEGORY_KEYS = ('id', 'name')


NUMBER_TYPES = (int, float)  # as json reads numbers; a bool is not one


def _is_number(value) -> bool:
    return type(value) in NUMBER_TYPES


def _check_entries(path: str, coco: dict) -> None:
    """Every image, annotation and category has what mmdet reads: the keys
    above, a positive width and height, a bbox of four numbers (NaN
    included: that is a bad box, counted later) and a finite area. Written
    for COCO's 860k annotations: one pass each, details only on failure."""
    for what, entries, keys in (('images', coco['images'], IMAGE_KEYS),
                                ('annotations', coco['annotations'], ANNOTATION_KEYS),
                                ('categories', coco['categories'], CATEGORY_KEYS)):
        needed = set(keys)
        if all(type(entry) is dict and needed <= entry.keys() for entry in entries):
            continue
        lacking, first = collections.Counter(), {}
        for i, entry in enumerate(entries):
            for key in keys:
                if not isinstance(entry, dict) or key not in entry:
                    lacking[key] += 1
                    first.setdefault(key, i)
        found = ', '.join(f'{n} without {key!r} (first: entry {first[key]})' for key, n in lacking.items())
        raise DataError(f'{path}: {what} lack keys that mmdet reads ({found}). Every image needs '
                        f'{", ".join(IMAGE_KEYS)}; every annotation {", ".join(ANNOTATION_KEYS)}; every '
                        f'category {", ".join(CATEGORY_KEYS)}.')
    malformed = [image['id'] for image in coco['images']
                 if not (_is_number(image['width']) and _is_number(image['height'])
                         and image['width'] > 0 and image['height'] > 0)]
    if malformed:
        raise DataError(f'{path}: {len(malformed)} images have a width or height that is not a positive number '
                        f'(image ids {_examples(malformed)}). Give each image its size in pixels.')
    malformed = [ann['id'] for ann in coco['annotations']
                 if not (type(box := ann['bbox']) is list and len(box) == 4 and _is_number(box[0])
                         and _is_number(box[1]) and _is_number(box[2]) and _is_number(box[3])
                         and _is_number(area := ann['area']) and math.isfinite(area))]
    if malformed:
        raise DataError(f'{path}: {len(malformed)} annotations have a bbox that is not four numbers [x, y, w, h], or '
                        f'an area that is not a finite number (annotation ids {_examples(malformed)}); mmdet cannot '
                        'read them. Fix or remove them.')


def _check_ids(path: str, coco: dict) -> None:
    repeated, extra = _duplicates(image['id'] for image in coco['images'])
    if repeated:
        raise DataError(f'{path}: {extra} images repeat an id another image has (ids {_examples(repeated)}); '
                        'mmdet would merge their boxes into one picture. Give every image its own id.')
    repeated, extra = _duplicates(osp.normpath(image['file_name']) for image in coco['images'])
    if repeated:  # two exports merged: each copy is scored against the objects listed under its id only
        raise DataError(f'{path}: {extra} images repeat the file_name of another image ({_examples(repeated)}); '
                        'the same picture under two ids is trained and scored against part of its objects each. '
                        'Give each picture one image entry, with all its annotations.')
    repeated, extra = _duplicates(ann.get('id') for ann in coco['annotations'])
    if repeated:
        raise DataError(f'{path}: {extra} annotations repeat an id another annotation has (ids '
                        f'{_examples(repeated)}); the COCO metric cannot score them. Give every annotation its '
                        'own id.')
    known = {image['id'] for image in coco['images']}
    orphans = [ann.get('id') for ann in coco['annotations'] if ann.get('image_id') not in known]
    if orphans:
        raise DataError(f'{path}: {len(orphans)} annotations name an image_id that is not among the images '
                        f'(annotation ids {_examples(orphans)}); they would be ignored.')


def _bad_boxes(coco: dict, sizes: dict) -> tuple[np.ndarray, list[str]]:
    """A mask of the annotations mmdet's CocoDataset drops for their box
    (not finite, under 1 pixel wide or high, area 0, or no overlap with the
    image), and why, per annotation. The entries are well formed
    (:func:`_check_entries`)."""
    anns = coco['annotations']
    boxes = np.array([ann['bbox'] for ann in anns], dtype=float).reshape(len(anns), 4)
    areas = np.array([ann['area'] for ann in anns], dtype=float).reshape(len(anns))
    image_size = np.array([sizes[ann['image_id']] for ann in anns], dtype=float).reshape(len(anns), 2)
    widths, heights = image_size[:, 0], image_size[:, 1]
    with np.errstate(invalid='ignore'):
        x, y, w, h = boxes.T
        not_finite = ~np.isfinite(boxes).all(axis=1)
        too_small = ~not_finite & ((w < 1) | (h < 1) | (areas <= 0))
        overlap_w = np.minimum(x + w, widths) - np.maximum(x, 0)
        overlap_h = np.minimum(y + h, heights) - np.maximum(y, 0)
        outside = ~not_finite & ~too_small & ((overlap_w <= 0) | (overlap_h <= 0))
    reasons = np.full(len(anns), '', dtype=object)
    reasons[not_finite] = 'not a finite [x, y, w, h]'
    reasons[too_small] = 'empty (under 1 pixel, or area 0)'
    reasons[outside] = 'outside its image'
    return not_finite | too_small | outside, list(reasons)


def _check_box_format(path: str, coco: dict, sizes: dict, bad: np.ndarray) -> None:
    """Boxes written as [x1, y1, x2, y2] (the common export mistake) still
    overlap their image, so no box is refused, but most run past its right
    or bottom edge: every one is trained too large and never matched by the
    metric. COCO's own run past by a pixel at most, and very few do."""
    anns = [ann for ann, dropped in zip(coco['annotations'], bad) if not dropped]
    if len(anns) < 2:
        return
    boxes = np.array([ann['bbox'] for ann in anns], dtype=float)
    image_size = np.array([sizes[ann['image_id']] for ann in anns], dtype=float)
    past = (boxes[:, 0] + boxes[:, 2] > image_size[:, 0] + 1) | (boxes[:, 1] + boxes[:, 3] > image_size[:, 1] + 1)
    # Corners always have x2 >= x1 and y2 >= y1; widths and heights, about half the time: boxes drawn past the
    # image on purpose (amodal boxes, uncut aerial tiles) are told apart by that
    corners = ((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])).mean() >= 0.95
    if corners and past.sum() >= 2 and past.mean() >= 0.25:
        shown = [f'annotation {anns[i].get("id")}: bbox {anns[i]["bbox"]} in a {sizes[anns[i]["image_id"]][0]}x'
                 f'{sizes[anns[i]["image_id"]][1]} image' for i in np.flatnonzero(past)[:SHOWN]]
        raise DataError(f'{path}: {int(past.sum())} of {len(anns)} boxes run past their image\'s right or bottom '
                        f'edge ({_examples(shown, int(past.sum()))}); they look like [x1, y1, x2, y2], and COCO\'s '
                        'bbox is [x, y, width, height]: width = x2 - x1, height = y2 - y1. Fix the file; boxes drawn '
                        'past the image, clip them to it.')


def _check_crowd_flags(path: str, coco: dict) -> None:
    """The COCO metric (pycocotools) reads every annotation's ``iscrowd``;
    mmdet's training does not, so a file without it trained and then stopped
    at the first validation with a KeyError."""
    lacking = [ann.get('id') for ann in coco['annotations'] if 'iscrowd' not in ann]
    if lacking:
        raise DataError(f'{path}: {len(lacking)} annotations lack \'iscrowd\' (annotation ids {_examples(lacking)}), '
                        'which the COCO metric reads for every annotation. Add "iscrowd": 0 to each (1 for a crowd '
                        'region).')


def _check_image_sizes(path: str, coco: dict, folder: str, facts: dict) -> None:
    """The width and height the file gives each image against the image as
    it will be loaded (mmcv applies EXIF rotation): boxes are placed and
    clipped with the file's numbers."""
    wrong = []
    for image in coco['images']:
        found = facts.get(osp.join(folder, image['file_name']))
        if found is None:
            continue  # missing or unreadable: told elsewhere
        if (image['width'], image['height']) != found.loaded_size:
            rotated = (image['width'], image['height']) == (found.width, found.height)
            note = (f', looks rotated by EXIF orientation {found.orientation}' if rotated else '')
            wrong.append(f'{image["file_name"]}: file {image["width"]}x{image["height"]}, image '
                         f'{found.loaded_size[0]}x{found.loaded_size[1]}{note}')
    if wrong:
        raise DataError(f'{path}: {len(wrong)} images have another width/height than the file says '
                        f'({_examples(wrong)}); boxes would be placed and clipped wrongly. Fix the width and height '
                        'in the file (for phone photos, save them with the rotation applied).')


def _check_image_files(split: str, path: str, folder: str, coco: dict, facts: dict, bad_images: str) -> int:
    """Images named by the file that are missing or cannot be read; returns
    how many training skips."""
    paths = [osp.join(folder, image['file_name']) for image in coco['images']]
    missing = [p for p in paths if p not in facts]
    unreadable = [p for p in paths if p in facts and facts[p] is None]
    if not missing and not unreadable:
        return 0
    what = ', '.join(filter(None, (
        f'{len(missing)} images that do not exist: {_examples(missing)}' if missing else '',
        f'{len(unreadable)} files that are not readable images: {_examples(unreadable)}' if unreadable else '')))
    if bad_images == 'skip' and split == 'train_dataloader':
        print_log(f'{path} names {what}; training skips them.', logger='current', level=logging.WARNING)
        return len(missing) + len(unreadable)
    hint = ("or set data_checks = dict(bad_images='skip') to train without them" if split == 'train_dataloader'
            else 'evaluation needs every image of the split')
    raise DataError(f'{split}: {path} names {what}. Put them under {folder}, remove them from the file, {hint}.')


def check_coco(split: str, dataset: dict, classes, options: dict, scored_by_coco_metric: bool = False
               ) -> SplitSummary:
    """Every check on one COCO annotation file of ``split``. A file that
    passed before, with the same options, classes and image files (by size
    and modification time), is not read again (:func:`passed_before`)."""
    path = osp.join(dataset.get('data_root') or '', dataset['ann_file'])
    folder = osp.join(dataset.get('data_root') or '', (dataset.get('data_prefix') or {}).get('img', ''))
    context = [CHECKS_VERSION, osp.abspath(path), osp.abspath(folder), list(classes), sorted(options.items()),
               split == 'train_dataloader', scored_by_coco_metric]
    earlier = passed_before(path, context)
    if earlier is not None:
        return SplitSummary(**{**earlier, 'split': split})
    coco = read_coco(path)
    _check_entries(path, coco)
    wanted, unknown = _check_categories(path, coco, tuple(classes), options['unknown_categories'])
    _check_ids(path, coco)
    summary = SplitSummary(split, path, images=len(coco['images']), classes=len(classes))
    if unknown:
        summary.dropped['annotations of other categories'] = unknown
    facts = image_facts([osp.join(folder, image['file_name']) for image in coco['images']], path)
    skipped = _check_image_files(split, path, folder, coco, facts, options['bad_images'])
    if skipped:
        summary.dropped['images missing or unreadable'] = skipped
    _check_image_sizes(path, coco, folder, facts)

    sizes = {image['id']: (image['width'], image['height']) for image in coco['images']}
    bad, reasons = _bad_boxes(coco, sizes)
    if bad.any():
        offenders = [f'annotation {coco["annotations"][i].get("id")} of {coco["annotations"][i]["image_id"]}: '
                     f'{reasons[i]}' for i in np.flatnonzero(bad)[:SHOWN]]
        kinds = collections.Counter(reasons[i] for i in np.flatnonzero(bad))
        counted = ', '.join(f'{n} {kind}' for kind, n in kinds.most_common())
        if options['bad_boxes'] != 'drop':
            raise DataError(f'{path}: {int(bad.sum())} of {len(bad)} boxes cannot be trained or scored ({counted}; '
                            f'{_examples(offenders, int(bad.sum()))}); mmdet would drop them without a word. Fix '
                            "them, or set data_checks = dict(bad_boxes='drop') to leave them out.")
        print_log(f'{path}: leaving out {int(bad.sum())} of {len(bad)} boxes ({counted}), as '
                  "data_checks.bad_boxes='drop' asks.", logger='current', level=logging.WARNING)
        summary.dropped['boxes that cannot be used'] = int(bad.sum())
    _check_box_format(path, coco, sizes, bad)
    if scored_by_coco_metric:
        _check_crowd_flags(path, coco)
    summary.instances = sum(1 for i, ann in enumerate(coco['annotations'])
                            if not bad[i] and ann.get('category_id') in wanted)
    if split != 'train_dataloader' and coco['images'] and not coco['annotations']:
        raise DataError(f'{split}: {path} has {len(coco["images"])} images but no annotations, so the COCO metric '
                        'would report -1 for everything. Point the split at the annotated file.')
    remember_passed(path, context, [osp.join(folder, image['file_name']) for image in coco['images']], summary)
    return summary


def _result_path(context) -> str:
    key = hashlib.sha1(json.dumps(context, default=str).encode()).hexdigest()[:16]
    return osp.join(cache_dir(), f'coco-{key}')


def _stamps(paths: list[str]) -> np.ndarray:
    stamps = np.full((len(paths), 2), -1, dtype=np.int64)
    for i, path in enumerate(paths):
        try:
            stat = os.stat(path)
            stamps[i] = stat.st_size, stat.st_mtime_ns
        except OSError:
            pass
    return stamps


def passed_before(path: str, context) -> dict | None:
    """The summary of an earlier pass of the checks on this annotation file
    in this ``context``, if neither the file nor any image it names has
    changed since (size and modification time); else None."""
    stem = _result_path(context)
    try:
        with open(stem + '.json') as f:
            earlier = json.load(f)
        with np.load(stem + '.npz', allow_pickle=False) as arrays:
            files, stamps = arrays['files'].tolist(), arrays['stamps']
    except (OSError, ValueError, KeyError):
        return None
    stat = os.stat(path)
    if earlier.get('annotations') != [stat.st_size, stat.st_mtime_ns]:
        return None
    return earlier['summary'] if np.array_equal(_stamps(files), stamps) else None


def remember_passed(path: str, context, files: list[str], summary: SplitSummary) -> None:
    """Best effort: a result that cannot be written only costs time next start."""
    stem = _result_path(context)
    stat = os.stat(path)
    try:
        os.makedirs(osp.dirname(stem), exist_ok=True)
        np.savez(f'{stem}.{os.getpid()}.partial.npz', files=np.array(files, dtype=str), stamps=_stamps(files))
        os.replace(f'{stem}.{os.getpid()}.partial.npz', stem + '.npz')
        with open(f'{stem}.{os.getpid()}.partial', 'w') as f:
            json.dump(dict(annotations=[stat.st_size, stat.st_mtime_ns], summary=summary.__dict__), f)
        os.replace(f'{stem}.{os.getpid()}.partial', stem + '.json')
    except OSError:
        pass


# --------------------------------------------------------------------------
# Label maps (mmseg's BaseSegDataset and its children)


def seg_pairs(dataset: dict, scope: str | None) -> list[tuple[str, str]]:
    """(image, label map) paths as mmseg's BaseSegDataset pairs them when it
    scans its folders (no ann_file): same stem, the dataset's suffixes."""
    root = dataset.get('data_root') or ''
    prefix = dataset.get('data_prefix') or {}
    images = osp.join(root, prefix.get('img_path', ''))
    labels = osp.join(root, prefix.get('seg_map_path', ''))
    img_suffix = dataset_setting(dataset, 'img_suffix', scope, '.jpg')
    seg_suffix = dataset_setting(dataset, 'seg_map_suffix', scope, '.png')
    # mmseg's own listing: hidden files (macOS's ._x.jpg) left out, linked folders followed, suffixes as written
    return [(osp.join(images, relative), osp.join(labels, relative[:-len(img_suffix)] + seg_suffix))
            for relative in sorted(list_dir_or_file(images, list_dir=False, suffix=img_suffix, recursive=True))]


def check_label_maps(split: str, dataset: dict, num_classes: int | None, scope: str | None,
                     bad_images: str = 'stop') -> SplitSummary:
    """Every image can be read (``bad_images='skip'``: training skips those
    that cannot, as they are loaded), and every label map exists, can be
    read, has one channel and its image's size (the values are checked as
    each map is loaded, :class:`CheckLabelValues`, or by
    :func:`check_label_values`)."""
    pairs = seg_pairs(dataset, scope)
    source = osp.join(dataset.get('data_root') or '', (dataset.get('data_prefix') or {}).get('seg_map_path', ''))
    facts = image_facts([p for pair in pairs for p in pair], source)
    unreadable_images = [image for image, _ in pairs if facts.get(image, False) is None]
    skipped = {}
    if unreadable_images and bad_images == 'skip' and split == 'train_dataloader':
        print_log(f'{split}: {len(unreadable_images)} files are not readable images ({_examples(unreadable_images)}); '
                  'training skips them.', logger='current', level=logging.WARNING)
        skipped = {'images missing or unreadable': len(unreadable_images)}
    elif unreadable_images:
        hint = ("or set data_checks = dict(bad_images='skip') to train without them" if split == 'train_dataloader'
                else 'evaluation needs every image of the split')
        raise DataError(f'{split}: {len(unreadable_images)} files are not readable images '
                        f'({_examples(unreadable_images)}; truncated, or not an image). Replace or remove them, '
                        f'{hint}.')
    suffix = dataset_setting(dataset, 'seg_map_suffix', scope, '.png')
    missing = [label for _, label in pairs if label not in facts]
    if missing:
        raise DataError(f'{split}: {len(missing)} images have no label map ({_examples(missing)}); each image '
                        f'needs one with the same name and the suffix {suffix!r}.')
    images = osp.join(dataset.get('data_root') or '', (dataset.get('data_prefix') or {}).get('img_path', ''))
    img_suffix = dataset_setting(dataset, 'img_suffix', scope, '.jpg')
    # Images of this split under another suffix (.JPG, .jpeg) that have a label map: mmseg lists the images by
    # the suffix and leaves them out of the split unsaid (label maps of other splits or images may be there)
    labels = set(list_dir_or_file(source, list_dir=False, suffix=suffix, recursive=True) if osp.isdir(source) else ())
    unpaired = {relative[:-len(suffix)] for relative in labels - {osp.relpath(label, source) for _, label in pairs}}
    by_stem = {osp.splitext(relative)[0]: relative for relative in
               (list_dir_or_file(images, list_dir=False, recursive=True) if unpaired else ())}
    other_suffix = sorted(osp.join(images, by_stem[stem]) for stem in unpaired if stem in by_stem)
    if other_suffix:
        raise DataError(f'{split}: {len(other_suffix)} images with a label map do not end in {img_suffix!r} '
                        f'({_examples(other_suffix)}); mmseg lists the images by that suffix and would '
                        'leave these out of the split. Rename them, or set the dataset\'s img_suffix.')
    unreadable = [label for _, label in pairs if facts[label] is None]
    if unreadable:
        raise DataError(f'{split}: {len(unreadable)} label maps cannot be read as images ({_examples(unreadable)}; '
                        'truncated, or not an image). Replace them.')
    colour = [label for _, label in pairs if facts[label].mode not in ('L', 'P', 'I;16', 'I', '1')]
    if colour:
        raise DataError(f'{split}: {len(colour)} label maps have colour channels ({_examples(colour)}, mode '
                        f'{facts[colour[0]].mode}); a label map holds one class index per pixel. Convert colours to '
                        'indices (mmseg\'s dataset converters do it for the public datasets).')
    # mmseg loads a label map as stored ('unchanged': no EXIF rotation) and its image rotated
    wrong = [f'{label}: {facts[label].width}x{facts[label].height}, image '
             f'{facts[image].loaded_size[0]}x{facts[image].loaded_size[1]}' for image, label in pairs
             if facts.get(image) and facts[image].loaded_size != (facts[label].width, facts[label].height)]
    if wrong:
        raise DataError(f'{split}: {len(wrong)} label maps differ in size from their image ({_examples(wrong)}). '
                        'A label map must cover its image pixel for pixel.')
    return SplitSummary(split, source, images=len(pairs), instances=len(pairs), classes=num_classes or 0,
                        dropped=skipped)


def _label_decoder(dataset: dict) -> str:
    """The image backend the split's LoadAnnotations decodes label maps with
    (mmseg's default: Pillow, which keeps a palette image's indices)."""
    for step in dataset.get('pipeline') or []:
        if type_name(step) == 'LoadAnnotations':
            return step.get('imdecode_backend', 'pillow')
    return 'pillow'


def check_label_values(split: str, dataset: dict, num_classes: int, ignore_index: int, scope: str | None) -> None:
    """Decode every label map of the split as mmseg's LoadAnnotations does
    (``flag='unchanged'``, then 8 bits) and refuse values that are neither
    a class nor the ignore index once the dataset has read them
    (``reduce_zero_label``: 0 becomes the ignore index, the rest shift down
    by one). Values above 255 are refused as such: mmseg would wrap them."""
    reduce_zero_label = dataset_setting(dataset, 'reduce_zero_label', scope, False)
    backend = _label_decoder(dataset)
    bad = []
    for _, label in seg_pairs(dataset, scope):
        try:
            values = mmcv.imread(label, flag='unchanged', backend=backend)
        except (OSError, ValueError, SyntaxError):  # Pillow raises where cv2 gives None (a header whole, data cut)
            values = None
        if values is None:
            raise DataError(f'{split}: label map {label} cannot be read as an image (truncated, or not an image). '
                            'Replace it.')
        values = np.unique(values)
        if values.max(initial=0) > 255:
            bad.append(f'{label}: {values[values > 255][:5].tolist()} (over 255: mmseg reads 8 bits)')
            continue
        values = values.astype(np.uint8)
        if reduce_zero_label:  # as mmseg's LoadAnnotations, in 8 bits
            values = np.where(values == 0, 255, values - 1).astype(np.uint8)
            values[values == 254] = 255
        wrong = values[(values >= num_classes) & (values != ignore_index)]
        if wrong.size:
            bad.append(f'{label}: {wrong[:5].tolist()}')
    if bad:
        shifted = ' after reduce_zero_label' if reduce_zero_label else ''
        raise DataError(f'{split}: {len(bad)} label maps hold values that are neither a class (0..{num_classes - 1}) '
                        f'nor the ignore index {ignore_index}{shifted} ({_examples(bad)}). Fix the maps, or the '
                        'number of classes in the config.')


# --------------------------------------------------------------------------
# Class folders (mmpretrain's CustomDataset)


def check_class_folders(per_split: dict[str, dict], classes, training: dict | None = None,
                        num_classes: int | None = None) -> list[SplitSummary]:
    """mmpretrain numbers each split's class folders on its own, in sorted
    order: a validation split that lacks a class training has (or has one
    more) shifts every later label. Every split must hold training's
    folders (``training``: the training dataset, when its split is not
    among those checked, as in an evaluation; without it on this machine,
    the model's ``num_classes`` at least); the config's class names, when it
    gives them, are names for those folders in that order, so only their
    number must agree (and a list of the folders' own names must be in
    their order)."""
    folders = {split: class_folders(dataset) for split, dataset in per_split.items()}
    roots = {split: class_folder_root(dataset) for split, dataset in per_split.items()}
    if training is not None and 'train_dataloader' not in folders:
        reference_split, reference = 'train_dataloader', class_folders(training)
        roots[reference_split] = class_folder_root(training)
    else:
        reference_split = 'train_dataloader' if 'train_dataloader' in folders else next(iter(folders))
        reference = folders[reference_split]
        if num_classes is not None and len(reference) != num_classes:
            raise DataError(f'{reference_split}: {roots[reference_split]} holds {len(reference)} class folders but '
                            f'the model has {num_classes} classes; mmpretrain numbers the folders it finds, so labels '
                            'would not mean the classes the model learnt. Give the split a folder for every class '
                            '(an empty one for a class without images, outside training).')
    summaries = []
    for split, names in folders.items():
        where = roots[split]
        if names != reference:
            lacking = sorted(set(reference) - set(names))
            extra = sorted(set(names) - set(reference))
            told = '; '.join(filter(None, (f'it lacks {lacking}' if lacking else '',
                                           f'it has {extra} besides' if extra else '')))
            raise DataError(f'{split}: the class folders in {where} are not those of {reference_split} ({told}); '
                            'mmpretrain numbers each split\'s folders on its own, so labels would not mean the same '
                            'class. Give every split the same class folders (an empty one for a class without '
                            'images, outside training).')
        counts = {name: _count_images(osp.join(where, name), per_split[split].get('extensions', FOLDER_EXTENSIONS))
                  for name in names}
        empty = [name for name, count in counts.items() if not count]
        if empty and split == 'train_dataloader':
            raise DataError(f'{split}: {len(empty)} class folders in {where} hold no images mmpretrain reads '
                            f'({_examples(empty)}); it numbers them as classes all the same, which training never '
                            'sees (a folder of other files, .webp or __MACOSX, looks the same). Put images in them, '
                            'or remove them from every split.')
        images = sum(counts.values())
        summaries.append(SplitSummary(split, where, images=images, instances=images, classes=len(names)))
    if classes:
        if len(classes) != len(reference):
            where = roots[reference_split]
            raise DataError(f'the config names {len(classes)} classes but {where} holds {len(reference)} class '
                            'folders; mmpretrain labels each folder, in sorted order.')
        if set(classes) == set(reference) and list(classes) != reference:
            raise DataError(f'the config lists its classes {tuple(classes)} in another order than their folders sort '
                            f'({tuple(reference)}); mmpretrain numbers the folders in sorted order, so each name '
                            'would label another class.')
    return summaries


def _count_images(folder: str, extensions) -> int:
    """The images mmpretrain's CustomDataset finds in ``folder``: its listing (hidden files left out, linked
    folders followed), by extension, whatever its case."""
    return sum(name.lower().endswith(tuple(extensions))
               for name in list_dir_or_file(folder, list_dir=False, recursive=True))


# --------------------------------------------------------------------------
# Every split of a config

# mmpretrain's CustomDataset default
FOLDER_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif')


def check_splits(cfg, splits, options: dict, label_values: bool = False) -> list[SplitSummary]:
    """Every check above on every dataset of ``splits`` that is of a kind
    they know (COCO files, label-map folders, class folders); a summary per
    dataset checked. A file shared by splits is read once per kind of use.
    ``label_values``: also decode every label map to check its values (a
    run checks them as it loads each map instead)."""
    scope = cfg.get('default_scope')
    summaries, seen, folders = [], set(), {}
    for split, dataset in iter_datasets(cfg):
        if split not in splits:
            continue
        kind = type_name(dataset)
        prefix = dataset.get('data_prefix') or {}
        if kind == 'CocoDataset' and dataset.get('ann_file'):
            key = (osp.join(dataset.get('data_root') or '', dataset['ann_file']), split == 'train_dataloader')
            if key in seen:
                continue
            seen.add(key)
            classes = (dataset.get('metainfo') or {}).get('classes')
            if classes is None:
                from mmdet.datasets import CocoDataset
                classes = CocoDataset.METAINFO['classes']
            scored = any(type_name(e) == 'CocoMetric' and not e.get('format_only')  # it reads every iscrowd
                         for e in evaluators(cfg, (split.replace('dataloader', 'evaluator'),)))
            summaries.append(check_coco(split, dataset, classes, options, scored_by_coco_metric=scored))
        elif isinstance(prefix, dict) and 'seg_map_path' in prefix and not dataset.get('ann_file'):
            key = (repr(sorted(prefix.items())), dataset.get('data_root'), split == 'train_dataloader')
            if key in seen:
                continue
            seen.add(key)
            head = (cfg.get('model') or {}).get('decode_head') or {}
            summaries.append(check_label_maps(split, dataset, head.get('num_classes'), scope, options['bad_images']))
            if label_values and head.get('num_classes'):
                check_label_values(split, dataset, head['num_classes'], head.get('ignore_index', 255), scope)
        elif _is_class_folder_dataset(dataset):
            key = (class_folder_root(dataset), split == 'train_dataloader')
            if key not in seen:
                seen.add(key)
                folders[split] = dataset
    if folders:
        classes = next(((d.get('metainfo') or {}).get('classes') for d in folders.values()
                        if (d.get('metainfo') or {}).get('classes')), None)
        # An evaluation reads the test split alone; its labels must still be training's.
        training = next((d for split, d in iter_datasets(cfg) if split == 'train_dataloader'
                         and _is_class_folder_dataset(d) and osp.isdir(class_folder_root(d))), None)
        num_classes = ((cfg.get('model') or {}).get('head') or {}).get('num_classes')
        summaries += check_class_folders(folders, classes, training, num_classes)
    return summaries


def _is_class_folder_dataset(dataset: dict) -> bool:
    return (type_name(dataset) == 'CustomDataset' and not dataset.get('ann_file')
            and dataset.get('with_label', True))


def format_summary(summaries: list[SplitSummary]) -> str:
    """The table printed at the start of training and by tools/check_dataset.py."""
    lines = [f'{"split":<17} {"images":>8} {"instances":>10} {"classes":>8}  dropped  (source)']
    for s in summaries:
        dropped = ', '.join(f'{n} {what}' for what, n in s.dropped.items()) or 'nothing'
        lines.append(f'{s.split:<17} {s.images:>8} {s.instances:>10} {s.classes:>8}  {dropped}  ({s.source})')
    return '\n'.join(lines)
