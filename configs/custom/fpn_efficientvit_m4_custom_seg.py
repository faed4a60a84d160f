# Fine-tune Semantic FPN + EfficientViT-M4 on your own images and label maps.
# Copy this file to a name of your own in this folder (_base_ is a path from
# here) and change the settings below; everything else is the ADE20K recipe
# (configs/fpn_efficientvit_m4_ade20k.py).
#
#   my_seg_data/images/train/*.jpg    my_seg_data/labels/train/*.png
#   my_seg_data/images/val/*.jpg      my_seg_data/labels/val/*.png
#
# A label map is a single-channel PNG with its image's name and size; each
# pixel holds a class index into `classes` (0 .. len(classes) - 1), or
# `ignore_index` for pixels that count for nothing (unlabelled, borders).
# Label maps whose 0 means "unlabelled" and 1.. the classes (ADE20K's
# convention): set reduce_zero_label = True.
_base_ = '../fpn_efficientvit_m4_ade20k.py'

classes = ('sky', 'building', 'road')
palette = [[70, 130, 180], [70, 70, 70], [128, 64, 128]]  # an RGB colour per class, for the drawings
data_root = 'data/my_seg_data/'
train_images, train_labels = 'images/train', 'labels/train'
val_images, val_labels = 'images/val', 'labels/val'
img_suffix, seg_map_suffix = '.jpg', '.png'
reduce_zero_label = False
ignore_index = 255

model = dict(
    data_preprocessor=dict(seg_pad_val=ignore_index),
    decode_head=dict(num_classes=len(classes), ignore_index=ignore_index))

crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),  # reduce_zero_label comes from the dataset
    dict(type='RandomResize', scale=(2048, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta: the test size at mmseg's six ratios, each as it is and flipped (ADE20K's ratios apply to
# the image as stored, which for photos larger than the test size would be another evaluation).
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=(int(2048 * ratio), int(512 * ratio)), keep_ratio=True)
         for ratio in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)],
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')]]),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes, palette=palette),
               img_suffix=img_suffix, seg_map_suffix=seg_map_suffix, reduce_zero_label=reduce_zero_label,
               ignore_index=ignore_index)
train_dataloader = dict(dataset=dict(
    _delete_=True, **dataset, data_prefix=dict(img_path=train_images, seg_map_path=train_labels),
    pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(
    _delete_=True, **dataset, data_prefix=dict(img_path=val_images, seg_map_path=val_labels),
    pipeline=test_pipeline))
test_dataloader = val_dataloader
# mIoU, mAcc and aAcc, plus the IoU of each of your classes.
val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'], ignore_index=ignore_index)
test_evaluator = val_evaluator
