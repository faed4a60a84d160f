"""Shims that make mmengine / mmdet / mmseg / mmpretrain run on torch >= 2.6
and numpy >= 2.4. Applied when ``efficientvit_dense`` is imported; each is
idempotent and has a test that fails without it (tests/test_compat.py; the
empty-dataset one in tests/test_bad_input.py). docs/design.md lists them
with the upstream issues.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import pickle
import sys

import numpy as np
import torch


def _history_buffer_method(owner, name):
    """Stands in for ``getattr`` while unpickling a checkpoint.

    mmengine's ``HistoryBuffer`` pickles its statistics table as
    ``getattr(HistoryBuffer, 'mean')`` and so on. Allowing the real getattr
    would let a file reach any method of any allowed class (``ndarray.tofile``
    writes files); this resolves public HistoryBuffer methods only.
    """
    from mmengine.logging import HistoryBuffer

    if owner is HistoryBuffer and not name.startswith('_') and callable(getattr(owner, name, None)):
        return getattr(owner, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({owner!r}, {name!r}) in a checkpoint: only HistoryBuffer statistics are allowed.')


def _numpy_checkpoint_globals() -> list:
    """What pickled numpy arrays and scalars reference: the rebuild
    functions, ``ndarray``, ``dtype`` and the numeric dtype classes. Object
    and void dtypes are left out: they can carry arbitrary pickled objects."""
    from numpy._core import multiarray

    dtype_classes = {type(np.dtype(code)) for code in '?bhilqBHILQefdgFDGSUMm'}
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtype_classes,
            # Files written under numpy 1.x name the same functions under numpy.core.
            (multiarray._reconstruct, 'numpy.core.multiarray._reconstruct'),
            (multiarray.scalar, 'numpy.core.multiarray.scalar')]


def allow_mmengine_checkpoints() -> None:
    """torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine
    0.10.7's checkpoints carry its log history (``HistoryBuffer`` holding
    numpy arrays), so ``--resume`` fails with "Weights only load failed"
    (open-mmlab/mmengine#1655).
    Allow-list exactly what those checkpoints hold instead of turning safe
    loading off: a file that pickles anything else is still refused."""
    from mmengine.logging import HistoryBuffer

    torch.serialization.add_safe_globals([
        HistoryBuffer, (_history_buffer_method, 'builtins.getattr'), *_numpy_checkpoint_globals()])


HISTORY_BUFFER_KEY = '__history_buffer__'  # marks a HistoryBuffer stored as plain types


def _to_plain(value):
    """numpy arrays and scalars as lists and Python numbers, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return type(value)((k, _to_plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_to_plain(v) for v in value)
    return value


def plain_message_hub_state() -> None:
    """The log history mmengine's MessageHub puts in every checkpoint is
    stored as plain types (a ``HistoryBuffer`` as a dict of lists, numpy as
    Python numbers), so that a checkpoint opens with
    ``torch.load(weights_only=True)`` in any process, one that never
    imported this package included (mmdet's image_demo.py, publish_model.py,
    ``DetInferencer(weights=...)``). Resuming turns them back; mmengine
    without this shim resumes too and skips the history, with a warning."""
    from mmengine.logging import HistoryBuffer, MessageHub

    if getattr(MessageHub.state_dict, 'plain', False):
        return
    state_dict, load_state_dict = MessageHub.state_dict, MessageHub.load_state_dict

    def plain_state_dict(self) -> dict:
        state = state_dict(self)
        state['log_scalars'] = type(state['log_scalars'])(
            (key, {HISTORY_BUFFER_KEY: dict(log=buffer._log_history.tolist(), count=buffer._count_history.tolist(),
                                            max_length=buffer.max_length)})
            if isinstance(buffer, HistoryBuffer) else (key, _to_plain(buffer))
            for key, buffer in state['log_scalars'].items())
        state['runtime_info'] = _to_plain(state['runtime_info'])
        return state

    def load_plain_state_dict(self, state) -> None:
        if isinstance(state, dict) and isinstance(state.get('log_scalars'), dict):
            state = dict(state, log_scalars=type(state['log_scalars'])(
                (key, HistoryBuffer(value[HISTORY_BUFFER_KEY]['log'], value[HISTORY_BUFFER_KEY]['count'],
                                    value[HISTORY_BUFFER_KEY]['max_length']))
                if isinstance(value, dict) and HISTORY_BUFFER_KEY in value else (key, value)
                for key, value in state['log_scalars'].items()))
        load_state_dict(self, state)

    plain_state_dict.plain = True
    MessageHub.state_dict, MessageHub.load_state_dict = plain_state_dict, load_plain_state_dict


def restore_numpy_in1d() -> None:
    """numpy 2.4 removed ``np.in1d`` (numpy/numpy#29978), which mmpretrain
    1.2's retrieval metrics still call; ``np.isin(...).ravel()`` is its
    documented successor."""
    if hasattr(np, 'in1d'):
        return

    def in1d(ar1, ar2, assume_unique=False, invert=False, *, kind=None):
        return np.isin(ar1, ar2, assume_unique=assume_unique, invert=invert, kind=kind).ravel()

    np.in1d = in1d


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``patch(module)`` right after ``name`` is first imported, so a
    shim of a heavy module costs nothing until someone imports it."""

    def __init__(self, name: str, patch):
        self.name, self.patch = name, patch

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)  # once; and let the other finders find the real module
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            execute = spec.loader.exec_module

            def exec_module(module):
                execute(module)
                self.patch(module)

            spec.loader.exec_module = exec_module
        return spec


def after_import(name: str, patch) -> None:
    """``patch(module)`` now if ``name`` is imported already, else as soon as it is."""
    if name in sys.modules:
        patch(sys.modules[name])
    elif not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, patch))


def fix_mmseg_class_weighted_cross_entropy() -> None:
    """mmseg 1.2.2's cross entropy with ``class_weight`` looks up the weight
    of every label to average by, ignored pixels (255) included, so any batch
    holding an ignored or padded pixel stops with "IndexError: index 255 is
    out of bounds" (open upstream: open-mmlab/mmsegmentation#3734, #3831).
    Ignored pixels are given the weight the unweighted loss gives them: 0
    with ``avg_non_ignore``, else 1. ``CrossEntropyLoss`` picks the function
    up when it is built, so this patches mmseg's module as it is imported."""
    after_import('mmseg.models.losses.cross_entropy_loss', _ignore_ignored_labels)


def _ignore_ignored_labels(cross_entropy_loss) -> None:
    original = cross_entropy_loss.cross_entropy
    if getattr(original, 'ignores_ignored_labels', False):
        return

    def cross_entropy(pred, label, weight=None, class_weight=None, reduction='mean', avg_factor=None,
                      ignore_index=-100, avg_non_ignore=False):
        if class_weight is not None and avg_factor is None and reduction == 'mean':
            ignored = label == ignore_index
            label_weights = class_weight[label.masked_fill(ignored, 0)]
            avg_factor = label_weights.masked_fill(ignored, 0.0 if avg_non_ignore else 1.0).sum()
        return original(pred, label, weight, class_weight, reduction, avg_factor, ignore_index, avg_non_ignore)

    cross_entropy.ignores_ignored_labels = True
    cross_entropy_loss.cross_entropy = cross_entropy


def name_empty_datasets() -> None:
    """mmengine 0.10.7 packs a dataset's samples with ``np.concatenate``,
    which stops an empty one (an empty folder, a file with no images, every
    image filtered out) with "need at least one array to concatenate". Say
    which dataset and where it looked instead."""
    from mmengine.dataset import BaseDataset

    original = BaseDataset._serialize_data
    if getattr(original, 'names_empty_datasets', False):
        return

    def _serialize_data(self):
        if not self.data_list:
            from ..errors import DataError
            where = self.ann_file or self.data_prefix or self.data_root
            raise DataError(f'{type(self).__name__} found no samples in {where} (after its filter_cfg, if any). '
                            'Check the folder, the annotation file and the file suffixes.')
        return original(self)

    _serialize_data.names_empty_datasets = True
    BaseDataset._serialize_data = _serialize_data


def apply() -> None:
    allow_mmengine_checkpoints()
    plain_message_hub_state()
    restore_numpy_in1d()
    fix_mmseg_class_weighted_cross_entropy()  # when mmseg's loss module is imported
    name_empty_datasets()
