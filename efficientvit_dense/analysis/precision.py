"""Evaluating a checkpoint in its deploy form and a precision: float32,
bfloat16 (cast) or int8 (calibrated on images of the config's training
split, never on the split evaluated)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ..errors import ConfigError, UnsupportedError
from ..models.deploy import CAST_PRECISIONS, deploy, float32_parts
from .modes import CALIBRATION_IMAGES, PRECISIONS
from .quantize import quantize_int8


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f'Precision {precision!r}: choose one of {", ".join(PRECISIONS)}.')
    return precision


def calibration_dataloader(cfg: Config, num_images: int) -> dict:
    """The config's training split read through its test pipeline (the
    images as inference sees them, without training's random augmentation),
    its first ``num_images``, as a dataloader config."""
    if not cfg.get('train_dataloader'):
        raise ConfigError('int8 calibrates on the training split, and this config has no train_dataloader.')
    loader = copy.deepcopy(cfg.train_dataloader)
    dataset = loader.dataset
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):  # RepeatDataset and the like
        dataset = dataset.dataset
    dataset.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    dataset.indices = num_images  # mmengine's BaseDataset: the first n samples
    loader.sampler = dict(type='DefaultSampler', shuffle=False)
    loader.pop('batch_sampler', None)
    loader.update(batch_size=min(8, num_images), persistent_workers=False, num_workers=0)
    return loader


def calibration_loader(cfg: Config, num_images: int):
    """The dataloader of :func:`calibration_dataloader`, built in the
    config's scope (the dataset's registry)."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return Runner.build_dataloader(calibration_dataloader(cfg, num_images))


@torch.no_grad()
def calibration_batches(model, cfg: Config, num_images: int, size: tuple[int, int]) -> list[torch.Tensor]:
    """The first ``num_images`` of ``cfg``'s training split as the network
    sees them (test pipeline, then ``model``'s data preprocessor), resized
    to ``size``: what an export traced at one size calibrates on."""
    return [F.interpolate(model.data_preprocessor(batch, False)['inputs'], size=size, mode='bilinear')
            for batch in calibration_loader(cfg, num_images)]


def to_precision(model, precision: str, cfg: Config | None = None,
                 calibration_images: int = CALIBRATION_IMAGES):
    """An mmengine model (detector, segmentor, classifier) in its deploy
    form and ``precision``, in place; int8 (on the CPU) calibrates on the
    first ``calibration_images`` of ``cfg``'s training split, run through
    the whole predict path (``test_step``), as a two-stage detector needs."""
    check_precision(precision)
    if precision in CAST_PRECISIONS:
        return deploy(model, precision)
    if next(model.parameters()).device.type != 'cpu':
        raise UnsupportedError('int8 runs on the CPU (oneDNN\'s int8 kernels); evaluate it with CUDA_VISIBLE_DEVICES= '
                               '(empty) so that the model stays there.')
    return quantize_int8(model, calibration_loader(cfg, calibration_images), run=model.test_step)


def float32_parts_note(model, precision: str) -> str:
    """One line on what of ``model`` stays float32 in ``precision``."""
    parts = float32_parts(model)
    if precision == 'float32' or not parts:
        return ''
    return f'{precision}: float32 stays in ' + '; '.join(f'{k} ({v})' for k, v in parts.items())


class DeployHook(Hook):
    """Before the test loop (after the checkpoint has loaded): the model in
    its deploy form and ``precision``."""
    priority = 'VERY_LOW'

    def __init__(self, precision: str, calibration_images: int = CALIBRATION_IMAGES):
        self.precision = check_precision(precision)
        self.calibration_images = calibration_images

    def before_test(self, runner) -> None:
        if self.precision == 'int8' and runner.world_size > 1:
            raise UnsupportedError('Evaluate int8 in one process: each distributed rank would calibrate on its '
                                   'own share of the images and build another int8 model.')
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        to_precision(model, self.precision, runner.cfg, self.calibration_images)
        print_log(f'Evaluating the deploy form in {self.precision}. {float32_parts_note(model, self.precision)}',
                  logger='current')
