"""ONNX export in deploy mode, checked against PyTorch by ONNX Runtime.

What is exported takes the normalised image batch (the data preprocessor's
mean/std and padding stay outside, as in mmdeploy) and returns raw tensors:
a backbone's three maps, a classifier's logits, a detector's per-level class
scores and box deltas, a segmentor's logits. Anchors, decoding and NMS stay
in Python (ONNX has no equivalent of mmdet's batched NMS across levels).
The graph is traced at one input size; the batch dimension is dynamic.
"""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten

from ..errors import OutputExistsError

OPSET = 17


class TensorOutputs(nn.Module):
    """An mmengine model's ``mode='tensor'`` forward, flattened to a tuple of
    tensors (mmdet returns nested lists per level)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        outputs = self.model(x, mode='tensor') if hasattr(self.model, 'data_preprocessor') else self.model(x)
        flat, stack = [], [outputs]
        while stack:
            item = stack.pop(0)
            if isinstance(item, torch.Tensor):
                flat.append(item)
            else:
                stack[:0] = list(item)
        return tuple(flat)


def export_onnx(model: nn.Module, example: torch.Tensor, path: str, overwrite: bool = False) -> str:
    """Write ``model`` (in eval mode, deploy form already applied if wanted)
    traced on ``example`` to ``path``. Refuses to overwrite unless asked."""
    if osp.exists(path) and not overwrite:
        raise OutputExistsError(f'{path} already exists; choose another output path.')
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    wrapped = TensorOutputs(model.eval())
    with torch.no_grad():
        count = len(wrapped(example))
    names = [f'output{i}' for i in range(count)]
    tmp = path + '.partial'
    torch.onnx.export(wrapped, (example,), tmp, dynamo=False, opset_version=OPSET, input_names=['images'],
                      output_names=names, dynamic_axes={n: {0: 'batch'} for n in ['images', *names]})
    os.replace(tmp, path)
    return path


def onnx_runtime_session(path: str, device: torch.device | str = 'cpu', threads: int | None = None):
    """An ONNX Runtime session whose threads sleep between calls: spinning
    ones (ONNX Runtime's default) would take the cores from whatever runs
    next, PyTorch peers timed in turns included."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    if threads:
        options.intra_op_num_threads = threads
    providers = ['CPUExecutionProvider']
    if torch.device(device).type == 'cuda' and 'CUDAExecutionProvider' in ort.get_available_providers():
        providers.insert(0, 'CUDAExecutionProvider')
    return ort.InferenceSession(path, options, providers=providers)


def max_difference_to_pytorch(model: nn.Module, path: str, inputs: torch.Tensor, relative: bool = False) -> float:
    """Largest absolute difference between ONNX Runtime's outputs and
    PyTorch's on ``inputs``, over every output; ``relative``: divided by
    the largest absolute value PyTorch gives."""
    session = onnx_runtime_session(path)
    ours = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    with torch.no_grad():
        reference = TensorOutputs(model.eval())(inputs)
    if len(ours) != len(reference):
        raise RuntimeError(f'{path} gives {len(ours)} outputs, PyTorch {len(reference)}.')
    return max_difference(reference, ours, relative)


def max_difference(reference, outputs, relative: bool = False) -> float:
    """Largest absolute difference between two (nested) sets of outputs,
    tensors or arrays; ``relative``: divided by the largest absolute
    reference value."""
    def leaves(tree):
        return [torch.as_tensor(x).float() for x in tree_flatten(tree)[0] if isinstance(x, (torch.Tensor, np.ndarray))]
    reference, outputs = leaves(reference), leaves(outputs)
    difference = max(float((o - r).abs().max()) for o, r in zip(outputs, reference))
    return difference / (max(float(r.abs().max()) for r in reference) or 1.0) if relative else difference
