# ResNet-18 (mmdet's) in the backbone comparison, from scratch like the others.
_base_ = '../../_base_/retinanet_baseline_synthetic.py'

model = dict(
    backbone=dict(type='ResNet', depth=18, out_indices=(1, 2, 3), norm_eval=False),
    neck=dict(in_channels=[128, 256, 512]))
