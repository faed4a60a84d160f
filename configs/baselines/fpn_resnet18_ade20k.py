# Baseline: Semantic FPN with ResNet-18 (mmseg's ResNetV1c, deep stem), under
# the EfficientViT recipe.
# ImageNet weights: OpenMMLab's resnet18_v1c (open-mmlab://resnet18_v1c).
_base_ = '../_base_/fpn_baseline_ade20k.py'

model = dict(
    backbone=dict(type='ResNetV1c', depth=18, out_indices=(0, 1, 2, 3), norm_eval=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://resnet18_v1c')),
    neck=dict(in_channels=[64, 128, 256, 512]))
