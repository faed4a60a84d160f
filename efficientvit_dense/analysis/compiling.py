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
compiling happens (docs/design.md, "Compiling for inference").
"""
from __future__ import annotations

import torch
import torch.nn as nn

# On a CPU the generated wrapper is C++ (cpp_wrapper): a forward of M4 makes about 120 oneDNN calls, and each
# call from a Python wrapper cost tens of microseconds (docs/design.md, "Low precision").
CPU_SETTINGS = dict(freezing=True, cpp_wrapper=True)
# On a GPU, what the GPU check measured (freezing never took effect then, and has not been measured there since).
GPU_SETTINGS = {}
# The autotune mode: inductor times its GEMM templates (on a CPU, C++ ones with AMX or AVX-512 micro-kernels)
# against the library kernels for each product while compiling, and keeps the fastest. Minutes of compiling on
# 2 cores; on an AMX Xeon 7-11% more int8 images/s, an unsteady gain in bfloat16 (docs/design.md, "Compiling for
# inference").
AUTOTUNE_SETTINGS = dict(max_autotune=True,
                         # without a table of timed choices for each of the ~120 products in the tool's output
                         autotune_num_choices_displayed=0, max_autotune_report_choices_stats=False)


class CompiledForInference(nn.Module):
    """``module`` compiled by inductor for inference on ``device``: each call
    runs without gradients under :data:`CPU_SETTINGS` or :data:`GPU_SETTINGS`
    (and :data:`AUTOTUNE_SETTINGS` with ``autotune``, then ``settings``),
    so that the first call compiles with them. ``compile_kwargs`` go to
    ``torch.compile`` (``dynamic``; ``mode`` on a GPU). On a CPU the compiled graph does not
    see later changes to ``module`` (weights, ``train()``): compile the
    finished model."""

    def __init__(self, module: nn.Module, device: torch.device | str = 'cpu', autotune: bool = False,
                 settings: dict | None = None, **compile_kwargs):
        super().__init__()
        on_cpu = torch.device(device).type == 'cpu'
        if on_cpu:
            # No guards on the modules' state, which dynamo checks at every call (0.6 ms of an M4 forward on 2
            # cores: 5% more images/s and 8% less batch-1 latency without): frozen weights are constants of the
            # graph, so a change to the module after compiling is not seen either way.
            compile_kwargs['options'] = dict(guard_filter_fn=torch.compiler.skip_guard_on_all_nn_modules_unsafe)
        self.compiled = torch.compile(module, **compile_kwargs)
        self.settings = {**(CPU_SETTINGS if on_cpu else GPU_SETTINGS), **(AUTOTUNE_SETTINGS if autotune else {}),
                         **(settings or {})}

    def forward(self, *args, **kwargs):
        with torch._inductor.config.patch(**self.settings), torch.no_grad():
            return self.compiled(*args, **kwargs)
