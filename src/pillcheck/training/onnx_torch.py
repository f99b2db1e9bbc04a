"""Run an ONNX graph as a trainable torch module, and write the trained weights back into the same graph.

PP-OCR's recognizer is published only as an inference model (Paddle, or ONNX in the ``rapidocr`` wheel), yet
it reads text far better than anything we can train from scratch on 3,396 real pill faces. To adapt it to
debossed imprints we fine-tune it: each ONNX node runs as the matching torch operation, the float weights
(tensors of more than one element: scalar constants such as epsilons and exponents stay fixed) become
parameters, and after training they replace the initializers of the original graph, so the served model is the
same graph onnxruntime already ran, with new numbers. Only the operators such a recognizer uses are supported
(opset 11 semantics); anything else raises.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(t: torch.Tensor) -> list[int]:
    return [int(v) for v in t.reshape(-1).tolist()]


def _same(x, kernel, strides, auto_pad, fill: float = 0.0):
    """``auto_pad`` SAME_*: pad so that output = ceil(input / stride), the odd pixel at the end (UPPER)."""
    if auto_pad in (b"NOTSET", b"VALID"):
        return x
    if auto_pad not in (b"SAME_UPPER", b"SAME_LOWER"):
        raise NotImplementedError(f"auto_pad {auto_pad!r}")
    total = [max((-(-n // s) - 1) * s + k - n, 0) for n, s, k in zip(x.shape[2:], strides, kernel)]
    lo = [t // 2 if auto_pad == b"SAME_UPPER" else t - t // 2 for t in total]
    return F.pad(x, (lo[1], total[1] - lo[1], lo[0], total[0] - lo[0]), value=fill)


def _conv(x, w, b=None, *, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1, auto_pad=b"NOTSET", **_):
    x = _same(x, w.shape[2:], strides, auto_pad)
    if pads[:2] != pads[2:]:
        x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
        pads = (0, 0, 0, 0)
    return F.conv2d(x, w, b, stride=tuple(strides), padding=tuple(pads[:2]), dilation=tuple(dilations), groups=group)


def _pool(fn, x, *, kernel_shape, strides=None, pads=(0, 0, 0, 0), ceil_mode=0, auto_pad=b"NOTSET", **kw):
    strides = strides or kernel_shape
    if auto_pad != b"NOTSET" and fn is F.avg_pool2d:
        raise NotImplementedError("average pooling with auto_pad")  # the padding would count
    x = _same(x, kernel_shape, strides, auto_pad, fill=float("-inf"))
    if pads[:2] != pads[2:]:
        raise NotImplementedError("asymmetric pooling pads")
    extra = {"count_include_pad": bool(kw.get("count_include_pad", 0))} if fn is F.avg_pool2d else {}
    return fn(x, tuple(kernel_shape), tuple(strides), tuple(pads[:2]), ceil_mode=bool(ceil_mode),
              **extra)


def _softmax(x, *, axis=1):
    """Opset < 13: softmax over all dimensions from ``axis`` on, flattened."""
    axis = axis % x.dim()
    shape = x.shape
    return F.softmax(x.reshape(*shape[:axis], -1), -1).reshape(shape)


def _reshape(x, shape):
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(_ints(shape))]
    return x.reshape(dims)


def _slice(x, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else list(range(len(starts)))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.dim()
    for a, s, e, st in zip(axes, starts, ends, steps):
        if st != 1:
            raise NotImplementedError("Slice with steps")
        n = x.shape[a]
        index[a] = slice(max(min(s, n), -n), max(min(e, n), -n - 1))
    return x[tuple(index)]


def _squeeze(x, *, axes):
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def _unsqueeze(x, *, axes):
    for a in sorted(axes):
        x = x.unsqueeze(a)
    return x


def _batchnorm(x, scale, bias, mean, var, *, epsilon=1e-5, **_):
    # running statistics stay fixed (no gradient, so the optimiser leaves them alone); scale and bias train
    return F.batch_norm(x, mean.detach(), var.detach(), scale, bias, training=False, eps=epsilon)


_OPS = {
    "Identity": lambda x: x,
    "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow,
    "MatMul": torch.matmul, "Sqrt": torch.sqrt, "Erf": torch.erf, "Relu": torch.relu, "Sigmoid": torch.sigmoid,
    "HardSigmoid": lambda x, alpha=0.2, beta=0.5: torch.clamp(alpha * x + beta, 0.0, 1.0),
    "Conv": _conv,
    "MaxPool": lambda x, **kw: _pool(F.max_pool2d, x, **kw),
    "AveragePool": lambda x, **kw: _pool(F.avg_pool2d, x, **kw),
    "BatchNormalization": _batchnorm,
    "ReduceMean": lambda x, axes, keepdims=1: x.mean(dim=tuple(axes), keepdim=bool(keepdims)),
    "Transpose": lambda x, perm: x.permute(*perm),
    "Softmax": _softmax,
    "Reshape": _reshape,
    "Slice": _slice,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Concat": lambda *xs, axis: torch.cat(xs, axis),
    "Shape": lambda x: torch.tensor(list(x.shape), dtype=torch.int64),
}


class OnnxModule(nn.Module):
    """An ONNX graph with one input and one output, run node by node. ``logits`` stops before a final Softmax
    (what a CTC loss wants); ``forward`` is the whole graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__()
        graph = model.graph
        unknown = sorted({n.op_type for n in graph.node} - set(_OPS))
        if unknown:
            raise NotImplementedError(f"ONNX operators not supported: {', '.join(unknown)}")
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise ValueError("expected a graph with one input and one output")
        self.model = model
        self.input_name, self.output_name = graph.input[0].name, graph.output[0].name
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in graph.node]
        self.params = nn.ParameterDict()
        self._keys: dict[str, str] = {}  # initializer name -> parameter key (keys cannot hold dots)
        self.consts: dict[str, torch.Tensor] = {}
        for t in graph.initializer:
            arr = numpy_helper.to_array(t)
            if arr.dtype == np.float32 and arr.size > 1:
                self._keys[t.name] = f"p{len(self._keys)}"
                self.params[self._keys[t.name]] = nn.Parameter(torch.from_numpy(arr.copy()))
            else:
                self.consts[t.name] = torch.from_numpy(arr.copy())

    def _run(self, x: torch.Tensor, stop_before_softmax: bool) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {self.input_name: x}
        nodes = self.nodes
        if stop_before_softmax and nodes[-1][0] == "Softmax" and nodes[-1][2] == [self.output_name]:
            nodes = nodes[:-1]
        out = self.output_name
        for op, inputs, outputs, attrs in nodes:
            args = [self._value(name, env) for name in inputs if name]
            env[outputs[0]] = _OPS[op](*args, **attrs)
            out = outputs[0]
        return env[out]

    def _value(self, name: str, env: dict[str, torch.Tensor]) -> torch.Tensor:
        if name in env:
            return env[name]
        if name in self._keys:
            return self.params[self._keys[name]]
        return self.consts[name]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, stop_before_softmax=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, stop_before_softmax=False)

    def parameter(self, name: str) -> nn.Parameter:
        return self.params[self._keys[name]]

    def replace(self, name: str, value: torch.Tensor) -> None:
        """Give an initializer a new value (and shape), e.g. a narrower output layer."""
        self.params[self._keys[name]] = nn.Parameter(value.detach().clone())

    def to_onnx(self, classes: int | None = None) -> onnx.ModelProto:
        """The original graph with the current weights as its initializers; ``classes``: the output's last
        dimension when a replaced weight changed it."""
        model = onnx.ModelProto()
        model.CopyFrom(self.model)
        for t in model.graph.initializer:
            if t.name in self._keys:
                t.CopyFrom(numpy_helper.from_array(self.params[self._keys[t.name]].detach().numpy(), t.name))
        if classes is not None:
            model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value = classes
        return model
