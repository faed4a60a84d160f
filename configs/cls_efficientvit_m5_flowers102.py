# EfficientViT-M5 fine-tuned on Oxford Flowers-102 at 224 px (train+val for
# training, the test split for evaluation), the recipe in
# _base_/efficientvit_m5_finetune_224.py. Data under data/flowers102/:
# jpg/*.jpg, imagelabels.mat and setid.mat, as the release unpacks.
_base_ = './_base_/efficientvit_m5_finetune_224.py'

num_classes = 102
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))
# The authors' data/datasets.py repeats Flowers' 2,040 training images 100 times per epoch (their branch
# FLOWERS), so that its 300 epochs take about 240k steps at 256 images rather than 2.4k.
train_dataloader = dict(dataset=dict(
    _delete_=True, type='RepeatDataset', times=100,
    dataset=dict(type='Flowers102', data_root='data/flowers102', split='trainval',
                 pipeline={{_base_.train_pipeline}})))
val_dataloader = dict(dataset=dict(type='Flowers102', data_root='data/flowers102', split='test'))
test_dataloader = val_dataloader
