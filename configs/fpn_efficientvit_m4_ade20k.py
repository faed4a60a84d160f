# Semantic FPN with EfficientViT-M4 on ADE20K (150 classes), the protocol
# PoolFormer and PVT report on: 512x512 crops, 40k iterations, 32 images per
# step (8 GPUs x 4), AdamW lr 2e-4, weight decay 1e-4, poly decay (power 0.9).
# Data pipeline, FPN head and single-scale whole-image test come from mmseg's
# own Semantic FPN config.
#
# The backbone stops at stride 16, too coarse for pixels: the neck grows
# strides 8 and 4 from the stride-16 map with transposed convs, and the head
# merges all five levels (4..64) at stride 4.
#
# ImageNet weights (official release or timm, path or URL):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m4.pth
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
custom_imports = dict(imports=['efficientvit_dense'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='EfficientViT',
        arch='m4',
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_eval=True,  # 4 images per GPU are too few for BatchNorm statistics
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        num_extra_trans_convs=2,  # strides 4 and 8 from the stride-16 map
        num_outs=5),              # strides 4, 8, 16, 32, 64
    decode_head=dict(in_channels=[256] * 5, in_index=[0, 1, 2, 3, 4], feature_strides=[4, 8, 16, 32, 64]))

# data/ade/ADEChallengeData2016/ (images/ and annotations/); elsewhere: tools/train.py --data-root PATH
train_dataloader = dict(batch_size=4, num_workers=4)

max_iters = 40000
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=4000)
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=4000))
# --auto-scale-lr rescales lr from 32 images per step to yours.
auto_scale_lr = dict(enable=False, base_batch_size=32)
