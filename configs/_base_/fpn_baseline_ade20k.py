# The Semantic FPN-EfficientViT ADE20K recipe (schedule, data pipeline,
# optimiser, head) for a backbone with maps at strides 4, 8, 16 and 32 of
# its own: the configs in configs/baselines/ add the backbone and the neck's
# in_channels. The neck and head are mmseg's four-level ones, as in its
# ResNet configs; EfficientViT grows its stride-4 and 8 levels instead.
_base_ = '../fpn_efficientvit_m4_ade20k.py'

model = dict(
    backbone=dict(_delete_=True),
    neck=dict(_delete_=True, type='FPN', out_channels=256, num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3], feature_strides=[4, 8, 16, 32]))
