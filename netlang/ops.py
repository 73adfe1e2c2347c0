"""The op registry: every built-in layer and merge declares, in one place, its argument schema,
its shape rule and its cost rule.

Shapes are tuples of ints without the batch dimension: (C, H, W) for feature maps, (F,) for
vectors. A shape or cost rule that finds its input wrong raises OpError; the caller turns it into
a located NetlangError. Lowerings (torch, triton) live in backends/ and are keyed by op name; an op
without a rule there is a clear error, never a silent skip.

Counting convention (also in docs/cost.md):
  macs      multiply-accumulates of conv, conv_t and linear weights; bias adds are not MACs.
  flops     2 x macs.
  ew_ops    element-wise work, counted apart: batchnorm 2/element (scale, shift), activations
            1/element whatever their formula (an activation is one application per element, as
            relu is: tanh, gelu, mish, prelu... are 1 each), softmax and log_softmax 3 (exp, sum,
            normalise), pooling one per window element read, add/mul n-1 per element, mean n,
            scale 1, bias adds 1 per output element, lrn size+3, bilinear upsample 4, layernorm 5
            (mean, variance, normalise, then scale and shift as batchnorm's 2), layer_scale 1; data
            movement (concat, channel_shuffle, a split's channel slices) is 0.
  params    trainable weights and biases; buffers are the other state_dict entries
            (batchnorm running mean/var and its num_batches_tracked counter).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

Shape = tuple


class OpError(Exception):
    """A shape or argument problem found by an op's rule; `arg` names the argument at fault."""

    def __init__(self, message: str, hint: str | None = None, arg: str | None = None, kind: str = "shape"):
        super().__init__(message)
        self.message, self.hint, self.arg, self.kind = message, hint, arg, kind


REQUIRED = object()


@dataclass(frozen=True)
class Param:
    name: str
    kind: str                     # int, float, bool, str, pair, pad
    default: Any = REQUIRED
    choices: tuple = ()
    minimum: float | None = None  # for int/float/pair: smallest allowed value
    below: float | None = None    # for float: values must be strictly below this
    keyword_only: bool = False
    same_as: str | None = None    # when omitted, takes this other argument's value (pool stride = k)


@dataclass(frozen=True)
class Cost:
    params: int = 0
    buffers: int = 0
    macs: int = 0
    ew_ops: int = 0


@dataclass(frozen=True)
class OpDef:
    name: str
    params: tuple[Param, ...]
    shape: Callable[[dict, list], Shape]
    cost: Callable[[dict, list, Shape], Cost]
    arity: int | None = 1         # None: any number of inputs (merges)
    min_inputs: int = 1
    merge: bool = False
    # The output shares storage with the input (a view, or a layer that is the identity at
    # inference): it adds no activation memory.
    aliases_input: bool = False
    # The op can overwrite its input, which saves memory only where nothing else reads it.
    inplace: bool = False
    # The tensors a layer keeps (its state_dict entries, as PyTorch names and shapes them):
    # (suffix, shape, is_buffer). Parameter and buffer counts derive from this one rule.
    state: Callable[[dict, list], list] = lambda a, ins: []
    doc: str = ""
    # Made by passes, never written in a .net file (the channel views of merged convolutions).
    internal: bool = False
    param_index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self.param_index.update({p.name: p for p in self.params})

    def costs(self, args: dict, in_shapes: list, out_shape: Shape) -> Cost:
        """The cost rule's MACs and element-wise ops, with parameters and buffers from `state`."""
        c = self.cost(args, in_shapes, out_shape)
        entries = self.state(args, in_shapes)
        return Cost(params=sum(numel(shape) for _, shape, buf in entries if not buf),
                    buffers=sum(numel(shape) for _, shape, buf in entries if buf),
                    macs=c.macs, ew_ops=c.ew_ops)


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    assert op.name not in OPS, op.name
    OPS[op.name] = op
    return op


def get(name: str) -> OpDef:
    try:
        return OPS[name]
    except KeyError:
        raise KeyError(f"no op {name!r} in the registry") from None


# ------------------------------------------------------------------ helpers

def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


def numel(shape: Shape) -> int:
    return math.prod(shape)


def _fmap(shape: Shape, op: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise OpError(f"{op} needs a CxHxW feature map, got {fmt_shape(shape)}",
                      hint="it cannot follow flatten or linear")
    return shape


def _conv_len(L: int, k: int, s: int, p: int, d: int, what: str, axis: str) -> int:
    span = d * (k - 1) + 1
    if L + 2 * p < span:
        raise OpError(f"{what}: kernel {span} is larger than the padded input {L + 2 * p} ({axis})",
                      hint="use a smaller kernel, more padding, or a larger input")
    return (L + 2 * p - span) // s + 1


def _same_pad(op: str, k: tuple, stride: tuple, d: tuple = (1, 1)) -> tuple:
    """pad="same" keeps the size; PyTorch allows it only at stride 1."""
    if stride != (1, 1):
        raise OpError(f'{op}: pad="same" needs stride 1, got stride {fmt_shape(stride)}', arg="pad", kind="value",
                      hint="give the padding as a number")
    return tuple(d_ * (k_ - 1) for k_, d_ in zip(k, d))   # total padding per axis


def _pool_len(L: int, k: int, s: int, p: int, ceil: bool, what: str, axis: str) -> int:
    if 2 * p > k:
        raise OpError(f"{what}: padding {p} is more than half the kernel {k}", arg="pad", kind="value")
    out = (L + 2 * p - k + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= L + p:
        out -= 1   # the last window would start in the padding (PyTorch's rule)
    if out < 1:
        # With ceil=true a window may overhang the input (PyTorch allows 2x2 -> 1x1 with k=3).
        raise OpError(f"{what}: kernel {k} is larger than the padded input {L + 2 * p} ({axis})",
                      hint="use a smaller kernel or a larger input")
    return out


# ------------------------------------------------------------------ input

register(OpDef("input", (Param("shape", "shape"),), shape=lambda a, ins: tuple(a["shape"]),
               cost=lambda a, ins, out: Cost(), arity=0, min_inputs=0, doc="the network input"))


# ------------------------------------------------------------------ convolutions

def _conv_shape(a, ins):
    c, h, w = _fmap(ins[0], "conv")
    g = a["groups"]
    if c % g:
        raise OpError(f"conv: {c} input channels are not divisible by groups={g}", arg="groups")
    if a["out"] % g:
        raise OpError(f"conv: {a['out']} output channels are not divisible by groups={g}", arg="groups")
    k, s, d = a["k"], a["stride"], a["dilation"]
    if a["pad"] == "same":
        _same_pad("conv", k, s, d)
        return (a["out"], h, w)
    p = a["pad"]
    return (a["out"], _conv_len(h, k[0], s[0], p[0], d[0], "conv", "height"),
            _conv_len(w, k[1], s[1], p[1], d[1], "conv", "width"))


def _conv_cost(a, ins, out):
    per_out = ins[0][0] // a["groups"] * a["k"][0] * a["k"][1]
    return Cost(macs=numel(out) * per_out, ew_ops=numel(out) if a["bias"] else 0)


def _bias(a) -> list:
    return [("bias", (a["out"],), False)] if a["bias"] else []


def _conv_state(a, ins):
    return [("weight", (a["out"], ins[0][0] // a["groups"]) + tuple(a["k"]), False)] + _bias(a)


_CONV_PARAMS = (
    Param("out", "int", minimum=1), Param("k", "pair", minimum=1), Param("stride", "pair", 1, minimum=1),
    Param("pad", "pad", 0), Param("dilation", "pair", 1, minimum=1), Param("groups", "int", 1, minimum=1),
    Param("bias", "bool", True),
)
register(OpDef("conv", _CONV_PARAMS, _conv_shape, _conv_cost, state=_conv_state, doc="2-D convolution"))


def _conv_t_shape(a, ins):
    c, h, w = _fmap(ins[0], "conv_t")
    g = a["groups"]
    if c % g or a["out"] % g:
        raise OpError(f"conv_t: channels {c} -> {a['out']} are not divisible by groups={g}", arg="groups")
    k, s, p, op, d = a["k"], a["stride"], a["pad"], a["output_pad"], a["dilation"]
    for i in range(2):
        if op[i] >= max(s[i], d[i]):
            raise OpError(f"conv_t: output_pad {op[i]} must be smaller than the stride or the dilation",
                          arg="output_pad", kind="value")
    size = [(L - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i, L in enumerate((h, w))]
    if min(size) < 1:
        raise OpError(f"conv_t: padding {fmt_shape(p)} leaves no output", arg="pad")
    return (a["out"], size[0], size[1])


def _conv_t_cost(a, ins, out):
    cin, h, w = ins[0]
    per_in = a["out"] // a["groups"] * a["k"][0] * a["k"][1]
    return Cost(macs=h * w * cin * per_in, ew_ops=numel(out) if a["bias"] else 0)


def _conv_t_state(a, ins):
    # PyTorch stores a transposed convolution's weight as (in, out / groups, kh, kw).
    return [("weight", (ins[0][0], a["out"] // a["groups"]) + tuple(a["k"]), False)] + _bias(a)


register(OpDef("conv_t", (
    Param("out", "int", minimum=1), Param("k", "pair", minimum=1), Param("stride", "pair", 1, minimum=1),
    Param("pad", "pair", 0, minimum=0), Param("output_pad", "pair", 0, minimum=0),
    Param("groups", "int", 1, minimum=1), Param("bias", "bool", True), Param("dilation", "pair", 1, minimum=1),
), _conv_t_shape, _conv_t_cost, state=_conv_t_state, doc="transposed 2-D convolution"))


def _linear_shape(a, ins):
    if a["pointwise"]:           # at each pixel of a map: the same weights over its C channels
        if len(ins[0]) != 3:
            raise OpError(f"linear(pointwise=true) needs a CxHxW map, got {fmt_shape(ins[0])}", arg="pointwise",
                          hint="a linear on a vector is linear(out)")
        return (a["out"],) + tuple(ins[0][1:])
    if len(ins[0]) != 1:
        raise OpError(f"linear needs a flat input, got {fmt_shape(ins[0])}",
                      hint="add flatten before it, or write linear(..., pointwise=true) for a linear at each "
                           "pixel over the channels (ConvNeXt's)")
    return (a["out"],)


def _linear_cost(a, ins, out):
    pixels = numel(out[1:])      # 1 for a vector
    return Cost(macs=ins[0][0] * a["out"] * pixels, ew_ops=numel(out) if a["bias"] else 0)


register(OpDef("linear", (Param("out", "int", minimum=1), Param("bias", "bool", True),
                          Param("pointwise", "bool", False)), _linear_shape,
               _linear_cost, state=lambda a, ins: [("weight", (a["out"], ins[0][0]), False)] + _bias(a),
               doc="fully connected layer; with pointwise=true, on a CxHxW map, the same layer at each pixel over "
                   "its C channels (ConvNeXt's nn.Linear on the channels-last tensor)"))


# ------------------------------------------------------------------ normalisation

def _same(a, ins):
    return ins[0]


def _bn_state(a, ins):
    c = (ins[0][0],)
    if a["frozen"]:
        # torchvision.ops.FrozenBatchNorm2d: four buffers, no parameters, no num_batches_tracked
        return [("weight", c, True), ("bias", c, True), ("running_mean", c, True), ("running_var", c, True)]
    affine = [("weight", c, False), ("bias", c, False)] if a["affine"] else []
    return affine + [("running_mean", c, True), ("running_var", c, True), ("num_batches_tracked", (), True)]


def _bn_shape(a, ins):
    if a["frozen"]:
        if not a["affine"]:
            raise OpError("batchnorm(frozen=true) has a weight and a bias: it cannot be affine=false",
                          hint="a frozen batchnorm is torchvision's FrozenBatchNorm2d: weight, bias and statistics",
                          arg="affine", kind="value")
        _fmap(ins[0], "batchnorm(frozen=true)")
    return ins[0]


register(OpDef("batchnorm", (Param("eps", "float", 1e-5, minimum=0), Param("momentum", "float", 0.1, minimum=0),
                             Param("affine", "bool", True), Param("frozen", "bool", False)),
               _bn_shape, lambda a, ins, out: Cost(ew_ops=2 * numel(out)), state=_bn_state,
               doc="batch normalisation over channels; frozen: statistics and affine fixed, as in training "
                   "so at inference (torchvision's FrozenBatchNorm2d)"))


def _layernorm_state(a, ins):
    c = (ins[0][0],)
    return [("weight", c, False), ("bias", c, False)]


register(OpDef("layernorm", (Param("eps", "float", 1e-6, minimum=0),), _same,
               lambda a, ins, out: Cost(ew_ops=5 * numel(out)), state=_layernorm_state,
               doc="layer normalisation over the channels at each pixel of a map (torchvision's LayerNorm2d), "
                   "or over the features of a vector (nn.LayerNorm); learnt weight and bias per channel; eps "
                   "defaults to ConvNeXt's 1e-6 (nn.LayerNorm's is 1e-5)"))


def _layer_scale_state(a, ins):
    # the parameter is the layer itself: key "<name>", not "<name>.weight" (ConvNeXt's CNBlock
    # holds it as an attribute of the block: features.1.0.layer_scale, shape (C, 1, 1))
    return [("", (ins[0][0],) + (1,) * (len(ins[0]) - 1), False)]


register(OpDef("layer_scale", (Param("init", "float", 1e-6),), _same, lambda a, ins, out: Cost(ew_ops=numel(out)),
               state=_layer_scale_state,
               doc="multiply each channel by a learnt scale (ConvNeXt's layer scale), starting at init; the "
                   "parameter is named by the layer itself, of shape (C, 1, 1) on a map, (F,) on a vector"))

register(OpDef("lrn", (Param("size", "int", minimum=1), Param("alpha", "float", 1e-4), Param("beta", "float", 0.75),
                       Param("k", "float", 1.0)),
               lambda a, ins: _fmap(ins[0], "lrn"),
               lambda a, ins, out: Cost(ew_ops=(a["size"] + 3) * numel(out)),
               doc="local response normalisation across channels"))


# ------------------------------------------------------------------ element-wise

def _pointwise(name: str, per_elem: int, inplace: bool = False, doc: str = "") -> None:
    register(OpDef(name, (), _same, lambda a, ins, out: Cost(ew_ops=per_elem * numel(out)),
                   inplace=inplace, doc=doc))


def _activation(name: str, params: tuple, doc: str, inplace: bool = False, shape=_same, state=None) -> None:
    """An element-wise activation: one element-wise op per element, whatever its formula."""
    register(OpDef(name, params, shape, lambda a, ins, out: Cost(ew_ops=numel(out)), inplace=inplace,
                   state=state or (lambda a, ins: []), doc=doc))


_IN_PLACE = "; in place where nothing else reads x"
_pointwise("relu", 1, inplace=True, doc="max(x, 0); in place where nothing else reads x")
_pointwise("relu6", 1, inplace=True, doc="min(max(x, 0), 6); in place where nothing else reads x")
_pointwise("tanh", 1)
_pointwise("sigmoid", 1)
_activation("hardswish", (), "x·relu6(x + 3)/6 (MobileNetV3's h-swish)" + _IN_PLACE, inplace=True)
_activation("hardsigmoid", (), "relu6(x + 3)/6 (MobileNetV3's h-sigmoid)" + _IN_PLACE, inplace=True)
_activation("silu", (), "x·sigmoid(x), also called swish (EfficientNet)" + _IN_PLACE, inplace=True)
_activation("gelu", (Param("approximate", "str", "none", choices=("none", "tanh")),),
            'x·Φ(x), Φ the normal CDF; approximate="tanh": 0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))')
_activation("leaky_relu", (Param("slope", "float", 0.01),), "x if x > 0, else slope·x (PyTorch's negative_slope)")
_activation("elu", (Param("alpha", "float", 1.0),), "x if x > 0, else alpha·(exp(x) − 1)")


def _prelu_state(a, ins):
    # nn.PReLU(num_parameters): one slope for every channel, or one per channel
    return [("weight", (ins[0][0] if a["per_channel"] else 1,), False)]


_activation("prelu", (Param("per_channel", "bool", False), Param("init", "float", 0.25)),
            "x if x > 0, else a·x with a learnt slope a (state `weight`): one for all channels, or "
            "one per channel with per_channel=true; init is its starting value", state=_prelu_state)
_activation("mish", (), "x·tanh(softplus(x))" + _IN_PLACE, inplace=True)


def _softplus_shape(a, ins):
    if a["beta"] == 0:
        raise OpError("softplus: beta must not be 0 (it divides by beta)", arg="beta", kind="value")
    return ins[0]


_activation("softplus", (Param("beta", "float", 1.0), Param("threshold", "float", 20.0)),
            "log(1 + exp(beta·x))/beta; x itself where beta·x > threshold", shape=_softplus_shape)
_pointwise("softmax", 3, doc="softmax over channels")
_pointwise("log_softmax", 3, doc="log of the softmax over channels")

register(OpDef("identity", (), _same, lambda a, ins, out: Cost(), aliases_input=True))
register(OpDef("scale", (Param("s", "float"),), _same, lambda a, ins, out: Cost(ew_ops=numel(out)),
               doc="multiply by a constant (Inception-ResNet's residual scaling)"))
register(OpDef("dropout", (Param("p", "float", 0.5, minimum=0, below=1),), _same, lambda a, ins, out: Cost(),
               aliases_input=True, doc="dropout; the identity at inference"))
register(OpDef("drop_path", (Param("p", "float", minimum=0, below=1),), _same, lambda a, ins, out: Cost(),
               aliases_input=True, doc="stochastic depth, per sample; the identity at inference"))
register(OpDef("flatten", (), lambda a, ins: (numel(ins[0]),), lambda a, ins, out: Cost(), aliases_input=True,
               doc="flatten to a vector (a view)"))


# ------------------------------------------------------------------ pooling

def _pool_shape(name):
    def rule(a, ins):
        c, h, w = _fmap(ins[0], name)
        k, s = a["k"], a["stride"]
        if a["pad"] == "same":
            if s != (1, 1) or k[0] % 2 == 0 or k[1] % 2 == 0:
                raise OpError(f'{name}: pad="same" needs stride 1 and an odd kernel', arg="pad", kind="value")
            return (c, h, w)
        p = a["pad"]
        return (c, _pool_len(h, k[0], s[0], p[0], a["ceil"], name, "height"),
                _pool_len(w, k[1], s[1], p[1], a["ceil"], name, "width"))
    return rule


def _pool_cost(extra):
    def rule(a, ins, out):
        return Cost(ew_ops=numel(out) * (a["k"][0] * a["k"][1] + extra))
    return rule


_POOL_PARAMS = (Param("k", "pair", minimum=1), Param("stride", "pair", None, minimum=1, same_as="k"),
                Param("pad", "pad", 0),
                Param("ceil", "bool", False))
register(OpDef("maxpool", _POOL_PARAMS, _pool_shape("maxpool"), _pool_cost(-1), doc="max pooling"))
register(OpDef("avgpool", _POOL_PARAMS + (Param("count_include_pad", "bool", True),), _pool_shape("avgpool"),
               _pool_cost(0), doc="average pooling"))


def _global_pool_shape(a, ins):
    c, h, w = _fmap(ins[0], "global_avgpool")
    return (c, 1, 1)


register(OpDef("global_avgpool", (), _global_pool_shape, lambda a, ins, out: Cost(ew_ops=numel(ins[0])),
               doc="average over the whole map: CxHxW -> Cx1x1"))


def _adaptive_shape(a, ins):
    c, h, w = _fmap(ins[0], "adaptive_avgpool")
    return (c,) + tuple(a["out"])


register(OpDef("adaptive_avgpool", (Param("out", "pair", minimum=1),), _adaptive_shape,
               lambda a, ins, out: Cost(ew_ops=max(numel(ins[0]), numel(out))), doc="average to a fixed size"))


# ------------------------------------------------------------------ resampling

def _upsample_shape(a, ins):
    c, h, w = _fmap(ins[0], "upsample")
    f = a["factor"]
    return (c, h * f[0], w * f[1])


register(OpDef("upsample", (Param("factor", "pair", minimum=1),
                            Param("mode", "str", "nearest", choices=("nearest", "bilinear"))),
               _upsample_shape,
               lambda a, ins, out: Cost(ew_ops=4 * numel(out) if a["mode"] == "bilinear" else 0),
               doc="upsampling by an integer factor"))


def _crop_shape(a, ins):
    c, h, w = _fmap(ins[0], "center_crop")
    th, tw = a["h"], a["w"]
    if th > h or tw > w:
        raise OpError(f"center_crop: cannot crop {h}x{w} to {th}x{tw}")
    return (c, th, tw)


register(OpDef("center_crop", (Param("h", "int", minimum=1), Param("w", "int", None, minimum=1, same_as="h")),
               _crop_shape,
               lambda a, ins, out: Cost(), aliases_input=True, doc="crop the centre of the map"))


def _shuffle_shape(a, ins):
    c, h, w = _fmap(ins[0], "channel_shuffle")
    g = a["groups"]
    if c % g:
        raise OpError(f"channel_shuffle({g}): {c} channels are not divisible by groups={g}", arg="groups",
                      hint="channel_shuffle(groups) views the channels as groups x channels/groups")
    return (c, h, w)


# Data movement only, as concat: no MACs, no element-wise work; it materialises its output (a
# permutation of the channels cannot be a view of its input).
register(OpDef("channel_shuffle", (Param("groups", "int", minimum=1),), _shuffle_shape, lambda a, ins, out: Cost(),
               doc="ShuffleNet's channel shuffle: channels as a groups x C/groups grid, transposed (a copy)"))


# ------------------------------------------------------------------ merges

def _branches_differ(name: str, ins: list, i: int, hint: str | None = None) -> OpError:
    return OpError(f"{name}: branch 1 gives {fmt_shape(ins[0])} but branch {i + 1} gives {fmt_shape(ins[i])}",
                   hint=hint)


def _concat_shape(a, ins):
    rank = len(ins[0])
    for i, s in enumerate(ins):
        if len(s) != rank:
            raise _branches_differ("concat", ins, i)
    if rank == 1:
        return (sum(s[0] for s in ins),)
    if a["crop"]:
        h, w = min(s[1] for s in ins), min(s[2] for s in ins)
    else:
        h, w = ins[0][1:]
        for i, s in enumerate(ins):
            if s[1:] != (h, w):
                raise _branches_differ("concat", ins, i, hint="concat joins along channels; the other sizes must "
                                       "match (concat(crop=true) centre-crops the larger inputs)")
    return (sum(s[0] for s in ins), h, w)


register(OpDef("concat", (Param("crop", "bool", False),), _concat_shape, lambda a, ins, out: Cost(),
               arity=None, merge=True, doc="join branches along channels"))


def _equal_shapes(name):
    def rule(a, ins):
        for i, s in enumerate(ins):
            if s != ins[0]:
                if len(s) == len(ins[0]) == 3 and s[0] != ins[0][0]:
                    hint = "a projection shortcut (a 1x1 conv) makes the channels match"
                elif len(s) == len(ins[0]) == 3:
                    hint = "a strided shortcut makes the sizes match"
                else:
                    hint = None
                raise _branches_differ(name, ins, i, hint)
        return ins[0]
    return rule


register(OpDef("add", (), _equal_shapes("add"), lambda a, ins, out: Cost(ew_ops=(len(ins) - 1) * numel(out)),
               arity=None, min_inputs=2, merge=True, doc="element-wise sum (residual connections)"))
register(OpDef("mean", (Param("drop", "float", 0.0, minimum=0, below=1),), _equal_shapes("mean"),
               lambda a, ins, out: Cost(ew_ops=len(ins) * numel(out)), arity=None, min_inputs=2, merge=True,
               doc="element-wise mean; drop=p drops branches at random in training (FractalNet)"))


def _mul_shape(a, ins):
    out = ins[0]
    for i, s in enumerate(ins[1:], 1):
        if len(s) != len(out) or any(x != y and 1 not in (x, y) for x, y in zip(s, out)):
            raise _branches_differ("mul", ins, i, hint="mul broadcasts sizes of 1 (e.g. Cx1x1 gates) only")
        out = tuple(max(x, y) for x, y in zip(s, out))
    return out


register(OpDef("mul", (), _mul_shape, lambda a, ins, out: Cost(ew_ops=(len(ins) - 1) * numel(out)),
               arity=None, min_inputs=2, merge=True, doc="element-wise product with broadcasting (gating)"))


def _slice_shape(a, ins):
    c = ins[0][0]
    if not 0 <= a["start"] < a["stop"] <= c:
        raise OpError(f"slice {a['start']}:{a['stop']} of {c} channels")
    return (a["stop"] - a["start"],) + tuple(ins[0][1:])


register(OpDef("slice", (Param("start", "int", minimum=0), Param("stop", "int", minimum=1)), _slice_shape,
               lambda a, ins, out: Cost(), aliases_input=True, internal=True,
               doc="channels start:stop of its input, a view (split's parts, merge-siblings' outputs)"))


def _split_shape(a, ins):
    """The joined shape of split's branches: they are concatenated along channels."""
    return _concat_shape({"crop": False}, ins)


# `split(parts) { ... }` belongs to the language, not to the IR: elaboration makes it one channel
# slice (a view) per branch and a concat of the branches, so every pass and backend sees ops it
# knows. Its schema checks the call.
SPLIT = OpDef("split", (Param("parts", "int", minimum=1),), _split_shape, lambda a, ins, out: Cost(), arity=None,
              min_inputs=1, merge=True, doc="split the channels into equal parts, one per branch, and concat "
                                            "the branches")
SYNTAX = {"split": SPLIT}

# The activations (element-wise, and softmax and log_softmax over channels), as an unknown layer
# name's hint lists them.
ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu",
               "prelu", "mish", "softplus", "softmax", "log_softmax")

# The language's ops: what a .net file can name.
LANGUAGE = {name: op for name, op in OPS.items() if not op.internal}
LAYERS = tuple(name for name, op in LANGUAGE.items() if not op.merge and name != "input")
MERGES = tuple(name for name, op in LANGUAGE.items() if op.merge)
assert set(ACTIVATIONS) <= set(LAYERS)
