# RetinaNet with EfficientViT-M4 on COCO, the paper's 1x recipe
# (box AP 32.7 published): AdamW lr 1e-4, weight decay 0.05 except on the
# attention biases, 500-iteration linear warm-up, steps at epochs 8 and 11,
# 12 epochs, 1333x800 keep-ratio, flip 0.5, 16 images per step (8 GPUs x 2),
# backbone BatchNorm in eval mode. Everything else comes from mmdet's own
# RetinaNet config.
#
# ImageNet weights (official release or timm, path or URL):
#   --cfg-options model.backbone.init_cfg.checkpoint=checkpoints/efficientvit_m4.pth
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
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
        start_level=0,
        add_extra_convs='on_input',
        num_extra_trans_convs=1,  # stride 8 from the stride-16 map
        num_outs=5))              # strides 8, 16, 32, 64, 128

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
# The 1x schedule of the base (warm-up 500 iterations from 0.001, steps at
# epochs 8 and 11, 12 epochs) is the paper's. --auto-scale-lr rescales lr
# from this batch size to yours.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# COCO 2017's training file holds a few boxes of zero height (annotation 918 among them: cocoapi#355), which
# mmdet drops as it reads them, as every published AP's training did: the checks leave them out and say how
# many, instead of stopping. Your own data (configs/custom/) stops at such boxes.
data_checks = dict(bad_boxes='drop')
