from .arch import ARCH_SETTINGS
from .backbones import EfficientViT, fuse_batchnorm
from .heads import EfficientViTClsHead
from .necks import EfficientViTFPN

__all__ = ['ARCH_SETTINGS', 'EfficientViT', 'EfficientViTClsHead', 'EfficientViTFPN', 'fuse_batchnorm']
