"""The lowest layer: the networks, their weights and their deploy form.
Imports nothing from the rest of the package but ``errors``."""
import importlib

from .arch import ARCH_SETTINGS
from .deploy import deploy, fuse_batchnorm  # the functions, not the submodule of the same name

# Imported when first used: the neck and the head subclass mmdet's and
# mmpretrain's, whose model zoos take seconds to import.
_LAZY = {'EfficientViT': '.backbones', 'EfficientViTClsHead': '.heads', 'EfficientViTFPN': '.necks'}

__all__ = ['ARCH_SETTINGS', 'deploy', 'fuse_batchnorm', *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
