"""The vocabulary of the speed and precision tools: the benchmark's modes and
the precisions a model is deployed and evaluated in. Imports nothing heavy,
so that the tools' --help and argument errors come before the stack loads."""
from __future__ import annotations

import argparse

# none: eager
MODES = ('deploy', 'channels_last', 'compile', 'autotune', 'cudagraphs', 'fp16', 'bf16', 'int8', 'onnxruntime')
MODE_HELP = {
    'deploy': 'BatchNorm folded; EfficientViT\'s 1x1 convolutions and attention as matrix products over '
              'channels on channels_last maps, on weights packed for oneDNN with the ReLUs fused in '
              '(docs/design.md, "The deploy form")',
    'channels_last': 'NHWC memory format for weights and input',
    'compile': 'torch.compile (inductor; on CPU the weights frozen into the graph, so oneDNN\'s packed kernels, '
               'and a C++ wrapper: inference only)',
    'autotune': 'compile with inductor\'s max_autotune: each product timed in its GEMM templates (C++ with AMX or '
                'AVX-512 on a CPU) against the library\'s kernel while compiling (minutes on 2 cores)',
    'cudagraphs': 'torch.compile with CUDA graphs (mode reduce-overhead, GPU): one launch per call, for small '
                  'batches, which are launch-bound on GPUs',
    'fp16': 'weights and activations in float16 (GPU)',
    'bf16': 'weights and activations in bfloat16 (backbone, neck and heads; float32 in and out)',
    'int8': 'static int8 quantisation of the deploy form, calibrated on the timed inputs (timing only; '
            'tools/precision_cost.py calibrates on training images): PyTorch 2 export quantisation, run compiled '
            '(compile is implied); with onnxruntime, ONNX Runtime\'s',
    'onnxruntime': 'exported to ONNX and run by ONNX Runtime (backbones and classifiers)',
}
PRECISION_MODES = {'fp16': 'float16', 'bf16': 'bfloat16', 'int8': 'int8'}


def precision_of(modes) -> str:
    """The precision ``modes`` run in: float32 unless fp16, bf16 or int8."""
    return next((PRECISION_MODES[m] for m in modes if m in PRECISION_MODES), 'float32')


def split_target(target: str) -> tuple[str, list[str] | None]:
    """'timm:efficientvit_m4@deploy+bf16' -> ('timm:efficientvit_m4', ['deploy', 'bf16']); None for no modes
    of its own (no '@')."""
    spec, own, modes = target.partition('@')
    return spec, (modes.split('+') if modes else []) if own else None


PRECISIONS = ('float32', 'bfloat16', 'int8')  # tools/test.py --precision, tools/precision_cost.py
CALIBRATION_IMAGES = 32  # int8: training images that calibrate the activation ranges


def _whole_number(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if value < least:
        raise argparse.ArgumentTypeError(f'{value} is not at least {least}')
    return value


def positive_int(text: str) -> int:
    """argparse's ``type`` for a count that must be at least 1 (repeats, a batch, calibration images, warm-up
    calls: the first call of a model packs its weights or compiles it, which is not its speed)."""
    return _whole_number(text, 1)
