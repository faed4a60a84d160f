# RetinaNet with EfficientViT-M0: the M4 recipe with another backbone.
_base_ = './retinanet_efficientvit_m4_coco.py'

model = dict(
    backbone=dict(arch='m0'),
    neck=dict(in_channels=[64, 128, 192]))
