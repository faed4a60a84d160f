# Baseline: RetinaNet with ResNet-18 (mmdet's), under the EfficientViT recipe.
# ImageNet weights: torchvision's resnet18 (downloaded by mmengine on first use).
_base_ = '../_base_/retinanet_baseline_coco.py'

model = dict(
    backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3), norm_eval=True,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet18')),
    neck=dict(in_channels=[128, 256, 512]))
