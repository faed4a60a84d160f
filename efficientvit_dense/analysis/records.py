"""Benchmark records: where a figure was measured, the table printed, and
the JSON files (never overwritten) that tools/report.py reads."""
from __future__ import annotations

import hashlib
import json
import os
import time

import torch

from ..errors import InputNotFoundError, OutputExistsError
from ..models.weights import downloaded, is_url
from .timing import hold_freed_memory

# The instruction sets that decide how fast a CPU runs each precision.
RELEVANT_ISA = ('avx2', 'avx_vnni', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16', 'amx_tile', 'amx_bf16',
                'amx_int8', 'bf16', 'i8mm')


# The flags under which a precision runs natively (x86; bf16: Arm's); without them bfloat16 is
# emulated and int8's products run without VNNI.
NATIVE_FLAGS = {'bfloat16': ('avx512_bf16', 'amx_bf16', 'bf16'), 'int8': ('avx512_vnni', 'amx_int8', 'avx_vnni')}


def cpu_flags() -> set[str]:
    """This CPU's feature flags as ``lscpu`` lists them (x86 ``flags``, Arm
    ``Features``; empty where /proc/cpuinfo is not there)."""
    try:
        with open('/proc/cpuinfo') as f:
            return next((set(line.split(':', 1)[1].split()) for line in f
                         if line.startswith(('flags', 'Features'))), set())
    except OSError:
        return set()


def emulation_note(precision: str) -> str:
    """One line to print before running ``precision`` on this CPU where it
    lacks the instructions that run it natively (:data:`NATIVE_FLAGS`);
    empty where it has them."""
    wanted, flags = NATIVE_FLAGS.get(precision), cpu_flags()
    if not wanted or not flags or set(wanted) & flags:  # no flags: unknown here (no /proc/cpuinfo), not absent
        return ''
    if precision == 'bfloat16':
        return (f'note: this CPU has none of {", ".join(wanted)} (lscpu), so bfloat16 is emulated here and slower '
                'than float32; its speed on a CPU that has them is not what this run shows.')
    return (f'note: this CPU has none of {", ".join(wanted)} (lscpu): its int8 products run without VNNI, with '
            'a 7-bit range against saturation, slower than on a CPU that has them.')


def cpu_isa() -> list[str]:
    """The flags of :data:`RELEVANT_ISA` this CPU has."""
    flags = cpu_flags()
    return [flag for flag in RELEVANT_ISA if flag in flags]


def environment(device: torch.device | str) -> dict:
    """Where a figure was measured: the device (a CPU with its relevant
    instruction sets), threads, the allocator and versions."""
    import importlib.metadata
    import platform

    device = torch.device(device)
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open('/proc/cpuinfo') as f:
                name = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name)
        except OSError:
            pass
    versions = {}
    for package in ('torch', 'torchvision', 'timm', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation', 'mmpretrain',
                    'onnxruntime', 'torchao'):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    isa = dict(isa=cpu_isa()) if device.type == 'cpu' else {}
    return dict(device=f'{device.type}: {name}', **isa, threads=torch.get_num_threads(),
                allocator=hold_freed_memory(), python=platform.python_version(), versions=versions)


_digests: dict = {}


def file_digest(path: str) -> str:
    """The first 16 hex digits of a file's SHA-256, read once per version of
    the file (the peers of one checkpoint, the report's work dirs)."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        _digests[key] = digest.hexdigest()[:16]
    return _digests[key]


def checkpoint_fields(checkpoint: str | None) -> dict:
    """A record's weights: the checkpoint's path as given, and its digest,
    which tells tools/report.py whether a record measured a work dir's
    checkpoint whatever the names (every run of a recipe saves an
    ``epoch_12.pth``) and folders (a copied work dir) involved."""
    local = downloaded(checkpoint) if checkpoint and is_url(checkpoint) else checkpoint
    if local and not os.path.isfile(local):
        raise InputNotFoundError(f'Checkpoint not found: {checkpoint}')
    return dict(checkpoint=checkpoint, checkpoint_sha256=file_digest(local) if local else None)


def _size(dims) -> str:
    return 'x'.join(map(str, dims))


def format_table(records: list[dict]) -> str:
    """One line per record, with each model's ratio to the first."""
    first = records[0]
    isa = f' ({" ".join(first["isa"]) or "none of " + "/".join(RELEVANT_ISA)})' if 'isa' in first else ''
    # Columns as wide as their longest entry: a config path or 'deploy+onnxruntime+int8' is read whole.
    model_width = max(len('model'), *(len(r['model']) for r in records))
    modes_width = max(len('modes'), *(len('+'.join(r['modes'])) for r in records))
    # A config's pipeline resizes its images; the network's input is what a ratio compares, shown for each row
    # where the rows differ (a backbone against a detector's predict path).
    inputs_differ = any(r['input_size'] != first['input_size'] for r in records)
    images = first.get('image_size', first['input_size'])
    images = f'images {_size(images)}, ' if images != first['input_size'] else ''
    allocator = f', {first["allocator"]}' if 'allocator' in first else ''
    lines = [f'{first["device"]}{isa}, {first["threads"]} threads{allocator}, torch {first["versions"].get("torch")}; '
             + ('network inputs differ (column "input"), ' if inputs_differ else
                f'{images}network input {_size(first["input_size"])}, ')
             + f'batch {first["batch_size"]} (latency: batch 1), median of {first["repeats"]} after '
             f'{first["warmup"]} warm-up calls' + (', models timed in turns' if first.get('interleaved') else ''),
             f'{"model":<{model_width}} {"modes":<{modes_width}} {"images/s":>9} {"first÷":>6} {"lat. median":>11} '
             f'{"p90 ms":>7}  ' + ('input      ' if inputs_differ else '') + 'timed']
    for r in records:
        lines.append(f'{r["model"]:<{model_width}} {"+".join(r["modes"]):<{modes_width}} {r["images_per_s"]:>9.2f} '
                     f'{first["images_per_s"] / r["images_per_s"]:>5.2f}x {r["latency_ms_median"]:>8.1f} ms '
                     f'{r["latency_ms_p90"]:>7.1f}  ' + (f'{_size(r["input_size"]):<11}' if inputs_differ else '')
                     + r['what'])
    return '\n'.join(lines)


def make_folder(directory: str) -> str:
    """``directory``, made where missing; one line where a file stands in its way."""
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = directory
        while not os.path.isfile(blocking) and os.path.dirname(blocking) != blocking:
            blocking = os.path.dirname(blocking)
        raise OutputExistsError(f'{directory} cannot be made: {blocking} is a file. Name another folder.') from None
    return directory


def new_stem(directory: str, name: str, extensions=('.json',)) -> str:
    """``directory/name_<time>`` (with ``_1``, ``_2``... if needed) such that
    no file of that stem with any of ``extensions`` exists yet."""
    make_folder(directory)
    stamp = os.path.join(directory, f'{name}_{time.strftime("%Y%m%d_%H%M%S")}')
    for stem in (stamp, *(f'{stamp}_{i}' for i in range(1, 100))):
        if not any(os.path.exists(stem + ext) for ext in extensions):
            return stem
    raise OutputExistsError(f'Too many files named {stamp}* in {directory}.')


def save_records(records: list[dict], work_dir: str) -> str:
    """Write ``records`` to a new ``benchmark_<time>.json`` in ``work_dir``
    (what tools/report.py reads); never replaces a file."""
    path = new_stem(work_dir, 'benchmark') + '.json'
    with open(path, 'x') as f:  # 'x': a file appearing meanwhile is refused, not replaced
        json.dump(records, f, indent=1)
    return path
