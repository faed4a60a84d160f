"""What tools/train.py and tools/test.py do, for mmdet, mmseg and mmpretrain
configs alike: each config's ``default_scope`` picks the toolbox, and
mmengine's Runner does the work.

A run is: the config prepared by one ordered list of named steps
(:data:`TRAIN_STEPS`, :data:`TEST_STEPS`; each step lives with its concern:
data checks, checkpoints, this module for the runner's own settings), then
mmengine's Runner built from it (:func:`build_runner`, which also checks the
checkpoint against the built model), then the run itself.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import os.path as osp
from dataclasses import dataclass
from typing import Callable

import torch
from mmengine.config import Config, ConfigDict
from mmengine.runner import Runner

from ..errors import ConfigError, InputNotFoundError, NotWritableError, OutputExistsError, UnsupportedError, UserError
from ..models.weights import downloaded, is_url, safe_loading_errors
from .checkpoint_fit import bare_model, check_checkpoint_fits, without_mmengine_key_dump
from .checkpointing import (
    checked_resume,
    choose_resume,
    crash_safe_checkpoints,
    hold_work_dir,
    launch_rank,
    release_work_dir,
    use_atomic_local_writes,
)
from .config import AMP_DTYPES, DATALOADERS, config_errors, iter_datasets, type_name
from .data_checks import (
    BackgroundChecks,
    DataChecksHook,
    check_data,
    check_images_while_loading,
    check_inputs,
    check_label_values_while_loading,
    data_check_options,
)
from .drawing import EVERY_IMAGE_HOOKS


@dataclass
class Request:
    """What the command line asked for, beside the config."""
    launcher: str = 'none'
    resume: str | bool = False  # train: False, True (the work dir's latest checkpoint) or a path
    amp: str | None = None  # train: mixed precision in 'float16' or 'bfloat16'
    auto_scale_lr: bool = False
    checkpoint: str | None = None  # test: the weights to evaluate
    out: str | None = None  # test: dump the raw predictions here
    show_dir: str | None = None  # test: draw the predictions here
    tta: bool = False  # test: with test-time augmentation
    checks: BackgroundChecks | None = None  # train: the annotation checks, running meanwhile
    resume_from: str | None = None  # train: the checkpoint that --resume chose (checkpointing.choose_resume)


# --------------------------------------------------------------------------
# The runner's own settings


def distributed_settings(cfg: Config, request: Request) -> None:
    """mmengine's launchers assume GPUs: they call ``torch.cuda.set_device``
    and give DDP device ids. Without GPUs (CPU runs, the 2-process test),
    join the process group over gloo here and wrap without device ids."""
    cfg.launcher = request.launcher
    if request.launcher == 'none' or torch.cuda.is_available():
        return
    if request.launcher != 'pytorch':
        raise ConfigError(f'--launcher {request.launcher} needs GPUs; without them use tools/dist_train.sh '
                          '(torchrun).')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def own_visualizer(cfg: Config, request: Request) -> None:
    """The toolboxes' configs name their visualizer 'visualizer', and
    mmengine hands back an existing instance of that name, so a second run in
    one process (train then test, a notebook) would draw and log into the
    first run's folder. Unnamed, it is named after the run."""
    if cfg.get('visualizer'):
        cfg.visualizer.pop('name', None)


def mixed_precision(cfg: Config, request: Request) -> None:
    """mmengine's AmpOptimWrapper: float16 with dynamic loss scaling, or
    bfloat16, whose float32-sized exponent needs no scaling."""
    if not request.amp:
        return
    if request.amp not in AMP_DTYPES:
        raise ConfigError(f'--amp-dtype {request.amp}: choose one of {", ".join(AMP_DTYPES)}.')
    if not torch.cuda.is_available():  # mmengine's wrapper asserts a GPU
        raise ConfigError('--amp trains in mixed precision on a GPU (mmengine\'s AmpOptimWrapper), and none is '
                          'visible here; train without --amp and --amp-dtype (float32).')
    if request.amp == 'bfloat16':
        if cfg.get('default_scope') == 'mmdet':
            # mmcv 2.1's CUDA focal loss and RoIAlign dispatch float32/float64/float16 only.
            raise ConfigError('--amp-dtype bfloat16: mmcv 2.1\'s CUDA focal loss and RoIAlign, which mmdet\'s '
                              'detectors train with, have no bfloat16 kernels; use float16.')
        if not torch.cuda.is_bf16_supported(including_emulation=False):
            raise ConfigError(f'--amp-dtype bfloat16: {torch.cuda.get_device_name()} has no native bfloat16; '
                              'use float16.')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = request.amp
    if request.amp == 'float16':
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    else:
        cfg.optim_wrapper.loss_scale = dict(enabled=False)


def scaled_learning_rate(cfg: Config, request: Request) -> None:
    if not request.auto_scale_lr:
        return
    if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
        raise ConfigError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config.')
    cfg.auto_scale_lr.enable = True


def checkpoint_to_evaluate(cfg: Config, request: Request) -> None:
    # A URL (the authors' release) is downloaded once as the runner is built (build_runner), and read by the checks.
    if not is_url(request.checkpoint) and not osp.isfile(request.checkpoint):
        raise InputNotFoundError(f'Checkpoint not found: {request.checkpoint}')
    cfg.load_from = request.checkpoint
    # An evaluation loads the weights, never resumes: a config copied from a work dir of an earlier version said
    # resume = True, under which mmengine builds the training loop (and split) and reads a training state
    cfg.resume = False


# Each toolbox's test-time augmentation model, where a config names none, with its tools/test.py's settings.
TTA_MODELS = {'mmdet': dict(type='DetTTAModel', tta_cfg=dict(nms=dict(type='nms', iou_threshold=0.5),
                                                             max_per_img=100)),
              'mmseg': dict(type='SegTTAModel'),
              'mmpretrain': dict(type='AverageClsScoreTTA')}


def augmentation_at_test_time(cfg: Config, request: Request) -> None:
    """``--tta``: the config's ``tta_model`` around the model and its
    ``tta_pipeline`` for the test split, as each toolbox's tools/test.py sets
    them up. A config without them (mmseg's hold multi-scale and flip ones)
    gets the toolboxes' default: each image and its horizontal flip, the
    predictions merged (boxes by NMS, class scores and pixel probabilities
    averaged)."""
    if not request.tta:
        return
    scope = cfg.get('default_scope')
    if scope not in TTA_MODELS:
        raise UnsupportedError(f'--tta: test-time augmentation is set up for mmdet, mmseg and mmpretrain configs; '
                               f'this one is for {scope}.')
    if scope == 'mmdet' and cfg.model.get('roi_head', {}).get('mask_head'):
        raise UnsupportedError('--tta: mmdet\'s test-time augmentation (DetTTAModel) merges boxes only; this '
                               'config predicts masks. Evaluate without --tta.')
    if request.show_dir and scope == 'mmpretrain':  # its hook draws the network's inputs, one set per augmentation
        raise UnsupportedError('--show-dir draws a classifier\'s network inputs, which --tta multiplies; draw '
                               'without --tta.')
    tta_model = cfg.get('tta_model') or TTA_MODELS[scope]
    for _, dataset in iter_datasets(ConfigDict(test_dataloader=cfg.test_dataloader)):
        dataset.pipeline = cfg.get('tta_pipeline') or flip_augmented(dataset.pipeline)
    # The TTA model gives the network the preprocessor it is built with: the network's own, where the model has
    # one, not the config's top-level one (mmengine's choice for the outer model).
    own = {'data_preprocessor': cfg.model.data_preprocessor} if 'data_preprocessor' in cfg.model else {}
    cfg.model = ConfigDict({**own, **tta_model, 'module': cfg.model})


def flip_augmented(pipeline: list) -> list:
    """A test pipeline that gives each image as it is and flipped
    horizontally, packed by its own last step (with the flip in the
    metadata, which the merge reads)."""
    pack = copy.deepcopy(pipeline[-1])
    if 'meta_keys' in pack:
        pack.meta_keys = tuple(pack.meta_keys) + tuple(key for key in ('flip', 'flip_direction')
                                                       if key not in pack.meta_keys)
    flips = [dict(type='RandomFlip', prob=0.0, direction='horizontal'),
             dict(type='RandomFlip', prob=1.0, direction='horizontal')]
    return [*pipeline[:-1], dict(type='TestTimeAug', transforms=[flips, [pack]])]


def pictures_of_predictions(cfg: Config, request: Request) -> None:
    """Ask the toolbox's visualisation hook to draw predictions into
    ``show_dir``, where each toolbox's own tools/test.py puts them, through
    this package's version of the hook (engine/drawing.py: every process
    draws, and same-named images in two folders get two drawings)."""
    if not request.show_dir:
        return
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ConfigError('This config has no visualization hook, so --show-dir cannot draw predictions.')
    kind = type_name(hook)
    kind = next((toolbox for toolbox, ours in EVERY_IMAGE_HOOKS.items() if kind == ours), kind)
    if kind in EVERY_IMAGE_HOOKS:
        hook['type'] = EVERY_IMAGE_HOOKS[kind]
    if kind == 'DetVisualizationHook':  # mmdet: under work_dir/<timestamp>/, a folder of its own each run
        hook.update(draw=True, test_out_dir=request.show_dir)
        pictures = request.show_dir if osp.isabs(request.show_dir) else None
    elif kind == 'SegVisualizationHook':  # mmseg: every image, not every 50th
        hook.update(draw=True, interval=1, out_dir=request.show_dir)
        pictures = osp.join(request.show_dir, 'vis_data', 'vis_image')
    else:  # mmpretrain: every image, not every 5000th
        hook.update(enable=True, out_dir=request.show_dir, interval=1)
        pictures = request.show_dir
    # A drawing is named after its image (and a step that starts at 0 each run): an earlier run's would be replaced.
    if pictures is not None and osp.isdir(pictures) and os.listdir(pictures):
        raise OutputExistsError(f'{pictures} is not empty: the drawings (named after the images) would replace an '
                                'earlier run\'s or mix with other files; choose another --show-dir.')
    use_atomic_local_writes()  # distributed, two processes draw an image the sampler repeats, at the same time


def dumped_predictions(cfg: Config, request: Request) -> None:
    if not request.out:
        return
    if not request.out.endswith(('.pkl', '.pickle')):  # what mmengine's DumpResults writes, checked at its build
        raise ConfigError(f'--out {request.out}: the predictions are dumped as a pickle; name a .pkl file.')
    if osp.exists(request.out):
        raise OutputExistsError(f'{request.out} already exists; choose another --out path.')
    dump = 'mmdet.DumpDetResults' if cfg.get('default_scope') == 'mmdet' else 'mmengine.DumpResults'
    evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
    cfg.test_evaluator = [*evaluators, ConfigDict(type=dump, out_file_path=request.out)]
    with missing_files_named():
        os.makedirs(osp.dirname(osp.abspath(request.out)), exist_ok=True)
    use_atomic_local_writes()  # a killed evaluation leaves no cut-off file that a rerun would take for whole


# --------------------------------------------------------------------------
# The preparations, in order

Step = Callable[[Config, Request], None]

TRAINING_SPLITS = ('train_dataloader', 'val_dataloader')


def annotations_checked_meanwhile(cfg: Config, request: Request) -> None:
    """What the annotations hold is checked while mmengine builds the run
    (:class:`BackgroundChecks`, joined before the first iteration by
    :class:`DataChecksHook`). In distributed training rank 0 checks: every
    rank would parse the same files again."""
    options = data_check_options(cfg)
    if launch_rank() == 0:
        request.checks = BackgroundChecks(cfg, TRAINING_SPLITS, options)


TRAIN_STEPS: tuple[tuple[str, Step], ...] = (
    ('the data paths exist', lambda cfg, request: check_data(cfg, TRAINING_SPLITS)),  # before anything is made
    ('one run at a time in a work dir', hold_work_dir),  # before the slow checks: a second run stops at once
    ('an earlier run is resumed, never overwritten', choose_resume),
    ('distributed settings', distributed_settings),
    ('a visualizer of its own', own_visualizer),
    ('mixed precision (--amp)', mixed_precision),
    ('learning rate scaled to the batch (--auto-scale-lr)', scaled_learning_rate),
    ('checkpoints written whole, old ones removed last', crash_safe_checkpoints),
    ('a resume goes on with its checkpoint\'s settings and runs none of its code', checked_resume),
    ('the annotations hold what the run will read', annotations_checked_meanwhile),  # last: it forks
)
TEST_STEPS: tuple[tuple[str, Step], ...] = (
    ('the data exist and read as the config says', lambda cfg, request: check_inputs(cfg, ('test_dataloader',))),
    ('the checkpoint to evaluate', checkpoint_to_evaluate),
    ('test-time augmentation (--tta)', augmentation_at_test_time),
    ('distributed settings', distributed_settings),
    ('a visualizer of its own', own_visualizer),
    ('pictures of the predictions (--show-dir)', pictures_of_predictions),
    ('a dump of the predictions (--out)', dumped_predictions),
)


def prepare(cfg: Config, request: Request, steps) -> None:
    """Apply ``steps`` to ``cfg`` in order (each may refuse the run)."""
    for _, step in steps:
        step(cfg, request)


# What mmengine logs as a run starts that no one acts on, by how each message begins: the
# environment, the whole config and the hook table (hundreds of lines, all in the log file),
# one line per parameter group of the optimiser, the iteration-based loop's notice each time it
# restarts a DefaultSampler's dataloader, and deprecation notices about mmengine's own classes.
FILE_ONLY_LINES = ('System environment:', 'Config:\n', 'Hooks will be executed in the following order',
                   'Distributed training is not used, all SyncBatchNorm', 'paramwise_options -- ',
                   'Reach the end of the dataloader, it will be restarted', '"FileClient" will be deprecated',
                   '"HardDiskBackend" is the alias')


class FileOnly(logging.Filter):
    """Keeps :data:`FILE_ONLY_LINES` out of the console; the log file still
    has every line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().lstrip('\n-').startswith(FILE_ONLY_LINES)


def readable_console(logger: logging.Logger) -> None:
    """The console of a run shows what a person acts on, and the progress
    lines; the log file stays complete."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler) and not any(isinstance(f, FileOnly) for f in handler.filters):
            handler.addFilter(FileOnly())


class ReadableRunner(Runner):
    """mmengine's Runner with :func:`readable_console` from the first line
    it logs (the environment and the config are logged as it is built)."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        readable_console(logger)
        return logger


def build_runner(cfg: Config, purpose: str, resume_from: str | None = None) -> Runner:
    """mmengine's Runner for the prepared ``cfg`` (:class:`ReadableRunner`); then, on the built
    runner, the checked image loader (given to the runner's dataloader
    settings, not to the config it saved in the work dir, which stays usable
    by the toolboxes' own tools), the checkpoint to resume from, and the
    check that the checkpoint it will load fits the model for ``purpose``
    (mmengine would only warn)."""
    with config_errors(cfg.filename or 'the config'):
        runner = ReadableRunner.from_cfg(cfg)
    if resume_from:
        # Given to the runner, not to the config it saved in the work dir as it was built: a copy saying
        # resume = True made tools/test.py resume, and a training of the copy elsewhere continue this run.
        # mmengine takes these two at construction only.
        runner._resume, runner._load_from = True, resume_from
    if runner._load_from and is_url(runner._load_from):
        runner._load_from = downloaded(runner._load_from)  # mmengine's copy is named after the URL's last part
    if purpose == 'resume':
        without_pretrained_init(runner.model)
    dataloaders = {name: getattr(runner, f'_{name}') for name in DATALOADERS}
    check_images_while_loading(cfg, dataloaders)
    check_label_values_while_loading(cfg, dataloaders)
    if runner._load_from:
        check_checkpoint_fits(bare_model(runner.model), runner._load_from, purpose)
    return runner


def without_pretrained_init(model) -> None:
    """Drop, from the built model (not the config saved in the work dir),
    every ``init_cfg`` that loads a pretrained file: mmengine initialises a
    model's weights before it resumes, so a resume read the ImageNet file
    that the checkpoint replaces, and stopped where it had moved."""
    for module in model.modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if any(isinstance(c, dict) and c.get('type') == 'Pretrained'
               for c in (init_cfg if isinstance(init_cfg, list) else [init_cfg])):
            module.init_cfg = None


@contextlib.contextmanager
def missing_files_named():
    """Inside, a file the run was told to read and could not find (a
    backbone's ``init_cfg`` checkpoint that mmengine loads, say), or a place
    it may not write (a read-only work dir), ends the run as one line with
    the operating system's words."""
    try:
        yield
    except UserError:
        raise
    except FileNotFoundError as err:
        raise InputNotFoundError(str(err)) from err
    except PermissionError as err:
        raise NotWritableError(f'{err}; choose a folder you may write into (--work-dir, --out).') from err


def train(cfg: Config, resume: str | bool = False, amp: str | None = None, auto_scale_lr: bool = False,
          launcher: str = 'none') -> Runner:
    """Train with mmengine's Runner. ``resume``: False, True (the latest
    checkpoint in the work dir) or a checkpoint path; ``amp``: None, or
    'float16' / 'bfloat16' for mixed precision on a GPU."""
    request = Request(launcher=launcher, resume=resume, amp=amp, auto_scale_lr=auto_scale_lr)
    try:
        prepare(cfg, request, TRAIN_STEPS)
        resumed = request.resume_from or (cfg.get('resume') and cfg.get('load_from'))  # --resume's, or the config's
        runner = build_runner(cfg, 'resume' if resumed else 'fine-tune', request.resume_from)
        if request.checks is not None:
            runner.register_hook(DataChecksHook(request.checks))
        # config_errors: mmengine builds the loops, evaluators, optimiser and schedulers as the run starts
        with safe_loading_errors(runner._load_from or 'a checkpoint'), without_mmengine_key_dump(), \
                missing_files_named(), config_errors(cfg.filename or 'the config'):
            try:
                runner.train()
            except Exception:
                if request.checks is not None:  # bad data can stop mmdet before the checks report: they say why
                    request.checks.result()
                raise
    finally:
        if request.checks is not None:
            request.checks.stop()
        release_work_dir(cfg.work_dir)
    return runner


def test(cfg: Config, checkpoint: str, out: str | None = None, show_dir: str | None = None,
         launcher: str = 'none', hooks=(), tta: bool = False) -> dict:
    """Evaluate ``checkpoint`` on the test split; returns the metrics.
    ``hooks``: more for the runner (the evaluation in a precision:
    ``analysis.precision.DeployHook``); ``tta``: with test-time augmentation."""
    prepare(cfg, Request(launcher, checkpoint=checkpoint, out=out, show_dir=show_dir, tta=tta), TEST_STEPS)
    with missing_files_named():  # mmengine makes the work dir as the runner is built
        runner = build_runner(cfg, purpose='evaluate')
    for hook in hooks:
        runner.register_hook(hook)
    with safe_loading_errors(checkpoint), without_mmengine_key_dump(), missing_files_named(), \
            config_errors(cfg.filename or 'the config'):  # the test loop and its evaluator are built here
        return runner.test()
