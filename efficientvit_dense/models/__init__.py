"""The lowest layer: the networks, their weights and their deploy form.
Imports nothing from the rest of the package but ``errors``."""
from .arch import ARCH_SETTINGS
from .backbones import EfficientViT
from .deploy import deploy, fuse_batchnorm
from .heads import EfficientViTClsHead
from .necks import EfficientViTFPN

__all__ = ['ARCH_SETTINGS', 'EfficientViT', 'EfficientViTClsHead', 'EfficientViTFPN', 'deploy', 'fuse_batchnorm']
