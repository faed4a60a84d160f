# Baseline: RetinaNet with MobileNetV2 (mmdet's), under the EfficientViT recipe.
# ImageNet weights: OpenMMLab's mobilenet_v2 (open-mmlab://mmdet/mobilenet_v2).
_base_ = '../_base_/retinanet_baseline_coco.py'

model = dict(
    backbone=dict(type='MobileNetV2', out_indices=(2, 4, 6), norm_eval=True,
                  init_cfg=dict(type='Pretrained', checkpoint='open-mmlab://mmdet/mobilenet_v2')),
    neck=dict(in_channels=[32, 96, 320]))
