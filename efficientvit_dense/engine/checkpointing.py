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
  resuming, whatever state the marker was left in.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import tempfile
import zipfile

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..errors import InputNotFoundError, OutputExistsError

MARKER = 'last_checkpoint'


def write_atomically(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` so that readers, and a run killed half-way,
    see either the old file or the whole new one."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{osp.basename(path)}.', suffix='.partial')
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


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
    moment the work dir holds a complete latest checkpoint: save, point the
    marker at it, and only then remove what ``max_keep_ckpts`` retires."""

    def _save_checkpoint_with_step(self, runner, step, meta):
        retired = []
        remove = self.file_backend.remove
        self.file_backend.remove = retired.append  # mmengine would delete before saving
        try:
            super()._save_checkpoint_with_step(runner, step, meta)
        finally:
            del self.file_backend.remove
        if runner.rank == 0:
            # mmengine rewrote the marker in place; make its final state whole too.
            write_atomically(self.last_ckpt.encode(), osp.join(runner.work_dir, MARKER))
        for path in retired:
            if path != self.last_ckpt:
                remove(path)


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
        if named and not osp.isabs(named) and not osp.exists(named):
            named = osp.join(work_dir, osp.basename(named))
        if named and is_complete_checkpoint(named):
            return named
    candidates = sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)
    return next((path for path in candidates if is_complete_checkpoint(path)), None)


def crash_safe_hooks(cfg) -> None:
    """Swap the config's mmengine checkpoint hook for the crash-safe one."""
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook and hook.get('type') in ('CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook):
        hook['type'] = 'CrashSafeCheckpointHook'


# Steps of a training run's preparation (engine/runner.py: TRAIN_STEPS).


def choose_resume(cfg, request) -> None:
    """Refuse a work dir that holds an earlier run unless asked to resume;
    resuming, name the checkpoint (``request.resume``: True for the work
    dir's latest, or a path) rather than let mmengine find it, since it
    trusts a marker that a kill can leave stale."""
    earlier = latest_checkpoint(cfg.work_dir)
    if earlier and not request.resume:
        raise OutputExistsError(
            f'{cfg.work_dir} holds an earlier run (last checkpoint {earlier}); it is not overwritten. '
            'Pass --resume to continue it, or --work-dir to start a new run elsewhere.')
    if isinstance(request.resume, str):
        if not osp.isfile(request.resume):
            raise InputNotFoundError(f'Checkpoint to resume from not found: {request.resume}')
        cfg.resume, cfg.load_from = True, request.resume
    elif request.resume and earlier:
        cfg.resume, cfg.load_from = True, earlier


def crash_safe_checkpoints(cfg, request) -> None:
    use_atomic_local_writes()
    crash_safe_hooks(cfg)
