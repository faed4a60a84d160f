# Fine-tuning an ImageNet EfficientViT-M5 classifier at 224 px: the authors'
# recipe for transfer and custom data (microsoft/Cream#172: 300 epochs,
# AdamW, batch 256, lr 1e-3, weight decay 1e-8, the rest as their ImageNet
# training), as their EfficientViT/classification/main.py runs it:
# - lr 1e-3 is its --lr, which main.py scales by the total batch / 512:
#   5e-4 at 256 images per step (8 GPUs x 32 here);
# - adaptive gradient clipping at 0.02 (--clip-grad 0.02 --clip-mode agc)
#   and repeated augmentation (3 repeats, DeiT's sampler), its defaults;
# - ImageNet augmentation (mmpretrain's DeiT/Swin pipeline: RandomResizedCrop,
#   flip, RandAugment m9 mstd0.5, RandomErasing 0.25; Mixup 0.8 and CutMix
#   1.0; label smoothing 0.1), cosine decay to 1e-5 after a 5-epoch warm-up;
# - evaluation on the whole image resized to 224x224 (bicubic), as main.py
#   does for a fine-tuned model (data/datasets.py), not ImageNet's centre crop.
# Left out: the EMA of the weights, which main.py keeps but never evaluates;
# the ImageNet head's BatchNorm, which main.py keeps (it drops the Linear only).
# The dataset configs (cls_efficientvit_*) set the data and num_classes.
#
# ImageNet weights (official release or timm, path or URL; the ImageNet head is dropped):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m5.pth
_base_ = ['mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py', 'mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['efficientvit_dense'], allow_failed_imports=False)

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='EfficientViT',
        arch='m5',
        window_size=(7, 7, 4),  # ImageNet's at 224 (the last stage is 4x4): the pretrained attention, unchanged
        out_indices=(2,),
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='EfficientViTClsHead',
        num_classes=1000,
        in_channels=384,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original')),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224), backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
# drop_last: a last batch of one image would stop the head's BatchNorm1d.
train_dataloader = dict(batch_size=32, num_workers=4, drop_last=True,
                        sampler=dict(type='RepeatAugSampler', num_repeats=3, _delete_=True))
val_dataloader = dict(batch_size=64, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    constructor='AdaptiveClipOptimWrapperConstructor',  # engine/gradient_clipping.py
    optimizer=dict(type='AdamW', lr=5e-4, betas=(0.9, 0.999), weight_decay=1e-8),
    clip_grad=dict(type='agc', clip_factor=0.02),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0,
                       custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [
    # from 1e-6, main.py's --warmup-lr
    dict(type='LinearLR', start_factor=2e-3, by_epoch=True, begin=0, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5),
]
train_cfg = dict(by_epoch=True, max_epochs=300, val_interval=10)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=3, save_best='auto'))
# --auto-scale-lr rescales lr from 256 images per step to yours.
auto_scale_lr = dict(enable=False, base_batch_size=256)
