"""torch.hub entry points: the EfficientViT backbones, as a timm user builds them.

    model = torch.hub.load('path/to/efficientvit-dense', 'efficientvit_m4', source='local',
                           pretrained='efficientvit_m4.pth')
    features = model.eval().forward_intermediates(images, intermediates_only=True)  # strides 16, 32, 64

``pretrained``: a checkpoint path or URL in any layout the project reads (the
authors' release, timm's, this project's). The windows default to those of
timm's ImageNet models at 224 (7, 7, 4), so outputs equal timm's for the same
weights; pass ``window_size=7`` for the dense tasks' windows. Other keyword
arguments go to :class:`efficientvit_dense.models.EfficientViT`
(``out_indices``, ``frozen_stages``, ...); ``model(x)`` returns the maps of
``out_indices``, ``model.feature_info`` describes every stage.
"""
dependencies = ['torch', 'timm', 'mmengine']


def _efficientvit(arch: str, pretrained: str | None = None, **kwargs):
    from efficientvit_dense.models import EfficientViT
    from efficientvit_dense.models.arch import IMAGENET_224_WINDOWS
    from efficientvit_dense.models.weights import load_backbone_weights
    model = EfficientViT(arch, **{'window_size': IMAGENET_224_WINDOWS, **kwargs})
    if pretrained is True:  # timm's habit; nothing is downloaded by name here
        from efficientvit_dense.errors import InputNotFoundError
        raise InputNotFoundError(f'pretrained takes the checkpoint\'s path or URL (the authors\' release or timm\'s '
                                 f'weights: pretrained=\'efficientvit_{arch}.pth\'), not True.')
    if pretrained:
        load_backbone_weights(model, pretrained)
    return model  # in training mode, as timm.create_model returns it


def efficientvit_m0(pretrained=None, **kwargs):
    """EfficientViT-M0 backbone."""
    return _efficientvit('m0', pretrained, **kwargs)


def efficientvit_m1(pretrained=None, **kwargs):
    """EfficientViT-M1 backbone."""
    return _efficientvit('m1', pretrained, **kwargs)


def efficientvit_m2(pretrained=None, **kwargs):
    """EfficientViT-M2 backbone."""
    return _efficientvit('m2', pretrained, **kwargs)


def efficientvit_m3(pretrained=None, **kwargs):
    """EfficientViT-M3 backbone."""
    return _efficientvit('m3', pretrained, **kwargs)


def efficientvit_m4(pretrained=None, **kwargs):
    """EfficientViT-M4 backbone."""
    return _efficientvit('m4', pretrained, **kwargs)


def efficientvit_m5(pretrained=None, **kwargs):
    """EfficientViT-M5 backbone."""
    return _efficientvit('m5', pretrained, **kwargs)
