"""EfficientViT (Liu et al., CVPR 2023) as a dense-prediction backbone.

The network is built from "sandwich" blocks (DW conv -> FFN -> Cascaded Group
Attention -> DW conv -> FFN, each residual), a four-layer stride-16 stem and
SE patch-merging downsamples between three stages, giving maps at strides 16,
32 and 64.

Parameter names follow timm's ``efficientvit_msra`` so that a timm state
dict loads as it is (module names too, but for PatchMerging's two ReLUs);
the official release format is mapped onto these names by
:mod:`efficientvit_dense.models.weights`.
"""
from __future__ import annotations

import copy
import itertools
import logging
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from timm.layers import DropPath, SqueezeExcite
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import ConfigError, DataError
from ..arch import KEY_DIM, MIN_INPUT_SIZE, STEM_STRIDE, resolve_arch
from ..deploy import (
    DeployConv2d,
    DeployLinear,
    PackedWeightLayer,
    PointwiseLinear,
    fuse_batchnorm,
    precision_dtype,
    replace_modules,
    run_in_precision,
)
from ..weights import adapt_state_dict, load_backbone_weights


class ConvBN(nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d; folds into one conv."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, padding=0,
                 groups=1, bn_weight_init=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        conv, bn = self.conv, self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, conv.dilation, conv.groups, bias=True,
                          device=conv.weight.device, dtype=conv.weight.dtype)
        fused.weight.copy_(conv.weight * scale[:, None, None, None])
        fused.bias.copy_(bn.bias - bn.running_mean * scale)
        return fused


class Residual(nn.Module):
    """``x + drop_path(m(x))``."""

    def __init__(self, m: nn.Module, drop_path: float = 0.0):
        super().__init__()
        self.m = m
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        return x + self.drop_path(self.m(x))


class ConvFFN(nn.Module):
    """Pointwise expand -> ReLU -> pointwise project (hidden width 2x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.pw1 = ConvBN(dim, hidden_dim)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden_dim, dim, bn_weight_init=0.0)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))


class ResidualFFN(nn.Module):
    """The deploy form of ``Residual(ConvFFN)`` whose 1x1 convolutions are
    :class:`PointwiseLinear`: the ReLU in the first product, the residual
    added by the second."""

    def __init__(self, residual: Residual):
        super().__init__()
        # Eval only, as every deploy form: drop_path is the identity there.
        self.pw1, self.pw2 = residual.m.pw1, residual.m.pw2
        assert isinstance(self.pw1, PackedWeightLayer), 'the 1x1 convolutions are PointwiseLinears first'
        self.pw1.relu = True

    def forward(self, x):
        return self.pw2(self.pw1(x), residual=x)


def relative_position_index(window_size: int) -> torch.Tensor:
    """(N, N) index into a bias table of (|dy|, |dx|) offsets, N = window_size**2.

    Offsets are numbered ``|dy| * window_size + |dx|``, the order in which the
    reference implementation first meets them, so tables load unchanged.
    """
    coords = torch.tensor(list(itertools.product(range(window_size), range(window_size))))
    offsets = (coords[:, None, :] - coords[None, :, :]).abs()
    return offsets[..., 0] * window_size + offsets[..., 1]


class CascadedGroupAttention(nn.Module):
    """Attention over one window where head ``i`` sees channel chunk ``i`` plus
    the output of head ``i - 1``; queries get a depthwise conv per head."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int]):
        super().__init__()
        if len(kernels) < num_heads:
            raise ConfigError(f'{num_heads} heads need {num_heads} query kernels, got {list(kernels)}.')
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.val_dim = dim // num_heads
        self.scale = key_dim ** -0.5
        self.window_size = window_size
        self.qkvs = nn.ModuleList(
            ConvBN(dim // num_heads, 2 * key_dim + self.val_dim) for _ in range(num_heads))
        self.dws = nn.ModuleList(
            ConvBN(key_dim, key_dim, k, 1, k // 2, groups=key_dim) for k in kernels[:num_heads])
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(self.val_dim * num_heads, dim, bn_weight_init=0.0))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, window_size * window_size))
        # Derived from window_size, so never stored in or trusted from a checkpoint.
        self.register_buffer('attention_bias_idxs', relative_position_index(window_size), persistent=False)

    def attention_bias(self) -> torch.Tensor:
        """(heads, N, N) additive bias for one window."""
        return self.attention_biases[:, self.attention_bias_idxs]

    def forward(self, x):
        B, _, H, W = x.shape
        bias = self.attention_bias()
        chunks = x.chunk(self.num_heads, dim=1)
        outputs = []
        feat = chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:
                feat = feat + chunks[i]
            q, k, v = qkv(feat).split([self.key_dim, self.key_dim, self.val_dim], dim=1)
            q = dw(q)
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
            attn = (q.transpose(-2, -1) @ k) * self.scale + bias[i]
            attn = attn.softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(B, self.val_dim, H, W)
            outputs.append(feat)
        return self.proj(torch.cat(outputs, dim=1))


class LocalWindowAttention(nn.Module):
    """Runs :class:`CascadedGroupAttention` in non-overlapping windows.

    The map is zero-padded at the bottom/right to a multiple of the window
    (so a map smaller than the window becomes one padded window), as the
    reference implementation does.
    """

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int]):
        super().__init__()
        self.window_size = window_size
        self.attn = CascadedGroupAttention(dim, key_dim, num_heads, window_size, kernels)

    def forward(self, x):
        B, C, H, W = x.shape
        ws = self.window_size
        if H == ws and W == ws:
            return self.attn(x)
        pad_b, pad_r = (-H) % ws, (-W) % ws
        x = F.pad(x, (0, pad_r, 0, pad_b))
        nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
        # (B, C, nh*ws, nw*ws) -> (B*nh*nw, C, ws, ws)
        x = x.view(B, C, nh, ws, nw, ws).permute(0, 2, 4, 1, 3, 5).reshape(B * nh * nw, C, ws, ws)
        x = self.attn(x)
        x = x.view(B, nh, nw, C, ws, ws).permute(0, 3, 1, 4, 2, 5).reshape(B, C, nh * ws, nw * ws)
        return x[:, :, :H, :W]


class TokenWindowAttention(nn.Module):
    """The deploy form of :class:`LocalWindowAttention`, built from one whose
    BatchNorms are folded: each window is a (tokens, channels) matrix taken
    from the channels_last map, so a head's projections are matrix products
    over the last dimension that read their input without copies; its score
    scale is folded into the query's depthwise conv and its position bias
    added by the product itself (``baddbmm``); the proj's ReLU runs in
    place. The map is partitioned into windows (copies: a pad if needed, one
    each way) only when it is not a single window. Same outputs up to float
    rounding.
    """

    def __init__(self, module: LocalWindowAttention):
        super().__init__()
        attn = module.attn
        self.window_size = module.window_size
        self.key_dim, self.val_dim = attn.key_dim, attn.val_dim
        with torch.no_grad():
            self.qkvs = nn.ModuleList(DeployLinear(conv.weight.flatten(1), conv.bias) for conv in attn.qkvs)
            self.dws = nn.ModuleList()
            for conv in attn.dws:
                scaled = copy.deepcopy(conv)  # scores = (scale * q) k^T: the scale folded into q's last layer
                scaled.weight.mul_(attn.scale)
                scaled.bias.mul_(attn.scale)
                self.dws.append(scaled)
            self.proj = DeployLinear(attn.proj[1].weight.flatten(1), attn.proj[1].bias)
            self.register_buffer('attention_bias', attn.attention_bias().detach().clone())

    def forward(self, x):
        B, C, H, W = x.shape
        ws = self.window_size
        pad_b, pad_r = (-H) % ws, (-W) % ws
        nh, nw = (H + pad_b) // ws, (W + pad_r) // ws
        tokens = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view of a channels_last map
        if pad_b or pad_r:
            tokens = F.pad(tokens, (0, 0, 0, pad_r, 0, pad_b))
        # (B, nh*ws, nw*ws, C) -> (B*nh*nw, ws*ws, C)
        tokens = tokens.reshape(B, nh, ws, nw, ws, C).transpose(2, 3).reshape(B * nh * nw, ws * ws, C)
        chunks = tokens.chunk(len(self.qkvs), dim=-1)
        outputs = []
        feat = chunks[0]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws)):
            if i > 0:
                feat = feat + chunks[i]
            q, k, v = qkv(feat).split([self.key_dim, self.key_dim, self.val_dim], dim=-1)
            q = dw(q.unflatten(1, (ws, ws)).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).flatten(1, 2)
            scores = torch.baddbmm(self.attention_bias[i], q, k.transpose(1, 2))
            feat = torch.bmm(scores.softmax(dim=-1), v)
            outputs.append(feat)
        out = self.proj(torch.cat(outputs, dim=-1).relu_())
        out = out.view(B, nh, nw, ws, ws, C).transpose(2, 3).reshape(B, nh * ws, nw * ws, C)
        return out[:, :H, :W].permute(0, 3, 1, 2)


def _dw_conv(dim: int, bn_weight_init: float = 1.0) -> ConvBN:
    return ConvBN(dim, dim, 3, 1, 1, groups=dim, bn_weight_init=bn_weight_init)


class EfficientViTBlock(nn.Module):
    """The sandwich block: DW conv, FFN, attention, DW conv, FFN; all residual."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, window_size: int,
                 kernels: Sequence[int], drop_path: float = 0.0):
        super().__init__()
        self.dw0 = Residual(_dw_conv(dim, bn_weight_init=0.0), drop_path)
        self.ffn0 = Residual(ConvFFN(dim, 2 * dim), drop_path)
        self.mixer = Residual(LocalWindowAttention(dim, key_dim, num_heads, window_size, kernels), drop_path)
        self.dw1 = Residual(_dw_conv(dim, bn_weight_init=0.0), drop_path)
        self.ffn1 = Residual(ConvFFN(dim, 2 * dim), drop_path)

    def forward(self, x):
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


class PatchMerging(nn.Module):
    """1x1 expand to 4C -> ReLU -> 3x3 DW stride 2 -> ReLU -> SE -> 1x1 to C_out."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = 4 * dim
        self.conv1 = ConvBN(dim, hidden)
        # Two ReLUs, not one called twice as in timm: PyTorch 2 export quantisation groups a graph's
        # nodes by the module that made them, and stops on a module with two outputs.
        self.act1 = nn.ReLU()
        self.conv2 = ConvBN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.act2 = nn.ReLU()
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = ConvBN(hidden, out_dim)

    def forward(self, x):
        return self.conv3(self.se(self.act2(self.conv2(self.act1(self.conv1(x))))))

    def fuse_relus(self) -> None:
        """Deploy form: each ReLU into the layer before it (a PointwiseLinear, then a folded conv)."""
        assert isinstance(self.conv1, PackedWeightLayer), 'the 1x1 convolution is a PointwiseLinear first'
        self.conv1.relu, self.act1 = True, nn.Identity()
        self.conv2, self.act2 = DeployConv2d(self.conv2, relu=True), nn.Identity()


def _downsample(in_dim: int, out_dim: int) -> nn.Sequential:
    """Sandwich-style downsample: (DW + FFN), PatchMerging, (DW + FFN)."""
    return nn.Sequential(OrderedDict(
        res1=nn.Sequential(Residual(_dw_conv(in_dim)), Residual(ConvFFN(in_dim, 2 * in_dim))),
        patchmerge=PatchMerging(in_dim, out_dim),
        res2=nn.Sequential(Residual(_dw_conv(out_dim)), Residual(ConvFFN(out_dim, 2 * out_dim))),
    ))


class EfficientViTStage(nn.Module):

    def __init__(self, in_dim: int, out_dim: int, depth: int, num_heads: int, window_size: int,
                 kernels: Sequence[int], drop_paths: Sequence[float], downsample: bool):
        super().__init__()
        self.downsample = _downsample(in_dim, out_dim) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*(
            EfficientViTBlock(out_dim, KEY_DIM, num_heads, window_size, kernels, drop_paths[i])
            for i in range(depth)))

    def forward(self, x, with_cp: bool = False):
        x = self.downsample(x)
        for block in self.blocks:
            if with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class PatchEmbed(nn.Sequential):
    """Four stride-2 3x3 Conv-BN layers: C/8 -> C/4 -> C/2 -> C, stride 16."""

    def __init__(self, in_channels: int, dim: int):
        super().__init__()
        widths = [in_channels, dim // 8, dim // 4, dim // 2, dim]
        for i in range(4):
            self.add_module(f'conv{i + 1}', ConvBN(widths[i], widths[i + 1], 3, 2, 1))
            if i < 3:
                self.add_module(f'relu{i + 1}', nn.ReLU())

    def fuse_relus(self) -> None:
        """Deploy form: each ReLU into the folded conv before it."""
        for i in (1, 2, 3):
            setattr(self, f'conv{i}', DeployConv2d(getattr(self, f'conv{i}'), relu=True))
            setattr(self, f'relu{i}', nn.Identity())


@MODELS.register_module()
class EfficientViT(BaseModule):
    """EfficientViT backbone returning maps at strides 16, 32 and 64.

    Registered in mmengine's root ``MODELS`` registry, so mmdet, mmseg and
    mmpretrain configs all build it with ``type='EfficientViT'`` once
    ``efficientvit_dense`` is imported (``custom_imports`` in a config).

    Args:
        arch: 'm0'..'m5' or a dict with ``embed_dims``, ``depths``,
            ``num_heads`` and ``kernels``.
        in_channels: Input image channels.
        window_size: Attention window, one int or one per stage. Dense
            prediction uses 7 everywhere; timm's ImageNet models at 224 behave
            as ``(7, 7, 4)`` because they clamp the window to the stage size.
        out_indices: Stages (0, 1, 2) whose outputs are returned, finest first.
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and stages
            1..k: no gradients and BatchNorm kept in eval mode.
        norm_eval: Keep every BatchNorm in eval mode while training (its
            running statistics stay fixed), as detection fine-tuning does.
        drop_path_rate: Stochastic depth, rising linearly over the blocks.
        with_cp: Gradient checkpointing per block (less memory, more time).
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads
            either public format (official release or timm), see
            :func:`efficientvit_dense.models.weights.load_backbone_weights`.
    """

    def __init__(self,
                 arch: str | dict = 'm4',
                 in_channels: int = 3,
                 window_size: int | Sequence[int] = 7,
                 out_indices: Sequence[int] = (0, 1, 2),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.0,
                 with_cp: bool = False,
                 init_cfg: dict | None = None):
        super().__init__(init_cfg=init_cfg)
        self.arch = resolve_arch(arch)
        embed_dims = self.arch['embed_dims']
        depths = self.arch['depths']
        num_stages = len(embed_dims)
        windows = (window_size,) * num_stages if isinstance(window_size, int) else tuple(window_size)
        if len(windows) != num_stages:
            raise ConfigError(f'window_size needs one value per stage ({num_stages}), got {window_size!r}.')
        if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in windows):
            raise ConfigError(f'window_size takes whole numbers of 1 or more (tokens per side), got {window_size!r}.')
        if (not out_indices or any(i not in range(num_stages) for i in out_indices)
                or len(set(out_indices)) != len(out_indices)):
            raise ConfigError(f'out_indices must be a non-empty subset of {tuple(range(num_stages))} without '
                              f'repeats, got {out_indices!r}.')
        # Maps come out finest first whatever the order given, as in mmdet's ResNet and timm.
        out_indices = tuple(sorted(out_indices))
        if not -1 <= frozen_stages <= num_stages:
            raise ConfigError(f'frozen_stages must be in [-1, {num_stages}], got {frozen_stages}.')
        self.embed_dims = tuple(embed_dims)
        self.window_size = windows
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.deployed = False

        self.patch_embed = PatchEmbed(in_channels, embed_dims[0])
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        for i in range(num_stages):
            start = sum(depths[:i])
            self.stages.append(EfficientViTStage(
                in_dim=embed_dims[i - 1] if i else embed_dims[0], out_dim=embed_dims[i],
                depth=depths[i], num_heads=self.arch['num_heads'][i], window_size=windows[i],
                kernels=self.arch['kernels'], drop_paths=rates[start:start + depths[i]],
                downsample=i > 0))
        self._freeze_stages()
        # Any load_state_dict (mmengine's runner, mmdet's inferencers and
        # init_detector, plain torch) maps a state dict in the official
        # release's layout, e.g. the authors' detectors, as it arrives.
        self.register_load_state_dict_pre_hook(_adapt_incoming_state)

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(self.embed_dims[i] for i in self.out_indices)

    @property
    def out_strides(self) -> tuple[int, ...]:
        return tuple(STEM_STRIDE * 2 ** i for i in self.out_indices)

    @property
    def feature_info(self) -> list[dict]:
        """Each stage's output as timm describes it (``num_chs``,
        ``reduction``, ``module``), equal to timm's ``efficientvit_m*``."""
        return [dict(num_chs=dim, reduction=STEM_STRIDE * 2 ** i, module=f'stages.{i}')
                for i, dim in enumerate(self.embed_dims)]

    def forward_intermediates(self, x: torch.Tensor, indices: int | Sequence[int] | None = None,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = 'NCHW',
                              intermediates_only: bool = False):
        """timm's way to take chosen stages, whatever ``out_indices`` says:
        ``indices`` None for all, an int for the last n, or stage numbers
        (negative from the end). Returns the stages' outputs, and first the
        last stage's output unless ``intermediates_only``. There is no final
        norm (``norm`` is accepted and does nothing, as in timm's)."""
        if output_fmt != 'NCHW':
            raise ConfigError(f'forward_intermediates gives NCHW maps only, not {output_fmt!r}.')
        stages = len(self.stages)
        if indices is None:
            indices = stages
        if isinstance(indices, int):
            if not 0 < indices <= stages:
                raise ConfigError(f'forward_intermediates: the last {indices} stages of {stages} do not exist.')
            take = list(range(stages - indices, stages))
        else:
            take = [i % stages if -stages <= i < stages else None for i in indices]
            if None in take:
                raise ConfigError(f'forward_intermediates: stage numbers {list(indices)} out of range for '
                                  f'{stages} stages.')
        last = max(take) if stop_early else stages - 1
        self._check_input_size(x)
        dtype = getattr(self, 'compute_dtype', torch.float32)  # cast to bfloat16: float32 in and out, as forward
        x = self.patch_embed((x.contiguous(memory_format=torch.channels_last) if self.deployed else x).to(dtype))
        intermediates = []
        for i, stage in enumerate(self.stages[:last + 1]):
            x = stage(x, with_cp=self.with_cp and self.training)
            if i in take:
                intermediates.append(x.float())
        return intermediates if intermediates_only else (x.float(), intermediates)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map (stride 64), whatever ``out_indices`` says:
        what timm's ``forward_features`` gives a backbone user."""
        return self.forward_intermediates(x, indices=1)[0]

    def init_weights(self):
        cfg = self.init_cfg
        if not (isinstance(cfg, dict) and cfg.get('type') == 'Pretrained'):
            super().init_weights()
        elif not cfg.get('checkpoint'):
            # The COCO configs leave the ImageNet checkpoint to the user.
            print_log('EfficientViT: no ImageNet checkpoint given (init_cfg.checkpoint is empty), so the '
                      'backbone starts from random weights. Pass --cfg-options '
                      'model.backbone.init_cfg.checkpoint=PATH_OR_URL to fine-tune instead.',
                      logger='current', level=logging.WARNING)
        else:
            # mmengine's generic loader knows neither public format.
            load_backbone_weights(self, cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True

    def _check_input_size(self, x: torch.Tensor) -> None:
        H, W = x.shape[-2:]
        if H < MIN_INPUT_SIZE or W < MIN_INPUT_SIZE:
            raise DataError(f'EfficientViT needs inputs of at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} '
                            f'pixels (its coarsest map has stride 64); got {H}x{W}.')

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._check_input_size(x)
        if self.deployed:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.patch_embed(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x, with_cp=self.with_cp and self.training)
            if i in self.out_indices:
                outs.append(x)
            if i == self.out_indices[-1]:
                break
        return tuple(outs)

    def switch_to_deploy(self, precision: str = 'float32') -> 'EfficientViT':
        """The inference form, in place (docs/design.md, "The deploy form"):
        every Conv-BN folded, the attention on token matrices, pointwise
        convolutions run as NHWC matrix products on channels_last maps,
        products and convolutions on weights packed for oneDNN with the
        ReLUs after them fused in and the residuals added in their kernels
        or in place (eager CPU inference), in
        ``precision`` ('float32' or 'bfloat16': weights and activations,
        float32 in and out). Outputs stay equal up to the precision's
        rounding; the model can no longer be trained."""
        dtype = precision_dtype(precision)
        if not self.deployed:
            fuse_batchnorm(self.eval())
            replace_modules(self, lambda m: isinstance(m, LocalWindowAttention), TokenWindowAttention)
            replace_modules(self, PointwiseLinear.applies_to, PointwiseLinear)
            self._fuse_into_kernels()
            replace_modules(self, DeployConv2d.applies_to, DeployConv2d)
            for relu in [m for m in self.modules() if isinstance(m, nn.ReLU)]:
                relu.inplace = True  # each follows a fresh layer output that nothing else reads
            self.deployed = True
        return run_in_precision(self, dtype)

    def _fuse_into_kernels(self) -> None:
        """The deploy form's ReLUs and residual adds into the layers before
        them (after the 1x1 convolutions became PointwiseLinears): the
        stem's and PatchMerging's ReLUs, the FFNs' (with their residuals),
        the depthwise convs' residuals. SE's ReLU, on a 1x1 map, stays."""
        self.patch_embed.fuse_relus()
        for merge in [m for m in self.modules() if isinstance(m, PatchMerging)]:
            merge.fuse_relus()
        replace_modules(self, lambda m: isinstance(m, Residual) and isinstance(m.m, ConvFFN), ResidualFFN)
        replace_modules(self, lambda m: isinstance(m, Residual) and type(m.m) is nn.Conv2d,
                        lambda m: DeployConv2d(m.m, residual=True))

    def _freeze_stages(self):
        for module in [self.patch_embed, *self.stages][:self.frozen_stages + 1]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True):
        # The deploy form stays in eval mode: its BatchNorms are folded and some of its drop paths fused away, so in
        # training mode it would be neither model. Wrappers set the mode of all they hold (torch.onnx.export
        # restores it after tracing), so this is not an error.
        mode = mode and not getattr(self, 'deployed', False)
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self


def _adapt_incoming_state(module: EfficientViT, state_dict, prefix, *_) -> None:
    found = adapt_state_dict(state_dict, prefix, module.state_dict())
    done = (['renamed from the official release\'s layout'] if found['format'] == 'official' else []) + \
        ([f'{len(found["resized"])} attention-bias tables resized to the window'] if found['resized'] else [])
    if done:
        where = f' under {prefix!r}' if prefix else ''
        print_log(f'EfficientViT weights{where}: {"; ".join(done)}.', logger='current', level=logging.INFO)
