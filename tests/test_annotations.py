"""No bad annotation trains or scores silently: each fault is made on the
synthetic data and met by tools/check_dataset.py (or the training tool) as
a user would run it: exit 1, one line naming the file, no traceback, and
nothing of the user's changed."""
import json
import math
import shutil

import cv2
import numpy as np
from helpers import TINY_SPEC, edit_annotations, run_tool
from PIL import Image

from efficientvit_dense.apps.demo import DEMOS

DETECTION, SEGMENTATION, CLASSIFICATION = (DEMOS[task].config for task in
                                           ('detection', 'segmentation', 'classification'))


def _check(config, data, *options):
    """tools/check_dataset.py; returns (exit code, last line of stderr, stdout)."""
    result = run_tool('check_dataset.py', config, '--data-root', data,
                      *(('--cfg-options', *options) if options else ()), timeout=300)
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    return result.returncode, lines[-1] if lines else '', result.stdout


def _refused(config, data, *options) -> str:
    code, last, _ = _check(config, data, *options)
    assert code == 1 and last.startswith('error: '), last
    return last


def test_the_pristine_data_passes_with_a_summary_of_every_split(pristine):
    for config in (DETECTION, SEGMENTATION, CLASSIFICATION):
        code, _, out = _check(config, pristine)
        assert code == 0 and 'no faults found' in out
        assert 'train_dataloader' in out and 'val_dataloader' in out
    code, _, out = _check(DETECTION, pristine)
    train = next(line for line in out.splitlines() if line.startswith('train_dataloader'))
    coco = json.loads((pristine / 'annotations' / 'instances_train.json').read_text())
    assert train.split()[1:4] == [str(len(coco['images'])), str(len(coco['annotations'])), '6']


def test_images_sharing_an_id_are_refused_not_merged(data):
    path = edit_annotations(data, 'train', lambda coco: coco['images'][1].update(id=coco['images'][0]['id']))
    before = path.read_bytes()
    last = _refused(DETECTION, data)
    assert f'{path}: 1 images repeat an id another image has (ids 0)' in last and 'merge' in last
    assert path.read_bytes() == before


def test_annotations_sharing_an_id_are_refused(data):
    path = edit_annotations(data, 'val', lambda coco: coco['annotations'][1].update(id=coco['annotations'][0]['id']))
    assert f'{path}: 1 annotations repeat an id' in _refused(DETECTION, data)


def test_a_width_height_unlike_the_file_is_named_and_exif_rotation_is_recognised(data):
    photo = Image.fromarray(np.full((100, 200, 3), 127, np.uint8))  # stored 200 wide, 100 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 100 wide, 200 high, as mmcv loads it
    photo.save(data / 'train' / '000000.jpg', exif=exif)

    def stored_size(coco):
        coco['images'][0].update(width=200, height=100)
    path = edit_annotations(data, 'train', stored_size)
    last = _refused(DETECTION, data)
    assert f'{path}: 1 images have another width/height than the file says' in last
    assert '000000.jpg: file 200x100, image 100x200, looks rotated by EXIF orientation 6' in last

    edit_annotations(data, 'train', lambda coco: coco['images'][0].update(width=100, height=200))  # as loaded: fine
    assert _check(DETECTION, data)[0] == 0


def test_unusable_boxes_are_refused_with_their_count_or_dropped_when_asked(data):
    def break_boxes(coco):
        coco['annotations'][0]['bbox'] = [math.nan, 1, 10, 10]
        coco['annotations'][1]['bbox'][2] = 0
        coco['annotations'][2]['bbox'] = [5000, 5000, 10, 10]
    path = data / 'annotations' / 'instances_train.json'
    text = json.dumps(json.loads(path.read_text()))
    coco = json.loads(text)
    break_boxes(coco)
    path.write_text(json.dumps(coco))  # json writes NaN as the bare word NaN, as Python tools do
    last = _refused(DETECTION, data)
    assert f'{path}: 3 of {len(coco["annotations"])} boxes cannot be trained or scored' in last
    assert '1 not a finite [x, y, w, h]' in last and '1 empty' in last and '1 outside its image' in last
    assert "bad_boxes='drop'" in last

    code, _, out = _check(DETECTION, data, 'data_checks.bad_boxes=drop')
    assert code == 0 and '3 boxes that cannot be used' in out


def test_a_validation_file_without_annotations_is_refused_not_scored_minus_one(data):
    path = edit_annotations(data, 'val', lambda coco: coco.update(annotations=[]))
    last = _refused(DETECTION, data)
    assert f'val_dataloader: {path} has {TINY_SPEC.num_val} images but no annotations' in last and '-1' in last


def test_label_values_past_the_classes_are_refused(data):
    label = data / 'semantic' / 'val' / '000001.png'
    values = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    values[:4, :4] = 9  # the demo has 7 classes; 255 is the ignore index
    cv2.imwrite(str(label), values)
    last = _refused(SEGMENTATION, data)
    assert 'label maps hold values that are neither a class (0..6) nor the ignore index 255' in last
    assert f'{label}: [9]' in last


def test_training_stops_at_a_label_value_past_the_classes_naming_the_map(data, tmp_path):
    label = data / 'semantic' / 'train' / '000003.png'
    values = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    values[:4, :4] = 9
    cv2.imwrite(str(label), values)
    result = run_tool('train.py', SEGMENTATION, '--data-root', data, '--work-dir', tmp_path / 'run', '--cfg-options',
                      'train_cfg.max_iters=4', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
                      'train_dataloader.persistent_workers=False', timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr and 'IndexError' not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f'error: {label}: 16 pixels have label values [9] that are neither a class (0..6) nor the ignore index '
        '255. Fix the label map, or the number of classes in the config.')


def test_label_maps_of_another_size_or_in_colour_are_refused(data):
    label = data / 'semantic' / 'train' / '000002.png'
    cv2.imwrite(str(label), np.zeros((50, 60), np.uint8))
    assert f'1 label maps differ in size from their image ({label}: 60x50, image 192x192)' in _refused(SEGMENTATION,
                                                                                                      data)
    cv2.imwrite(str(label), np.zeros((192, 192, 3), np.uint8))
    assert f'1 label maps have colour channels ({label}, mode RGB)' in _refused(SEGMENTATION, data)


def test_a_split_whose_class_folders_differ_from_training_is_refused(data):
    shutil.rmtree(data / 'classification' / 'val' / 'circle')  # every later class would shift by one
    last = _refused(CLASSIFICATION, data)
    assert "val_dataloader: the class folders in" in last and "it lacks ['circle']" in last


def test_a_misspelt_option_inside_a_dict_stops_before_anything_runs(data, tmp_path):
    result = run_tool('train.py', DETECTION, '--data-root', data, '--work-dir', tmp_path / 'run', '--cfg-options',
                      'default_hooks.checkpoint.intervall=2', timeout=300)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--cfg-options default_hooks.checkpoint.intervall: CheckpointHook (default_hooks.checkpoint) has no option "
        "'intervall'; did you mean 'interval'?")
    assert not (tmp_path / 'run').exists()
