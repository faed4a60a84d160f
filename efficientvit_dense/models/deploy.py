"""The deploy form of a model: every BatchNorm folded into the layer before
it, and EfficientViT's pointwise convolutions run as matrix products on
channels_last maps. Outputs stay equal up to float rounding in eval mode; a
deployed model can no longer be trained. Used by the benchmark, the ONNX
export and EfficientViT.switch_to_deploy().
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F


class PointwiseLinear(nn.Module):
    """A folded 1x1 convolution run as a matrix product over channels.

    On a channels_last map the NHWC view is contiguous, so this is one GEMM
    without copies; oneDNN's 1x1 convolution on the same data is up to 2.5x
    slower on CPU. The output is channels_last again, ready for the next one.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().flatten(1))
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach())

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
                and module.stride == (1, 1) and module.padding == (0, 0) and module.dilation == (1, 1))

    def forward(self, x):
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


def replace_modules(model: nn.Module, matches, replacement) -> None:
    """Replace every submodule for which ``matches`` holds (not looking
    inside it) by ``replacement(submodule)``, in place."""
    for name, child in model.named_children():
        if matches(child):
            setattr(model, name, replacement(child))
        else:
            replace_modules(child, matches, replacement)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv-BN (and BN-Linear) pair into a single layer, in place.

    This is the deploy form: same outputs in eval mode, no BatchNorm left in
    the folded parts, and far fewer kernels per image. The model must be in
    eval mode; it cannot be trained afterwards.
    """
    replace_modules(model, lambda module: hasattr(module, 'fuse'), lambda module: module.fuse())
    return model


def deploy(model: nn.Module) -> nn.Module:
    """The deploy form of any model, in place: modules with a deploy form of
    their own switched to it (EfficientViT backbones:
    :meth:`EfficientViT.switch_to_deploy`), this project's other Conv-BN and
    BN-Linear pairs folded (:func:`fuse_batchnorm`), then every other
    convolution followed by a BatchNorm (ResNets, necks) by mmcv's
    ``fuse_conv_bn``."""
    from mmcv.cnn import fuse_conv_bn

    model.eval()
    for module in [m for m in model.modules() if hasattr(m, 'switch_to_deploy')]:
        module.switch_to_deploy()
    return fuse_conv_bn(fuse_batchnorm(model))
