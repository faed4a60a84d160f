# Baseline: RetinaNet with MobileViT-S (mmpretrain's), under the EfficientViT
# recipe. Its BatchNorm trains (mmpretrain's MobileViT has no norm_eval);
# index 4 is the 640-wide expansion after the stride-32 stage.
# ImageNet weights: the authors' MobileViT-S, converted by mmpretrain.
_base_ = '../_base_/retinanet_baseline_coco.py'
custom_imports = dict(imports=['efficientvit_dense', 'mmpretrain.models'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='mmpretrain.MobileViT', arch='small', out_indices=(2, 3, 4),
        init_cfg=dict(type='Pretrained', prefix='backbone.',
                      checkpoint='https://download.openmmlab.com/mmclassification/v0/mobilevit/'
                                 'mobilevit-small_3rdparty_in1k_20221018-cb4f741c.pth')),
    neck=dict(in_channels=[96, 128, 640]))
