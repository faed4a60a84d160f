# The offline segmentation demo: Semantic FPN with EfficientViT-M0 trained
# from scratch on the synthetic shapes dataset's label maps
# (efficientvit_dense.apps.synthetic) on a CPU. A child of the ADE20K M4
# config: only what a 10-minute CPU budget needs changes (arch, widths, data,
# schedule). Run it with `make demo-seg`.
_base_ = '../fpn_efficientvit_m4_ade20k.py'

classes = ('background', 'circle', 'square', 'triangle', 'star', 'cross', 'ring')
palette = [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
           [145, 30, 180]]
data_root = 'data/synthetic/'
max_iters = 700
image_size = (192, 192)  # the synthetic images' size

model = dict(
    data_preprocessor=dict(size=image_size),
    # No ImageNet weights offline: train every layer, BN statistics included.
    backbone=dict(arch='m0', norm_eval=False, init_cfg=None),
    # Slim neck and head: on 2 CPU cores they cost more than the backbone at strides 4 and 8.
    neck=dict(in_channels=[64, 128, 192], out_channels=64),
    # Background is ~85% of the pixels, so its weight is lowered (trials: docs/design.md).
    decode_head=dict(in_channels=[64] * 5, channels=64, num_classes=len(classes),
                     loss_decode=dict(class_weight=[0.2] + [1.0] * (len(classes) - 1))))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# tools/test.py --tta (mmseg's too): each image as it is and flipped; the base's six ratios are ADE20K's.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
         dict(type='RandomFlip', prob=1.0, direction='horizontal')],
        [dict(type='LoadAnnotations')],
        [dict(type='PackSegInputs')]]),
]
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=dict(classes=classes, palette=palette),
               img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=False)
train_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, **dataset, data_prefix=dict(img_path='train', seg_map_path='semantic/train'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, **dataset, data_prefix=dict(img_path='val', seg_map_path='semantic/val'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='PerClassIoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator

# From scratch on a CPU: a higher rate than fine-tuning, with clipping, a
# short warm-up, then the base's poly decay.
optim_wrapper = dict(optimizer=dict(lr=2e-3), clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', power=0.9, eta_min=0.0, by_epoch=False, begin=100, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
auto_scale_lr = dict(base_batch_size=8)
