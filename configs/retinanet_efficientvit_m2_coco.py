# RetinaNet with EfficientViT-M2: the M4 recipe with another backbone.
_base_ = './retinanet_efficientvit_m4_coco.py'

model = dict(
    backbone=dict(arch='m2'),
    neck=dict(in_channels=[128, 192, 224]))
