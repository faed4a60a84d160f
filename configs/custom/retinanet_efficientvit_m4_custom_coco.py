# Fine-tune RetinaNet + EfficientViT-M4 on your own COCO-format dataset.
# Copy this file to a name of your own in this folder (_base_ is a path from
# here) and change the settings below; everything else is the COCO recipe
# (configs/retinanet_efficientvit_m4_coco.py).
#
#   my_data/annotations/train.json   my_data/train/*.jpg
#   my_data/annotations/val.json     my_data/val/*.jpg
#
# `classes` must list category names of the annotation files, in the files'
# order (mmdet numbers labels that way; tools/check_dataset.py says so if not).
# Annotations of other categories stop the run unless
# data_checks = dict(unknown_categories='ignore'). num_classes follows.
_base_ = '../retinanet_efficientvit_m4_coco.py'

classes = ('cat', 'dog')
data_root = 'data/my_data/'
train_ann, train_images = 'annotations/train.json', 'train/'
val_ann, val_images = 'annotations/val.json', 'val/'

metainfo = dict(classes=classes)
model = dict(bbox_head=dict(num_classes=len(classes)))
train_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file=train_ann, data_prefix=dict(img=train_images)))
val_dataloader = dict(dataset=dict(
    data_root=data_root, metainfo=metainfo, ann_file=val_ann, data_prefix=dict(img=val_images)))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann)
test_evaluator = val_evaluator

# A box that cannot be trained or scored is a fault of your file to fix (the COCO base drops COCO 2017's few).
data_checks = dict(bad_boxes='error')
