# The RetinaNet-EfficientViT COCO recipe (schedule, data pipeline, optimiser,
# head) for a backbone that has stride-8, 16 and 32 maps of its own: the
# configs in configs/baselines/ add the backbone and the neck's in_channels.
# mmdet's FPN then gives the same five levels (strides 8..128) as
# EfficientViT's, whose stride-8 level is grown by a transposed conv instead.
_base_ = '../retinanet_efficientvit_m4_coco.py'

model = dict(
    backbone=dict(_delete_=True),
    neck=dict(_delete_=True, type='FPN', out_channels=256, start_level=0, add_extra_convs='on_input', num_outs=5))
