"""Does a checkpoint hold the weights of the model it is loaded into?

mmengine's runner and the toolboxes' inferencers load with ``strict=False``:
whatever the file lacks keeps its initial (random) values, with one warning
among the logs. Evaluated that way, a detector whose backbone was saved under
other names gives a near-zero AP and no error. So every checkpoint a run
loads is compared with the model part by part (backbone, neck, each head),
read as mmengine reads it and under the names the load will see: the
official release's backbone layout is mapped exactly as EfficientViT's load
hook maps it (docs/design.md).
"""
from __future__ import annotations

import contextlib
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseTTAModel, is_model_wrapper
from mmengine.runner import load_checkpoint

from ..errors import CheckpointError
from ..models.backbones.efficientvit import EfficientViT
from ..models.weights import adapt_state_dict, is_batch_counter, read_checkpoint, safe_loading_errors, short_list

# What the run does with the weights: 'evaluate' (test, infer, export,
# benchmark) and 'resume' need every tensor; 'fine-tune' (load_from) may bring
# heads for other classes and leave some layers at their initialisation.
PURPOSES = ('evaluate', 'resume', 'fine-tune')


def bare_model(model: nn.Module) -> nn.Module:
    """The network inside mmengine's model wrappers (DDP) and a test-time
    augmentation model, as mmengine's checkpoint loading reaches it."""
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    return model


@dataclass
class PartFit:
    """How much of one part of the model a file covers."""
    name: str
    keys: list[str]  # the model's tensors in this part
    missing: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)  # (key, file shape, model shape)

    @property
    def is_head(self) -> bool:
        return self.name.rsplit('.', 1)[-1].endswith('head')

    @property
    def other_classes_only(self) -> bool:
        """Every shape difference is in the first dimension, as a head for
        another number of classes gives."""
        return all(a[1:] == b[1:] for _, a, b in self.mismatched)


def model_parts(model: nn.Module) -> list[str]:
    """The parts a checkpoint must cover, by name: each top-level child with
    parameters, a child that holds heads (mmdet's ``roi_head``: ``bbox_head``,
    ``mask_head``) split into its children with parameters. Tensors outside
    these (a container's own, the model's own) form a part each, named by
    their top-level name, in :func:`part_of`."""
    def has_params(module):
        return next(module.parameters(), None) is not None

    parts = []
    for name, child in model.named_children():
        if not has_params(child):
            continue
        inner = [n for n, c in child.named_children() if has_params(c)]
        parts += [f'{name}.{n}' for n in inner] if any(n.endswith('head') for n in inner) else [name]
    return parts


def part_of(key: str, parts: list[str]) -> str:
    return next((part for part in parts if key.startswith(part + '.')), key.split('.', 1)[0])


def mmengine_state_dict(ckpt: dict, source: str) -> dict:
    """The tensors mmengine's ``load_checkpoint`` gives the model: those
    under ``state_dict`` or at the top level, without a DDP ``module.``."""
    if 'state_dict' not in ckpt and isinstance(ckpt.get('model'), dict):
        raise CheckpointError(
            f"{source} keeps its weights under 'model' (the official release's ImageNet format), where "
            "mmengine's loader does not look, so nothing would load. As a backbone it goes in "
            'model.backbone.init_cfg.checkpoint; tools/convert_checkpoint.py writes it in this project\'s format.')
    state = ckpt.get('state_dict', ckpt)
    return {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()
            if hasattr(v, 'shape')}


def as_loaded(model: nn.Module, state: dict) -> tuple[dict, list[str]]:
    """``state`` under the names ``model.load_state_dict`` will give it: every
    EfficientViT inside maps its part as its load hook does; and the
    attention-bias tables that hook resizes to the model's windows."""
    state, resized = dict(state), []
    for name, module in model.named_modules():
        if isinstance(module, EfficientViT):
            prefix = f'{name}.' if name else ''
            resized += [prefix + table for table in adapt_state_dict(state, prefix, module.state_dict())['resized']]
    return state, resized


def part_fits(model: nn.Module, state: dict) -> tuple[list[PartFit], list[str]]:
    """Per part of ``model``, its tensors missing from ``state`` (BatchNorm's
    batch counters aside) and those of another shape; and the tensors of
    ``state`` the model does not have."""
    model_state = {k: v for k, v in model.state_dict().items() if not is_batch_counter(k)}
    parts = model_parts(model)
    fits: dict[str, PartFit] = {}
    for key, value in model_state.items():
        fit = fits.setdefault(part_of(key, parts), PartFit(part_of(key, parts), []))
        fit.keys.append(key)
        if key not in state:
            fit.missing.append(key)
        elif state[key].shape != value.shape:
            fit.mismatched.append((key, tuple(state[key].shape), tuple(value.shape)))
    unused = [k for k in state if k not in model_state and not is_batch_counter(k)]
    return list(fits.values()), unused


def _count_by_part(keys, parts: list[str]) -> str:
    counts = Counter(part_of(k, parts) for k in keys)
    return ', '.join(f'{part} ({n})' for part, n in counts.most_common(6))


def _what_the_file_holds(state: dict, part: str, keys: list[str], parts: list[str]) -> str:
    own = [k for k in state if k.startswith(part + '.')]
    if own:
        return f'its {len(own)} tensors under {part}. have other names (e.g. {own[0]})'
    bare = [k for k in keys if k[len(part) + 1:] in state]
    if len(bare) * 2 >= len(keys):  # tools/convert_checkpoint.py --backbone-only writes the backbone so
        return (f'it holds a {part} alone, named without the "{part}." prefix ({len(bare)} of its {len(keys)} '
                f'tensors, e.g. {bare[0][len(part) + 1:]}), and nothing of the other parts')
    return f'it holds {_count_by_part(state, parts)}' if state else 'it holds no tensors'


def _empty_part_hint(purpose: str, part: str) -> str:
    if purpose == 'evaluate':
        return ('Evaluation takes every weight from this one file (init_cfg is not applied): give a checkpoint of '
                'the whole model, trained with this config or released with it.')
    if purpose == 'resume':
        return 'Resume from a checkpoint this config saved.'
    if part == 'backbone':
        return ('load_from takes a checkpoint of the whole model; ImageNet backbone weights go in '
                'model.backbone.init_cfg.checkpoint instead.')
    return ('load_from takes a checkpoint of a model with the same parts; to start from another model\'s backbone '
            'alone, extract it with tools/convert_checkpoint.py --backbone-only and give it as '
            'model.backbone.init_cfg.checkpoint.')


def _shapes(mismatched) -> list[str]:
    return [f'{key}: file {a} vs model {b}' for key, a, b in mismatched]


def check_checkpoint_fits(model: nn.Module, source: str, purpose: str = 'evaluate') -> None:
    """Refuse, in one message, a checkpoint that would leave part of
    ``model`` at random for ``purpose`` (one of :data:`PURPOSES`):

    * any part none of whose tensors the file names;
    * tensors of another shape, except, when fine-tuning, heads shaped for
      another number of classes;
    * some tensors missing, except when fine-tuning.

    What is allowed but not loaded (layers that start from their
    initialisation, tensors the model does not use) is said in one warning.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'purpose must be one of {PURPOSES}, got {purpose!r}')
    fine_tuning = purpose == 'fine-tune'
    state, resized = as_loaded(model, mmengine_state_dict(read_checkpoint(source), source))
    if resized and not fine_tuning:
        # Fine-tuning grows ImageNet's 4x4 tables to the dense tasks' 7x7 windows; a trained model evaluated (or
        # resumed) at other windows than its own gave other metrics, with one line of the log saying why
        raise CheckpointError(
            f'{source} was trained with other attention windows than this model\'s: {len(resized)} bias tables '
            f'would be resized ({short_list(resized, 2)}). Use the config it was trained with (a copy is in its '
            'work dir); to run it at other windows, fine-tune from it (load_from).')
    fits, unused = part_fits(model, state)
    parts = [fit.name for fit in fits]

    for fit in fits:
        if len(fit.missing) == len(fit.keys):
            raise CheckpointError(
                f"{source} holds none of the weights of the model's {fit.name} ({len(fit.keys)} tensors, e.g. "
                f'{fit.keys[0]}): {_what_the_file_holds(state, fit.name, fit.keys, parts)}. '
                + _empty_part_hint(purpose, fit.name))

    new_classes = [fit for fit in fits if fine_tuning and fit.is_head and fit.other_classes_only]
    mismatched = [m for fit in fits if fit not in new_classes for m in fit.mismatched]
    if mismatched:
        raise CheckpointError(
            f'{source} was trained for another model: {len(mismatched)} tensors have other shapes '
            f'({short_list(_shapes(mismatched), 2)}). Use the config it was trained with (a copy is in its work '
            'dir).')

    missing = '; '.join(f'{fit.name}: {len(fit.missing)} of {len(fit.keys)} tensors missing '
                        f'({short_list([k[len(fit.name) + 1:] for k in fit.missing], 3)})'
                        for fit in fits if fit.missing)
    if missing and not fine_tuning:
        raise CheckpointError(f'{source} does not cover the whole model ({missing}); those layers would run with '
                              'random weights. Use the checkpoint trained with this config.')
    notes = [missing] if missing else []
    notes += [f'{fit.name}: {len(fit.mismatched)} tensors shaped for other classes '
              f'({short_list([k[len(fit.name) + 1:] for k, *_ in fit.mismatched], 3)})'
              for fit in new_classes if fit.mismatched]
    if notes:
        print_log(f'Fine-tuning from {source}; these layers start from their initialisation: {"; ".join(notes)}.',
                  logger='current', level=logging.WARNING)
    if unused:
        print_log(f'{source} holds {len(unused)} tensors this model does not use: {_count_by_part(unused, parts)}.',
                  logger='current', level=logging.WARNING)


def load_checked(model: nn.Module, source: str, purpose: str = 'evaluate') -> None:
    """Load ``source`` into ``model`` with mmengine, once
    :func:`check_checkpoint_fits` has accepted it for ``purpose``."""
    check_checkpoint_fits(model, source, purpose)
    with safe_loading_errors(source), without_mmengine_key_dump():
        load_checkpoint(model, source, map_location='cpu')


_MMENGINE_KEY_DUMP = 'The model and loaded state dict do not match exactly'


class _WithoutKeyDump:
    """Stands in for ``sys.stdout``: passes everything on but mmengine's key
    dump (one ``print`` of a message that starts with its header)."""

    def __init__(self, stream):
        self.stream, self._dropping = stream, False

    def write(self, text: str) -> int:
        if text.startswith(_MMENGINE_KEY_DUMP):
            self._dropping = True  # print() writes the message, then its end
        elif self._dropping and text == '\n':
            self._dropping = False
        else:
            self._dropping = False
            self.stream.write(text)
        return len(text)

    def __getattr__(self, name):  # flush, encoding, fileno, isatty: the real stream's
        return getattr(self.stream, name)


@contextlib.contextmanager
def without_mmengine_key_dump():
    """Inside, mmengine's list of every key that did not load (printed to
    stdout when a checkpoint loads with ``strict=False``) is left out: the
    loads in this project are checked by :func:`check_checkpoint_fits`,
    which says the same in one readable message, or refuses the file."""
    with contextlib.redirect_stdout(_WithoutKeyDump(sys.stdout)):
        yield
