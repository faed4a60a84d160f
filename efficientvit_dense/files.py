"""Writing a file so that its readers, and a process killed half-way, see
either the old file or the whole new one: checkpoints, their marker, the
converted weights, drawings two processes make at once."""
from __future__ import annotations

import os
import os.path as osp
import tempfile


def _umask() -> int:
    """The process's umask, read without changing it (os.umask can only
    set it, and a moment at 0 could let another thread create a
    world-writable file)."""
    try:
        with open('/proc/self/status') as f:
            return int(next(line.split()[1] for line in f if line.startswith('Umask:')), 8)
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide a shared run's weights from its group
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
