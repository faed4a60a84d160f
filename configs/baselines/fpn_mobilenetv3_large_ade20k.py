# Baseline: Semantic FPN with MobileNetV3-Large (mmpretrain's), under the
# EfficientViT recipe. Layers 3, 6, 12 and 16 end strides 4, 8, 16 and 32.
# ImageNet weights: mmpretrain's mobilenet-v3-large_8xb128_in1k.
_base_ = '../_base_/fpn_baseline_ade20k.py'
custom_imports = dict(imports=['efficientvit_dense', 'mmpretrain.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='mmpretrain.MobileNetV3', arch='large', out_indices=(3, 6, 12, 16), norm_eval=True,
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='https://download.openmmlab.com/mmclassification/v0/mobilenet_v3/'
                                 'mobilenet-v3-large_8xb128_in1k_20221114-0ed9ed9a.pth')),
    neck=dict(in_channels=[24, 40, 112, 960]))
