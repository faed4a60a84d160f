# EfficientViT-M4 on the same data and recipe as cls_efficientvit_m5_pets.py.
_base_ = './cls_efficientvit_m5_pets.py'

model = dict(backbone=dict(arch='m4'))  # the last stage is 384 wide in both
