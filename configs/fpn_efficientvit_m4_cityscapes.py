# Semantic FPN with EfficientViT-M4 on Cityscapes (19 classes): mmseg's
# Semantic FPN Cityscapes config (512x1024 crops, 80k iterations, 8 images per
# step as 4 GPUs x 2, whole-image test at 1024x2048) with the optimiser of the
# ADE20K config: AdamW lr 2e-4, weight decay 1e-4, poly decay (power 0.9).
# Backbone and neck as in fpn_efficientvit_m4_ade20k.py (strides 4..64).
#
# ImageNet weights (official release or timm, path or URL):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m4.pth
_base_ = 'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py'
custom_imports = dict(imports=['efficientvit_dense'], allow_failed_imports=False)

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='EfficientViT',
        arch='m4',
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_eval=True,  # 2 images per GPU are too few for BatchNorm statistics
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        num_extra_trans_convs=2,
        num_outs=5),
    decode_head=dict(in_channels=[256] * 5, in_index=[0, 1, 2, 3, 4], feature_strides=[4, 8, 16, 32, 64]))

# data/cityscapes/ with leftImg8bit/ and gtFine/ holding *_labelTrainIds.png
# (made by mmseg's tools/dataset_converters/cityscapes.py); elsewhere: --data-root PATH
max_iters = 80000
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=max_iters, by_epoch=False)]
auto_scale_lr = dict(enable=False, base_batch_size=8)
