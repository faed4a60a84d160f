# RetinaNet with EfficientViT-M5: the M4 recipe with another backbone.
_base_ = './retinanet_efficientvit_m4_coco.py'

model = dict(
    backbone=dict(arch='m5'),
    neck=dict(in_channels=[192, 288, 384]))
