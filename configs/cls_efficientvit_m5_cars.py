# EfficientViT-M5 fine-tuned on Stanford Cars (196 classes) at 224 px, the
# recipe in _base_/efficientvit_m5_finetune_224.py. Data under
# data/stanford_cars/ in either layout mmpretrain's StanfordCars reads
# (car_ims/ + cars_annos.mat, or cars_{train,test}/ + devkit/).
_base_ = './_base_/efficientvit_m5_finetune_224.py'

num_classes = 196
data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(dataset=dict(type='StanfordCars', data_root='data/stanford_cars', split='train'))
val_dataloader = dict(dataset=dict(type='StanfordCars', data_root='data/stanford_cars', split='test'))
test_dataloader = val_dataloader
