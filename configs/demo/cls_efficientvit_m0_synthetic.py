# The offline classification demo: EfficientViT-M0 trained from scratch on
# the synthetic dataset's object crops (efficientvit_dense.apps.synthetic,
# one folder per shape) on a CPU. A child of the fine-tuning recipe: only what
# a CPU budget without ImageNet weights needs changes. Run it with
# `make demo-cls`.
_base_ = '../_base_/efficientvit_m5_finetune_224.py'

data_root = 'data/synthetic/'
image_size = 96  # the 64 px crops, upsampled so that the last stage is not 1x1
max_epochs = 12
num_classes = 6  # the synthetic dataset's six shapes (efficientvit_dense.apps.synthetic.CLASSES)

model = dict(
    backbone=dict(arch='m0', window_size=7, init_cfg=None),  # no ImageNet weights offline
    head=dict(num_classes=num_classes, in_channels=192),
    train_cfg=None)  # no Mixup/CutMix: they slow learning from scratch in a short run
data_preprocessor = dict(num_classes=num_classes)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=image_size, crop_ratio_range=(0.6, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size),
    dict(type='PackInputs'),
]
# Each crop once per epoch (a 12-epoch run; repeated augmentation would show it a third as often).
train_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True, sampler=dict(type='DefaultSampler', shuffle=True,
                                                                        _delete_=True),
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='classification/train',
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64, num_workers=1, persistent_workers=True,
    dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root, data_prefix='classification/val',
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch: a higher rate and some weight decay, one warm-up epoch; no clipping (the short schedule was
# tuned without it).
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05), clip_grad=None)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_epochs, max_keep_ckpts=1,
                                                                 save_best=None))
auto_scale_lr = dict(base_batch_size=64)
