from .backbones import ARCH_SETTINGS, EfficientViT, fuse_batchnorm
from .heads import EfficientViTClsHead
from .necks import EfficientViTFPN

__all__ = ['ARCH_SETTINGS', 'EfficientViT', 'EfficientViTClsHead', 'EfficientViTFPN', 'fuse_batchnorm']
