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
import sys

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


class _WithImageMeta(nn.Module):
    """An mmdet detector's tensor forward on one image, with the image's
    meta data: a two-stage detector's RPN needs its shape to clip the
    proposals it passes to the RoI heads."""

    def __init__(self, detector: nn.Module, height: int, width: int):
        super().__init__()
        from mmdet.structures import DetDataSample

        self.detector = detector
        shape = (height, width)
        self.samples = [DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape,
                                                    batch_input_shape=shape, scale_factor=(1.0, 1.0)))]

    def forward(self, inputs):
        return self.detector(inputs, self.samples, mode='tensor')


def _is_mmdet_detector(model: nn.Module) -> bool:
    if 'mmdet' not in sys.modules:  # an mmdet model was never built here
        return False
    from mmdet.models.detectors import BaseDetector

    return isinstance(model, BaseDetector)


def _count_rois(detector: nn.Module, rois: list) -> list:
    """Hooks that append how many boxes each RoI feature extraction of an
    mmdet ``detector`` runs on (one per extractor, per cascade stage in a
    Cascade R-CNN) to ``rois``."""
    from mmdet.models.roi_heads.roi_extractors import BaseRoIExtractor

    return [module.register_forward_pre_hook(lambda _, args: rois.append(int(args[1].shape[0])))
            for module in detector.modules() if isinstance(module, BaseRoIExtractor)]


def count(model: nn.Module, height: int, width: int) -> dict:
    """``{'params', 'flops', 'rois', 'training_only_params'}`` of
    ``model``'s tensor forward on one blank ``3 x height x width`` image
    (detectors and segmentors: up to the raw head outputs, without
    post-processing). ``rois`` lists the boxes each RoI feature extractor of
    a two-stage detector ran on (empty for other models): the RPN's
    proposals on that image, so their FLOPs depend on the image (mmdet's
    tool counts on a dataset image). ``training_only_params``: those of an
    mmseg auxiliary head, counted in ``params``."""
    model = model.eval()
    detector = _is_mmdet_detector(model)
    traced = _WithImageMeta(model, height, width) if detector else model
    rois = []
    hooks = _count_rois(model, rois) if detector else []
    # The counter warns once per operator it skips (ReLU, softmax, ...), by design; keep the output readable.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with torch.no_grad():
            counter = FlopAnalyzer(traced, (torch.zeros(1, 3, height, width),))
            # A handle of None does not replace a default one (mmengine 0.10.7 only adds it to the ignored ops)
            flops = counter.set_op_handle(**{op: _not_counted for op in NOT_COUNTED}).total()
    finally:
        logger.setLevel(level)
        for hook in hooks:
            hook.remove()
    # mmseg's auxiliary head trains only: its parameters are in the model (as mmseg's tool counts them), its
    # FLOPs are not in the tensor forward
    auxiliary = getattr(model, 'auxiliary_head', None) if getattr(model, 'with_auxiliary_head', False) else None
    return dict(params=parameter_count(model)[''], flops=flops, rois=rois,
                training_only_params=parameter_count(auxiliary)[''] if auxiliary is not None else 0)
