"""Each built-in layer's PyTorch form, in one table: the module __init__ builds, the call forward
makes for an unlabelled layer without parameters, and what it gives (channels, rank).

Arguments arrive as Python source (`a`: only the arguments the .net call gives, so PyTorch's
defaults, which equal netlang's, stay implicit), with their concrete values (`cv`: all of them,
canonical, or None where not known).
"""
from __future__ import annotations

from netlang import ops

from .code import P_IF, P_MUL, Py, Resolve
from .names import NeedsConcrete, pair_lit


def _kw(a: dict, names: dict) -> list[str]:
    """keyword arguments, in netlang's parameter order, under PyTorch's names."""
    return [f"{names.get(k, k)}={v.code}" for k, v in a.items() if k in names]


def _pool_pad(a: dict, cv):
    """A pool's padding: "same" (stride 1, odd kernel) is k // 2, "valid" is 0."""
    p = a.get("pad")
    if p is None:
        return None
    if p.code in ("'same'", '"same"'):
        if cv is None:
            raise NeedsConcrete("pad='same' of a pool with an unknown kernel")
        if a["k"].deps:
            raise Resolve(a["k"])       # written from the kernel's value
        return Py(pair_lit((cv["k"][0] // 2, cv["k"][1] // 2)))
    if p.code in ("'valid'", '"valid"'):
        return Py("0")
    if cv is not None and cv["pad"] == "same":
        raise Resolve(p)
    return p


def _factor(a: dict, cv) -> dict:
    """upsample's scale factor as PyTorch takes it: a number or a tuple (not a list)."""
    f = a.get("factor")
    if f is None:
        return a
    if f.code.startswith("[") and f.code.endswith("]"):
        f = Py("(" + f.code[1:-1] + ")")
    return dict(a, factor=f)


# Parameter-free activations whose PyTorch module and function take inplace= (relu and relu6 are
# written apart: their functions are F.relu and F.relu6, with nn.ReLU's spelling).
INPLACE_MODULES = {"hardswish": "nn.Hardswish", "hardsigmoid": "nn.Hardsigmoid", "silu": "nn.SiLU",
                   "mish": "nn.Mish"}


def _prelu(a: dict, in_chan: Py) -> str:
    """nn.PReLU(num_parameters, init): one slope, or one per channel (the input's width)."""
    flag = a.get("per_channel")
    if flag is None or flag.code == "False":
        count = None
    elif flag.code == "True":
        count = in_chan.code
    else:
        count = f"{in_chan.at(P_IF + 1)} if {flag.at(P_IF + 1)} else 1"
    parts = ([count] if count is not None else []) + ([f"init={a['init'].code}"] if "init" in a else [])
    return f"nn.PReLU({', '.join(parts)})"


def module(op: str, a: dict, cv, in_chan: Py, rank: int, inplace: bool) -> str:
    """The nn.Module the layer is, as source."""
    a = _factor(a, cv)
    def call(head, *pos, **kw):
        parts = [x for x in pos] + [f"{k}={v}" for k, v in kw.items()]
        return f"{head}({', '.join(parts)})"
    if op == "conv":
        pos = [in_chan.code, a["out"].code, a["k"].code]
        kw = _kw(a, {"stride": "stride", "pad": "padding", "dilation": "dilation", "groups": "groups",
                     "bias": "bias"})
        return f"nn.Conv2d({', '.join(pos + kw)})"
    if op == "conv_t":
        pos = [in_chan.code, a["out"].code, a["k"].code]
        kw = _kw(a, {"stride": "stride", "pad": "padding", "output_pad": "output_padding", "groups": "groups",
                     "bias": "bias", "dilation": "dilation"})
        return f"nn.ConvTranspose2d({', '.join(pos + kw)})"
    if op == "linear":
        head = "Linear2d" if rank == 3 else "nn.Linear"
        return f"{head}({', '.join([in_chan.code, a['out'].code] + _kw(a, {'bias': 'bias'}))})"
    if op == "layernorm":
        head = "LayerNorm2d" if rank == 3 else "nn.LayerNorm"
        eps = a["eps"].code if "eps" in a else "1e-06"       # (netlang's default, ConvNeXt's; nn.LayerNorm's is 1e-5)
        return f"{head}({in_chan.code}, eps={eps})"
    if op == "batchnorm":
        if "frozen" in a:
            if a["frozen"].deps:
                raise Resolve(a["frozen"])      # a different module: written from the flag's value
            if cv is None:
                raise NeedsConcrete("batchnorm(frozen=...) of an unknown flag")
            if cv["frozen"]:
                return f"FrozenBatchNorm2d({', '.join([in_chan.code] + _kw(a, {'eps': 'eps'}))})"
        head = "nn.BatchNorm2d" if rank == 3 else "nn.BatchNorm1d"
        return f"{head}({', '.join([in_chan.code] + _kw(a, {'eps': 'eps', 'momentum': 'momentum', 'affine': 'affine'}))})"
    if op == "lrn":
        return f"nn.LocalResponseNorm({', '.join([a['size'].code] + _kw(a, {'alpha': 'alpha', 'beta': 'beta', 'k': 'k'}))})"
    if op in ("relu", "relu6"):
        head = "nn.ReLU" if op == "relu" else "nn.ReLU6"
        return f"{head}(inplace=True)" if inplace else f"{head}()"
    if op == "tanh":
        return "nn.Tanh()"
    if op == "sigmoid":
        return "nn.Sigmoid()"
    if op in INPLACE_MODULES:
        return f"{INPLACE_MODULES[op]}(inplace=True)" if inplace else f"{INPLACE_MODULES[op]}()"
    if op == "gelu":
        return f"nn.GELU(approximate={a['approximate'].code})" if "approximate" in a else "nn.GELU()"
    if op == "leaky_relu":
        return f"nn.LeakyReLU({a['slope'].code})" if "slope" in a else "nn.LeakyReLU()"
    if op == "elu":
        return f"nn.ELU({a['alpha'].code})" if "alpha" in a else "nn.ELU()"
    if op == "prelu":
        return _prelu(a, in_chan)
    if op == "softplus":
        return f"nn.Softplus({', '.join(_kw(a, {'beta': 'beta', 'threshold': 'threshold'}))})"
    if op == "softmax":
        return "nn.Softmax(dim=1)"
    if op == "log_softmax":
        return "nn.LogSoftmax(dim=1)"
    if op == "identity":
        return "nn.Identity()"
    if op == "scale":
        return f"Scale({a['s'].code})"
    if op == "dropout":
        return f"nn.Dropout({a['p'].code})" if "p" in a else "nn.Dropout()"
    if op == "drop_path":
        return f"DropPath({a['p'].code})"
    if op == "flatten":
        return "nn.Flatten()"
    if op in ("maxpool", "avgpool"):
        head = "nn.MaxPool2d" if op == "maxpool" else "nn.AvgPool2d"
        parts = [a["k"].code]
        if "stride" in a:
            parts.append(f"stride={a['stride'].code}")
        pad = _pool_pad(a, cv)
        if pad is not None:
            parts.append(f"padding={pad.code}")
        if "ceil" in a:
            parts.append(f"ceil_mode={a['ceil'].code}")
        if "count_include_pad" in a:
            parts.append(f"count_include_pad={a['count_include_pad'].code}")
        return f"{head}({', '.join(parts)})"
    if op == "global_avgpool":
        return "nn.AdaptiveAvgPool2d(1)"
    if op == "adaptive_avgpool":
        return f"nn.AdaptiveAvgPool2d({a['out'].code})"
    if op == "upsample":
        parts = [f"scale_factor={a['factor'].code}"] + ([f"mode={a['mode'].code}"] if "mode" in a else [])
        return f"nn.Upsample({', '.join(parts)})"
    if op == "channel_shuffle":
        return call("ChannelShuffle", a["groups"].code)
    if op == "center_crop":
        return call("CenterCrop", a["h"].code, *([a["w"].code] if "w" in a else []))
    raise KeyError(f"no PyTorch module for op {op!r}")


# Layers that need a module even without a label: they hold parameters or buffers.
STATEFUL = {"conv", "conv_t", "linear", "batchnorm", "prelu", "layernorm", "layer_scale"}
# Layers whose one parameter is named by the layer itself: an attribute of the module holding it
# (ConvNeXt's CNBlock.layer_scale), never a module of its own.
PARAMETER = {"layer_scale"}
# Helpers of the generated file a layer's module or call needs.
# (LayerNorm2d and Linear2d: on a map only; the writer adds a helper where the module's code uses it)
HELPER_OF_MODULE = {"layernorm": "LayerNorm2d", "linear": "Linear2d", "scale": "Scale", "drop_path": "DropPath",
                    "center_crop": "CenterCrop", "batchnorm": "FrozenBatchNorm2d", "channel_shuffle": "ChannelShuffle"}
HELPER_OF_CALL = {"drop_path": "drop_path", "center_crop": "center_crop", "channel_shuffle": "channel_shuffle"}


def parameter(op: str, a: dict, in_chan: Py, rank: int) -> str:
    """The nn.Parameter a PARAMETER layer is, as source: layer_scale's (C, 1, 1) of init (CNBlock's
    `nn.Parameter(torch.ones(dim, 1, 1) * layer_scale)`), (F,) on a vector."""
    assert op == "layer_scale", op
    init = a["init"].at(P_MUL + 1) if "init" in a else "1e-06"
    size = f"{in_chan.code}, 1, 1" if rank == 3 else in_chan.code
    return f"nn.Parameter(torch.ones({size}) * {init})"


def functional(op: str, a: dict, cv, x: str, inplace: bool) -> str:
    """An unlabelled layer without parameters, as a call in forward (`a`: forward's view of the
    arguments)."""
    a = _factor(a, cv)
    ip = ", inplace=True" if inplace else ""
    if op == "relu":
        return f"F.relu({x}{ip})"
    if op == "relu6":
        return f"F.relu6({x}{ip})"
    if op in ("tanh", "sigmoid"):
        return f"torch.{op}({x})"
    if op in INPLACE_MODULES:
        return f"F.{op}({x}{ip})"
    if op == "gelu":
        return f"F.gelu({x}, approximate={a['approximate'].code})" if "approximate" in a else f"F.gelu({x})"
    if op == "leaky_relu":
        return f"F.leaky_relu({x}, {a['slope'].code})" if "slope" in a else f"F.leaky_relu({x})"
    if op == "elu":
        return f"F.elu({x}, {a['alpha'].code})" if "alpha" in a else f"F.elu({x})"
    if op == "softplus":
        return f"F.softplus({', '.join([x] + _kw(a, {'beta': 'beta', 'threshold': 'threshold'}))})"
    if op == "softmax":
        return f"torch.softmax({x}, 1)"
    if op == "log_softmax":
        return f"torch.log_softmax({x}, 1)"
    if op == "flatten":
        return f"torch.flatten({x}, 1)"
    if op == "global_avgpool":
        return f"F.adaptive_avg_pool2d({x}, 1)"
    if op == "adaptive_avgpool":
        return f"F.adaptive_avg_pool2d({x}, {a['out'].code})"
    if op == "scale":
        return f"{x} * {a['s'].at(P_MUL + 1)}"
    if op == "dropout":
        return f"F.dropout({x}, {a['p'].code if 'p' in a else '0.5'}, self.training)"
    if op == "drop_path":
        return f"drop_path({x}, {a['p'].code}, self.training)"
    if op in ("maxpool", "avgpool"):
        fn = "F.max_pool2d" if op == "maxpool" else "F.avg_pool2d"
        parts = [x, a["k"].code]
        if "stride" in a:
            parts.append(f"stride={a['stride'].code}")
        pad = _pool_pad(a, cv)
        if pad is not None:
            parts.append(f"padding={pad.code}")
        if "ceil" in a:
            parts.append(f"ceil_mode={a['ceil'].code}")
        if "count_include_pad" in a:
            parts.append(f"count_include_pad={a['count_include_pad'].code}")
        return f"{fn}({', '.join(parts)})"
    if op == "upsample":
        mode = f", mode={a['mode'].code}" if "mode" in a else ""
        return f"F.interpolate({x}, scale_factor={a['factor'].code}{mode})"
    if op == "lrn":
        parts = [x, a["size"].code] + [f"{k}={a[k].code}" for k in ("alpha", "beta", "k") if k in a]
        return f"F.local_response_norm({', '.join(parts)})"
    if op == "channel_shuffle":
        return f"channel_shuffle({x}, {a['groups'].code})"
    if op == "center_crop":
        return f"center_crop({x}, {a['h'].code}, {a['w'].code if 'w' in a else a['h'].code})"
    raise KeyError(f"no PyTorch call for op {op!r}")


def output(op: str, a: dict, in_chan: Py, rank: int, in_shape) -> tuple[Py, int]:
    """The channels (or vector length) and rank the layer gives."""
    if op in ("conv", "conv_t", "linear"):
        return a["out"], (rank if op == "linear" else 3)
    if op == "flatten":
        if rank == 1:
            return in_chan, 1
        if in_shape is None:
            raise NeedsConcrete("flatten of a map of unknown size")
        hw = in_shape[1] * in_shape[2]
        return (in_chan if hw == 1 else Py(f"{in_chan.at(P_MUL)} * {in_shape[1]} * {in_shape[2]}", in_chan.deps, P_MUL)), 1
    return in_chan, rank


assert set(ops.LAYERS) <= {"conv", "conv_t", "linear", "batchnorm", "lrn", "relu", "relu6", "tanh", "sigmoid",
                           "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "prelu", "mish",
                           "softplus", "softmax", "log_softmax", "layernorm", "layer_scale", "identity", "scale", "dropout", "drop_path", "flatten", "maxpool",
                           "avgpool", "global_avgpool", "adaptive_avgpool", "upsample", "center_crop",
                           "channel_shuffle"}, \
    "backends/torchgen/layers.py has no PyTorch form for some layer of netlang.ops"
