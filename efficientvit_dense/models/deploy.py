"""The deploy form of a model: every BatchNorm folded into the layer before
it, and EfficientViT's pointwise convolutions run as matrix products on
channels_last maps, its products and convolutions on weights packed for
oneDNN in eager CPU inference (:class:`PackedWeightLayer`), in float32 or
bfloat16. Outputs stay equal up to float rounding in eval mode (bfloat16:
up to its 8-bit mantissa); a deployed model can no longer be trained. Used
by the benchmark, the ONNX export, the evaluation in a precision and
EfficientViT.switch_to_deploy(). int8 needs calibration data, so it lives
with the tools that have it (:mod:`efficientvit_dense.analysis.quantize`).
"""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from torch.utils._pytree import tree_map

from ..errors import UnsupportedError

# The precisions a model can be deployed in by casting (int8 also needs calibration data).
CAST_PRECISIONS = {'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}

# The parts of an mmengine model that run in a low precision; each takes and gives float32,
# so that what comes between them (mmdet's anchors, decoding, NMS; mmseg's resizing) stays float32.
LOW_PRECISION_PARTS = ('backbone', 'neck', 'bbox_head', 'rpn_head', 'decode_head', 'auxiliary_head', 'head')
# What stays float32 in an mmengine model, and why.
FLOAT32_PARTS = {
    'data_preprocessor': 'normalises and pads the images',
    'roi_head': "Mask R-CNN's box and mask heads: mmcv's RoIAlign runs in float32 only on CPU",
}
# The post-processing after each kind of head (detector, segmentor, classifier), which stays float32 too.
POST_PROCESSING = {
    'bbox_head': 'anchors, box decoding and NMS', 'rpn_head': 'proposals, box decoding and NMS',
    'decode_head': 'resizing the class scores to the image, argmax', 'head': 'softmax'}


def float32_parts(model: nn.Module) -> dict[str, str]:
    """What of ``model`` stays float32 in a low precision, and why."""
    if not hasattr(model, 'data_preprocessor'):
        return {}
    parts = {name: why for name, why in FLOAT32_PARTS.items() if isinstance(getattr(model, name, None), nn.Module)}
    post = [why for head, why in POST_PROCESSING.items() if isinstance(getattr(model, head, None), nn.Module)]
    return {**parts, 'post-processing': post[0]} if post else parts


@functools.cache
def onednn_packs(dtype: torch.dtype) -> bool:
    """Whether oneDNN's kernels on packed weights run in ``dtype`` on this
    CPU. bfloat16 needs AVX-512 (BW, VL, DQ) or AVX-NE-CONVERT, the same test
    inductor makes; without them the plain ops emulate it."""
    ops = ('_linear_pointwise', '_reorder_linear_weight', '_convolution_pointwise', '_reorder_convolution_weight')
    if not (torch.backends.mkldnn.is_available() and all(hasattr(torch.ops.mkldnn, op) for op in ops)):
        return False
    return dtype == torch.float32 or (dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _forget_packed(layer: PackedWeightLayer, incompatible_keys) -> None:
    # load_state_dict copies into the weight in place: under inference_mode the weight has no version to tell
    layer._packed = None


class PackedWeightLayer(nn.Module):
    """A layer of the deploy form: a plain ``layer`` (``nn.Linear`` or
    ``nn.Conv2d``), optionally with the ReLU after it or a residual add.

    In eager CPU inference (no gradients, float32 or bfloat16) it runs
    oneDNN's kernel on the layer's weight packed once into oneDNN's layout,
    as ``torch.compile``'s freezing does, with the ReLU (and a product's
    residual add) in the same kernel: the plain op reorders the weight at
    every call, and each fused step saves a pass over the map. The packed weight is opaque (no
    storage), so it stays out of copies and pickles and is packed again when
    the weight changes. Elsewhere (gradients, GPUs, bfloat16 on a CPU without
    oneDNN's, tracing for ONNX export, torch.export or torch.compile) it
    calls ``layer`` and ``act`` as modules: an exported graph then holds
    plain ``aten.linear``/``aten.conv2d`` nodes grouped under ``nn.Linear``,
    ``nn.Conv2d`` and ``nn.ReLU``, which is how PyTorch 2 export quantisers
    (torchao's ``X86InductorQuantizer``) find what to quantise.
    """

    def __init__(self, layer: nn.Module, relu: bool = False):
        super().__init__()
        self.layer = layer
        self.relu = relu
        self._packed = None  # (weight's storage, version, dtype) -> oneDNN's packed copy
        self.register_load_state_dict_post_hook(_forget_packed)

    @property
    def relu(self) -> bool:
        return isinstance(self.act, nn.ReLU)

    @relu.setter
    def relu(self, value: bool) -> None:
        if value and getattr(self, 'residual', False):
            raise ValueError(f'{type(self).__name__} fuses a ReLU after its layer or a residual around it, not both')
        self.act = nn.ReLU(inplace=True) if value else nn.Identity()

    @property
    def weight(self) -> nn.Parameter:
        return self.layer.weight

    @property
    def bias(self) -> nn.Parameter | None:
        return self.layer.bias

    def _packs(self, x: torch.Tensor) -> bool:
        return (x.device.type == 'cpu' and x.dtype == self.weight.dtype and not torch.is_grad_enabled()
                and not torch.jit.is_tracing() and not torch.compiler.is_compiling()
                and torch.backends.mkldnn.enabled and onednn_packs(x.dtype))

    def _packed_weight(self, pack) -> torch.Tensor:
        """The weight as ``pack()`` gives it, packed again only when it changed."""
        # A change made through the parameter (a cast, an in-place op) changes its storage or version; one made to
        # .data does not, and is not seen. Tensors made under inference_mode have no version: load_state_dict,
        # which copies into them, forgets the packed copy (_forget_packed).
        version = None if self.weight.is_inference() else self.weight._version
        key = (self.weight.data_ptr(), version, self.weight.dtype)
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, pack())
        return self._packed[1]

    def __getstate__(self):
        return {**super().__getstate__(), '_packed': None}


class DeployLinear(PackedWeightLayer):
    """A linear layer over the last dimension in a deploy form (see
    :class:`PackedWeightLayer`), optionally with the ReLU that follows it
    fused in, and with a residual added by the product itself when given
    (by a separate add after a fused ReLU)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False):
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None,
                           device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if bias is not None:
                linear.bias.copy_(bias)
        super().__init__(linear, relu)

    def forward(self, x, residual: torch.Tensor | None = None):
        """``x W^T + b`` (then ReLU if built with ``relu``), plus ``residual`` if given."""
        if not self._packs(x):
            y = self.act(self.layer(x))
            return y if residual is None else y + residual
        # Packed for the first call's row count; oneDNN's product takes any (the batch changes only its speed).
        weight = self._packed_weight(lambda: torch.ops.mkldnn._reorder_linear_weight(
            self.weight, x.numel() // x.shape[-1]))
        if residual is not None and not self.relu:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, self.bias, 'add')
        y = torch.ops.mkldnn._linear_pointwise(x, weight, self.bias, 'relu' if self.relu else 'none', [], '')
        return y if residual is None else y + residual


class DeployConv2d(PackedWeightLayer):
    """A folded convolution in a deploy form (see :class:`PackedWeightLayer`),
    with the ReLU after it (``relu``) fused in, or the residual around it
    (``residual``: ``x + conv(x)``, a depthwise conv's) added in place to
    its output. The weight is packed for any input size (packed for the
    first call's, it was no faster)."""

    def __init__(self, conv: nn.Conv2d, relu: bool = False, residual: bool = False):
        self.residual = residual  # before the relu setter, which checks it
        super().__init__(conv, relu)

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return type(module) is nn.Conv2d and module.padding_mode == 'zeros' and not isinstance(module.padding, str)

    def forward(self, x):
        if not self._packs(x):
            y = self.act(self.layer(x))
            return x + y if self.residual else y
        conv = self.layer
        args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        weight = self._packed_weight(lambda: torch.ops.mkldnn._reorder_convolution_weight(self.weight, *args))
        y = torch.ops.mkldnn._convolution_pointwise(x, weight, self.bias, *args,
                                                    'relu' if self.relu else 'none', [], '')
        # oneDNN fuses a sum only into dense convolutions (its binary op adds in place after a depthwise one).
        return y.add_(x) if self.residual else y

    def extra_repr(self) -> str:
        return f'residual={self.residual}'


class PointwiseLinear(DeployLinear):
    """A folded 1x1 convolution run as a matrix product over channels.

    On a channels_last map the NHWC view is contiguous, so this is one GEMM
    without copies; oneDNN's 1x1 convolution on the same data is up to 2.5x
    slower on CPU. The output is channels_last again, ready for the next one.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool = False):
        super().__init__(conv.weight.flatten(1), conv.bias, relu)

    @staticmethod
    def applies_to(module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1) and module.groups == 1
                and module.stride == (1, 1) and module.padding == (0, 0) and module.dilation == (1, 1))

    def forward(self, x, residual: torch.Tensor | None = None):
        if residual is not None:
            residual = residual.permute(0, 2, 3, 1)
        return super().forward(x.permute(0, 2, 3, 1), residual).permute(0, 3, 1, 2)


def replace_modules(model: nn.Module, matches, replacement) -> None:
    """Replace every submodule for which ``matches`` holds by
    ``replacement(submodule)``, in place, looking neither inside a match nor
    inside a :class:`PackedWeightLayer` (the plain layer it wraps is its own)."""
    for name, child in model.named_children():
        if matches(child):
            setattr(model, name, replacement(child))
        elif not isinstance(child, PackedWeightLayer):
            replace_modules(child, matches, replacement)


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every Conv-BN (and BN-Linear) pair into a single layer, in place.

    This is the deploy form: same outputs in eval mode, no BatchNorm left in
    the folded parts, and far fewer kernels per image. The model must be in
    eval mode; it cannot be trained afterwards.
    """
    replace_modules(model, lambda module: hasattr(module, 'fuse'), lambda module: module.fuse())
    return model


def _cast_floats(tree, dtype: torch.dtype, memory_format=torch.preserve_format):
    """Every float tensor in ``tree`` in ``dtype`` (4-d maps in ``memory_format``)."""
    def cast(x):
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            return x
        if x.dim() == 4 and memory_format != torch.preserve_format:
            # Layout first, then the cast: both in one .to() take a much slower path on CPU.
            x = x.contiguous(memory_format=memory_format)
        return x.to(dtype)
    return tree_map(cast, tree)


def _forward_in_precision(self, *args, **kwargs):
    """The forward of a part run in a low precision: float tensors cast to
    its dtype on the way in (channels_last maps, which oneDNN's bfloat16
    kernels prefer) and back to float32 on the way out; nothing is cast
    inside."""
    args, kwargs = _cast_floats((args, kwargs), self.compute_dtype, torch.channels_last)
    return _cast_floats(type(self).forward(self, *args, **kwargs), torch.float32)


def run_in_precision(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """``module``'s weights cast to ``dtype`` (channels_last convolutions), in
    place; its forward still takes and gives float32. An instance attribute
    rather than a hook, because mmseg's heads call ``self.forward`` directly;
    a ``functools.partial``, so that ``copy.deepcopy`` binds it to the copy
    and ``torch.save(model)`` loads again. A part already cast stays in its
    precision: deploy a fresh copy for another."""
    current = getattr(module, 'compute_dtype', torch.float32)
    if current == dtype:
        return module
    if current != torch.float32:
        raise UnsupportedError(f'{type(module).__name__} already runs in {current}; deploy a fresh copy of the '
                               f'model for {dtype}.')
    module.to(dtype=dtype, memory_format=torch.channels_last)
    module.compute_dtype = dtype
    module.forward = functools.partial(_forward_in_precision, module)
    return module


def low_precision_parts(model: nn.Module) -> dict[str, nn.Module]:
    """The parts of ``model`` that :func:`deploy` casts: those of
    :data:`LOW_PRECISION_PARTS` an mmengine model has, or the whole of any
    other network (a backbone, a timm model)."""
    if not hasattr(model, 'data_preprocessor'):
        return {'': model}
    return {name: getattr(model, name) for name in LOW_PRECISION_PARTS
            if isinstance(getattr(model, name, None), nn.Module)}


def precision_dtype(precision: str) -> torch.dtype:
    if precision not in CAST_PRECISIONS:
        hint = (' int8 needs calibration images: efficientvit_dense.analysis.quantize, or --precision int8 of the '
                'tools.') if precision == 'int8' else ''
        raise UnsupportedError(f'Precision {precision!r}: deploy casts to {", ".join(CAST_PRECISIONS)}.{hint}')
    return CAST_PRECISIONS[precision]


def deploy(model: nn.Module, precision: str = 'float32') -> nn.Module:
    """The deploy form of any model, in place: modules with a deploy form of
    their own switched to it (EfficientViT backbones:
    :meth:`EfficientViT.switch_to_deploy`), this project's other Conv-BN and
    BN-Linear pairs folded (:func:`fuse_batchnorm`), then every other
    convolution followed by a BatchNorm (ResNets, necks) by mmcv's
    ``fuse_conv_bn``; then, in a low ``precision``, each part of
    :func:`low_precision_parts` runs in it (see :data:`FLOAT32_PARTS` for
    what stays float32)."""
    from mmcv.cnn import fuse_conv_bn

    dtype = precision_dtype(precision)
    model.eval()
    for module in [m for m in model.modules() if hasattr(m, 'switch_to_deploy')]:
        module.switch_to_deploy()
    model = fuse_conv_bn(fuse_batchnorm(model))
    return cast(model, dtype)


def cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Each part of :func:`low_precision_parts` run in ``dtype``, in place,
    deployed or not (a peer cast to bfloat16 by hand is timed this way)."""
    for part in low_precision_parts(model).values():
        run_in_precision(part, dtype)
    return model
