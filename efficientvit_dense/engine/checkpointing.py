"""Checkpoints that survive a hard kill.

mmengine writes a checkpoint with ``open(path, 'wb')``, removes the oldest
one (``max_keep_ckpts``) *before* saving the next, and then rewrites the
``last_checkpoint`` marker in place. A SIGKILL at the wrong moment leaves a
truncated ``iter_N.pth``, or no checkpoint at all, with the marker pointing
at it. Here:

* every file mmengine writes to local disk lands whole or not at all
  (temporary file in the same folder, then ``os.replace``);
* :class:`CrashSafeCheckpointHook` removes old checkpoints only once the new
  one and the marker are in place;
* :func:`latest_checkpoint` picks the newest *complete* checkpoint when
  resuming, whatever state the marker was left in, and a resume that finds
  checkpoints but none it can read stops instead of starting again;
* files are written with the permissions ``open`` would give (the umask),
  not the 0600 of a temporary file;
* one training run at a time per work dir (:func:`hold_work_dir`);
* a resume goes on with the settings the checkpoint was trained with, and
  runs no code the checkpoint holds (:func:`checked_resume`).
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import os.path as osp
import socket
import time
import zipfile

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

from ..errors import CheckpointError, InputNotFoundError, InUseError, NotWritableError, OutputExistsError
from ..files import write_atomically
from ..models.weights import read_checkpoint
from .config import config_from_text

MARKER = 'last_checkpoint'
LOCK = '.training.lock'


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with whole-file writes."""

    def put(self, obj: bytes, filepath) -> None:
        write_atomically(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_atomically(obj.encode(encoding), str(filepath))


def use_atomic_local_writes() -> None:
    """Make mmengine's local paths (checkpoints, dumps) use
    :class:`AtomicLocalBackend`. Idempotent."""
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


@HOOKS.register_module()
class CrashSafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same options), ordered so that at every
    moment the work dir holds a complete latest checkpoint, and a complete
    best one with ``save_best``: save, point the marker at it, and only then
    remove what ``max_keep_ckpts`` or a new best retires. A best checkpoint
    restored from a run in another folder is that run's, never removed."""

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self.save_best is not None:
            # mmengine sets best_ckpt_path for one key indicator, best_ckpt_path_dict for several
            if getattr(self, 'best_ckpt_path', None):
                self.best_ckpt_path = self._own_best(self.best_ckpt_path)
            for key, path in getattr(self, 'best_ckpt_path_dict', {}).items():
                self.best_ckpt_path_dict[key] = self._own_best(path)

    def _own_best(self, path: str | None) -> str | None:
        """The best checkpoint a resume restored, as the one of this run's
        that the next best retires. Restored from another folder, the path is
        another run's, which mmengine would delete at this run's first better
        score: in a copied or moved work dir the file of that name here is
        this run's own; a run resumed from another folder's checkpoint has
        none yet."""
        if not path or _inside(path, self.out_dir):
            return path
        here = osp.join(self.out_dir, osp.basename(path))
        return here if osp.isfile(here) else None

    @contextlib.contextmanager
    def _removals_deferred(self):
        """Collect the paths mmengine removes, which it does before saving
        the checkpoint that replaces them. Nests: a new best checkpoint saves
        the latest one again, whose removals then wait for the outer save."""
        backend = self.file_backend
        outer = vars(backend).get('remove')
        retired = []
        backend.remove = retired.append
        try:
            yield retired
        finally:
            if outer is None:
                del backend.remove
            else:
                backend.remove = outer

    def _save_checkpoint_with_step(self, runner, step, meta):
        with self._removals_deferred() as retired:
            super()._save_checkpoint_with_step(runner, step, meta)
        if runner.rank == 0:
            # mmengine rewrote the marker in place; make its final state whole too.
            write_atomically(self.last_ckpt.encode(), osp.join(runner.work_dir, MARKER))
        self._remove(retired, keep=self.last_ckpt)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        with self._removals_deferred() as retired:
            super()._save_best_checkpoint(runner, metrics)
        self._remove(retired, keep=getattr(self, 'best_ckpt_path', None))  # unset without save_best

    def _remove(self, paths: list, keep) -> None:
        for path in paths:
            if path != keep:
                self.file_backend.remove(path)


def _inside(path: str, folder: str) -> bool:
    """Whether ``path`` is a file in ``folder`` (through links and relative paths)."""
    return osp.realpath(osp.dirname(str(path))) == osp.realpath(str(folder))


def is_complete_checkpoint(path: str) -> bool:
    """True for a whole file as ``torch.save`` writes it (a zip archive; a
    truncated one has no central directory)."""
    return osp.isfile(path) and zipfile.is_zipfile(path)


def latest_checkpoint(work_dir: str) -> str | None:
    """The checkpoint to resume from: the one the marker names if it is
    complete, else the newest complete ``*.pth`` in ``work_dir``."""
    marker = osp.join(work_dir, MARKER)
    if osp.isfile(marker):
        with open(marker) as f:
            named = f.read().strip()
        # The marker holds the path the run saved to: in a work dir copied or moved since, the file meant is
        # the one here (the original may have trained on); with the checkpoint hook's out_dir it is elsewhere.
        for path in (osp.join(work_dir, osp.basename(named)), named) if named else ():
            if is_complete_checkpoint(path):
                return path
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    return next((path for path in candidates if is_complete_checkpoint(path)), None)


def crash_safe_hooks(cfg) -> None:
    """Swap the config's mmengine checkpoint hook for the crash-safe one."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook):
        hook['type'] = 'CrashSafeCheckpointHook'


# Steps of a training run's preparation (engine/runner.py: TRAIN_STEPS).


_held_locks: dict = {}


def launch_rank() -> int:
    """This process's rank as the launcher set it (torchrun, Slurm, Open
    MPI's mpirun), before any process group exists; 0 when not distributed."""
    for variable in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if variable in os.environ:
            return int(os.environ[variable])
    return 0


def hold_work_dir(cfg, request=None) -> None:
    """Hold an exclusive lock on ``cfg.work_dir`` until :func:`release_work_dir`
    or the end of the process, so that a second run started on the same
    folder (a second terminal, a job submitted twice) stops at once instead
    of overwriting this one's checkpoints. The operating system drops the
    lock when the process dies, so a killed run never leaves it behind. In
    distributed training rank 0 holds it."""
    if launch_rank() != 0:
        return
    path = osp.join(osp.abspath(cfg.work_dir), LOCK)
    if path in _held_locks:
        return
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        f = open(path, 'a+')
    except PermissionError as err:
        raise NotWritableError(f'Cannot write into the work dir {cfg.work_dir} ({err.strerror}); choose one you may '
                               'write into with --work-dir.') from err
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        owner = f.read().strip() or 'another process'
        f.close()
        raise InUseError(f'{cfg.work_dir} is in use by another training run ({owner}); nothing was written. Wait '
                         'for it to finish (then --resume continues it), or pass --work-dir to train elsewhere.')
    except OSError as err:  # a file system without locks (some NFS mounts: ENOLCK): train, unguarded
        f.close()
        print_log(f'Cannot lock {path} ({err.strerror}); nothing stops a second run from writing into '
                  f'{cfg.work_dir} at the same time.', logger='current', level=logging.WARNING)
        return
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on {socket.gethostname()}, started {time.strftime("%Y-%m-%d %H:%M:%S")}\n')
    f.flush()
    _held_locks[path] = f


def release_work_dir(work_dir: str) -> None:
    f = _held_locks.pop(osp.join(osp.abspath(work_dir), LOCK), None)
    if f is not None:
        f.close()  # closing the file releases the lock


def _forget_locks_in_child() -> None:
    """A forked child (a dataloader worker) shares the parent's open lock
    file, and the lock lasts while any process keeps it open: a worker that
    outlives a killed trainer would keep the work dir locked. Children
    close their copy."""
    for f in _held_locks.values():
        f.close()
    _held_locks.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def _why_unreadable(path: str) -> str:
    if osp.getsize(path) == 0:
        return 'empty'
    return 'truncated or damaged (not a complete checkpoint archive)'


def checkpoint_folder(cfg) -> str:
    """Where the checkpoint hook saves: the work dir, or with its
    ``out_dir`` that folder's subfolder named after the work dir (mmengine's
    rule, which leaves an ``out_dir`` equal to the runner's absolute work dir
    as it is)."""
    out_dir = ((cfg.get('default_hooks') or {}).get('checkpoint') or {}).get('out_dir')
    if not out_dir or out_dir == osp.abspath(cfg.work_dir):
        return cfg.work_dir
    return osp.join(out_dir, osp.basename(cfg.work_dir.rstrip(osp.sep)))


def choose_resume(cfg, request) -> None:
    """Refuse a work dir that holds an earlier run (any checkpoint, even one
    that cannot be read) unless asked to resume; resuming, name the
    checkpoint (``request.resume``: True for the work dir's latest, or a
    path) rather than let mmengine find it, since it trusts a marker that a
    kill can leave stale: ``request.resume_from``, which the runner gets
    (engine/runner.py: build_runner). A resume that finds checkpoints but
    none it can read stops: starting again would save over them."""
    folders = list(dict.fromkeys((cfg.work_dir, checkpoint_folder(cfg))))  # the hook's out_dir's, if it has one
    found = sorted(path for folder in folders for path in glob.glob(osp.join(folder, '*.pth')))
    # Without the marker (a fresh work dir beside an out_dir on shared storage), the out_dir's newest
    earlier = next(filter(None, map(latest_checkpoint, folders)), None)
    if found and not request.resume:
        raise OutputExistsError(
            f'{cfg.work_dir} holds an earlier run (last checkpoint {earlier or found[-1]}); it is not overwritten. '
            'Pass --resume to continue it, or --work-dir to start a new run elsewhere.')
    if request.resume is True and found and earlier is None:
        reasons = '; '.join(f'{path}: {_why_unreadable(path)}' for path in found)
        raise CheckpointError(
            f'--resume found checkpoints in {cfg.work_dir} but none it can read ({reasons}). Nothing was started and '
            'they are kept; restore a copy, or pass --resume PATH, or --work-dir to start anew elsewhere.')
    if isinstance(request.resume, str):
        if not osp.isfile(request.resume):
            raise InputNotFoundError(f'Checkpoint to resume from not found: {request.resume}')
        if found and not any(_inside(request.resume, folder) for folder in folders):
            # The resumed run would save over that run's checkpoints and retire them as its own old ones.
            raise OutputExistsError(
                f'{cfg.work_dir} holds another run (last checkpoint {earlier or found[-1]}); resuming '
                f'{request.resume} there would save over its checkpoints. Pass --work-dir to resume it into a folder '
                f'of its own, or --resume {earlier or found[-1]} to continue the run there.')
        request.resume_from = request.resume
    elif request.resume and earlier:
        request.resume_from = earlier


# What decides the weights a run trains: a resume with other values here would go on from (or, finished, only
# re-evaluate) weights trained another way.
TRAINING_KEYS = ('model', 'train_dataloader', 'optim_wrapper', 'param_scheduler', 'randomness', 'train_cfg',
                 'custom_hooks', 'auto_scale_lr')
# Within those, settings a resumed run may change (a key with one of these parts): where the files are, how the
# loader works, how long the run is and when it validates, how the model predicts. The schedulers' positions
# follow the run's length in most configs, so they may differ too, though mmengine's resume restores the
# checkpoint's (it loads each scheduler's state).
MAY_CHANGE = frozenset(('data_root', 'ann_file', 'data_prefix', 'backend_args', 'num_workers', 'persistent_workers',
                        'pin_memory', 'prefetch_factor', 'checkpoint', 'max_iters', 'max_epochs', 'val_interval',
                        'val_begin', 'test_cfg', 'begin', 'end', 'milestones', 'T_max'))


def _flat(node, prefix: str = '') -> dict:
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _flat(value, f'{prefix}{key}.').items()}
    if isinstance(node, (list, tuple)):
        return {k: v for i, value in enumerate(node) for k, v in _flat(value, f'{prefix}{i}.').items()} or \
            {prefix[:-1]: []}
    return {prefix[:-1]: node}


def _training_settings(cfg) -> dict:
    flat = _flat({key: cfg.get(key) for key in TRAINING_KEYS})
    return {key: value for key, value in flat.items() if MAY_CHANGE.isdisjoint(key.split('.'))}


# The command-line option that sets a training setting, where the key alone would not tell a user.
OPTION_OF = {'optim_wrapper.type': '--amp', 'optim_wrapper.dtype': '--amp', 'auto_scale_lr.enable': '--auto-scale-lr'}


# Keys of plain data that make Config.fromstring run other code: it executes _base_ files and imports the
# custom_imports modules.
RUN_ON_READING = ('_base_', 'custom_imports')


def checked_resume(cfg, request) -> None:
    """The training step: a resume reads its checkpoint first
    (:func:`check_resume_from`, which the comparison calls before training
    any of its configs)."""
    resumed = request.resume_from or (cfg.load_from if cfg.get('resume') else None)  # --resume's, or the config's
    if resumed:
        check_resume_from(cfg, resumed, explicit=isinstance(request.resume, str))


def check_resume_from(cfg, checkpoint: str, explicit: bool = False) -> None:
    """Whether ``cfg`` may resume from ``checkpoint``: mmengine's resume runs
    a ``meta['config']`` it finds as Python (a file's code must never run),
    and a resume must go on with the settings the checkpoint was trained
    with. ``explicit``: the user named the checkpoint (``--resume PATH``)."""
    meta = read_checkpoint(checkpoint).get('meta') or {}
    if isinstance(meta.get('config'), str):  # mmengine's Runner.resume reads it with Config.fromstring
        try:
            config = config_from_text(meta['config'])
            for key in RUN_ON_READING:
                if key in config:
                    raise ValueError(f'its {key} would be loaded')
        except (SyntaxError, ValueError) as err:
            raise CheckpointError(
                f"Refusing to resume from {checkpoint}: its meta['config'] is Python code, not a config ({err}), "
                "and mmengine's resume would run it. Resume only from checkpoints you trust.") from None
    _same_training_settings(cfg, checkpoint, meta, explicit)


def _same_training_settings(cfg, checkpoint: str, meta: dict, explicit: bool) -> None:
    """mmengine keeps the run's config in each checkpoint and resumes
    whatever the work dir holds: a seed sweep into one work dir reported the
    first seed's metrics for each, and a changed learning rate would be
    replaced by the checkpoint's optimizer state without a word."""
    if not isinstance(meta.get('cfg'), str):
        return  # a checkpoint saved without its config (not by mmengine's runner)
    try:
        saved = config_from_text(meta['cfg'])
    except (SyntaxError, ValueError) as err:
        print_log(f"The config saved in {checkpoint} is not plain data ({err}); it was not compared with this "
                  "run's.", logger='current', level=logging.WARNING)
        return
    before, now = _training_settings(saved), _training_settings(cfg)
    for settings in (before, now):
        if settings.get('randomness.seed') is None and meta.get('seed') is not None:
            settings['randomness.seed'] = meta['seed']  # no seed given: the one mmengine drew and saved
        if settings.get('optim_wrapper.type') == 'AmpOptimWrapper':  # mmdet's train.py --amp names no dtype
            settings.setdefault('optim_wrapper.dtype', 'float16')
    differ = [key for key in sorted(before.keys() | now.keys()) if before.get(key) != now.get(key)]
    if not differ:
        return
    shown = '; '.join(f'{key}{f" ({OPTION_OF[key]})" if key in OPTION_OF else ""}: {before.get(key)!r} there, '
                      f'{now.get(key)!r} now' for key in differ[:3])
    more = f' (and {len(differ) - 3} more)' if len(differ) > 3 else ''
    elsewhere = (f'--cfg-options load_from={checkpoint} without --resume to start a new run from its weights'
                 if explicit else '--work-dir to start this run elsewhere')
    raise OutputExistsError(
        f"{checkpoint} was trained with other settings than this run's: {shown}{more}. Resuming would go on from "
        'weights trained another way (a finished run would only be re-evaluated). Pass the options it was started '
        f'with to resume it, or {elsewhere}.')


def crash_safe_checkpoints(cfg, request) -> None:
    use_atomic_local_writes()
    crash_safe_hooks(cfg)
