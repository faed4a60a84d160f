# EfficientViT-M5 fine-tuned on CIFAR-10 with the 32 px images upsampled to
# 224 px, as transfer papers do; the recipe in
# _base_/efficientvit_m5_finetune_224.py. Data under data/cifar10/: the
# python version of the release (cifar-10-batches-py/), never downloaded.
_base_ = './_base_/efficientvit_m5_finetune_224.py'

num_classes = 10
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))

bgr_mean, bgr_std = [103.53, 116.28, 123.675], [57.375, 57.12, 58.395]  # the ImageNet statistics, BGR
# The ImageNet pipeline without file loading (CIFAR images live in memory, in RGB): first the arrays in the
# channel order of an image file read from disk, which the data preprocessor turns to RGB, as it does the
# files tools/infer.py classifies.
train_pipeline = [
    dict(type='DatasetRGBToBGR'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='DatasetRGBToBGR'),
    dict(type='Resize', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs'),
]
dataset = dict(type='CIFAR10', data_root='data/cifar10', download=False)
train_dataloader = dict(dataset=dict(_delete_=True, **dataset, split='train', pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(_delete_=True, **dataset, split='test', pipeline=test_pipeline))
test_dataloader = val_dataloader
