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
# max_autotune: inductor benchmarks its C++ GEMM templates (AMX and AVX-512 micro-kernels) against oneDNN for
# each product at compile time and keeps the faster; compiling takes minutes.
AUTOTUNE_SETTINGS = dict(max_autotune=True, max_autotune_gemm_backends='CPP,ATEN')


class CompiledForInference(nn.Module):
    """``module`` compiled by inductor for inference on ``device``: each call
    runs without gradients, under the inductor ``settings`` (by default
    :data:`CPU_SETTINGS` or :data:`GPU_SETTINGS`), so that the first call
    compiles with them. ``compile_kwargs`` go to ``torch.compile``
    (``dynamic``, ``mode``)."""

    def __init__(self, module: nn.Module, device: torch.device | str = 'cpu', settings: dict | None = None,
                 **compile_kwargs):
        super().__init__()
        self.compiled = torch.compile(module, **compile_kwargs)
        default = CPU_SETTINGS if torch.device(device).type == 'cpu' else GPU_SETTINGS
        self.settings = dict(default if settings is None else settings)

    def forward(self, *args, **kwargs):
        with torch._inductor.config.patch(**self.settings), torch.no_grad():
            return self.compiled(*args, **kwargs)
