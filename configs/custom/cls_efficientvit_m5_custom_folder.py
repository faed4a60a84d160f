# Fine-tune EfficientViT-M5 on your own folders of images, one folder per
# class; everything else is the transfer recipe
# (_base_/efficientvit_m5_finetune_224.py):
#
#   my_images/train/<class>/*.jpg      my_images/val/<class>/*.jpg
#
# The class list is the sorted folder names under train/ (val/ must use the
# same names). This project's tools count them when num_classes is None and
# check a number you set against them; mmpretrain's own tools (train.py,
# test.py, get_flops.py, ImageClassificationInferencer) cannot count, so for
# them set num_classes to the number of class folders. (A config with
# `_base_` may not import modules to count them itself: mmengine then reads
# it as a lazy-import config and refuses the `_base_` line.)
_base_ = '../_base_/efficientvit_m5_finetune_224.py'

data_root = 'data/my_images/'
train_folder, val_folder = 'train', 'val'
num_classes = None  # None: the number of class folders under train/, counted by this project's tools

model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                                     data_prefix=train_folder, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                                   data_prefix=val_folder, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
