"""EfficientViT's ImageNet classifier as an mmpretrain head.

The official release and timm classify the globally pooled last stage with
BatchNorm1d -> Dropout -> Linear (timm's ``NormLinear``; official ``BN_Linear``
with children ``bn``/``l``). Trained with distillation, the release adds a
``head_dist`` of the same form and averages the two at inference. Module
names are timm's, so a whole ImageNet checkpoint loads into
``ImageClassifier(backbone=EfficientViT, neck=GlobalAveragePooling,
head=EfficientViTClsHead)`` under ``backbone.`` and ``head.``.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
from mmengine.registry import MODELS
from mmpretrain.models.heads import ClsHead

from ...errors import ConfigError


class NormLinear(nn.Sequential):
    """BatchNorm1d, dropout, Linear; the names are timm's."""

    def __init__(self, in_features: int, out_features: int, drop: float = 0.0):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.drop = nn.Dropout(drop)
        self.linear = nn.Linear(in_features, out_features)

    @torch.no_grad()
    def fuse(self) -> nn.Linear:
        """The deploy form: one Linear (BatchNorm folded in, dropout gone), as
        timm and the release fold it. Eval mode only."""
        bn, linear = self.bn, self.linear
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias - bn.running_mean * scale
        fused = nn.Linear(linear.in_features, linear.out_features, device=linear.weight.device,
                          dtype=linear.weight.dtype)
        fused.weight.copy_(linear.weight * scale[None, :])
        fused.bias.copy_(linear.weight @ shift + linear.bias)
        return fused


@MODELS.register_module()
class EfficientViTClsHead(ClsHead):
    """``num_classes`` logits from the pooled last-stage features.

    ``distillation=True`` adds the release's distillation head and returns the
    mean of both, which is how the distilled checkpoints are evaluated.
    Training both heads needs a teacher for ``head_dist``, which mmpretrain
    does not provide, so fine-tuning configs use ``distillation=False`` (the
    loaded checkpoint's ``head_dist`` is then reported as unexpected).
    """

    def __init__(self, num_classes: int, in_channels: int, distillation: bool = False,
                 drop_rate: float = 0.0, init_cfg: dict | None = dict(type='TruncNormal', layer='Linear', std=0.02),
                 **kwargs):
        super().__init__(init_cfg=init_cfg, **kwargs)
        if num_classes is None:  # a folder config whose training folder was not there to count
            raise ConfigError('model.head.num_classes is None: set model.head.num_classes and '
                              'data_preprocessor.num_classes to the number of classes (this project\'s tools '
                              'count the class folders themselves when the training folder is there).')
        if num_classes <= 0:
            raise ConfigError(f'num_classes must be positive, got {num_classes}.')
        self.num_classes, self.in_channels = num_classes, in_channels
        self.head = NormLinear(in_channels, num_classes, drop_rate)
        self.head_dist = NormLinear(in_channels, num_classes, drop_rate) if distillation else None

    def pre_logits(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return feats[-1]  # pooled by the neck (GlobalAveragePooling)

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = self.pre_logits(feats)
        if self.head_dist is None:
            return self.head(x)
        if self.training:
            warnings.warn('Training EfficientViTClsHead with distillation=True trains the mean of both heads '
                          'without a teacher; fine-tune with distillation=False.')
        return (self.head(x) + self.head_dist(x)) / 2
