# Semantic FPN with EfficientViT-M5 on ADE20K: the M4 recipe with another backbone.
_base_ = './fpn_efficientvit_m4_ade20k.py'

model = dict(
    backbone=dict(arch='m5'),
    neck=dict(in_channels=[192, 288, 384]))
