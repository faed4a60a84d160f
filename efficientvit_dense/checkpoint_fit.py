"""Does a checkpoint hold the weights of the model it is about to load into?

mmengine's runner and the toolboxes' inferencers load with ``strict=False``:
whatever the file lacks keeps its initial (random) values, with one warning
among the logs. Evaluated that way, a detector whose backbone was saved under
other names gives a near-zero AP and no error. So before a run loads a
checkpoint, the file is compared with the model part by part (backbone, neck,
each head), under the names the load will see: the official release's
backbone layout is mapped exactly as EfficientViT's load hook maps it.
"""
from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections import Counter
from dataclasses import dataclass, field

import torch.nn as nn
from mmengine.logging import print_log

from .models.backbones.efficientvit import EfficientViT
from .models.weights import CheckpointError, adapt_state_dict, extract_state_dict, read_checkpoint

# What the run does with the weights: 'evaluate' (test, infer, export,
# benchmark) and 'resume' need every tensor; 'fine-tune' (load_from) may bring
# heads for other classes and leave some layers at their initialisation.
PURPOSES = ('evaluate', 'resume', 'fine-tune')


@dataclass
class PartFit:
    """How much of one part of the model a file covers."""
    name: str
    total: int
    example: str  # one of its keys, to show how the model names them
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # 'key: file (..) vs model (..)'

    @property
    def is_head(self) -> bool:
        return self.name.rsplit('.', 1)[-1].endswith('head')



def model_parts(model: nn.Module) -> list[str]:
    """The parts a checkpoint must cover, by name: each top-level child with
    parameters, with one that holds several heads (mmdet's ``roi_head``:
    ``bbox_head``, ``mask_head``) split into them."""
    def has_params(module):
        return next(module.parameters(), None) is not None

    parts = []
    for name, child in model.named_children():
        if not has_params(child):
            continue
        inner = [(n, c) for n, c in child.named_children() if has_params(c)]
        if any(n.endswith('head') for n, _ in inner) and next(child.parameters(recurse=False), None) is None:
            parts += [f'{name}.{n}' for n, _ in inner]
        else:
            parts.append(name)
    return parts


def as_loaded(model: nn.Module, state: dict) -> dict:
    """``state`` under the names ``model.load_state_dict`` will give it: every
    EfficientViT inside maps its part as its load hook does."""
    state = dict(state)
    for name, module in model.named_modules():
        if isinstance(module, EfficientViT):
            adapt_state_dict(state, f'{name}.' if name else '', module.state_dict())
    return state


def part_fits(model: nn.Module, state: dict) -> list[PartFit]:
    """Per part of ``model``: its tensors missing from ``state`` (BatchNorm's
    batch counters aside) and those with another shape."""
    model_state = {k: v for k, v in model.state_dict().items() if not k.endswith('num_batches_tracked')}
    state = as_loaded(model, state)
    fits = []
    for part in model_parts(model):
        keys = [k for k in model_state if k.startswith(part + '.')]
        fit = PartFit(part, len(keys), keys[0])
        for key in keys:
            if key not in state:
                fit.missing.append(key)
            elif state[key].shape != model_state[key].shape:
                fit.mismatched.append(f'{key}: file {tuple(state[key].shape)} vs model '
                                      f'{tuple(model_state[key].shape)}')
        fits.append(fit)
    return fits


def _short_list(items: list[str], limit: int = 3) -> str:
    shown = ', '.join(items[:limit])
    return shown + (f', ... ({len(items) - limit} more)' if len(items) > limit else '')


def _what_the_file_holds(state: dict, part: str) -> str:
    own = [k for k in state if k.startswith(part + '.')]
    if own:
        return f'its {len(own)} tensors under {part}. have other names (e.g. {own[0]})'
    counts = Counter(k.split('.', 1)[0] for k in state)
    if not counts:
        return 'it holds no tensors'
    return 'it holds ' + ', '.join(f'{prefix}.* ({n})' for prefix, n in counts.most_common(6))


_EMPTY_PART_HINT = {
    'evaluate': 'Evaluation takes every weight from this one file (init_cfg is not applied): give a checkpoint of '
                'the whole model, trained with this config or released with it.',
    'resume': 'Resume from a checkpoint this config saved.',
    'fine-tune': 'load_from takes a checkpoint of a whole model; ImageNet backbone weights go in '
                 'model.backbone.init_cfg instead.',
}


def check_checkpoint_fits(model: nn.Module, source: str, purpose: str = 'evaluate') -> None:
    """Refuse, in one message, a checkpoint that would leave part of
    ``model`` at random for ``purpose`` (one of :data:`PURPOSES`):

    * any part none of whose tensors the file names;
    * tensors of another shape, except in heads when fine-tuning (other classes);
    * some tensors missing, except when fine-tuning, where one warning lists them.
    """
    if purpose not in PURPOSES:
        raise ValueError(f'purpose must be one of {PURPOSES}, got {purpose!r}')
    fine_tuning = purpose == 'fine-tune'
    state = extract_state_dict(read_checkpoint(source), prefix='')
    fits = part_fits(model, state)

    for fit in fits:
        if len(fit.missing) == fit.total:
            raise CheckpointError(
                f"{source} holds none of the weights of the model's {fit.name} ({fit.total} tensors, e.g. "
                f"{fit.example}): {_what_the_file_holds(state, fit.name)}. "
                + _EMPTY_PART_HINT[purpose])

    mismatched = [m for fit in fits if not (fine_tuning and fit.is_head) for m in fit.mismatched]
    if mismatched:
        raise CheckpointError(
            f'{source} was trained for another model: {len(mismatched)} tensors have other shapes '
            f'({_short_list(mismatched, 2)}). Use the config it was trained with (a copy is in its work dir).')

    missing = '; '.join(f'{fit.name}: {len(fit.missing)} of {fit.total} tensors missing '
                        f'({_short_list([k[len(fit.name) + 1:] for k in fit.missing])})' for fit in fits if fit.missing)
    if not fine_tuning:
        if missing:
            raise CheckpointError(f'{source} does not cover the whole model ({missing}); those layers would run '
                                  'with random weights. Use the checkpoint trained with this config.')
        return
    other_classes = '; '.join(f'{fit.name}: {len(fit.mismatched)} tensors shaped for other classes '
                              f'({_short_list([m.split(":")[0][len(fit.name) + 1:] for m in fit.mismatched])})'
                              for fit in fits if fit.mismatched)
    if missing or other_classes:
        print_log(f'Fine-tuning from {source}; these layers start from their initialisation: '
                  f'{"; ".join(filter(None, (missing, other_classes)))}.', logger='current', level=logging.WARNING)


_MMENGINE_KEY_DUMP = 'The model and loaded state dict do not match exactly'


class _WithoutKeyDump(io.TextIOBase):
    """A text stream passing everything to ``stream`` but mmengine's key dump
    (one ``print`` of a message that starts with its header)."""

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

    def flush(self):
        self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


@contextlib.contextmanager
def without_mmengine_key_dump():
    """Inside, mmengine's list of every key that did not load (printed to
    stdout when a checkpoint loads with ``strict=False``) is left out: it
    runs after :func:`check_checkpoint_fits`, which said the same in one
    readable message, or refused the file."""
    with contextlib.redirect_stdout(_WithoutKeyDump(sys.stdout)):
        yield
