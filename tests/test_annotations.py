"""No bad annotation trains or scores silently: each fault is made on the
synthetic data and met by tools/check_dataset.py (or the training tool) as
a user would run it (in this test's process, but for one run): exit 1, one
line naming the file, no traceback, and nothing of the user's changed."""
import json
import math
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pytest
from helpers import DETECTION_TINY_RUN, REPO, TINY_SPEC, edit_annotations, run_tool, run_tool_in_process
from PIL import Image

from efficientvit_dense.apps.demo import DEMOS
from efficientvit_dense.engine.config import iter_datasets, load_config
from efficientvit_dense.engine.data_checks import check_inputs
from efficientvit_dense.engine.runner import train
from efficientvit_dense.errors import ConfigError, DataError

DETECTION, SEGMENTATION, CLASSIFICATION = (DEMOS[task].config for task in
                                           ('detection', 'segmentation', 'classification'))


def _check(config, data, *options, run=run_tool_in_process):
    """tools/check_dataset.py; returns (exit code, last line of stderr, stdout)."""
    result = run('check_dataset.py', config, '--data-root', data, *(('--cfg-options', *options) if options else ()))
    assert 'Traceback' not in result.stderr
    lines = result.stderr.strip().splitlines()
    return result.returncode, lines[-1] if lines else '', result.stdout


def _refused(config, data, *options) -> str:
    code, last, _ = _check(config, data, *options)
    assert code == 1 and last.startswith('error: '), last
    return last


def test_the_pristine_data_passes_with_a_summary_of_every_split(pristine):
    outputs = {}
    for config in (DETECTION, SEGMENTATION, CLASSIFICATION):
        run = run_tool if config == DETECTION else run_tool_in_process  # once as its own process, as users start it
        code, _, outputs[config] = _check(config, pristine, run=run)
        assert code == 0 and 'no faults found' in outputs[config]
        assert 'train_dataloader' in outputs[config] and 'val_dataloader' in outputs[config]
    train = next(line for line in outputs[DETECTION].splitlines() if line.startswith('train_dataloader'))
    coco = json.loads((pristine / 'annotations' / 'instances_train.json').read_text())
    assert train.split()[1:4] == [str(len(coco['images'])), str(len(coco['annotations'])), '6']


def test_images_sharing_an_id_are_refused_not_merged(data):
    path = edit_annotations(data, 'train', lambda coco: coco['images'][1].update(id=coco['images'][0]['id']))
    before = path.read_bytes()
    last = _refused(DETECTION, data)
    assert f'{path}: 1 images repeat an id another image has (ids 0)' in last and 'merge' in last
    assert path.read_bytes() == before


def test_a_picture_listed_twice_under_two_ids_is_refused(data):
    def listed_twice(coco):
        coco['images'].append(dict(coco['images'][0], id=100, file_name='./' + coco['images'][0]['file_name']))
        coco['annotations'][0]['image_id'] = 100
    path = edit_annotations(data, 'val', listed_twice)
    assert f"{path}: 1 images repeat the file_name of another image (000000.jpg)" in _refused(DETECTION, data)


def test_annotations_sharing_an_id_are_refused(data):
    path = edit_annotations(data, 'val', lambda coco: coco['annotations'][1].update(id=coco['annotations'][0]['id']))
    assert f'{path}: 1 annotations repeat an id' in _refused(DETECTION, data)


# MPO: the JPEG a phone writes with a second picture (depth, preview), which Pillow names apart; PNG: with an eXIf
# chunk (ImageMagick keeps a photo's), which cv2 and Pillow apply as well
@pytest.mark.parametrize('kind', ['JPEG', 'MPO', 'PNG'])
def test_a_width_height_unlike_the_file_is_named_and_exif_rotation_is_recognised(data, kind):
    photo = Image.fromarray(np.full((100, 200, 3), 127, np.uint8))  # stored 200 wide, 100 high
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: 100 wide, 200 high, as mmcv loads it
    photo.save(data / 'train' / '000000.jpg', format=kind, exif=exif,
               **(dict(save_all=True, append_images=[photo]) if kind == 'MPO' else {}))

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


def test_the_coco_recipe_leaves_out_coco_2017s_zero_height_boxes_as_mmdet_does(data):
    """instances_train2017.json holds boxes of zero height (annotation 918: cocoapi#355), which mmdet drops as
    every published AP's training did: the COCO configs count them out instead of stopping before training."""
    from mmdet.datasets import CocoDataset

    coco_classes = CocoDataset.METAINFO['classes']
    for split in ('train', 'val'):
        coco = json.loads((data / 'annotations' / f'instances_{split}.json').read_text())
        coco['categories'] = [dict(id=i + 1, name=name) for i, name in enumerate(coco_classes)]
        if split == 'train':
            coco['annotations'][0]['bbox'][3], coco['annotations'][0]['area'] = 0.0, 0.0  # as annotation 918
        (data / 'annotations' / f'instances_{split}2017.json').write_text(json.dumps(coco))
        os.rename(data / split, data / f'{split}2017')
    (train, _) = check_inputs(load_config(osp.join(REPO, 'configs', 'retinanet_efficientvit_m4_coco.py'),
                                          data_root=str(data)), ('train_dataloader', 'val_dataloader'))
    assert train.dropped == {'boxes that cannot be used': 1}


def test_boxes_written_as_corners_are_refused_naming_cocos_format(data):
    # [x1, y1, x2, y2] instead of [x, y, w, h]: every box still overlaps its image, too large, never matched
    def to_corners(coco):
        for ann in coco['annotations']:
            x, y, w, h = ann['bbox']
            ann['bbox'] = [x, y, x + w, y + h]
    path = edit_annotations(data, 'train', to_corners)
    last = _refused(DETECTION, data)
    assert f'{path}: ' in last and "boxes run past their image's right or bottom edge" in last
    assert 'they look like [x1, y1, x2, y2]' in last

    def drawn_past_the_edge(coco):  # amodal boxes, uncut aerial tiles: [x, y, w, h] past the image on purpose
        for ann in coco['annotations']:
            ann['bbox'] = [150.0, 150.0, 100.0, 100.0]
    edit_annotations(data, 'train', drawn_past_the_edge)
    assert _check(DETECTION, data)[0] == 0


def test_a_validation_file_without_crowd_flags_is_refused_before_training(data):
    # pycocotools reads iscrowd: the first validation stopped with a KeyError after a whole training interval
    path = edit_annotations(data, 'val', lambda coco: [ann.pop('iscrowd') for ann in coco['annotations']])
    last = _refused(DETECTION, data)
    assert f"{path}: " in last and "annotations lack 'iscrowd'" in last and '"iscrowd": 0' in last
    # only the COCO metric reads them: formatting results for a server does not
    assert _check(DETECTION, data, 'val_evaluator.format_only=True', 'test_evaluator.format_only=True')[0] == 0
    edit_annotations(data, 'train', lambda coco: [ann.pop('iscrowd') for ann in coco['annotations']])
    edit_annotations(data, 'val', lambda coco: [ann.update(iscrowd=0) for ann in coco['annotations']])
    assert _check(DETECTION, data)[0] == 0  # training reads no crowd flags


def test_categories_that_repeat_an_id_or_a_name_are_named_as_such(data):
    # they were reported as a class missing from the file, or gave advice to list a class twice
    path = edit_annotations(data, 'train', lambda coco: coco['categories'].append(dict(id=1, name='hexagon')))
    assert f'{path}: categories repeat an id another category has (1)' in _refused(DETECTION, data)
    edit_annotations(data, 'train', lambda coco: coco['categories'].__setitem__(-1, dict(id=99, name='circle')))
    assert "categories repeat a name another category has (circle)" in _refused(DETECTION, data)


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
    result = run_tool_in_process('train.py', SEGMENTATION, '--data-root', data, '--work-dir', tmp_path / 'run',
                                 '--cfg-options', 'train_cfg.max_iters=4', 'train_dataloader.batch_size=4',
                                 'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False')
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


def test_a_segmentation_image_that_cannot_be_read_is_named_before_training(data):
    image = data / 'train' / '000001.jpg'
    image.write_bytes(b'not a jpeg')
    with pytest.raises(DataError, match=f"train_dataloader: 1 files are not readable images \\({image}; "
                                        ".*bad_images='skip'"):
        _checked(SEGMENTATION, data, label_values=False)
    skipped = _checked(SEGMENTATION, data, label_values=False, **{'data_checks.bad_images': 'skip'})
    assert skipped[0].dropped == {'images missing or unreadable': 1}
    shutil.copy(image, data / 'val' / '000000.jpg')
    with pytest.raises(DataError, match='val_dataloader: 1 files are not readable images .* evaluation needs every'):
        _checked(SEGMENTATION, data, label_values=False, **{'data_checks.bad_images': 'skip'})


def test_an_evaluation_checks_the_test_splits_class_folders_against_trainings(data):
    shutil.rmtree(data / 'classification' / 'val' / 'circle')
    with pytest.raises(DataError, match=r"test_dataloader: the class folders in \S+ are not those of train_dataloader "
                                        r"\(it lacks \['circle'\]\)"):
        check_inputs(load_config(CLASSIFICATION, data_root=str(data)), ('test_dataloader',))
    shutil.rmtree(data / 'classification' / 'train')  # evaluated where the training data is not: the model's classes
    with pytest.raises(DataError, match=r'test_dataloader: \S+ holds 5 class folders but the model has 6 classes'):
        check_inputs(load_config(CLASSIFICATION, data_root=str(data)), ('test_dataloader',))


def test_a_misspelt_option_inside_a_dict_stops_before_anything_runs(data, tmp_path):
    result = run_tool_in_process('train.py', DETECTION, '--data-root', data, '--work-dir', tmp_path / 'run',
                                 '--cfg-options', 'default_hooks.checkpoint.intervall=2')
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "--cfg-options default_hooks.checkpoint.intervall: CheckpointHook (default_hooks.checkpoint) has no option "
        "'intervall'; did you mean 'interval'?")
    assert not (tmp_path / 'run').exists()


# --------------------------------------------------------------------------
# The checks read the data as the dataset classes do (in process: no model)


def _checked(config, data, edit=None, label_values=True, **options):
    """check_inputs on ``config`` over ``data`` after ``edit(dataset)`` on every dataset."""
    cfg = load_config(config, options or None, data_root=str(data))
    for _, dataset in iter_datasets(cfg):
        if edit is not None:
            edit(dataset)
    return check_inputs(cfg, label_values=label_values)


def _set_label(path, value, mode='L'):
    labels = np.array(Image.open(path)).astype(np.uint16 if value > 255 else np.uint8)
    labels[:4, :4] = value
    image = Image.fromarray(labels)
    if mode == 'P':
        image = image.convert('L').convert('P')
        image.putpalette([255 - i % 256 for i in range(768)])  # colours unlike the indices
    image.save(path)


def test_label_maps_are_read_with_their_dataset_class_defaults(data):
    label = data / 'semantic' / 'val' / '000001.png'
    _set_label(label, 7)  # past the 7 classes as stored; class 6 once ADE20K's reduce_zero_label shifts it

    def as_ade20k(dataset):  # ADE20KDataset reduces label zero unless told otherwise
        dataset.update(type='ADE20KDataset')
        del dataset['reduce_zero_label']
    _checked(SEGMENTATION, data, as_ade20k)
    with pytest.raises(DataError, match=r'ignore index 255 \(.*000001.png: \[7\]'):
        _checked(SEGMENTATION, data)  # BaseSegDataset, as the demo says: 7 is no class

    for split in ('train', 'val'):  # Cityscapes' own names, which its dataset class pairs by default
        for image in (data / split).glob('*.jpg'):
            image.rename(image.with_name(f'{image.stem}_leftImg8bit.png'))
        for label in (data / 'semantic' / split).glob('*.png'):
            label.rename(label.with_name(f'{label.stem}_gtFine_labelTrainIds.png'))
    _set_label(data / 'semantic' / 'val' / '000001_gtFine_labelTrainIds.png', 0)

    def as_cityscapes(dataset):
        dataset.update(type='CityscapesDataset')
        for key in ('img_suffix', 'seg_map_suffix'):
            del dataset[key]
    summaries = _checked(SEGMENTATION, data, as_cityscapes)
    assert [s.images for s in summaries] == [TINY_SPEC.num_train, TINY_SPEC.num_val]
    (data / 'semantic' / 'val' / '000002_gtFine_labelTrainIds.png').unlink()
    with pytest.raises(DataError, match="1 images have no label map .* the suffix '_gtFine_labelTrainIds.png'"):
        _checked(SEGMENTATION, data, as_cityscapes)


def test_palette_label_maps_are_read_as_indices_and_unreadable_or_wide_ones_refused(data):
    label = data / 'semantic' / 'train' / '000002.png'
    _set_label(label, 3, mode='P')  # a palette image: mmseg reads its indices, not its colours
    assert Image.open(label).mode == 'P'
    _checked(SEGMENTATION, data)
    _set_label(label, 9, mode='P')
    with pytest.raises(DataError, match=r'000002.png: \[9\]'):
        _checked(SEGMENTATION, data)

    _set_label(label, 300)  # 16 bits: mmseg's 8-bit read would turn it into class 44
    with pytest.raises(DataError, match=r'000002.png: \[300\] \(over 255: mmseg reads 8 bits\)'):
        _checked(SEGMENTATION, data)

    _set_label(label, 3)
    whole = label.read_bytes()
    label.write_bytes(whole[:len(whole) // 2])  # its header whole, its pixels cut: Pillow raises where cv2 gives None
    with pytest.raises(DataError, match=f'label map {label} cannot be read as an image'):
        _checked(SEGMENTATION, data)
    label.write_bytes(b'not a png')
    for label_values in (True, False):  # the map is refused before its values are read
        with pytest.raises(DataError, match=f'1 label maps cannot be read as images \\({label};'):
            _checked(SEGMENTATION, data, label_values=label_values)


def test_an_image_above_pillows_decompression_bomb_limit_is_measured_as_mmcv_reads_it(tmp_path):
    # aerial images: cv2 (mmcv's reader) loads them, Pillow's guard refused even their header
    from efficientvit_dense.engine.file_facts import _read

    Image.new('1', (14000, 13000)).save(tmp_path / 'aerial.png')  # 182 megapixels, one bit each
    assert _read(str(tmp_path / 'aerial.png')).loaded_size == (14000, 13000)


def test_a_training_class_folder_without_images_is_refused(data):
    # mmpretrain numbers it as a class all the same, with one warning among the logs
    star = data / 'classification' / 'train' / 'star'
    for image in star.iterdir():
        image.rename(image.with_suffix('.webp'))  # not among mmpretrain's extensions
    with pytest.raises(DataError, match=r'train_dataloader: 1 class folders in .* hold no images mmpretrain reads '
                                        r'\(star\)'):
        _checked(CLASSIFICATION, data)
    # images in a linked folder are read by mmpretrain, and counted
    elsewhere = data / 'elsewhere'
    shutil.move(str(star), str(elsewhere))
    star.mkdir()
    os.symlink(elsewhere, star / 'linked')
    for image in elsewhere.iterdir():
        image.rename(image.with_suffix('.png'))
    _checked(CLASSIFICATION, data)


def test_segmentation_images_are_listed_as_mmseg_lists_them(data):
    # macOS's hidden ._x.jpg beside each picture is not an image mmseg reads: no false alarm
    (data / 'val' / '._000000.jpg').write_bytes(b'\x00\x05\x16\x07 AppleDouble')
    _checked(SEGMENTATION, data)
    # images whose suffix differs from img_suffix: mmseg leaves them out of the split, which loses their mIoU
    (data / 'semantic' / 'val' / '000999.png').write_bytes((data / 'semantic' / 'val' / '000000.png').read_bytes())
    _checked(SEGMENTATION, data)  # a map whose image was deleted (or of another split): mmseg never reads it
    os.rename(data / 'val' / '000001.jpg', data / 'val' / '000001.JPG')
    with pytest.raises(DataError, match=r"val_dataloader: 1 images with a label map do not end in '.jpg' "
                                        r"\(.*/val/000001.JPG\)"):
        _checked(SEGMENTATION, data)
    os.rename(data / 'val' / '000001.JPG', data / 'val' / '000001.jpg')
    # a label map is loaded as stored ('unchanged'): an EXIF orientation it carries does not turn it
    Image.new('RGB', (100, 200)).save(data / 'val' / '000000.jpg')
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('L', (100, 200)).save(data / 'semantic' / 'val' / '000000.png', exif=exif)
    _checked(SEGMENTATION, data)


def test_class_folders_under_a_dict_prefix_and_classes_named_in_the_config(data):
    folders = sorted(p.name for p in (data / 'classification' / 'train').iterdir())

    def dict_prefix(dataset):  # mmpretrain takes data_prefix=dict(img_path=...) as well as a path
        dataset['data_prefix'] = dict(img_path=dataset['data_prefix'])
    assert [s.classes for s in _checked(CLASSIFICATION, data, dict_prefix)] == [len(folders)] * 2

    def named(names):
        return lambda dataset: dataset.update(metainfo=dict(classes=names))
    _checked(CLASSIFICATION, data, named([f'shape {i}' for i in range(len(folders))]))  # names for the folders
    with pytest.raises(DataError, match=f'the config names 2 classes but .* holds {len(folders)} class folders'):
        _checked(CLASSIFICATION, data, named(['a', 'b']))
    with pytest.raises(DataError, match='in another order than their folders sort'):
        _checked(CLASSIFICATION, data, named(folders[::-1]))


def test_entries_without_what_mmdet_reads_are_named(data):
    def drop_keys(coco):
        del coco['images'][1]['width']
        del coco['annotations'][2]['area']
    path = edit_annotations(data, 'train', drop_keys)
    with pytest.raises(DataError) as err:
        _checked(DETECTION, data)
    assert str(err.value).startswith(f"{path}: images lack keys that mmdet reads (1 without 'width' (first: entry 1))")
    edit_annotations(data, 'train', lambda coco: coco['images'][1].update(width=coco['images'][1]['height']))
    with pytest.raises(DataError, match=f"{path}: annotations lack keys that mmdet reads \\(1 without 'area'"):
        _checked(DETECTION, data)
    edit_annotations(data, 'train', lambda coco: coco['annotations'][2].update(area=10.0, bbox=[1, 2, 3]))
    with pytest.raises(DataError, match='1 annotations have a bbox that is not four numbers'):
        _checked(DETECTION, data)


def test_a_remembered_pass_is_checked_again_once_a_file_changes(data):
    _checked(DETECTION, data)  # passes, and is remembered
    path = edit_annotations(data, 'train', lambda coco: coco['images'][1].update(id=coco['images'][0]['id']))
    with pytest.raises(DataError, match='repeat an id'):
        _checked(DETECTION, data)
    edit_annotations(data, 'train', lambda coco: coco['images'][1].update(id=1))
    _checked(DETECTION, data)
    coco = json.loads(path.read_text())
    image = data / 'train' / coco['images'][0]['file_name']
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(image)  # resized after annotation
    with pytest.raises(DataError, match='1 images have another width/height than the file says'):
        _checked(DETECTION, data)


def test_options_are_judged_by_the_type_they_end_with_and_toolbox_types_are_known():
    def load(*options):
        return load_config(DETECTION, dict(option.split('=') for option in options))
    # A type changed in the same command judges its new options; keys the builders pop are allowed.
    cfg = load('optim_wrapper.optimizer.type=SGD', 'optim_wrapper.optimizer.nesterov=True',
               'default_hooks.checkpoint.priority=VERY_LOW', 'optim_wrapper.paramwise_cfg.norm_decay_mult=0')
    assert cfg.optim_wrapper.optimizer.nesterov == 'True'
    with pytest.raises(ConfigError, match=r"AdamW \(optim_wrapper.optimizer\) has no option 'nesterov'"):
        load('optim_wrapper.optimizer.nesterov=True')
    # mmdet's own types live in mmdet's registries, below mmengine's: found there and judged.
    with pytest.raises(ConfigError, match=r"RetinaHead \(model.bbox_head\) has no option 'depth'"):
        load('model.bbox_head.depth=3')


def test_training_stops_before_its_first_iteration_at_a_fault_mmdet_would_train_on(data, tmp_path):
    edit_annotations(data, 'train', lambda coco: coco['images'][1].update(id=coco['images'][0]['id']))
    cfg = load_config(DETECTION, dict(DETECTION_TINY_RUN), work_dir=str(tmp_path / 'run'), data_root=str(data))
    with pytest.raises(DataError, match='1 images repeat an id another image has'):
        train(cfg)  # mmdet merges the two images and would train; the checks, running meanwhile, stop it
    assert not list((tmp_path / 'run').glob('*/vis_data/scalars.json'))  # not one iteration logged
    assert not list((tmp_path / 'run').glob('*.pth'))
