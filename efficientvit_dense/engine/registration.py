"""What a config's ``custom_imports = dict(imports=['efficientvit_dense'])``
relies on: the package's models, metric, image loader, transforms, hooks
(checkpoints, drawings) and gradient clipping in mmengine's registries.
Importing them imports the OpenMMLab model zoos
(seconds), so ``import efficientvit_dense`` only arranges for them to be
imported at the first registry lookup of a type by name (``Registry.get``,
which ``build`` calls for every ``type='...'`` of a config, in any scope;
reading ``module_dict`` directly is not a lookup): a tool answers
``--help`` and argument errors before paying for them. docs/design.md,
"Importing the package".
"""
from __future__ import annotations

import functools
import threading

_lock = threading.RLock()
_done = False
_in_progress = False  # a lookup made while the registering modules import (none does today) must not recurse


def register_all() -> None:
    """Register everything now (idempotent)."""
    global _done, _in_progress
    with _lock:
        if _done or _in_progress:
            return
        _in_progress = True
        try:
            from ..models.backbones import efficientvit  # noqa: F401
            from ..models.heads import efficientvit_cls_head  # noqa: F401
            from ..models.necks import efficientvit_fpn  # noqa: F401
            from . import checkpointing, data_checks, drawing, evaluation, gradient_clipping, transforms  # noqa: F401
            _done = True
        finally:
            _in_progress = False


def register_at_first_lookup() -> None:
    """Wrap mmengine's ``Registry.get`` so that the first lookup, in any
    registry, registers this package first."""
    from mmengine.registry import Registry

    original = Registry.get
    if getattr(original, 'registers_efficientvit_dense', False):
        return

    @functools.wraps(original)
    def get(self, key):
        if not _done:
            register_all()
        return original(self, key)

    get.registers_efficientvit_dense = True
    Registry.get = get
