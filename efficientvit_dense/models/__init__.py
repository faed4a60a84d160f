from .backbones import ARCH_SETTINGS, EfficientViT, fuse_batchnorm
from .necks import EfficientViTFPN

__all__ = ['ARCH_SETTINGS', 'EfficientViT', 'EfficientViTFPN', 'fuse_batchnorm']
