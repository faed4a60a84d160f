"""timm's ``efficientvit_msra`` as the reference for this implementation.

Equivalence with timm on the same weights is what "correct backbone"
means here. These helpers build a timm model with every weight and BN
statistic random (no download), express its weights in the official
release's layout, and measure how far our outputs are from timm's.
"""
from __future__ import annotations

import copy

import timm
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..models import ARCH_SETTINGS, EfficientViT
from ..models.arch import IMAGENET_224_WINDOWS
from ..models.weights import load_state_into, native_to_official, official_to_native
from .benchmark import ForwardFeatures
from .timing import images_per_second


def imagenet_classifier(arch: str, distillation: bool = False) -> dict:
    """The mmpretrain model config of the ImageNet classifier that timm's
    ``efficientvit_{arch}`` and the official release describe."""
    return dict(
        type='ImageClassifier',
        backbone=dict(type='EfficientViT', arch=arch, window_size=IMAGENET_224_WINDOWS, out_indices=(2,)),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='EfficientViTClsHead', num_classes=1000, in_channels=ARCH_SETTINGS[arch]['embed_dims'][-1],
                  distillation=distillation))


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BatchNorm statistic a random value, so that
    a wrong mapping or an ignored tensor cannot go unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return model


def random_timm_model(arch: str, seed: int = 0) -> nn.Module:
    """timm's ``efficientvit_{arch}`` (ImageNet head included), randomised, in eval mode."""
    return randomize_(timm.create_model(f'efficientvit_{arch}', pretrained=False), seed).eval()


def official_state_dict(model: nn.Module | dict) -> dict[str, torch.Tensor]:
    """A backbone's weights (timm's model, ours, or their state dict) in the
    official release's layout, including the persistent
    ``attention_bias_idxs`` buffers the release carries. They are filled
    with zeros: a loader that trusted them would give wrong outputs."""
    state = native_to_official(model.state_dict() if isinstance(model, nn.Module) else model)
    for key in [k for k in state if k.endswith('attention_biases')]:
        n = state[key].shape[1]
        state[key.replace('attention_biases', 'attention_bias_idxs')] = torch.zeros(n, n, dtype=torch.long)
    return state


def release_detector_checkpoint(model: nn.Module, classes: tuple[str, ...] = ()) -> dict:
    """A whole model's weights as the authors' downstream code (mmdet 2.x on
    mmcv 1.x) saves a detector: ``{'meta', 'state_dict', 'optimizer'}``, the
    backbone under the official names with the persistent
    ``attention_bias_idxs`` buffers (zeros, as in :func:`official_state_dict`),
    neck and heads under mmdet's names, the class names as mmcv 1's ``CLASSES``."""
    state = model.state_dict()
    backbone = {k[len('backbone.'):]: v for k, v in state.items() if k.startswith('backbone.')}
    release = {f'backbone.{k}': v for k, v in official_state_dict(backbone).items()}
    release.update((k, v) for k, v in state.items() if not k.startswith('backbone.'))
    meta = dict(mmcv_version='1.4.0', mmdet_version='2.25.0', time='Tue Mar  7 10:00:00 2023', epoch=12,
                iter=87960, CLASSES=tuple(classes), config='# the mmdet 2.x config text')
    return dict(meta=meta, state_dict=release, optimizer=dict(state={}, param_groups=[]))


@torch.no_grad()
def max_abs_difference_to_timm(arch: str, reference: nn.Module | None = None, seed: int = 0,
                               batch_size: int = 2) -> dict[str, float]:
    """Largest absolute difference between our stage outputs and timm's at
    224x224, for weights given in timm's format and in the official one.
    ``reference``: timm's model to compare with (default: a random one)."""
    reference = random_timm_model(arch, seed) if reference is None else reference
    x = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(seed + 1))
    expected = reference.forward_intermediates(x, intermediates_only=True)
    result = {}
    for fmt, state in (('timm', dict(reference.state_dict())),
                       ('official', official_to_native(official_state_dict(reference)))):
        model = EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).eval()
        load_state_into(model, state, fmt=fmt)
        result[fmt] = max((ours - theirs).abs().max().item() for ours, theirs in zip(model(x), expected))
    return result


def compare_with_timm(archs, batch_size: int = 16, repeats: int = 5) -> list[dict]:
    """For each arch, with timm's random weights: the largest difference of
    our stage outputs to timm's (weights given in either format), and the
    images/s at 224 of timm's ``forward_features``, our backbone and our
    deployed backbone, timed in turns. The three compute the same network
    without its classifier, so their ratios compare like with like."""
    rows = []
    for arch in archs:
        reference = random_timm_model(arch)
        ours = EfficientViT(arch, window_size=IMAGENET_224_WINDOWS).eval()
        load_state_into(ours, dict(reference.state_dict()))
        deployed = copy.deepcopy(ours).switch_to_deploy()
        speeds = images_per_second([ForwardFeatures(reference.forward_features), ours, deployed], batch_size,
                                   repeats=repeats)
        rows.append(dict(arch=arch, max_difference=max_abs_difference_to_timm(arch, reference),
                         images_per_s=dict(zip(('timm', 'ours', 'deploy'), speeds))))
    return rows
