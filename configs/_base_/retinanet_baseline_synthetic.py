# The backbone comparison's budget for a backbone with its own stride-8 map:
# mmdet's FPN, as wide as the demo's neck, gives the same five levels.
# The configs in configs/demo/compare/ add the backbone and in_channels.
_base_ = '../demo/compare/retinanet_efficientvit_m0_synthetic.py'

model = dict(
    backbone=dict(_delete_=True),
    neck=dict(_delete_=True, type='FPN', out_channels=96, start_level=0, add_extra_convs='on_input', num_outs=5))
