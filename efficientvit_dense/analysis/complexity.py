"""Parameters and FLOPs of an arch or of any config's model.

Convention (the paper's table): one fused multiply-add counts as one FLOP;
convolutions, linear layers and the attention matrix products are counted;
normalisation, activations, softmax, resizing, pooling and element-wise
operations are not. mmengine's counter counts the products so, and by
default BatchNorm (2 per element), the other norms, resizes and pooling
too: M0 came to 80.8M against the paper's 79M, 79.2M without them.
"""
from __future__ import annotations

import logging

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import DefaultScope

from ..engine.config import config_errors
from ..errors import UnsupportedError
from ..models.arch import ARCH_SETTINGS
from .reference import imagenet_classifier

CONVENTION = ('FLOPs count each multiply-add once (mmengine\'s counter, the paper\'s convention); '
              'norms, activations, softmax, resizing, pooling and element-wise ops are not counted.')
# The operators mmengine's counter counts by default that the convention leaves out.
NOT_COUNTED = ('aten::batch_norm', 'aten::group_norm', 'aten::layer_norm', 'aten::instance_norm',
               'aten::upsample_nearest2d', 'aten::upsample_bilinear2d', 'aten::adaptive_avg_pool2d',
               'aten::grid_sampler')


def build_arch_classifier(arch: str) -> nn.Module:
    """The ImageNet classifier of ``arch`` ('m0'..'m5'), as the paper counts it."""
    if arch not in ARCH_SETTINGS:
        raise UnsupportedError(f'{arch!r} is neither an arch ({", ".join(ARCH_SETTINGS)}) nor a config file.')
    from mmpretrain.registry import MODELS

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(imagenet_classifier(arch))


def build_config_model(cfg: Config) -> nn.Module:
    """A config's model (its ``default_scope`` picks the toolbox), on the CPU."""
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import MODELS

    model_cfg = cfg.model.copy()
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'mmengine')), \
            config_errors(cfg.filename or 'the config'):
        model = MODELS.build(model_cfg)
    return revert_sync_batchnorm(model)


def _not_counted(inputs, outputs) -> int:
    return 0


def count(model: nn.Module, height: int, width: int) -> dict:
    """``{'params', 'flops'}`` of ``model``'s tensor forward on one
    ``3 x height x width`` image (detectors and segmentors: up to the raw head
    outputs, without post-processing)."""
    model = model.eval()
    # The counter warns once per operator it skips (ReLU, softmax, ...), by design; keep the output readable.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            counter = FlopAnalyzer(model, (torch.zeros(1, 3, height, width),))
            # A handle of None does not replace a default one (mmengine 0.10.7 only adds it to the ignored ops)
            flops = counter.set_op_handle(**{op: _not_counted for op in NOT_COUNTED}).total()
    finally:
        logger.setLevel(level)
    return dict(params=parameter_count(model)[''], flops=flops)
