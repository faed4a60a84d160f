"""FPN for EfficientViT, whose backbone stops at stride 16.

Finer levels (stride 8 for RetinaNet, strides 8 and 4 for Mask R-CNN) are
grown from the top-down stride-16 lateral with 2x2 stride-2 transposed convs,
each followed by a 3x3 conv, as the reference detection code does; module
names match it, so its released detector weights load.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from mmengine.registry import MODELS

from ...errors import ConfigError


@MODELS.register_module()
class EfficientViTFPN(FPN):
    """mmdet's FPN plus ``num_extra_trans_convs`` finer levels.

    ``num_outs`` counts every output, finest first: with backbone strides
    (16, 32, 64), ``num_extra_trans_convs=1``, ``num_outs=5`` and
    ``add_extra_convs='on_input'`` the strides are 8, 16, 32, 64, 128
    (RetinaNet); with 2 transposed convs and ``num_outs=5`` they are 4..64
    (Mask R-CNN). Registered in mmengine's root registry, so mmdet and mmseg
    configs both build it.
    """

    def __init__(self, in_channels, out_channels, num_outs, num_extra_trans_convs=0, **kwargs):
        if not 0 <= num_extra_trans_convs < num_outs:
            raise ConfigError(f'num_extra_trans_convs must be in [0, num_outs={num_outs}), '
                              f'got {num_extra_trans_convs}.')
        super().__init__(in_channels, out_channels, num_outs - num_extra_trans_convs, **kwargs)
        self.num_extra_trans_convs = num_extra_trans_convs
        conv_cfg, norm_cfg, act_cfg = kwargs.get('conv_cfg'), kwargs.get('norm_cfg'), kwargs.get('act_cfg')
        self.extra_trans_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 2, stride=2, conv_cfg=dict(type='deconv'),
                       norm_cfg=None if self.no_norm_on_lateral else norm_cfg, act_cfg=act_cfg, inplace=False)
            for _ in range(num_extra_trans_convs))
        self.extra_fpn_convs = nn.ModuleList(
            ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=conv_cfg, norm_cfg=norm_cfg,
                       act_cfg=act_cfg, inplace=False)
            for _ in range(num_extra_trans_convs))

    def forward(self, inputs):
        # mmdet's FPN.forward keeps the top-down laterals to itself, and the
        # finer levels grow from them, so the pass is written out here.
        assert len(inputs) == len(self.in_channels)
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                upsampled = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                upsampled = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + upsampled

        # Finer levels from the finest top-down lateral, finest first.
        finer = []
        source = laterals[0]
        for trans_conv in self.extra_trans_convs:
            source = trans_conv(source)
            finer.insert(0, source)
        outs = [conv(lateral) for conv, lateral in zip(self.extra_fpn_convs, finer)]

        outs += [self.fpn_convs[i](lateral) for i, lateral in enumerate(laterals)]
        used = len(laterals)
        coarser = self.num_outs - used  # levels above the backbone's coarsest
        if coarser > 0 and not self.add_extra_convs:
            for _ in range(coarser):
                outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        elif coarser > 0:
            source = {'on_input': inputs[self.backbone_end_level - 1], 'on_lateral': laterals[-1],
                      'on_output': outs[-1]}[self.add_extra_convs]
            outs.append(self.fpn_convs[used](source))
            for i in range(used + 1, self.num_outs):
                outs.append(self.fpn_convs[i](F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]))
        return tuple(outs)
