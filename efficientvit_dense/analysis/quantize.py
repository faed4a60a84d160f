"""The int8 deploy form: post-training static quantisation with ONNX
Runtime (QDQ: int8 weights per output channel, uint8 activations, the
convolutions and matrix products quantised; calibrated on example inputs).

ONNX Runtime was chosen before PyTorch 2's export quantisation (torchao's
X86InductorQuantizer) could quantise this network's products; now that it
can, PT2E gives more images/s on the one CPU measured so far (an AVX-512
EPYC) and ONNX Runtime's int8 the lower batch-1 latency. ONNX Runtime
quantises the graph as it is, runs on any x86 CPU, and the quantised file
is what deploys. See docs/design.md ("Low precision") for the speeds
measured, what moving to PT2E takes, and what stays in float32.

Each part that :func:`..models.deploy.low_precision_parts` names (backbone,
neck, dense heads) is exported on its own at the input shape calibration
gave it, quantised, and run by an ONNX Runtime session from the part's own
``forward``: mmdet's and mmseg's code around the parts (anchors, NMS,
resizing) runs unchanged, in float32. The batch size is free; the image
size is the calibration's.
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Iterable

import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import DataError, OutputExistsError, UnsupportedError
from ..models.deploy import deploy, low_precision_parts
from .export import OPSET, export_onnx, onnx_runtime_session
from .records import NATIVE_FLAGS, cpu_flags

QUANTISED_OPS = ('Conv', 'MatMul', 'Gemm')  # the rest (softmax, adds, resizes) runs in float32 between them


class FlatPart(nn.Module):
    """A part's forward as a function of flat tensors, for the exporter."""

    def __init__(self, part: nn.Module, in_spec):
        super().__init__()
        self.part, self.in_spec = part, in_spec

    def forward(self, *flat):
        args, kwargs = tree_unflatten(list(flat), self.in_spec)
        return tuple(tree_flatten(type(self.part).forward(self.part, *args, **kwargs))[0])


def _record_inputs(part: nn.Module, store: list) -> None:
    def recording(*args, **kwargs):
        store.append(tree_flatten((args, kwargs)))
        return type(part).forward(part, *args, **kwargs)
    part.forward = recording


def _run_session(self, *args, **kwargs):
    """A quantised part's forward: its ONNX Runtime session on the flat
    inputs, the outputs rebuilt in the structure the float32 part gave."""
    flat, _ = tree_flatten((args, kwargs))
    tensors = [x for x in flat if isinstance(x, torch.Tensor)]
    shapes = [tuple(x.shape[1:]) for x in tensors]
    if shapes != self.int8_input_shapes:
        raise DataError(f'This int8 model was calibrated and built for inputs of shape {self.int8_input_shapes} '
                        f'(batch aside), and got {shapes}: evaluate it at one input size (a fixed Resize, or pad '
                        'every image to one size), the size it was calibrated at.')
    feeds = {name: x.detach().float().contiguous().numpy() for name, x in zip(self.int8_input_names, tensors)}
    outputs = [torch.from_numpy(o) for o in self.int8_session.run(None, feeds)]
    return tree_unflatten(outputs, self.int8_out_spec)


def quantize_onnx(float_path: str, path: str, calibration: list[dict]) -> str:
    """Write the int8 form of the ONNX file ``float_path`` to ``path``:
    ONNX Runtime's static QDQ quantisation with the settings above,
    calibrated on ``calibration`` (each a dict of input name to tensor)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{n: x.detach().float().numpy() for n, x in feed.items()} for feed in calibration])

        def get_next(self):
            return next(self.items, None)

    # Without VNNI, x86's uint8 x int8 products can saturate: 7-bit weights avoid it (ONNX Runtime's advice).
    reduce_range = not cpu_flags() & set(NATIVE_FLAGS['int8'])
    with tempfile.TemporaryDirectory() as tmp:
        prepared = osp.join(tmp, 'prepared.onnx')
        quant_pre_process(float_path, prepared, skip_symbolic_shape=True)
        quantize_static(prepared, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(QUANTISED_OPS))
    return path


def quantize_part(part: nn.Module, samples: list, path: str) -> None:
    """Replace ``part``'s forward, in place, by its int8 form calibrated on
    ``samples`` (flattened inputs recorded from the float32 part), written
    to ``path``. ONNX Runtime gets as many threads as PyTorch has."""
    flat, in_spec = samples[0]
    if not all(isinstance(x, torch.Tensor) for x in flat):
        raise UnsupportedError(f'{type(part).__name__} takes inputs other than tensors; int8 quantises parts '
                               'whose inputs are tensors.')
    shapes = {tuple(tuple(x.shape[1:]) for x in sample) for sample, _ in samples}
    if len(shapes) > 1:
        raise DataError(f'The int8 calibration images reach {type(part).__name__} in {len(shapes)} sizes; int8 '
                        'parts are built for one input size: calibrate and evaluate at one size (a Resize to a '
                        'fixed scale without keep_ratio, or padding every image to one size).')
    names = [f'input{i}' for i in range(len(flat))]
    wrapped = FlatPart(part, in_spec).eval()
    args, kwargs = tree_unflatten(list(flat), in_spec)
    with torch.no_grad():
        out_flat, out_spec = tree_flatten(type(part).forward(part, *args, **kwargs))
    outputs = [f'output{i}' for i in range(len(out_flat))]
    float_path = path[:-len('.onnx')] + '_float32.onnx'
    with warnings.catch_warnings():  # the tracer's notes on shape-dependent Python: the shape is fixed here
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        torch.onnx.export(wrapped, tuple(flat), float_path, dynamo=False, opset_version=OPSET, input_names=names,
                          output_names=outputs, dynamic_axes={n: {0: 'batch'} for n in [*names, *outputs]})
    quantize_onnx(float_path, path, [dict(zip(names, sample)) for sample, _ in samples])
    part.int8_session = onnx_runtime_session(path, 'cpu', torch.get_num_threads())
    part.int8_input_names = names
    part.int8_input_shapes = [tuple(x.shape[1:]) for x in flat]
    part.int8_out_spec = out_spec
    part.forward = functools.partial(_run_session, part)


@torch.no_grad()
def quantize_int8(model: nn.Module, calibration: Iterable, run=None) -> nn.Module:
    """``model`` in its int8 deploy form, in place, on the CPU: the float32
    deploy form first, then each part of :func:`low_precision_parts`
    quantised on the inputs it received while ``run(batch)`` ran over
    ``calibration`` (default ``run``: the model itself on a tensor batch;
    give an mmengine model's ``test_step``, which a two-stage detector
    needs). The model holds ONNX Runtime sessions: it can no longer be
    copied or saved whole."""
    model = deploy(model, 'float32')
    # A parameterless neck (pooling) stays as it is.
    parts = {name: part for name, part in low_precision_parts(model).items()
             if next(part.parameters(), None) is not None}
    store = {name: [] for name in parts}
    for name, part in parts.items():
        _record_inputs(part, store[name])
    run = run or model
    batches = 0
    try:
        for batch in calibration:
            run(batch)
            batches += 1
    finally:
        for part in parts.values():
            del part.forward
    if not batches:
        raise DataError('int8 calibration got no images.')
    with tempfile.TemporaryDirectory() as tmp:
        for name, part in parts.items():
            if not store[name]:  # not run at inference (mmseg's auxiliary head)
                continue
            quantize_part(part, store[name], osp.join(tmp, f'{name or "model"}_int8.onnx'))
    return model


def export_onnx_int8(model: nn.Module, example: torch.Tensor, path: str, calibration: list[torch.Tensor]) -> str:
    """Write the int8 form of ``model`` (deploy form already applied)
    traced on ``example`` to ``path``, calibrated on the image batches
    ``calibration`` (normalised, the size of ``example``). Refuses to
    overwrite."""
    if osp.exists(path):
        raise OutputExistsError(f'{path} already exists; choose another output path.')
    with tempfile.TemporaryDirectory() as tmp:
        float_path = export_onnx(model, example, osp.join(tmp, 'float32.onnx'))
        quantized = quantize_onnx(float_path, osp.join(tmp, 'int8.onnx'), [{'images': x} for x in calibration])
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        shutil.move(quantized, path)
    return path

