from .efficientvit_cls_head import EfficientViTClsHead

__all__ = ['EfficientViTClsHead']
