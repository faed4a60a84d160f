"""``torch.compile`` for inference, with inductor's settings applied where
they take effect (the benchmark's ``compile`` mode, the int8 parts).

Freezing folds the weights into the graph as constants, so that on a CPU
the convolutions and products become oneDNN's kernels on weights packed
once, with the ReLU or add after them fused in. Given as ``torch.compile``'s
``options`` it silently does nothing: dynamo decides whether the weights
are graph inputs from inductor's global config, before the options are
applied (pytorch/pytorch#139272; torch 2.14: the products then ran as
``aten::addmm`` with the weight reordered at every call). So the settings
are patched into inductor's config around each call, which is when
compiling happens (docs/design.md, "Low precision").
"""
from __future__ import annotations

import torch
import torch.nn as nn

# On a CPU the generated wrapper is C++ (cpp_wrapper): a forward of M4 makes about 120 oneDNN calls, and each
# call from a Python wrapper cost tens of microseconds (docs/design.md, "Low precision").
CPU_SETTINGS = dict(freezing=True, cpp_wrapper=True)
GPU_SETTINGS = dict(freezing=True)
# The autotune mode: inductor times its GEMM templates (on a CPU, C++ ones with AMX or AVX-512 micro-kernels)
# against the library kernels for each product while compiling, and keeps the fastest. Minutes of compiling on
# 2 cores, for about a tenth more images/s on an AMX Xeon (docs/design.md, "Low precision").
AUTOTUNE_SETTINGS = dict(max_autotune=True)


class CompiledForInference(nn.Module):
    """``module`` compiled by inductor for inference on ``device``: each call
    runs without gradients under :data:`CPU_SETTINGS` or :data:`GPU_SETTINGS`
    (and :data:`AUTOTUNE_SETTINGS` with ``autotune``), so that the first
    call compiles with them. ``compile_kwargs`` go to ``torch.compile``
    (``dynamic``, ``mode``)."""

    def __init__(self, module: nn.Module, device: torch.device | str = 'cpu', autotune: bool = False,
                 **compile_kwargs):
        super().__init__()
        self.compiled = torch.compile(module, **compile_kwargs)
        self.settings = {**(CPU_SETTINGS if torch.device(device).type == 'cpu' else GPU_SETTINGS),
                         **(AUTOTUNE_SETTINGS if autotune else {})}

    def forward(self, *args, **kwargs):
        with torch._inductor.config.patch(**self.settings), torch.no_grad():
            return self.compiled(*args, **kwargs)
