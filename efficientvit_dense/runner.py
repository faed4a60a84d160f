"""What tools/train.py and tools/test.py do, for mmdet, mmseg and mmpretrain
configs alike: each config's ``default_scope`` picks the toolbox, and
mmengine's Runner does the work.
"""
from __future__ import annotations

import os
import os.path as osp

import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from .checkpoint_fit import check_checkpoint_fits, without_mmengine_key_dump
from .checkpointing import crash_safe_hooks, latest_checkpoint, use_atomic_local_writes
from .config_checks import check_top_level_keys, config_errors
from .data_checks import DataNotFoundError, check_images_while_loading, check_inputs, iter_datasets
from .models.weights import safe_loading_errors

EVALUATORS = ('val_evaluator', 'test_evaluator')

def resolve_config_path(path: str) -> str:
    """A config file, or a toolbox's own config named as in ``_base_``
    (``mmdet::retinanet/retinanet_r50_fpn_1x_coco.py``), e.g. a peer to compare with."""
    if '::' in path:
        try:  # mmengine's own lookup for `_base_`
            path, _ = Config._get_cfg_path(path, '')
        except (FileNotFoundError, ModuleNotFoundError, ValueError) as err:
            raise FileNotFoundError(f'Config not found: {path} ({err}).') from err
    if not osp.isfile(path):
        raise FileNotFoundError(f'Config file not found: {path}')
    return path


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None,
                data_root: str | None = None) -> Config:
    """Read a config, apply ``--cfg-options``, pick the work dir (default
    ``work_dirs/<config name>``) and move the data root if asked."""
    path = resolve_config_path(path)
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    check_top_level_keys(cfg, path)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    if data_root is not None:
        set_data_root(cfg, data_root)
    fill_classes_from_folders(cfg)
    return cfg


def fill_classes_from_folders(cfg: Config) -> None:
    """A classifier on class-per-folder data (mmpretrain's CustomDataset)
    may leave ``num_classes`` None: it becomes the number of class folders in
    the training folder, and top-k accuracy stops at that number."""
    head = cfg.get('model', {}).get('head')
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    if not isinstance(head, dict) or head.get('num_classes', 0) is not None or dataset.get('type') != 'CustomDataset':
        return
    folder = osp.join(dataset.get('data_root') or '', dataset.get('data_prefix') or '')
    if not osp.isdir(folder):
        return  # check_data names the missing folder when the data is needed
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    if not classes:
        raise DataNotFoundError(f'{folder} holds no class folders; expected {folder}/<class>/<image>.')
    head['num_classes'] = len(classes)
    if isinstance(cfg.get('data_preprocessor'), dict):
        cfg.data_preprocessor['num_classes'] = len(classes)
    for evaluator in _evaluators(cfg):
        if evaluator.get('type') == 'Accuracy' and isinstance(evaluator.get('topk'), (list, tuple)):
            evaluator['topk'] = tuple(k for k in evaluator['topk'] if k <= len(classes)) or (1,)


def _evaluators(cfg: Config):
    for name in EVALUATORS:
        evaluator = cfg.get(name)
        for item in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
            if isinstance(item, dict):
                yield item


def set_data_root(cfg: Config, data_root: str) -> None:
    """Point every dataset, and every evaluator file under the old root, at
    ``data_root``."""
    data_root = data_root.rstrip('/') + '/'
    old_roots = {ds.get('data_root') for _, ds in iter_datasets(cfg)} | {cfg.get('data_root')}
    old_roots = {r.rstrip('/') + '/' for r in old_roots if r}
    cfg.data_root = data_root
    for _, dataset in iter_datasets(cfg):
        dataset['data_root'] = data_root
    for evaluator in _evaluators(cfg):
        ann_file = evaluator.get('ann_file')
        for old in old_roots:
            if isinstance(ann_file, str) and ann_file.startswith(old):
                evaluator['ann_file'] = data_root + ann_file[len(old):]


def _own_visualizer(cfg: Config) -> None:
    """The toolboxes' configs name their visualizer 'visualizer', and
    mmengine hands back an existing instance of that name, so a second run in
    one process (train then test, a notebook) would draw and log into the
    first run's folder. Unnamed, it is named after the run."""
    if cfg.get('visualizer'):
        cfg.visualizer.pop('name', None)


def _distributed_without_gpus(cfg: Config, launcher: str) -> None:
    """mmengine's launchers assume GPUs: they call ``torch.cuda.set_device``
    and give DDP device ids. Without GPUs (CPU runs, the 2-process test),
    join the process group over gloo here and wrap without device ids."""
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher != 'pytorch':
        raise ValueError(f'--launcher {launcher} needs GPUs; without them use tools/dist_train.sh (torchrun).')
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group('gloo')
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel', broadcast_buffers=False,
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def train(cfg: Config, resume: str | bool = False, amp: bool = False, auto_scale_lr: bool = False,
          launcher: str = 'none') -> Runner:
    """Train with mmengine's Runner. ``resume``: False, True (the latest
    checkpoint in the work dir) or a checkpoint path."""
    check_inputs(cfg, splits=('train_dataloader', 'val_dataloader'))
    earlier = latest_checkpoint(cfg.work_dir)
    if earlier and not resume:
        raise FileExistsError(
            f'{cfg.work_dir} holds an earlier run (last checkpoint {earlier}); it is not overwritten. '
            'Pass --resume to continue it, or --work-dir to start a new run elsewhere.')
    _prepare(cfg, launcher)
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config.')
        cfg.auto_scale_lr.enable = True
    if isinstance(resume, str):
        cfg.resume, cfg.load_from = True, resume
    elif resume and earlier:
        # Named here, not found by mmengine, which trusts a marker that a kill can leave stale.
        cfg.resume, cfg.load_from = True, earlier
    use_atomic_local_writes()
    crash_safe_hooks(cfg)
    runner = _build(cfg, purpose='resume' if cfg.get('resume') else 'fine-tune')
    with safe_loading_errors(cfg.get('load_from') or 'a checkpoint'), without_mmengine_key_dump():
        runner.train()
    return runner


def _prepare(cfg: Config, launcher: str) -> None:
    """What train and test both need before building the runner."""
    cfg.launcher = launcher
    _distributed_without_gpus(cfg, launcher)
    check_images_while_loading(cfg)
    _own_visualizer(cfg)


def _build(cfg: Config, purpose: str) -> Runner:
    """The runner, after checking that the checkpoint it will load fits the
    model for ``purpose`` (mmengine would only warn)."""
    with config_errors(cfg.filename or 'the config'):
        runner = Runner.from_cfg(cfg)
    if cfg.get('load_from'):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        check_checkpoint_fits(model, cfg.load_from, purpose)
    return runner


def _enable_visualization(cfg: Config, show_dir: str) -> None:
    """Ask the toolbox's visualisation hook to draw predictions into
    ``show_dir``, as each toolbox's own tools/test.py does."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError('This config has no visualization hook, so --show-dir cannot draw predictions.')
    kind = hook['type'].split('.')[-1]
    if kind == 'DetVisualizationHook':  # mmdet: under work_dir/<timestamp>/
        hook.update(draw=True, test_out_dir=show_dir)
    elif kind == 'SegVisualizationHook':  # mmseg: through the visualizer; every image, not every 50th
        hook.update(draw=True, interval=1)
        cfg.visualizer['save_dir'] = show_dir
    else:  # mmpretrain's VisualizationHook
        hook.update(enable=True, out_dir=show_dir)


def test(cfg: Config, checkpoint: str, out: str | None = None, show_dir: str | None = None,
         launcher: str = 'none') -> dict:
    """Evaluate ``checkpoint`` on the test split; returns the metrics."""
    check_inputs(cfg, splits=('test_dataloader',))
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'Checkpoint not found: {checkpoint}')
    _prepare(cfg, launcher)
    cfg.load_from = checkpoint
    if show_dir:
        _enable_visualization(cfg, show_dir)
    if out:
        if osp.exists(out):
            raise FileExistsError(f'{out} already exists; choose another --out path.')
        dump = 'mmdet.DumpDetResults' if cfg.get('default_scope') == 'mmdet' else 'mmengine.DumpResults'
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, ConfigDict(type=dump, out_file_path=out)]
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    runner = _build(cfg, purpose='evaluate')
    with safe_loading_errors(checkpoint), without_mmengine_key_dump():
        return runner.test()
