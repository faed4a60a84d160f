"""What a config's ``custom_imports = dict(imports=['efficientvit_dense'])``
relies on: the package's models, metric, image loader and checkpoint hook in
mmengine's registries. Importing them imports the OpenMMLab model zoos
(seconds), so ``import efficientvit_dense`` only arranges for them to be
imported at the first registry lookup, which every build goes through
(``Registry.build`` and ``Registry.get``, in any scope): a tool answers
``--help`` and argument errors before paying for them. docs/design.md,
"Importing the package".
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def register_all() -> None:
    """Register everything now (idempotent), with the shims that must be in
    place before a model is built."""
    global _done
    with _lock:
        if _done:
            return
        from ..models.backbones import efficientvit  # noqa: F401
        from ..models.heads import efficientvit_cls_head  # noqa: F401
        from ..models.necks import efficientvit_fpn  # noqa: F401
        from . import checkpointing, compat, data_checks, evaluation  # noqa: F401
        compat.fix_mmseg_class_weighted_cross_entropy()
        _done = True


def register_at_first_lookup() -> None:
    """Wrap mmengine's ``Registry.get`` so that the first lookup, in any
    registry, registers this package first."""
    from mmengine.registry import Registry

    original = Registry.get
    if getattr(original, 'registers_efficientvit_dense', False):
        return

    def get(self, key):
        if not _done:
            register_all()
        return original(self, key)

    get.registers_efficientvit_dense = True
    Registry.get = get
