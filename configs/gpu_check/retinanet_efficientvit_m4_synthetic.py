# `make gpu-check` (tools/gpu_check.py): RetinaNet-M4 exactly as configured for
# COCO (widths, heads, optimiser, 2 images per GPU), trained for a few
# iterations from scratch on the synthetic shapes (tools/demo.py makes them)
# stretched to COCO's 1333x800, then tested. It checks that the GPU path runs
# and how fast; the metric after 20 iterations means nothing.
_base_ = '../retinanet_efficientvit_m4_coco.py'

classes = ('circle', 'square', 'triangle', 'star', 'cross', 'ring')
data_root = 'data/synthetic/'
max_iters = 20
image_size = (1333, 800)  # COCO's test scale, as mmdet writes it (width, height)

model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=len(classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# tools/test.py --tta (mmdet's too): each image and its flip, stretched as above; the base's are COCO's three scales.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='TestTimeAug', transforms=[
        [dict(type='Resize', scale=image_size, keep_ratio=False)],
        [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
        [dict(type='LoadAnnotations', with_bbox=True)],
        [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                                               'flip_direction'))]]),
]
train_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = []  # COCO's warm-up lasts 500 iterations; these few run at the base rate
default_hooks = dict(logger=dict(interval=5), checkpoint=dict(by_epoch=False, interval=max_iters))
log_processor = dict(by_epoch=False)
