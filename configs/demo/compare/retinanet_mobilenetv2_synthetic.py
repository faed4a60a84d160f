# MobileNetV2 (mmdet's) in the backbone comparison, from scratch like the others.
_base_ = '../../_base_/retinanet_baseline_synthetic.py'

model = dict(
    backbone=dict(type='MobileNetV2', out_indices=(2, 4, 6)),
    neck=dict(in_channels=[32, 96, 320]))
