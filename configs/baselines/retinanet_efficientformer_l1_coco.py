# Baseline: RetinaNet with EfficientFormer-L1 (mmpretrain's), under the
# EfficientViT recipe. mmpretrain's L1 ends in one attention block whose
# position biases fix the input at 224x224 (7x7 tokens); dense prediction
# needs any size, so all four stages here are the convolutional (pooling)
# blocks: the L1 widths and depths with vit_num=0. Its BatchNorm trains
# (mmpretrain's EfficientFormer has no norm_eval).
# ImageNet weights: the authors' L1, converted by mmpretrain; all but the
# last block's load (that one starts from random weights).
_base_ = '../_base_/retinanet_baseline_coco.py'
custom_imports = dict(imports=['efficientvit_dense', 'mmpretrain.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='mmpretrain.EfficientFormer',
        arch=dict(layers=[3, 2, 6, 4], embed_dims=[48, 96, 224, 448], downsamples=[False, True, True, True],
                  vit_num=0),
        out_indices=(1, 2, 3), reshape_last_feat=True,  # mmpretrain flattens the last stage even then
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='https://download.openmmlab.com/mmclassification/v0/efficientformer/'
                                 'efficientformer-l1_3rdparty_in1k_20220915-cc3e1ac6.pth')),
    neck=dict(in_channels=[96, 224, 448]))
