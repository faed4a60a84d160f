"""Timing a forward pass: warm-up, repeats, medians, CUDA synchronisation.

Figures on shared machines are noisy, so compare models measured in the
same run (a ratio) rather than against numbers from another day.
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform
import statistics
import time
from typing import Callable

import torch
import torch.nn as nn

from ..errors import DataError

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# Allocators that keep freed memory for reuse themselves, preloaded as PyTorch's CPU tuning guides advise.
_CACHING_ALLOCATORS = ('jemalloc', 'tcmalloc', 'mimalloc')


@functools.cache
def hold_freed_memory() -> str:
    """Make the process's malloc keep freed memory for reuse, and say which
    allocator serves the timed calls (each record's ``allocator``).

    glibc's malloc gives large blocks their own mapping and hands the memory
    back when they are freed, above a threshold that moves with the
    process's history. An eager model allocates its activations at every
    call, so each call then pays the kernel's page faults on fresh memory:
    on a 2-core Xeon VM timm's eager M4 ran at batch 16 at 193 images/s in
    a fresh process and at 139 after an int8 model was built in it (60 with
    the threshold held at its start), and every ratio against an eager peer
    swung with it (docs/design.md, "Timing: what the allocator costs").
    Here glibc serves every block from its heap and never shrinks it
    (mallopt ``M_MMAP_MAX`` 0, ``M_TRIM_THRESHOLD`` 2 GiB), as jemalloc or
    tcmalloc would: the process keeps its peak memory.
    Called by every timing function, and by ``records.environment`` to
    name it; acts once per process."""
    preloaded = [os.path.basename(path) for path in os.environ.get('LD_PRELOAD', '').replace(':', ' ').split()
                 if any(name in path for name in _CACHING_ALLOCATORS)]
    if preloaded:
        return f'{preloaded[0]} (LD_PRELOAD)'
    if platform.libc_ver()[0] != 'glibc':
        return "the C library's malloc, as configured"
    libc = ctypes.CDLL(None)
    # both asked for, so that a refusal of the first does not skip the second; the record says if either was refused
    applied = [libc.mallopt(_M_MMAP_MAX, 0), libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)]
    if all(applied):
        return 'glibc malloc holding freed memory (no mmap, no trim)'
    return f'glibc malloc, partly as configured (mallopt refused {applied.count(0)} of 2 settings)'


def time_calls(fn: Callable[[], object], warmup: int = 3, repeats: int = 10,
               device: torch.device | str = 'cpu') -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn`` after ``warmup``
    untimed calls (see :func:`interleaved_times`)."""
    return interleaved_times([fn], warmup, repeats, device)[0]


def interleaved_times(fns: list[Callable[[], object]], warmup: int = 3, repeats: int = 10,
                      device: torch.device | str = 'cpu') -> list[list[float]]:
    """Seconds taken by each call of each function: after ``warmup`` untimed
    calls of each, ``repeats`` rounds that call every function once, so a
    slow spell of a shared machine falls on all of them alike. On CUDA the
    device is synchronised around every call so that the time covers the
    kernels, not just their launch. The process's malloc keeps freed
    memory from then on (:func:`hold_freed_memory`)."""
    hold_freed_memory()
    device = torch.device(device)
    # The device timed, not the current one: synchronising cuda:0 while cuda:1 runs would time the launches only
    sync = functools.partial(torch.cuda.synchronize, device) if device.type == 'cuda' else (lambda: None)
    for fn in fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, seconds in zip(fns, times):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            seconds.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def images_per_second(models: list[nn.Module], batch_size: int = 16, size: int | tuple[int, int] = 224,
                      warmup: int = 3, repeats: int = 10, device: torch.device | str = 'cpu') -> list[float]:
    """Median inference throughput of each model in eval mode on one random
    batch, the models timed in turns."""
    height, width = (size, size) if isinstance(size, int) else size
    x = torch.randn(batch_size, 3, height, width, device=device)
    models = [model.eval().to(device) for model in models]
    times = interleaved_times([functools.partial(model, x) for model in models], warmup, repeats, device)
    return [batch_size / statistics.median(seconds) for seconds in times]


@torch.no_grad()
def predict_images_per_second(model: nn.Module, dataloader, num_batches: int = 5, warmup: int = 1) -> float:
    """Throughput of an mmengine model's whole predict path (``test_step``:
    data preprocessing, forward and post-processing such as NMS) on batches
    from ``dataloader``. Loading and decoding the files is not timed."""
    model.eval()
    batches = []
    for batch in dataloader:
        batches.append(batch)
        if len(batches) == warmup + num_batches:
            break
    if len(batches) <= warmup:
        raise DataError(f'The dataloader gave {len(batches)} batches; timing needs more than {warmup}.')
    for batch in batches[:warmup]:
        model.test_step(batch)
    device = next(model.parameters()).device
    images, seconds = 0, 0.0
    for batch in batches[warmup:]:
        (elapsed,) = time_calls(lambda: model.test_step(batch), warmup=0, repeats=1, device=device)
        seconds += elapsed
        images += len(batch['inputs'])
    return images / seconds


def throughput_and_latency(fns: list[Callable], make_inputs: list[Callable[[int], object]], batch_size: int,
                           device: torch.device | str, warmup: int = 3, repeats: int = 10) -> list[dict]:
    """For each ``fn`` with its ``make_input``: images/s of
    ``fn(make_input(batch_size))`` (median over repeats) and batch-1 latency
    (median and 90th percentile, ms), the functions timed in turns."""
    batches = [make(batch_size) for make in make_inputs]
    singles = [make(1) for make in make_inputs]
    batch_times = interleaved_times([functools.partial(fn, x) for fn, x in zip(fns, batches)],
                                    warmup, repeats, device)
    single_times = interleaved_times([functools.partial(fn, x) for fn, x in zip(fns, singles)],
                                     warmup, max(repeats, 10), device)
    figures = []
    for batch, single in zip(batch_times, single_times):
        single = sorted(single)
        figures.append(dict(images_per_s=batch_size / statistics.median(batch),
                            latency_ms_median=1e3 * statistics.median(single),
                            latency_ms_p90=1e3 * single[min(len(single) - 1, round(0.9 * (len(single) - 1)))]))
    return figures
