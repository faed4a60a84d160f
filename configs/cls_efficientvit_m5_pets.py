# EfficientViT-M5 fine-tuned on Oxford-IIIT Pets (37 breeds) at 224 px, the
# recipe in _base_/efficientvit_m5_finetune_224.py. Data under
# data/oxford_iiit_pet/: images/*.jpg and annotations/{trainval,test}.txt.
_base_ = './_base_/efficientvit_m5_finetune_224.py'

num_classes = 37
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(type='OxfordIIITPet', data_root='data/oxford_iiit_pet', split='trainval'))
val_dataloader = dict(dataset=dict(type='OxfordIIITPet', data_root='data/oxford_iiit_pet', split='test'))
test_dataloader = val_dataloader
