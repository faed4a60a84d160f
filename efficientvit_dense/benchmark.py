"""Timing a forward pass: warm-up, repeats, medians, CUDA synchronisation.

Figures on shared machines are noisy, so compare models measured in the
same run (a ratio) rather than against numbers from another day.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn as nn


def time_calls(fn: Callable[[], object], warmup: int = 3, repeats: int = 10,
               device: torch.device | str = 'cpu') -> list[float]:
    """Seconds taken by each of ``repeats`` calls of ``fn`` after ``warmup``
    untimed calls. On CUDA the device is synchronised around every call so
    that the time covers the kernels, not just their launch."""
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


@torch.no_grad()
def images_per_second(model: nn.Module, batch_size: int = 16, size: int | tuple[int, int] = 224,
                      warmup: int = 3, repeats: int = 10, device: torch.device | str = 'cpu') -> float:
    """Median inference throughput of ``model`` in eval mode on random input."""
    height, width = (size, size) if isinstance(size, int) else size
    model = model.eval().to(device)
    x = torch.randn(batch_size, 3, height, width, device=device)
    return batch_size / statistics.median(time_calls(lambda: model(x), warmup, repeats, device))


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
        raise ValueError(f'The dataloader gave {len(batches)} batches; timing needs more than {warmup}.')
    for batch in batches[:warmup]:
        model.test_step(batch)
    device = next(model.parameters()).device
    images, seconds = 0, 0.0
    for batch in batches[warmup:]:
        (elapsed,) = time_calls(lambda: model.test_step(batch), warmup=0, repeats=1, device=device)
        seconds += elapsed
        images += len(batch['inputs'])
    return images / seconds
