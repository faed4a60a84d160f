# UPerNet with EfficientViT-M4 on ADE20K (150 classes), with the recipe
# transformer backbones (Swin, ConvNeXt, PoolFormer) report UPerNet on:
# 512x512 crops, 160k iterations, 16 images per step (4 GPUs x 4, as mmseg's
# base), AdamW lr 6e-5, weight decay 0.01, 1500-iteration linear warm-up, then
# poly decay (power 1.0); auxiliary FCN head on the stride-16 level. Data
# pipeline, heads and whole-image test come from mmseg's UPerNet config.
#
# UPerNet's pyramid pooling sits on the coarsest input (stride 64 here) and
# its own FPN on the rest; the neck first grows strides 4 and 8 from the
# backbone's stride-16 map, so the head has the fine levels pixels need.
#
# ImageNet weights (official release or timm, path or URL):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m4.pth
_base_ = 'mmseg::upernet/upernet_r50_4xb4-160k_ade20k-512x512.py'
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
        type='EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        num_extra_trans_convs=2,  # strides 4 and 8 from the stride-16 map
        num_outs=5),              # strides 4, 8, 16, 32, 64
    decode_head=dict(in_channels=[256] * 5, in_index=[0, 1, 2, 3, 4]),
    auxiliary_head=dict(in_channels=256, in_index=2))

# data/ade/ADEChallengeData2016/ (images/ and annotations/); elsewhere: tools/train.py --data-root PATH
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=1500, end=160000, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
