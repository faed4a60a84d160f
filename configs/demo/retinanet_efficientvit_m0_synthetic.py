# The offline demo: RetinaNet with EfficientViT-M0 trained from scratch on the
# synthetic shapes dataset (efficientvit_dense.apps.synthetic) on a CPU.
# A child of the COCO M4 config: only what a 10-minute CPU budget needs
# changes (arch, widths, data, schedule). Run it with `make demo`.
_base_ = '../retinanet_efficientvit_m4_coco.py'

classes = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
data_root = 'data/synthetic/'
max_iters = 1100
image_size = (192, 192)  # the synthetic images' size

model = dict(
    # No ImageNet weights offline: train every layer, BN statistics included.
    backbone=dict(arch='m0', norm_eval=False, init_cfg=None),
    # A slimmer neck and head than COCO's (256 wide, 4 convs): on 2 CPU cores
    # the head at stride 8 would cost more than the whole backbone.
    neck=dict(in_channels=[64, 128, 192], out_channels=96),
    # GroupNorm in the head, with the 2e-3 rate below, learns faster from scratch (trials: docs/design.md).
    bbox_head=dict(num_classes=len(classes), in_channels=96, feat_channels=96, stacked_convs=2,
                   norm_cfg=dict(type='GN', num_groups=32, requires_grad=True),
                   # Anchors from 16 px (COCO's start at 32): the shapes go down to 16 px.
                   anchor_generator=dict(octave_base_scale=2)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# tools/test.py --tta (mmdet's too): each image and its flip at this size; the base's are COCO's three scales.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=image_size, keep_ratio=True)],
        [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                               'flip_direction'))]]),
]
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# From scratch on a CPU: a higher rate than fine-tuning, with clipping (without
# it the loss spikes and the detector collapses), short warm-up, step decay.
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=10.0))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[850, 1000], gamma=0.1),
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(base_batch_size=8)

# A box that cannot be trained or scored is a fault of your file to fix (the COCO base drops COCO 2017's few).
data_checks = dict(bad_boxes='error')
