# EfficientViT-M5 fine-tuned on CIFAR-100: the CIFAR-10 config with the other
# dataset. Data under data/cifar100/ (cifar-100-python/), never downloaded.
_base_ = './cls_efficientvit_m5_cifar10.py'

num_classes = 100
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
