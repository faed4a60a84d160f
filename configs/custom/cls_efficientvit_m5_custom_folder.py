# Fine-tune EfficientViT-M5 on your own folders of images, one folder per
# class; everything else is the transfer recipe
# (_base_/efficientvit_m5_finetune_224.py):
#
#   my_images/train/<class>/*.jpg      my_images/val/<class>/*.jpg
#
# The class list is the sorted folder names under train/ (val/ must use the
# same names); num_classes = None takes their number.
_base_ = '../_base_/efficientvit_m5_finetune_224.py'

data_root = 'data/my_images/'
train_folder, val_folder = 'train', 'val'
num_classes = None  # None: the number of class folders under train/

model = dict(head=dict(num_classes=num_classes))
data_preprocessor = dict(num_classes=num_classes)
train_dataloader = dict(dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                                     data_prefix=train_folder, pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(dataset=dict(_delete_=True, type='CustomDataset', data_root=data_root,
                                   data_prefix=val_folder, pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
