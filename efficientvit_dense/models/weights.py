"""Reading EfficientViT weights in either public format, safely.

Two formats exist (docs/design.md):

* the official release (``efficientvit_m*.pth``): ``patch_embed.{0,2,4,6}``,
  ``blocks{1,2,3}.N``, Conv-BN children named ``c``/``bn``, ``head.l``;
* timm's (``efficientvit_m*.r224_in1k``): ``patch_embed.conv{1..4}``,
  ``stages.{i}.downsample.*`` / ``stages.{i}.blocks.{j}``, ``conv``/``bn``,
  ``head.linear``.

This project's modules use timm's names (the "native" format), so the
official format is renamed on load, also inside whole detectors saved by the
authors' downstream code (``backbone.blocks1.0...``). Index buffers are
rebuilt by the model, never read from a file, and attention-bias tables are
resized when the file's window differs from the model's.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pickle
import re
from collections.abc import Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import CheckpointError, InputNotFoundError, OutputExistsError
from ..files import write_atomically
from .arch import ARCH_SETTINGS

logger = logging.getLogger(__name__)

HEAD_PREFIXES = ('head.', 'head_dist.')
NATIVE_FORMAT_TAG = 'efficientvit-dense'


# --------------------------------------------------------------------------
# Reading files


def _first_line(err: Exception) -> str:
    return next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)


def _code_refusal(err: Exception) -> str | None:
    """torch's reason when safe loading met a reference to code (a GLOBAL
    or a call it does not allow), else None (the file is simply not a
    checkpoint)."""
    for line in str(err).splitlines():
        line = line.strip().removeprefix('WeightsUnpickler error:').strip()
        if 'GLOBAL' in line or line.startswith(('Trying to call', 'Can only build', 'Can only create')):
            return line.split('. Please use')[0].rstrip('.')
    return None


def unpickling_error(source: str, err: pickle.UnpicklingError) -> CheckpointError:
    """What to tell the user when torch's safe loading refused ``source``."""
    reason = _code_refusal(err)
    if reason is not None:
        return CheckpointError(
            f'Refusing to load {source}: it contains pickled Python objects that are not plain '
            f'weights and could run code when loaded ({reason}). Load only files you trust; to use '
            'a trusted file, re-save its state dict with torch.save(state_dict, path).')
    return not_a_checkpoint(source)


def not_a_checkpoint(source: str) -> CheckpointError:
    return CheckpointError(f'{source} is not a PyTorch checkpoint: neither a zip archive nor a pickle, the formats '
                           'torch.save writes (a download that saved an error page looks like this).')


@contextlib.contextmanager
def safe_loading_errors(source: str):
    """Inside, a checkpoint load that torch's safe loading refuses (in
    mmengine's runner or an inferencer: both load with torch's default,
    ``weights_only=True``) becomes one :class:`CheckpointError` naming
    ``source`` and the reason, instead of a traceback."""
    try:
        yield
    except pickle.UnpicklingError as err:
        raise unpickling_error(source, err) from err


def is_url(source: str) -> bool:
    return source.startswith(('http://', 'https://'))


def downloaded(url: str) -> str:
    """The local copy of ``url``, downloaded once into torch hub's cache
    under a name of the whole URL: torch's and mmengine's loaders name the
    copy after the URL's last part alone, so a second
    ``.../pytorch_model.bin`` (every timm file on the Hugging Face hub) got
    the first one's weights."""
    name = f'{hashlib.sha256(url.encode()).hexdigest()[:12]}_{os.path.basename(url.split("?")[0]) or "checkpoint"}'
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', name)
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, path, progress=False)  # through a temporary file: whole or absent
        except OSError as err:
            raise CheckpointError(f'{url} could not be downloaded ({_first_line(err)}); download it yourself and '
                                  'give the file instead.') from err
    return path


def read_checkpoint(source: str) -> dict:
    """Load a checkpoint from a local path or an http(s) URL with
    ``weights_only=True``: tensors and plain containers only, never code."""
    path = downloaded(source) if is_url(source) else source
    if not os.path.isfile(path):
        raise InputNotFoundError(f'Checkpoint not found: {source}')
    # a download that saved an error page stays in the cache: the messages name it, to delete
    named = source if path == source else f'{source} (downloaded to {path}; delete it to download again)'
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        raise unpickling_error(named, err) from err
    except KeyError as err:  # torch's legacy reader met a byte that is no pickle opcode (a text file)
        raise not_a_checkpoint(named) from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f'{named} is not a readable PyTorch checkpoint ({_first_line(err)}).') from err
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f'{source} holds a {type(ckpt).__name__}, not a dict of weights.')
    return dict(ckpt)


def extract_state_dict(ckpt: Mapping, prefix: str | None = None) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint: under 'state_dict' (mmengine),
    'model' (official release) or at the top level (timm), without a DDP
    ``module.`` prefix. With ``prefix`` (e.g. 'backbone.') only keys under it
    are kept, prefix removed; a detector or classifier checkpoint of this
    project is recognised and its backbone taken without one."""
    for key in ('state_dict', 'model'):
        if key in ckpt and isinstance(ckpt[key], Mapping):
            ckpt = ckpt[key]
            break
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if prefix is None and any(k.startswith('backbone.') for k in state) \
            and not any(k.startswith(('stages.', 'blocks1.')) for k in state):
        prefix = 'backbone.'
    if prefix:
        prefix = prefix if prefix.endswith('.') else prefix + '.'  # mmengine's Pretrained takes 'backbone' too
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return state


# --------------------------------------------------------------------------
# Format detection and renaming


def layout_of(keys) -> str | None:
    """'official', 'native' (timm names) or None for a backbone's keys."""
    keys = list(keys)
    if any(k.startswith('blocks1.') for k in keys) and any(k.startswith('patch_embed.0.') for k in keys):
        return 'official'
    if any(k.startswith('stages.') for k in keys) and any(k.startswith('patch_embed.conv1.') for k in keys):
        return 'native'
    return None


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """'official' or 'native' (timm names); raises if neither."""
    keys = list(state)
    fmt = layout_of(keys)
    if fmt is not None:
        return fmt
    sample = ', '.join(keys[:5]) or 'no tensors at all'
    raise CheckpointError(
        'This is not an EfficientViT checkpoint in the official or the timm format '
        f'(first keys: {sample}). Expected keys like "patch_embed.0.c.weight" (official release) '
        'or "patch_embed.conv1.conv.weight" (timm / efficientvit-dense).')


_OFFICIAL_STAGE = re.compile(r'^blocks(\d+)\.(\d+)\.(.*)$')
_DOWNSAMPLE_PARTS = ('res1', 'patchmerge', 'res2')


_OFFICIAL_TO_NATIVE_LEAF = {'c': 'conv', 'l': 'linear'}
_NATIVE_TO_OFFICIAL_LEAF = {v: k for k, v in _OFFICIAL_TO_NATIVE_LEAF.items()}


def _rename_leaf_module(key: str, table: Mapping[str, str]) -> str:
    """Rename the module holding a tensor: the official Conv-BN and BN-Linear
    children are 'c' and 'l', timm's 'conv' and 'linear'."""
    module, _, tensor = key.rpartition('.')
    parent, _, leaf = module.rpartition('.')
    if leaf in table:
        return f'{parent}.{table[leaf]}.{tensor}' if parent else f'{table[leaf]}.{tensor}'
    return key


def official_to_native(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official-release state dict to this project's (timm's) names."""
    out = {}
    for key, value in state.items():
        if key.endswith('attention_bias_idxs'):
            continue  # derived from the window size; the model rebuilds it
        key = _rename_leaf_module(key, _OFFICIAL_TO_NATIVE_LEAF)
        if key.startswith('patch_embed.'):
            _, idx, rest = key.split('.', 2)
            key = f'patch_embed.conv{int(idx) // 2 + 1}.{rest}'
        elif (match := _OFFICIAL_STAGE.match(key)):
            stage, index, rest = int(match[1]) - 1, int(match[2]), match[3]
            if stage == 0:
                key = f'stages.0.blocks.{index}.{rest}'
            elif index < 3:
                key = f'stages.{stage}.downsample.{_DOWNSAMPLE_PARTS[index]}.{rest}'
            else:
                key = f'stages.{stage}.blocks.{index - 3}.{rest}'
        out[key] = value
    return out


_NATIVE_STAGE = re.compile(r'^stages\.(\d+)\.(downsample\.(res1|patchmerge|res2)|blocks\.(\d+))\.(.*)$')


def native_to_official(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a native (timm) state dict to the official release's names,
    e.g. to use weights trained here with the reference code."""
    out = {}
    for key, value in state.items():
        if key.startswith('patch_embed.conv'):
            _, conv, rest = key.split('.', 2)
            key = f'patch_embed.{(int(conv[len("conv"):]) - 1) * 2}.{rest}'
        elif (match := _NATIVE_STAGE.match(key)):
            stage, rest = int(match[1]), match[5]
            if match[3]:
                index = _DOWNSAMPLE_PARTS.index(match[3])
            else:
                index = int(match[4]) + (3 if stage > 0 else 0)
            key = f'blocks{stage + 1}.{index}.{rest}'
        out[_rename_leaf_module(key, _NATIVE_TO_OFFICIAL_LEAF)] = value
    return out


def to_native(state: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """(native state dict, detected source format)."""
    fmt = detect_format(state)
    return (official_to_native(state) if fmt == 'official' else dict(state)), fmt


def without_head(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict without the ImageNet classifier (and distillation) head."""
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}


def infer_arch(state: Mapping[str, torch.Tensor]) -> str | None:
    """The 'm0'..'m5' name whose widths and depths match a native state dict."""
    dims, depths = [], []
    for i in range(3):
        blocks = {int(m[1]) for k in state if (m := re.match(rf'^stages\.{i}\.blocks\.(\d+)\.', k))}
        weight = state.get(f'stages.{i}.blocks.0.dw0.m.conv.weight')
        if weight is None:
            return None
        dims.append(weight.shape[0])
        depths.append(len(blocks))
    return arch_name(dict(embed_dims=tuple(dims), depths=tuple(depths)))


def arch_name(arch: Mapping) -> str | None:
    """The 'm0'..'m5' name of an arch's widths and depths; None for a custom one."""
    for name, settings in ARCH_SETTINGS.items():
        if tuple(arch['embed_dims']) == settings['embed_dims'] and tuple(arch['depths']) == settings['depths']:
            return name
    return None


# --------------------------------------------------------------------------
# Loading into a model


def resize_bias_table(table: torch.Tensor, window: int) -> torch.Tensor:
    """A (heads, S*S) bias table of (|dy|, |dx|) offsets resized to
    (heads, window*window) as the authors' downstream code does it: plain
    bicubic interpolation of each head's SxS grid, without antialiasing
    (timm's LeViT helper antialiases, which changes the values by up to ~9%)."""
    heads, length = table.shape
    side = round(length ** 0.5)
    grid = table.detach().reshape(1, heads, side, side).float()
    return F.interpolate(grid, size=(window, window), mode='bicubic', align_corners=False
                         ).reshape(heads, window * window).to(table.dtype)


def resize_attention_biases(state: dict[str, torch.Tensor], model_state: Mapping[str, torch.Tensor]
                            ) -> list[str]:
    """Resize, in ``state``, the bias tables whose window differs from the
    model's. Returns a description of each table resized."""
    resized = []
    for key, value in list(state.items()):
        target = model_state.get(key)
        if not key.endswith('attention_biases') or target is None or value.shape == target.shape:
            continue
        if value.shape[0] != target.shape[0]:
            continue  # a different number of heads: reported as a mismatch
        old, new = round(value.shape[1] ** 0.5), round(target.shape[1] ** 0.5)
        state[key] = resize_bias_table(value, new)
        resized.append(f'{key} ({old}x{old} -> {new}x{new})')
        if new < old:  # growing ImageNet's 4x4 last stage to the dense 7x7 is the usual way; shrinking loses values
            logger.warning(f'{key}: the file\'s {old}x{old} attention bias table is shrunk to the model\'s '
                           f'{new}x{new}; its trained values are lost. Build the model with the window it was trained '
                           'with (window_size=7 for the dense tasks\' checkpoints).')
    return resized


def adapt_state_dict(state: dict[str, torch.Tensor], prefix: str, model_state: Mapping[str, torch.Tensor]
                     ) -> dict:
    """In place, make the backbone tensors of ``state`` under ``prefix``
    loadable into a backbone whose own (unprefixed) state is ``model_state``:
    official names become native, index buffers go, bias tables are resized.
    Tensors outside ``prefix`` are left alone, so this works on a whole
    detector's state dict. Returns what it found and did:
    ``dict(format=..., resized=[...])``, format None when nothing under
    ``prefix`` is in a known layout (the load then reports what is missing)."""
    keys = [k for k in state if k.startswith(prefix)]
    fmt = layout_of(k[len(prefix):] for k in keys)
    if fmt is None:
        return dict(format=None, resized=[])
    own = {k[len(prefix):]: state.pop(k) for k in keys}
    own = official_to_native(own) if fmt == 'official' else {
        k: v for k, v in own.items() if not k.endswith('attention_bias_idxs')}
    resized = resize_attention_biases(own, model_state)
    state.update((prefix + k, v) for k, v in own.items())
    return dict(format=fmt, resized=resized)


def is_batch_counter(key: str) -> bool:
    """BatchNorm's batch counter: no weight (torch's strict load does not ask for it either)."""
    return key.endswith('num_batches_tracked')


def short_list(keys: list[str], limit: int = 8) -> str:
    """The first ``limit`` items, and how many more there are."""
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str = 'state dict',
                    fmt: str = 'native', drop_head: bool = True, strict: bool = True) -> dict:
    """Load a native state dict into ``model`` (a backbone, or a classifier
    built on this project's modules), resizing bias tables, and report
    everything that did not match in one message.

    Raises :class:`CheckpointError` when shapes disagree (another arch), and,
    with ``strict``, when the model's keys are not all covered.
    """
    if drop_head:
        state = without_head(state)
    model_state = model.state_dict()
    resized = resize_attention_biases(state, model_state)

    mismatched = [f'{k}: file {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
                  for k, v in state.items() if k in model_state and v.shape != model_state[k].shape]
    if mismatched:
        file_arch = infer_arch(state)
        model_arch = getattr(model, 'arch', None)
        hint = f' The file holds EfficientViT-{file_arch.upper()} weights.' if file_arch else ''
        if isinstance(model_arch, dict):
            named = arch_name(model_arch)
            hint += f' The model is EfficientViT-{named.upper()}.' if named else f' The model is {model_arch}.'
        raise CheckpointError(
            f'{source} does not fit this model: {len(mismatched)} tensors have other shapes '
            f'({short_list(mismatched, 3)}).{hint} Use the arch the weights were trained with.')

    missing = sorted(k for k in set(model_state) - set(state) if not is_batch_counter(k))
    unexpected = sorted(set(state) - set(model_state))
    lines = [f'EfficientViT weights from {source} ({fmt} format): '
             f'{len(set(state) & set(model_state))}/{len(model_state)} tensors loaded']
    if resized:
        lines.append(f'resized attention-bias tables ({len(resized)}): {short_list(resized, 3)}')
    if missing:
        lines.append(f'missing keys ({len(missing)}): {short_list(missing)}')
    if unexpected:
        lines.append(f'unexpected keys ({len(unexpected)}): {short_list(unexpected)}')
    message = '\n  '.join(lines)
    if strict and missing:
        raise CheckpointError(message + '\nThe file does not cover the whole model: those layers would keep '
                              'their initialisation. Give ImageNet weights of this arch (official or timm format); '
                              'in Python, load_backbone_weights(..., strict=False) loads it anyway.')
    model.load_state_dict(state, strict=False)
    logger.log(logging.WARNING if (missing or unexpected) else logging.INFO, message)
    return dict(missing=missing, unexpected=unexpected, resized=resized, format=fmt, message=message)


def load_backbone_weights(model: nn.Module, source: str, prefix: str | None = None,
                          drop_head: bool = True, strict: bool = True) -> dict:
    """Load an official, timm or efficientvit-dense checkpoint (path or URL)
    into an :class:`EfficientViT` backbone. Returns the load report."""
    state = extract_state_dict(read_checkpoint(source), prefix)
    if not state:
        raise CheckpointError(f'{source} holds no tensors' + (f' under prefix {prefix!r}.' if prefix else '.'))
    state, fmt = to_native(state)
    return load_state_into(model, state, source, fmt, drop_head=drop_head, strict=strict)


def to_classifier(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A native whole-model state dict under the names of an mmpretrain
    ``ImageClassifier`` with :class:`EfficientViTClsHead`: the backbone under
    ``backbone.``, ``head``/``head_dist`` under ``head.``."""
    return {(f'head.{k}' if k.startswith(HEAD_PREFIXES) else f'backbone.{k}'): v for k, v in state.items()}


def load_classifier_weights(classifier: nn.Module, source: str, strict: bool = True) -> dict:
    """Load a whole ImageNet checkpoint (official, timm, or a classifier
    trained here), head included, into an mmpretrain ``ImageClassifier``
    built from this project's backbone and head. Returns the load report."""
    state = extract_state_dict(read_checkpoint(source), prefix='')
    if any(k.startswith('backbone.') for k in state):
        fmt = 'mmpretrain classifier'
    else:
        state, fmt = to_native(state)
        state = to_classifier(state)
    return load_state_into(classifier, state, source, fmt, drop_head=False, strict=strict)


def _dataset_meta(meta) -> dict:
    """A checkpoint meta's class names and palette as mmengine keeps them
    (``dataset_meta``), also from mmcv 1's ``CLASSES`` and ``PALETTE``."""
    if not isinstance(meta, Mapping):
        return {}
    if isinstance(meta.get('dataset_meta'), Mapping):
        return dict(meta['dataset_meta'])
    legacy = dict(classes=meta.get('CLASSES'), palette=meta.get('PALETTE'))
    return {k: v for k, v in legacy.items() if v is not None}


def convert_checkpoint(source: str, destination: str, drop_head: bool = False,
                       backbone_only: bool = False) -> dict:
    """Convert a checkpoint into this project's format, ``{'state_dict':
    native tensors, 'meta': {...}}``, and return the meta. Refuses to overwrite.

    * An ImageNet backbone (official or timm), or with ``backbone_only`` the
      backbone of a whole model: the backbone's tensors, ImageNet head kept
      unless ``drop_head``.
    * A whole model (keys under ``backbone.``), e.g. a detector released by
      the authors: every tensor, the backbone's renamed, with the class names
      as ``meta['dataset_meta']`` (mmdet 3's inferencers read them there;
      mmcv 1 saved them as ``meta['CLASSES']``).
    """
    if os.path.exists(destination):
        raise OutputExistsError(f'{destination} already exists; choose another output path.')
    ckpt = read_checkpoint(source)
    state = extract_state_dict(ckpt, prefix='')
    if any(k.startswith('backbone.') for k in state) and not backbone_only:
        if drop_head:
            raise CheckpointError(f'{source} holds a whole model; --drop-head applies to its backbone alone '
                                  '(add --backbone-only).')
        found = adapt_state_dict(state, 'backbone.', {})
        if found['format'] is None:
            raise CheckpointError(f'{source} is a whole model whose backbone is not EfficientViT (first keys: '
                                  f'{short_list([k for k in state if k.startswith("backbone.")], 3)}).')
        meta = dict(format=NATIVE_FORMAT_TAG, source=os.path.basename(source), source_format=found['format'],
                    arch=infer_arch(extract_state_dict(state, 'backbone.')), kind='whole model')
        dataset_meta = _dataset_meta(ckpt.get('meta'))
        if dataset_meta:
            meta['dataset_meta'] = dataset_meta
    else:
        state, fmt = to_native(extract_state_dict(ckpt))
        if drop_head:
            state = without_head(state)
        meta = dict(format=NATIVE_FORMAT_TAG, source=os.path.basename(source), source_format=fmt,
                    arch=infer_arch(state), kind='backbone', has_head=any(k.startswith(HEAD_PREFIXES) for k in state))
    saved = io.BytesIO()
    torch.save(dict(state_dict=state, meta=meta), saved)
    write_atomically(saved.getvalue(), destination)  # a kill leaves no half-written file, nor a temporary one
    return meta
