from .backbones import ARCH_SETTINGS, EfficientViT, fuse_batchnorm

__all__ = ['ARCH_SETTINGS', 'EfficientViT', 'fuse_batchnorm']
