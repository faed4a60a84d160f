from .efficientvit import EfficientViT, fuse_batchnorm

__all__ = ['EfficientViT', 'fuse_batchnorm']
