"""The int8 deploy form: post-training static quantisation, calibrated on
example inputs.

In PyTorch (tools/test.py ``--precision int8``, tools/precision_cost.py,
the benchmark's ``--modes deploy int8``): PyTorch 2 export quantisation
with torchao's X86InductorQuantizer (int8 weights per output channel, uint8
activations; the convolutions and matrix products quantised, with their
ReLU or add where oneDNN fuses one), run by ``torch.compile`` with freezing,
which turns it into oneDNN's int8 kernels (bilinear resizes stay aten's:
:func:`resize_in_aten`). Each part that
:func:`..models.deploy.low_precision_parts` names (backbone, neck, dense
heads) is exported on its own, at the input shape calibration gave it
(batch free), and quantised on the inputs it received while the float32
model ran its whole predict path; mmdet's and mmseg's code around the parts
(anchors, NMS, resizing) runs unchanged, in float32.

For an ONNX file (tools/export_onnx.py ``--precision int8``, the
benchmark's ``--modes deploy onnxruntime int8``): ONNX Runtime's static QDQ
quantisation of the exported graph (int8 weights per channel, uint8
activations; 7-bit weights without VNNI). docs/design.md
("Low precision") has why PT2E is the tools' int8 and the speeds measured.
"""
from __future__ import annotations

import functools
import logging
import os
import os.path as osp
import shutil
import tempfile
import warnings
from typing import Callable, Iterable

import torch
import torch.nn as nn
from mmengine.logging import print_log
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..errors import DataError, OutputExistsError, UnsupportedError
from ..models.deploy import deploy, low_precision_parts
from .compiling import CompiledForInference
from .export import export_onnx
from .records import NATIVE_FLAGS, cpu_flags

# ONNX Runtime's int8 ops; the rest (softmax, adds, resizes) runs in float32 between them.
QUANTISED_OPS = ('Conv', 'MatMul', 'Gemm')
# PyTorch's switch for its int8 products' context cache (:func:`cache_int8_contexts`), read once per process.
INT8_CONTEXT_CACHE = 'ONEDNN_CACHE_CONTEXT_UNSAFE'
# Inductor settings of the int8 parts: a small layer's constants (a 6-class head's weight scales, zero points and
# bias) kept as tensors of the graph. Inlined, they were computed into new buffers at every call, and the cached
# contexts read the first call's buffers after they were freed (the classifier demo's int8 top-1 fell from 69 to
# 28-63).
INT8_SETTINGS = dict(always_keep_tensor_constants=True)


@functools.cache
def cache_int8_contexts() -> None:
    """Turn on, for this process, the cache of the oneDNN context (primitive,
    scales, zero points, bias) that torch's int8 product builds at each
    call (pytorch/pytorch#168150 and #180431): the M4 backbone's int8 form
    gained 4 to 12% in images/s against timm and lost 12 to 22% of its
    batch-1 latency (docs/design.md, "Low precision"). Upstream leaves it
    off and calls it unsafe: it is keyed by the packed weight's address
    and the rows alone.
    A weight called with another input scale would get the first call's
    context, a silently wrong product; our compiled graphs give each call
    its own weight (:func:`give_each_call_its_weights`), prepacked by
    freezing for that call alone. A cached context holds its weight, so a
    model freed and another built in its place cannot meet a stale context
    at a reused address. It keeps views of the call's weight scales, zero
    points and bias, which must outlive the call: :data:`INT8_SETTINGS`.
    Read at the first int8 product of the process; a value the user set
    stays, with a warning."""
    value = os.environ.setdefault(INT8_CONTEXT_CACHE, '1')
    if value != '1':
        print_log(f'{INT8_CONTEXT_CACHE}={value} in the environment: int8 products build their oneDNN context at '
                  'every call, 4 to 12% slower on the M4 backbone.', logger='current', level=logging.WARNING)


class FlatPart(nn.Module):
    """A part's forward as a function of flat tensors, for the exporter."""

    def __init__(self, part: nn.Module, in_spec):
        super().__init__()
        self.part, self.in_spec = part, in_spec

    def structured(self, *flat):
        """The part's own outputs (its class's forward, not one set on the instance)."""
        args, kwargs = tree_unflatten(list(flat), self.in_spec)
        return type(self.part).forward(self.part, *args, **kwargs)

    def forward(self, *flat):
        return tuple(tree_flatten(self.structured(*flat))[0])


def _record_inputs(part: nn.Module, store: list) -> None:
    def recording(*args, **kwargs):
        store.append(tree_flatten((args, kwargs)))
        return type(part).forward(part, *args, **kwargs)
    part.forward = recording


@torch.library.custom_op('efficientvit_dense::upsample_bilinear2d', mutates_args=())
def _aten_upsample_bilinear2d(x: torch.Tensor, output_size: list[int] | None, align_corners: bool,
                              scale_factors: list[float] | None) -> torch.Tensor:
    """aten's bilinear resize, opaque to inductor (see :func:`resize_in_aten`)."""
    return torch.ops.aten.upsample_bilinear2d.vec(x, output_size, align_corners, scale_factors)


@_aten_upsample_bilinear2d.register_fake
def _(x, output_size, align_corners, scale_factors):
    # aten's meta kernel: the shape, and the channels-last strides the CPU kernel returns
    return torch.ops.aten.upsample_bilinear2d.vec(x, output_size, align_corners, scale_factors)


def resize_in_aten(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Each bilinear resize (``F.interpolate``'s) run by aten's kernel, in
    place, through a custom op (inductor always decomposes aten's): inductor
    fused a Semantic FPN head's resizes between its int8 convolutions into
    channels-last loops that gathered one value at a time, and the head ran
    1.8x slower than in float32 (docs/design.md, "Low precision")."""
    for node in graph.graph.nodes:
        if node.target == torch.ops.aten.upsample_bilinear2d.vec:
            node.target = torch.ops.efficientvit_dense.upsample_bilinear2d.default
    graph.recompile()
    return graph


LAYER_OPS = (torch.ops.aten.conv2d.default, torch.ops.aten.conv2d.padding, torch.ops.aten.linear.default)


def give_each_call_its_weights(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A weight or bias used by several calls (a dense head's convolutions,
    run once per pyramid level) copied, one per call, in place: inductor
    turns a convolution into oneDNN's int8 kernel only when its quantised
    weight has no other user, and ran the shared ones in float32 (a
    RetinaNet head at 800x1333 no faster than float32)."""
    for node in list(graph.graph.nodes):
        users = list(node.users)
        if node.op != 'get_attr' or len(users) < 2 or any(user.target not in LAYER_OPS for user in users):
            continue
        value = functools.reduce(getattr, node.target.split('.'), graph)
        for i, user in enumerate(users[1:], 1):
            name = f'{node.target.replace(".", "_")}_call{i}'
            while hasattr(graph, name):
                name += '_'
            graph.register_buffer(name, value.detach().clone())
            with graph.graph.inserting_before(user):
                own = graph.graph.get_attr(name)
            own.meta = dict(node.meta)
            user.replace_input_with(node, own)
    graph.graph.lint()
    graph.recompile()
    return graph


def compile_int8(graph: nn.Module, autotune: bool = False) -> Callable:
    """``graph`` (PT2E's converted form) compiled by inductor, whose
    freezing turns the quantise/dequantise pairs around each product into
    oneDNN's int8 kernels on prepacked weights (:class:`.compiling.CompiledForInference`:
    with the C++ wrapper, batch-1 latency was 0.77x and 0.80x the Python
    wrapper's, docs/design.md, "Low precision"). Compiling happens at the
    first call, and again when the batch size changes (dynamo's automatic
    dynamic shapes, so once more at most for a third size); with
    ``autotune``, inductor's max_autotune too; the products' oneDNN contexts
    cached (:func:`cache_int8_contexts`)."""
    cache_int8_contexts()
    compiled = CompiledForInference(graph, autotune=autotune, settings=INT8_SETTINGS)

    def run(*tensors):
        with warnings.catch_warnings():
            # inductor's int8 lowering builds its zero points with torch.tensor(tensor), and says so each time
            warnings.filterwarnings('ignore', 'To copy construct from a tensor', UserWarning)
            return compiled(*tensors)
    return run


def _run_int8(part: nn.Module, graph: Callable, input_shapes: list, out_spec, *args, **kwargs):
    """A quantised part's forward: its int8 graph on the flat inputs, the
    outputs rebuilt in the structure the float32 part gave."""
    tensors = tree_flatten((args, kwargs))[0]
    shapes = [tuple(x.shape[1:]) for x in tensors]
    if shapes != input_shapes:
        raise DataError(f'This int8 {type(part).__name__} was calibrated and built for inputs of shape '
                        f'{input_shapes} (batch aside), and got {shapes}: evaluate it at one input size (a fixed '
                        'Resize, or pad every image to one size), the size it was calibrated at.')
    return tree_unflatten(list(graph(*tensors)), out_spec)


def quantize_part(part: nn.Module, samples: list, autotune: bool = False) -> None:
    """Replace ``part``'s forward, in place, by its int8 form calibrated on
    ``samples`` (flattened inputs recorded from the float32 part):
    exported with a free batch size, annotated by the x86 inductor
    quantiser, calibrated, converted and compiled (:func:`compile_int8`)."""
    pytree_log = logging.getLogger('torch.utils._pytree')
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)  # torchao 0.18 registers an Enum as torch 2.14 deprecates, and is told so
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
        from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as x86
    finally:
        pytree_log.setLevel(level)

    if not all(isinstance(x, torch.Tensor) for sample, _ in samples for x in sample):
        raise UnsupportedError(f'{type(part).__name__} takes inputs other than tensors; int8 quantises parts '
                               'whose inputs are tensors.')
    shapes = {tuple(tuple(x.shape[1:]) for x in sample) for sample, _ in samples}
    if len(shapes) > 1:
        raise DataError(f'The int8 calibration images reach {type(part).__name__} in {len(shapes)} sizes; int8 '
                        'parts are built for one input size: calibrate and evaluate at one size (a Resize to a '
                        'fixed scale without keep_ratio, or padding every image to one size).')
    flat, in_spec = samples[0]
    # Traced on a batch of two: export would fix a batch of one as the only size.
    example = tuple(x[:1].expand(2, *x.shape[1:]).contiguous() for x in flat)
    wrapped = FlatPart(part, in_spec).eval()
    with torch.no_grad():
        out_spec = tree_flatten(wrapped.structured(*example))[1]
        batch = (tuple({0: torch.export.Dim.AUTO} for _ in flat),)  # forward(*flat): one entry, a tuple
        # Strict export (dynamo) names each call of a module apart; non-strict export groups a dense head's
        # convolutions, called once per pyramid level, into one partition with several outputs, which the
        # quantiser refuses ("Input partition has more than one output node").
        graph = give_each_call_its_weights(torch.export.export(wrapped, example, dynamic_shapes=batch,
                                                                strict=True).module())
        quantizer = x86.X86InductorQuantizer()
        # Without VNNI, x86's uint8 x int8 products can saturate: 7-bit activations avoid it (the quantiser's advice).
        reduce_range = not cpu_flags() & set(NATIVE_FLAGS['int8'])
        quantizer.set_global(x86.get_default_x86_inductor_quantization_config(reduce_range=reduce_range))
        graph = prepare_pt2e(graph, quantizer)
        for sample, _ in samples:
            graph(*sample)
        graph = resize_in_aten(convert_pt2e(graph))
    part.forward = functools.partial(_run_int8, part, compile_int8(graph, autotune=autotune),
                                     [tuple(x.shape[1:]) for x in flat], out_spec)


@torch.no_grad()
def quantize_int8(model: nn.Module, calibration: Iterable, run=None, autotune: bool = False) -> nn.Module:
    """``model`` in its int8 deploy form, in place, on the CPU: the float32
    deploy form first, then each part of :func:`low_precision_parts`
    quantised on the inputs it received while ``run(batch)`` ran over
    ``calibration`` (default ``run``: the model itself on a tensor batch;
    give an mmengine model's ``test_step``, which a two-stage detector
    needs). Each part compiles on its first call and again when the
    batch size changes (:func:`compile_int8`, with ``autotune`` or not). The model holds compiled
    graphs: it cannot be pickled (quantise again from the float32
    checkpoint)."""
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
    for name, part in parts.items():
        if store[name]:  # an empty store: not run at inference (mmseg's auxiliary head)
            quantize_part(part, store[name], autotune)
    return model


def quantize_onnx(float_path: str, path: str, calibration: list[dict]) -> str:
    """Write the int8 form of the ONNX file ``float_path`` to ``path``:
    ONNX Runtime's static QDQ quantisation (int8 weights per output
    channel, 7-bit without VNNI; uint8 activations; :data:`QUANTISED_OPS`),
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


def export_onnx_int8(model: nn.Module, example: torch.Tensor, path: str, calibration: list[torch.Tensor],
                     overwrite: bool = False) -> str:
    """Write ONNX Runtime's int8 form of ``model`` (deploy form already
    applied) traced on ``example`` to ``path``, calibrated on the image
    batches ``calibration`` (normalised, the size of ``example``). Refuses
    to overwrite unless asked."""
    if osp.exists(path) and not overwrite:
        raise OutputExistsError(f'{path} already exists; choose another output path.')
    with tempfile.TemporaryDirectory() as tmp:
        float_path = export_onnx(model, example, osp.join(tmp, 'float32.onnx'))
        quantized = quantize_onnx(float_path, osp.join(tmp, 'int8.onnx'), [{'images': x} for x in calibration])
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        shutil.move(quantized, path)
    return path

