# Semantic FPN with EfficientViT-M2 on ADE20K: the M4 recipe with another backbone.
_base_ = './fpn_efficientvit_m4_ade20k.py'

model = dict(
    backbone=dict(arch='m2'),
    neck=dict(in_channels=[128, 192, 224]))
