# Mask R-CNN with EfficientViT-M4 on COCO, the paper's 1x recipe (mask AP
# 31.0 published), on mmdet's own Mask R-CNN config. The neck grows strides 4
# and 8 from the stride-16 map with two transposed convs: levels 4..64.
#
# ImageNet weights (official release or timm, path or URL):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m4.pth
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['efficientvit_dense'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='EfficientViT',
        arch='m4',
        out_indices=(0, 1, 2),
        frozen_stages=-1,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint=None)),
    neck=dict(
        _delete_=True,
        type='EfficientViTFPN',
        in_channels=[128, 256, 384],
        out_channels=256,
        num_extra_trans_convs=2,  # strides 4 and 8 from the stride-16 map
        num_outs=5))              # strides 4, 8, 16, 32, 64

# COCO in its standard layout under data/coco/; elsewhere: tools/train.py --data-root PATH
data_root = 'data/coco/'
train_dataloader = dict(batch_size=2, num_workers=2, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.0)}))
auto_scale_lr = dict(enable=False, base_batch_size=16)

# COCO 2017's training file holds a few boxes of zero height (annotation 918 among them: cocoapi#355), which
# mmdet drops as it reads them, as every published AP's training did: the checks leave them out and say how
# many, instead of stopping. Your own data (configs/custom/) stops at such boxes.
data_checks = dict(bad_boxes='drop')
