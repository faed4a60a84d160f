"""Evaluating a checkpoint in its deploy form and a precision: float32,
bfloat16 (cast) or int8 (calibrated on images of the config's training
split, never on the split evaluated)."""
from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel

from ..engine.checkpoint_fit import bare_model
from ..errors import ConfigError, DataError, UnsupportedError
from ..models.deploy import CAST_PRECISIONS, deploy, float32_parts
from .modes import CALIBRATION_IMAGES, PRECISIONS
from .quantize import quantize_int8
from .records import emulation_note


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ConfigError(f'Precision {precision!r}: choose one of {", ".join(PRECISIONS)}.')
    return precision


def spread_evenly(total: int, count: int) -> list[int]:
    """``count`` indices of ``range(total)`` spread evenly over it, the first
    included (all of them when ``count >= total``): a split sorted by class
    (class folders) gives every part of it a share, the same ones every run."""
    count = min(count, total)
    return [i * total // count for i in range(count)]


def split_images(cfg: Config, split: str, num_images: int) -> tuple[torch.utils.data.Dataset, int]:
    """``num_images`` of ``cfg``'s ``split`` ('train' or 'test') spread
    evenly over it, read through the test pipeline (the images as inference
    sees them, without training's random augmentation), as a dataset; and
    how many the split holds. Built in the config's scope (the dataset's
    registry). An mmengine dataset keeps only the chosen images' records:
    the dataloader built over it deep-copies it, which for a whole split
    (COCO's 118k records) costs memory and seconds."""
    from mmengine.dataset import BaseDataset
    from mmengine.registry import DATASETS, DefaultScope

    if not cfg.get(f'{split}_dataloader'):
        raise ConfigError(f'int8 reads images of the {split} split, and this config has no {split}_dataloader: '
                          'add one.')
    dataset = copy.deepcopy(cfg[f'{split}_dataloader'].dataset)
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):  # RepeatDataset and the like
        dataset = dataset.dataset  # each image once
    dataset.pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        dataset = DATASETS.build(dataset)
    if hasattr(dataset, 'full_init'):
        dataset.full_init()
    total = len(dataset)
    chosen = spread_evenly(total, num_images)
    if isinstance(dataset, BaseDataset):
        dataset.get_subset_(chosen)
        return dataset, total
    return torch.utils.data.Subset(dataset, chosen), total


def images_loader(cfg: Config, split: str, images: torch.utils.data.Dataset):
    """A dataloader over ``images`` of ``split`` (from :func:`split_images`),
    in order, collated as the config's loader of that split does."""
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    loader = copy.deepcopy(cfg[f'{split}_dataloader'])
    loader.pop('batch_sampler', None)
    # Assigned, not merged (ConfigDict.update merges dicts): the training split's sampler (the transfer
    # recipe's RepeatAugSampler) must leave none of its options behind. Every image is used, the last
    # batch too.
    loader['sampler'] = dict(type='DefaultSampler', shuffle=False)
    loader.update(dataset=images, batch_size=min(8, max(1, len(images))), persistent_workers=False, num_workers=0,
                  drop_last=False)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope')):
        return Runner.build_dataloader(loader)


def calibration_note(used: int, total: int) -> str:
    """Which images calibrate int8, in words, for what the tools print and record."""
    return f'{used} images spread evenly over the {total} of the training split'


@torch.no_grad()
def network_batches(model, cfg: Config, split: str, images: torch.utils.data.Dataset,
                    size: tuple[int, int]) -> list[torch.Tensor]:
    """``images`` of ``split`` (from :func:`split_images`) as the network
    sees them (test pipeline, then ``model``'s data preprocessor), resized
    to ``size``: what an export traced at one size calibrates on, or is
    checked on."""
    return [F.interpolate(model.data_preprocessor(batch, False)['inputs'], size=size, mode='bilinear')
            for batch in images_loader(cfg, split, images)]


def onnx_int8_images(model, cfg: Config, calibration_images: int, size: tuple[int, int],
                     check_images: int = 2) -> tuple[list[torch.Tensor], torch.Tensor, str]:
    """For an ONNX int8 export of ``model`` at ``size``: the calibration
    batches (``calibration_images`` spread evenly over the training split),
    the images its error is checked on (``check_images`` of the test split,
    which calibration never sees), and which images calibrated, in words."""
    calibration, total = split_images(cfg, 'train', calibration_images)
    check = network_batches(model, cfg, 'test', split_images(cfg, 'test', check_images)[0], size)
    if not check:
        raise DataError('The test split holds no images to check the int8 export on: point the config\'s '
                        'test_dataloader at some (--cfg-options, --data-root).')
    check = torch.cat(check)
    return (network_batches(model, cfg, 'train', calibration, size), check,
            f'calibrated on {calibration_note(len(calibration), total)}')


def to_precision(model, precision: str, cfg: Config | None = None,
                 calibration_images: int = CALIBRATION_IMAGES):
    """An mmengine model (detector, segmentor, classifier) in its deploy
    form and ``precision``, in place; int8 as :func:`calibrate_int8`."""
    check_precision(precision)
    if precision in CAST_PRECISIONS:
        return deploy(model, precision)
    calibrate_int8(model, cfg, calibration_images)
    return model


def calibrate_int8(model, cfg: Config, calibration_images: int = CALIBRATION_IMAGES) -> str:
    """An mmengine model (on the CPU) in its int8 deploy form, in place,
    calibrated on ``calibration_images`` spread evenly over ``cfg``'s
    training split (:func:`split_images`; never the split evaluated), run
    through the whole predict path (``test_step``), as a two-stage detector
    needs. Returns which images calibrated, in words."""
    if next(model.parameters()).device.type != 'cpu':
        raise UnsupportedError('int8 runs on the CPU (oneDNN\'s int8 kernels); evaluate it with CUDA_VISIBLE_DEVICES= '
                               '(empty) so that the model stays there.')
    images, total = split_images(cfg, 'train', calibration_images)
    calibrated_on = calibration_note(len(images), total)
    print_log(f'int8: calibrating on {calibrated_on}.', logger='current')
    quantize_int8(model, images_loader(cfg, 'train', images), run=model.test_step)
    return calibrated_on


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
        self.calibrated_on = None  # int8: which images calibrated, once they have

    def before_test(self, runner) -> None:
        if self.precision == 'int8' and runner.world_size > 1:
            raise UnsupportedError('Evaluate int8 in one process: each distributed rank would calibrate on its '
                                   'own share of the images and build another int8 model.')
        if self.precision == 'int8' and any(isinstance(part, BaseTTAModel) for part in runner.model.modules()):
            raise UnsupportedError('Evaluate int8 without --tta: the calibration reads images through the test '
                                   'pipeline, which test-time augmentation turns into several views of each.')
        model = bare_model(runner.model)
        note = emulation_note(self.precision) if next(model.parameters()).device.type == 'cpu' else ''
        if note:
            print_log(note, logger='current', level=logging.WARNING)
        if self.precision == 'int8':
            self.calibrated_on = calibrate_int8(model, runner.cfg, self.calibration_images)
        else:
            to_precision(model, self.precision)
        print_log(f'Evaluating the deploy form in {self.precision}. {float32_parts_note(model, self.precision)}',
                  logger='current')
