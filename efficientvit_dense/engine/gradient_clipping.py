"""Adaptive gradient clipping for mmengine's optimiser wrappers."""
from __future__ import annotations

import inspect

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from timm.utils.agc import adaptive_clip_grad

from ..errors import ConfigError


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class AdaptiveClipOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """mmengine's default constructor that also takes
    ``clip_grad=dict(type='agc', clip_factor=...)``: adaptive gradient
    clipping (each unit's gradient norm at most ``clip_factor`` times its
    weight norm; timm's ``adaptive_clip_grad``), which the authors' ImageNet
    and transfer training use (``--clip-grad 0.02 --clip-mode agc`` in
    EfficientViT/classification/main.py). mmengine's wrappers clip by norm
    or value only. Mixed precision (``AmpOptimWrapper``) clips after
    unscaling, as it does a norm."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        clip = optim_wrapper_cfg.get('clip_grad')
        self.adaptive_clip = None
        if isinstance(clip, dict) and clip.get('type') == 'agc':
            self.adaptive_clip = {key: value for key, value in clip.items() if key != 'type'}
            try:  # keys merged in from a child config or --cfg-options would fail only at the first step
                inspect.signature(adaptive_clip_grad).bind(None, **self.adaptive_clip)
            except TypeError as err:
                raise ConfigError(f'optim_wrapper.clip_grad={clip}: adaptive clipping (type=\'agc\') takes '
                                  f'clip_factor, eps and norm_type ({err}). To clip by norm or value instead, set '
                                  'clip_grad whole with _delete_=True, e.g. clip_grad=dict(_delete_=True, '
                                  'max_norm=1.0).') from err
            optim_wrapper_cfg = {key: value for key, value in optim_wrapper_cfg.items() if key != 'clip_grad'}
        elif isinstance(clip, dict) and 'clip_factor' in clip:
            raise ConfigError(f'optim_wrapper.clip_grad={clip}: clip_factor belongs to type=\'agc\', which was '
                              'merged with your clip_grad; set clip_grad whole with _delete_=True.')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)

    def __call__(self, model):
        wrapper = super().__call__(model)
        if self.adaptive_clip is not None:
            # What the wrapper's step calls on its parameters while clip_grad_kwargs is set (it returns no norm
            # to log, so the wrapper's grad_name is never read).
            wrapper.clip_func = adaptive_clip_grad
            wrapper.clip_grad_kwargs = self.adaptive_clip
        return wrapper
