# EfficientViT-M4 in the backbone comparison (same budget as M0).
_base_ = './retinanet_efficientvit_m0_synthetic.py'

model = dict(backbone=dict(arch='m4'), neck=dict(in_channels=[128, 256, 384]))
