# The backbone comparison's budget (tools/compare_backbones.py, `make
# compare`): the detection demo with a shorter schedule, so that four models
# train, test and are timed in under 40 minutes on 2 CPU cores. Every model
# of the comparison inherits this file and changes its backbone (and the
# neck's inputs) only.
_base_ = '../retinanet_efficientvit_m0_synthetic.py'

max_iters = 400
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[320, 370], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
