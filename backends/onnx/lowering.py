"""The op lowering table: LOWER[op](b, n, a, xs, shapes, out) adds the ONNX nodes of IR node `n`.

a: its canonical arguments; xs: its input value names; shapes: its input shapes (no batch);
out: the name its last node must write, which is named `n` itself. Semantics are exactly
backends/reference.py's (eval mode): each rule says where ONNX's own op differs and how that is
made up for. An op missing here is refused by name (backends/onnx/__init__.py).
"""
from __future__ import annotations

import math

import numpy as np

LOWER: dict = {}


def rule(*ops):
    def put(fn):
        for op in ops:
            LOWER[op] = fn
        return fn
    return put


def _conv_pads(a) -> list:
    """ONNX pads are [top, left, bottom, right]; "same" puts the odd pixel at the bottom and
    right, as PyTorch (and the reference) do."""
    if a["pad"] == "same":
        th, tw = (a["dilation"][i] * (a["k"][i] - 1) for i in range(2))
        return [th // 2, tw // 2, th - th // 2, tw - tw // 2]
    return list(a["pad"]) * 2


def _bias(b, n, a):
    return [b.param(f"{n}.bias")] if a["bias"] else []


@rule("conv")
def _conv(b, n, a, xs, shapes, out):
    b.op("Conv", [xs[0], b.param(f"{n}.weight")] + _bias(b, n, a), out, name=n, kernel_shape=list(a["k"]),
         strides=list(a["stride"]), pads=_conv_pads(a), dilations=list(a["dilation"]), group=a["groups"])


@rule("conv_t")
def _conv_t(b, n, a, xs, shapes, out):
    # PyTorch's (in, out / groups, kh, kw) weight is ONNX's layout as it is
    b.op("ConvTranspose", [xs[0], b.param(f"{n}.weight")] + _bias(b, n, a), out, name=n,
         kernel_shape=list(a["k"]), strides=list(a["stride"]), pads=list(a["pad"]) * 2,
         output_padding=list(a["output_pad"]), dilations=list(a["dilation"]), group=a["groups"])


@rule("linear")
def _linear(b, n, a, xs, shapes, out):
    w = b.param(f"{n}.weight")
    if len(shapes[0]) == 1:
        b.op("Gemm", [xs[0], w] + _bias(b, n, a), out, name=n, transB=1)
        return
    # at each pixel over the channels: a 1x1 convolution with the (out, in) weight viewed as
    # (out, in, 1, 1), so the initializer keeps the state_dict's shape
    w4 = b.op("Unsqueeze", [w, b.ints("axes", [2, 3])])
    b.op("Conv", [xs[0], w4] + _bias(b, n, a), out, name=n, kernel_shape=[1, 1])


def _channels_last(b, x, rank):
    return b.op("Transpose", [x], perm=[0, 2, 3, 1]) if rank == 3 else x


@rule("layernorm")
def _layernorm(b, n, a, xs, shapes, out):
    # over the channels at each pixel: ONNX normalises the last axes, so a map goes channels-last
    rank = len(shapes[0])
    x = _channels_last(b, xs[0], rank)
    inputs = [x, b.param(f"{n}.weight"), b.param(f"{n}.bias")]
    if rank == 1:
        b.op("LayerNormalization", inputs, out, name=n, axis=-1, epsilon=a["eps"])
        return
    y = b.op("LayerNormalization", inputs, name=b.fresh("norm"), axis=-1, epsilon=a["eps"])
    b.op("Transpose", [y], out, name=n, perm=[0, 3, 1, 2])


@rule("layer_scale")
def _layer_scale(b, n, a, xs, shapes, out):
    b.op("Mul", [xs[0], b.param(n)], out, name=n)


@rule("batchnorm")
def _batchnorm(b, n, a, xs, shapes, out):
    c = shapes[0][0]
    if a["affine"] or a["frozen"]:
        scale, shift = b.param(f"{n}.weight"), b.param(f"{n}.bias")
    else:
        scale, shift = b.const("ones", np.ones(c)), b.const("zeros", np.zeros(c))
    b.op("BatchNormalization", [xs[0], scale, shift, b.param(f"{n}.running_mean"), b.param(f"{n}.running_var")],
         out, name=n, epsilon=a["eps"], momentum=1 - a["momentum"])


@rule("lrn")
def _lrn(b, n, a, xs, shapes, out):
    size = a["size"]
    if size % 2:
        b.op("LRN", [xs[0]], out, name=n, size=size, alpha=a["alpha"], beta=a["beta"], bias=a["k"])
        return
    # An even window: ONNX's LRN centres it one channel later than PyTorch's (which pads size // 2
    # channels before and (size - 1) // 2 after), so the sum of squares is spelt out.
    sq = b.op("Mul", [xs[0], xs[0]])
    sq5 = b.op("Unsqueeze", [sq, b.ints("axes", [1])])
    padded = b.op("Pad", [sq5, b.ints("pads", [0, 0, size // 2, 0, 0, 0, 0, (size - 1) // 2, 0, 0])])
    avg = b.op("AveragePool", [padded], kernel_shape=[size, 1, 1])
    mean = b.op("Squeeze", [avg, b.ints("axes", [1])])
    div = b.op("Pow", [b.op("Add", [b.op("Mul", [mean, b.const("alpha", a["alpha"])]), b.const("k", a["k"])]),
                       b.const("beta", a["beta"])])
    b.op("Div", [xs[0], div], out, name=n)


def _simple(op_type, **attrs):
    def lower(b, n, a, xs, shapes, out):
        b.op(op_type, [xs[0]], out, name=n, **attrs)
    return lower


for _op, _onnx in (("relu", "Relu"), ("tanh", "Tanh"), ("sigmoid", "Sigmoid"), ("mish", "Mish"),
                   ("identity", "Identity"), ("dropout", "Identity"), ("drop_path", "Identity"),
                   ("flatten", "Flatten"), ("global_avgpool", "GlobalAveragePool")):
    LOWER[_op] = _simple(_onnx)
LOWER["softmax"] = _simple("Softmax", axis=1)
LOWER["log_softmax"] = _simple("LogSoftmax", axis=1)
LOWER["hardswish"] = _simple("HardSwish")
LOWER["hardsigmoid"] = _simple("HardSigmoid", alpha=1 / 6, beta=0.5)


@rule("relu6")
def _relu6(b, n, a, xs, shapes, out):
    b.op("Clip", [xs[0], b.const("min", 0.0), b.const("max", 6.0)], out, name=n)


@rule("leaky_relu")
def _leaky_relu(b, n, a, xs, shapes, out):
    b.op("LeakyRelu", [xs[0]], out, name=n, alpha=a["slope"])


@rule("elu")
def _elu(b, n, a, xs, shapes, out):
    b.op("Elu", [xs[0]], out, name=n, alpha=a["alpha"])


@rule("silu")
def _silu(b, n, a, xs, shapes, out):
    b.op("Mul", [xs[0], b.op("Sigmoid", [xs[0]])], out, name=n)


@rule("gelu")
def _gelu(b, n, a, xs, shapes, out):
    # Gelu is an ONNX op from opset 20 on; at 18 it is its formula
    x = xs[0]
    if a["approximate"] == "tanh":
        cube = b.op("Mul", [b.op("Pow", [x, b.const("three", 3.0)]), b.const("c", 0.044715)])
        inner = b.op("Mul", [b.op("Add", [x, cube]), b.const("sqrt_2_pi", math.sqrt(2 / math.pi))])
        one_plus = b.op("Add", [b.op("Tanh", [inner]), b.const("one", 1.0)])
        # x·(½·(1 + tanh)), not (x·½)·(…): onnxruntime's erf-Gelu fusion takes a Mul(x, 0.5) of
        # another Gelu of the same x for its own and leaves this one reading a removed value
        b.op("Mul", [x, b.op("Mul", [b.const("half", 0.5), one_plus])], out, name=n)
        return
    one_plus = b.op("Add", [b.op("Erf", [b.op("Div", [x, b.const("sqrt2", math.sqrt(2))])]), b.const("one", 1.0)])
    b.op("Mul", [b.op("Mul", [x, b.const("half", 0.5)]), one_plus], out, name=n)


@rule("prelu")
def _prelu(b, n, a, xs, shapes, out):
    w = b.param(f"{n}.weight")
    if len(shapes[0]) == 3 and a["per_channel"]:
        # ONNX broadcasts from the last axis: one slope per channel of a map is (C, 1, 1)
        w = b.op("Unsqueeze", [w, b.ints("axes", [1, 2])])
    b.op("PRelu", [xs[0], w], out, name=n)


@rule("softplus")
def _softplus(b, n, a, xs, shapes, out):
    # ONNX's Softplus has no beta or threshold: x where beta·x > threshold, else softplus(beta·x)
    # / beta, with beta·x clamped in the branch not taken (as the reference) so it cannot overflow
    x, beta, th = xs[0], a["beta"], a["threshold"]
    bx = x if beta == 1 else b.op("Mul", [x, b.const("beta", beta)])
    soft = b.op("Softplus", [b.op("Min", [bx, b.const("threshold", th)])])
    soft = soft if beta == 1 else b.op("Div", [soft, b.const("beta", beta)])
    b.op("Where", [b.op("Greater", [bx, b.const("threshold", th)]), x, soft], out, name=n)


@rule("scale")
def _scale(b, n, a, xs, shapes, out):
    b.op("Mul", [xs[0], b.const("s", a["s"])], out, name=n)


def _pool_pads(a, shape, out) -> tuple[list, list]:
    """(begin, end) pads per axis that give the IR's output size in ONNX's floor mode. A ceil-mode
    window that overhangs the end gets extra end padding (ONNX's ceil mode does not drop a last
    window that would start in the padding, as PyTorch does)."""
    if a["pad"] == "same":
        return [a["k"][0] // 2, a["k"][1] // 2], [a["k"][0] // 2, a["k"][1] // 2]
    p, k, s = a["pad"], a["k"], a["stride"]
    extra = [max(0, (out[1 + i] - 1) * s[i] + k[i] - (shape[1 + i] + 2 * p[i])) for i in range(2)]
    return list(p), [p[i] + extra[i] for i in range(2)]


@rule("maxpool")
def _maxpool(b, n, a, xs, shapes, out):
    # padding is never the maximum: extra end padding is the ceil mode's overhang exactly
    begin, end = _pool_pads(a, shapes[0], b.out_shape)
    b.op("MaxPool", [xs[0]], out, name=n, kernel_shape=list(a["k"]), strides=list(a["stride"]), pads=begin + end)


@rule("avgpool")
def _avgpool(b, n, a, xs, shapes, out):
    begin, end = _pool_pads(a, shapes[0], b.out_shape)
    x, include = xs[0], int(a["count_include_pad"])
    if include and end != begin:
        # PyTorch counts the zero padding in a window's divisor but not a ceil-mode overhang past
        # it: the padding becomes real zeros, and the overhang padding that is not counted
        x = b.op("Pad", [x, b.ints("pads", [0, 0] + begin + [0, 0] + begin)])
        begin, end, include = [0, 0], [e - p for e, p in zip(end, begin)], 0
    b.op("AveragePool", [x], out, name=n, kernel_shape=list(a["k"]), strides=list(a["stride"]), pads=begin + end,
         count_include_pad=include)


def _adaptive_matrix(size: int, out: int) -> np.ndarray:
    """Row i averages PyTorch's adaptive window floor(i·size/out) .. ceil((i+1)·size/out)."""
    m = np.zeros((out, size), np.float32)
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


@rule("adaptive_avgpool")
def _adaptive_avgpool(b, n, a, xs, shapes, out):
    (_, h, w), (oh, ow) = shapes[0], a["out"]
    if h % oh == 0 and w % ow == 0:
        b.op("AveragePool", [xs[0]], out, name=n, kernel_shape=[h // oh, w // ow], strides=[h // oh, w // ow])
        return
    # uneven (or overlapping, or growing) windows: the mean over each is separable, rows then columns
    cols = b.op("MatMul", [xs[0], b.const("cols", _adaptive_matrix(w, ow).T)])
    b.op("MatMul", [b.const("rows", _adaptive_matrix(h, oh)), cols], out, name=n)


@rule("upsample")
def _upsample(b, n, a, xs, shapes, out):
    scales = b.const("scales", [1.0, 1.0] + [float(f) for f in a["factor"]])
    if a["mode"] == "bilinear":
        # align_corners=False: PyTorch's half-pixel centres
        b.op("Resize", [xs[0], "", scales], out, name=n, mode="linear", coordinate_transformation_mode="half_pixel")
    else:
        # PyTorch's nearest: source pixel floor(dst / factor)
        b.op("Resize", [xs[0], "", scales], out, name=n, mode="nearest",
             coordinate_transformation_mode="asymmetric", nearest_mode="floor")


def _crop(b, x, shape, h, w, out=None, name=None):
    top, left = (shape[1] - h) // 2, (shape[2] - w) // 2
    return b.op("Slice", [x, b.ints("starts", [top, left]), b.ints("ends", [top + h, left + w]),
                          b.ints("axes", [2, 3])], out, name=name)


@rule("center_crop")
def _center_crop(b, n, a, xs, shapes, out):
    _crop(b, xs[0], shapes[0], a["h"], a["w"], out, n)


@rule("channel_shuffle")
def _channel_shuffle(b, n, a, xs, shapes, out):
    c, h, w = shapes[0]
    g = a["groups"]
    # 0 keeps the (symbolic) batch dimension
    grid = b.op("Reshape", [xs[0], b.ints("grid", [0, g, c // g, h, w])])
    t = b.op("Transpose", [grid], perm=[0, 2, 1, 3, 4])
    b.op("Reshape", [t, b.ints("shape", [0, c, h, w])], out, name=n)


@rule("slice")
def _slice(b, n, a, xs, shapes, out):
    b.op("Slice", [xs[0], b.ints("starts", [a["start"]]), b.ints("ends", [a["stop"]]), b.ints("axes", [1])],
         out, name=n)


@rule("concat")
def _concat(b, n, a, xs, shapes, out):
    if a["crop"] and len(shapes[0]) == 3:
        h, w = min(s[1] for s in shapes), min(s[2] for s in shapes)
        xs = [x if s[1:] == (h, w) else _crop(b, x, s, h, w) for x, s in zip(xs, shapes)]
    b.op("Concat", xs, out, name=n, axis=1)


def _chain(op_type):
    """add and mul fold left to right, as the reference does (so rounding matches it)."""
    def lower(b, n, a, xs, shapes, out):
        acc = xs[0]
        for i, x in enumerate(xs[1:], 1):
            last = i == len(xs) - 1
            acc = b.op(op_type, [acc, x], out if last else None, name=n if last else None)
    return lower


LOWER["add"] = _chain("Add")
LOWER["mul"] = _chain("Mul")


@rule("mean")
def _mean(b, n, a, xs, shapes, out):
    b.op("Mean", xs, out, name=n)
