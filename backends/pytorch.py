"""Lowering of the netlang IR to a torch.nn.Module.

The module tree follows the IR's dotted names, so `state_dict()` keys are `<node name>.weight`
and so on, exactly the keys netlang.ir.state_entries() promises (torchvision's, for the zoo's
torchvision networks). Every op of netlang.ops.OPS has one entry in LOWER, beside its PyTorch
semantics; forward is Python source generated from the graph (as torch.fx does), so the walk over
the graph costs nothing at run time and torch.compile sees plain code.

Training semantics: dropout, drop_path and mean(drop=p) act only in training; a network's
auxiliary outputs (`output fc, aux1, aux2`) are computed and returned, as a tuple after the main
output, only in training; in eval forward returns the main output alone and skips the heads.
"""
from __future__ import annotations

import contextvars
import keyword
import re
from collections import OrderedDict
from typing import Callable

import networkx as nx
import torch
import torch.nn.functional as F
from torch import nn

from netlang import ops
from netlang.ir import inputs_of, topo_order, verify
from netlang.passes.cost import shares_input

from ._graph import attr_ref, check_module_names, merge_expr, pool_pad
from ._graph import overwrites_saved_output as _overwrites_saved_output


# ====================================================================== layers netlang adds

class DropPath(nn.Module):
    """Stochastic depth, per sample: in training, zero a sample's whole residual branch with
    probability p and scale the survivors by 1 / (1 - p); the identity in eval."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Scale(nn.Module):
    """Multiply by a constant (Inception-ResNet's residual scaling)."""

    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s

    def extra_repr(self) -> str:
        return f"s={self.s}"


class CenterCrop(nn.Module):
    def __init__(self, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x):
        return center_crop(x, self.h, self.w)

    def extra_repr(self) -> str:
        return f"h={self.h}, w={self.w}"


def center_crop(x, h: int, w: int):
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def cat_cropped(xs, h: int, w: int):
    """concat(crop=true): centre-crop every input to h x w, then join along channels."""
    return torch.cat([center_crop(x, h, w) for x in xs], 1)


def mean_join(xs, p: float, training: bool):
    """FractalNet's join: the mean of its inputs; in training each input is dropped with
    probability p (the same for the whole batch), and at least one is always kept."""
    if not training or p == 0.0:
        return torch.stack(xs).mean(0)
    n = len(xs)
    keep = torch.rand(n, device=xs[0].device) >= p
    # Where every input was dropped, keep one chosen at random (without a branch, for torch.compile).
    chosen = torch.arange(n, device=xs[0].device) == torch.randint(n, (1,), device=xs[0].device)
    keep = keep | (chosen & ~keep.any())
    w = keep.to(xs[0].dtype)
    return (torch.stack(xs) * w.view(n, *([1] * xs[0].dim()))).sum(0) / w.sum()


class Scope(nn.Module):
    """A block call or a labelled sequence: holds the layers named under it.

    Children named 0, 1, 2... can be indexed as in nn.Sequential (`model.layer1[0]`).
    """

    def __init__(self, kind: str = "seq", block: str | None = None, call: str | None = None):
        super().__init__()
        self.kind, self.block, self.call = kind, block, call

    def _get_name(self) -> str:
        if self.block:
            return "".join(p.capitalize() for p in self.block.split("_")) or "Scope"
        return "Sequence" if self.kind == "seq" else "Scope"

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            # As nn.Sequential slices: a new nn.Sequential sharing the selected layers (that runs
            # them one after the other, as `features[:10]` is used to cut a feature extractor).
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        key = str(idx if idx >= 0 else len(self) + idx) if isinstance(idx, int) else idx
        return self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


# ====================================================================== the lowering table

def _pad(p):
    return p if p == "same" else tuple(p)


def _batchnorm(a, ins):
    cls = nn.BatchNorm2d if len(ins[0]) == 3 else nn.BatchNorm1d
    return cls(ins[0][0], eps=a["eps"], momentum=a["momentum"], affine=a["affine"])


# lower() with init draws every convolution's weights once, in init_weights: PyTorch's
# constructors would first fill them with their default initialisation (a third of a ResNet's
# build time), only for it to be drawn again. A convolution is therefore made as a subclass whose
# reset_parameters does nothing and then becomes the plain nn.Conv2d it is; its memory is
# uninitialised until init_weights fills it. (The meta device would do the same, but its first
# use in a process imports PyTorch's meta kernels, which costs more than it saves.)
_DEFER_CONV_INIT: contextvars.ContextVar[bool] = contextvars.ContextVar("netlang_defer_conv_init", default=False)
_UNINITIALISED = {cls: type(cls.__name__, (cls,), {"reset_parameters": lambda self: None})
                  for cls in (nn.Conv2d, nn.ConvTranspose2d)}


def _conv(cls, *args):
    if not _DEFER_CONV_INIT.get():
        return cls(*args)
    m = _UNINITIALISED[cls](*args)
    m.__class__ = cls
    return m


# op name -> (args, input shapes, in place allowed) -> nn.Module, or None for merges, which
# forward computes inline.
LOWER: dict[str, Callable] = {
    "conv": lambda a, ins, ip: _conv(nn.Conv2d, ins[0][0], a["out"], a["k"], a["stride"], _pad(a["pad"]),
                                     a["dilation"], a["groups"], a["bias"]),
    "conv_t": lambda a, ins, ip: _conv(nn.ConvTranspose2d, ins[0][0], a["out"], a["k"], a["stride"], a["pad"],
                                       a["output_pad"], a["groups"], a["bias"], a["dilation"]),
    "linear": lambda a, ins, ip: nn.Linear(ins[0][0], a["out"], a["bias"]),
    "batchnorm": lambda a, ins, ip: _batchnorm(a, ins),
    "lrn": lambda a, ins, ip: nn.LocalResponseNorm(a["size"], a["alpha"], a["beta"], a["k"]),
    "relu": lambda a, ins, ip: nn.ReLU(inplace=ip),
    "relu6": lambda a, ins, ip: nn.ReLU6(inplace=ip),
    "tanh": lambda a, ins, ip: nn.Tanh(),
    "sigmoid": lambda a, ins, ip: nn.Sigmoid(),
    "softmax": lambda a, ins, ip: nn.Softmax(dim=1),
    "identity": lambda a, ins, ip: nn.Identity(),
    "scale": lambda a, ins, ip: Scale(a["s"]),
    "dropout": lambda a, ins, ip: nn.Dropout(a["p"]),
    "drop_path": lambda a, ins, ip: DropPath(a["p"]),
    "flatten": lambda a, ins, ip: nn.Flatten(1),
    "maxpool": lambda a, ins, ip: nn.MaxPool2d(a["k"], a["stride"], pool_pad(a), ceil_mode=a["ceil"]),
    "avgpool": lambda a, ins, ip: nn.AvgPool2d(a["k"], a["stride"], pool_pad(a), ceil_mode=a["ceil"],
                                              count_include_pad=a["count_include_pad"]),
    "global_avgpool": lambda a, ins, ip: nn.AdaptiveAvgPool2d((1, 1)),
    "adaptive_avgpool": lambda a, ins, ip: nn.AdaptiveAvgPool2d(a["out"]),
    "upsample": lambda a, ins, ip: nn.Upsample(scale_factor=tuple(float(f) for f in a["factor"]), mode=a["mode"]),
    "center_crop": lambda a, ins, ip: CenterCrop(a["h"], a["w"]),
    "input": None, "concat": None, "add": None, "mean": None, "mul": None,
}

_missing = set(ops.OPS) - set(LOWER)
if _missing:
    raise ImportError(f"backends.pytorch has no lowering for ops {sorted(_missing)}")


# ====================================================================== module

class NetlangModule(nn.Module):
    """A network compiled from netlang. `code` is the source of its forward function."""

    def __init__(self, name: str, code: str, outputs: tuple[str, ...], input_shape: tuple):
        super().__init__()
        self.netlang_name = name
        self.code = code
        self.outputs = outputs
        self.input_shape = input_shape
        self._compile()

    def _compile(self) -> None:
        namespace = {"torch": torch, "F": F, "cat_cropped": cat_cropped, "mean_join": mean_join}
        exec(compile(self.code, f"<netlang {self.netlang_name}>", "exec"), namespace)
        self.__dict__["_forward"] = namespace["forward"]

    def forward(self, x):
        return self._forward(self, x)

    def _get_name(self) -> str:
        return f"Netlang[{self.netlang_name}]"

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_forward", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._compile()


def _ident(name: str, taken: set) -> str:
    base = re.sub(r"\W", "_", name)
    if not base or base[0].isdigit():
        base = "v_" + base
    if keyword.iskeyword(base) or base in ("self", "x", "torch", "F", "cat_cropped", "mean_join"):
        base += "_"
    ident, i = base, 1
    while ident in taken:
        ident, i = f"{base}_{i}", i + 1
    taken.add(ident)
    return ident


def _expr(G, n: str, args: list[str]) -> str:
    if G.nodes[n]["op"] in ops.MERGES:
        return merge_expr(G, n, args)[0]
    return f"{attr_ref('self', n)}({args[0]})"


def forward_source(G: nx.MultiDiGraph) -> str:
    """The forward function of G as Python source: one line per layer, values freed after
    their last use, auxiliary outputs computed only in training."""
    order = topo_order(G)
    outputs = G.graph["outputs"]
    main = nx.ancestors(G, outputs[0]) | {outputs[0]}
    taken: set = set()
    var = {}
    for n in order:
        var[n] = "x" if G.nodes[n]["op"] == "input" else _ident(n, taken)
    lines = ["def forward(self, x):"]

    def emit(nodes, indent, keep):
        last_use = {}
        for n in nodes:
            for s in inputs_of(G, n):
                last_use[s] = n
        for n in nodes:
            if G.nodes[n]["op"] == "input":
                continue
            ins = [var[s] for s in inputs_of(G, n)]
            lines.append(f"{indent}{var[n]} = {_expr(G, n, ins)}")
            dead = sorted({var[s] for s in inputs_of(G, n) if last_use.get(s) == n and s not in keep})
            if dead:
                lines.append(f"{indent}{' = '.join(dead)} = None")

    aux_only = [n for n in order if n not in main]
    # Values the auxiliary heads read must outlive the main path.
    keep = set(outputs) | {s for n in aux_only for s in inputs_of(G, n)}
    emit([n for n in order if n in main], "    ", keep)
    if len(outputs) == 1:
        lines.append(f"    return {var[outputs[0]]}")
    else:
        lines.append("    if not self.training:")
        lines.append(f"        return {var[outputs[0]]}")
        emit(aux_only, "    ", set(outputs))
        lines.append(f"    return {', '.join(var[o] for o in outputs)}")
    return "\n".join(lines) + "\n"


def lower(G: nx.MultiDiGraph, init: bool = True) -> NetlangModule:
    """Build the nn.Module of an elaborated (and verified) graph."""
    verify(G, check_shapes=False)
    check_module_names(G)
    shares = shares_input(G, topo_order(G))
    module = NetlangModule(G.graph["name"], forward_source(G), tuple(G.graph["outputs"]),
                           tuple(G.nodes[G.graph["inputs"][0]]["shape"]))
    scopes = G.graph.get("scopes", {})

    def container(path: str) -> nn.Module:
        node = module
        prefix = ""
        for part in path.split(".")[:-1]:
            prefix = f"{prefix}.{part}" if prefix else part
            child = node._modules.get(part)
            if child is None:
                info = scopes.get(prefix, {})
                child = Scope(info.get("kind", "seq"), info.get("block"), info.get("call"))
                node.add_module(part, child)
            node = child
        return node

    token = _DEFER_CONV_INIT.set(init)
    try:
        for n in topo_order(G):
            data = G.nodes[n]
            make = LOWER[data["op"]]
            if make is None:
                continue
            in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
            layer = make(data["args"], in_shapes, shares[n] and not _overwrites_saved_output(G, n))
            container(n).add_module(n.rpartition(".")[2], layer)
    finally:
        _DEFER_CONV_INIT.reset(token)
    if init:
        init_weights(module)
    return module


def init_weights(module: nn.Module) -> None:
    """torchvision's conventions (as in its ResNet): Kaiming-normal convolutions (fan_out, relu)
    with zero bias, batchnorm weight 1 and bias 0, linear layers as PyTorch initialises them.
    Deterministic under torch.manual_seed: layers are visited in registration order."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


__all__ = ["generate_source", "LOWER", "NetlangModule", "Scope", "DropPath", "Scale", "CenterCrop", "lower", "forward_source",
           "init_weights"]


def generate_source(G: nx.MultiDiGraph, header: str | None = None) -> str:
    """The network of G as a standalone Python file (see backends.torch_source)."""
    from .torch_source import generate_source as gen
    return gen(G, header)
