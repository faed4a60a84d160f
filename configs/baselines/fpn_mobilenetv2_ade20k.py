# Baseline: Semantic FPN with MobileNetV2 (mmseg's), under the EfficientViT
# recipe. ImageNet weights: OpenMMLab's mobilenet_v2 (mmcls://mobilenet_v2).
_base_ = '../_base_/fpn_baseline_ade20k.py'

model = dict(
    backbone=dict(type='MobileNetV2', out_indices=(1, 2, 4, 6), norm_eval=True,
                  init_cfg=dict(type='Pretrained', checkpoint='mmcls://mobilenet_v2')),
    neck=dict(in_channels=[24, 32, 96, 320]))
