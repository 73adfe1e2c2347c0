"""The IR as a standalone, readable PyTorch source file.

One nn.Module class per block definition, reused for every call of that block; the network is
the last class. Within a class:

  * a layer with parameters, or a labelled layer, is a module attribute named as in the IR, so
    the state_dict keys are the in-memory module's (netlang.ir.state_entries);
  * an unlabelled layer without parameters (the numbered `relu` between two convs) is a call in
    forward (`F.relu(x, inplace=True)`), as one writes it by hand;
  * a labelled sequence of numbered layers is an nn.Sequential, which numbers them the same way;
  * layer arguments that differ from call to call become constructor arguments, named after the
    block's own parameters where their values follow one (`width`, `width * 4`, `stride`) and
    after the layer otherwise; a child whose structure differs from call to call (ResNet's
    `downsample`, a projection or the identity) is built by the caller and passed in, as
    torchvision does.

A block whose calls differ in their dataflow (a recursive block at different depths, a block
with a conditional branch) gets one class per form, numbered (`Fractal`, `Fractal2`).

The generator needs no torch. Everything that comes from the .net file and lands in the source
(names, strings, paths) passes through repr() or an identifier check, so no label, string or
file name can inject code.
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

import networkx as nx

from netlang import ops
from netlang.ir import inputs_of, topo_order, verify
from netlang.passes.cost import shares_input

from ._graph import attr_ref, check_module_names, is_attr, merge_expr, overwrites_saved_output, pool_pad

LINE = 100


# ====================================================================== expressions

@dataclass(frozen=True)
class Lit:
    value: object


@dataclass(frozen=True)
class Call:
    head: str
    args: tuple            # ((parameter name, expr), ...)
    positional: int = 0    # how many leading arguments are written without their name


@dataclass(frozen=True)
class Deferred:
    """A child built by a call of its own class (a recursive block): made when first rendered
    (its class's constructor arguments are known only once the class is templated)."""
    make: object

    def value(self):
        if "_made" not in self.__dict__:
            object.__setattr__(self, "_made", self.make())
        return self.__dict__["_made"]

    def __eq__(self, other):
        return self is other

    def __hash__(self):
        return id(self)


@dataclass
class Slot:
    """A template position whose value differs between the calls of a class."""
    values: list           # one expression per instance
    name: str = ""
    derived: bool = False  # follows a constructor parameter (`width * 4`), not one itself


def _norm(v):
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and not isinstance(v[0], float):
        return v[0]
    return v


def _lit(v) -> str:
    return repr(_norm(v))


def _resolve(e):
    return e.value() if isinstance(e, Deferred) else e


def _ordered(e: Call) -> tuple:
    """e's arguments as written: positional ones first, then keywords, those that build
    modules last (where a long one can open on the call's line)."""
    kws = sorted(e.args[e.positional:], key=lambda kv: isinstance(_resolve(kv[1]), Call))
    return e.args[:e.positional] + tuple(kws)


def flat(e, memo: dict) -> str:
    """e on one line (each subexpression rendered once: nested recursive blocks stay linear)."""
    e = _resolve(e)
    if isinstance(e, Lit):
        return _lit(e.value)
    if isinstance(e, Slot):
        return e.name
    if id(e) not in memo:
        args = _ordered(e)
        memo[id(e)] = f"{e.head}(" + ", ".join(("" if j < e.positional else f"{k}=") + flat(v, memo)
                                                for j, (k, v) in enumerate(args)) + ")"
    return memo[id(e)]


def render(e, indent: str = "", room: int = LINE, memo: dict | None = None) -> str:
    """Python source for an expression; calls too long for one line put one argument per line."""
    memo = {} if memo is None else memo
    e = _resolve(e)
    one_line = flat(e, memo)
    if not isinstance(e, Call) or len(one_line) + len(indent) <= room:
        return one_line
    args = _ordered(e)
    kw = lambda j, k: "" if j < e.positional else f"{k}="  # noqa: E731
    inner = indent + "    "
    last_k, last_v = args[-1] if args else (None, None)
    last_v = _resolve(last_v)
    if isinstance(last_v, Call) and len(args) > 1:
        # Short arguments, then a last one too long for a line of its own, opening on this line.
        lead = f"{e.head}(" + "".join(kw(j, k) + flat(v, memo) + ", " for j, (k, v) in enumerate(args[:-1])) \
            + kw(len(args) - 1, last_k)
        nested = any(isinstance(_resolve(v), Call) for _, v in last_v.args)
        if len(indent) + len(lead) < room - 10 and nested:
            return lead + render(last_v, indent, LINE - len(lead), memo) + ")"
    parts = [kw(j, k) + render(v, inner, LINE - len(inner), memo) for j, (k, v) in enumerate(args)]
    return f"{e.head}(\n" + "".join(f"{inner}{p},\n" for p in parts) + f"{indent})"


# PyTorch's defaults: arguments equal to them are left out of the generated calls.
DEFAULTS = {
    "nn.Conv2d": {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True},
    "nn.ConvTranspose2d": {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "bias": True,
                           "dilation": 1},
    "nn.Linear": {"bias": True},
    "nn.BatchNorm2d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "nn.BatchNorm1d": {"eps": 1e-5, "momentum": 0.1, "affine": True},
    "nn.LocalResponseNorm": {"alpha": 1e-4, "beta": 0.75, "k": 1.0},
    "nn.ReLU": {"inplace": False},
    "nn.ReLU6": {"inplace": False},
    "nn.MaxPool2d": {"padding": 0, "ceil_mode": False},
    "nn.AvgPool2d": {"padding": 0, "ceil_mode": False, "count_include_pad": True},
}


# PyTorch's names of the arguments written by position.
POSITIONAL = {
    "nn.Conv2d": ("in_channels", "out_channels", "kernel_size"),
    "nn.ConvTranspose2d": ("in_channels", "out_channels", "kernel_size"),
    "nn.Linear": ("in_features", "out_features"),
    "nn.BatchNorm2d": ("num_features",), "nn.BatchNorm1d": ("num_features",),
    "nn.LocalResponseNorm": ("size",), "Scale": ("s",), "nn.Dropout": ("p",), "DropPath": ("p",),
    "nn.Flatten": ("start_dim",), "nn.MaxPool2d": ("kernel_size",), "nn.AvgPool2d": ("kernel_size",),
    "nn.AdaptiveAvgPool2d": ("output_size",), "CenterCrop": ("h", "w"),
}


def module_expr(op: str, a: dict, ins: list, inplace: bool) -> Call:
    """The nn.Module that backends.pytorch.LOWER builds for the op, as an expression."""
    def c(head, *pos, **kw):
        names = POSITIONAL.get(head, ())
        return Call(head, tuple((names[j] if j < len(names) else f"arg{j}", Lit(v)) for j, v in enumerate(pos))
                    + tuple((k, Lit(v)) for k, v in kw.items()), len(pos))
    if op == "conv":
        return c("nn.Conv2d", ins[0][0], a["out"], a["k"], stride=a["stride"], padding=a["pad"],
                 dilation=a["dilation"], groups=a["groups"], bias=a["bias"])
    if op == "conv_t":
        return c("nn.ConvTranspose2d", ins[0][0], a["out"], a["k"], stride=a["stride"], padding=a["pad"],
                 output_padding=a["output_pad"], groups=a["groups"], bias=a["bias"], dilation=a["dilation"])
    if op == "linear":
        return c("nn.Linear", ins[0][0], a["out"], bias=a["bias"])
    if op == "batchnorm":
        return c("nn.BatchNorm2d" if len(ins[0]) == 3 else "nn.BatchNorm1d", ins[0][0], eps=a["eps"],
                 momentum=a["momentum"], affine=a["affine"])
    if op == "lrn":
        return c("nn.LocalResponseNorm", a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])
    if op in ("relu", "relu6"):
        return c("nn.ReLU" if op == "relu" else "nn.ReLU6", inplace=inplace)
    simple = {"tanh": "nn.Tanh", "sigmoid": "nn.Sigmoid", "identity": "nn.Identity"}
    if op in simple:
        return c(simple[op])
    if op == "softmax":
        return c("nn.Softmax", dim=1)
    if op == "scale":
        return c("Scale", a["s"])
    if op == "dropout":
        return c("nn.Dropout", a["p"])
    if op == "drop_path":
        return c("DropPath", a["p"])
    if op == "flatten":
        return c("nn.Flatten", 1)
    if op == "maxpool":
        return c("nn.MaxPool2d", a["k"], stride=a["stride"], padding=pool_pad(a), ceil_mode=a["ceil"])
    if op == "avgpool":
        return c("nn.AvgPool2d", a["k"], stride=a["stride"], padding=pool_pad(a), ceil_mode=a["ceil"],
                 count_include_pad=a["count_include_pad"])
    if op == "global_avgpool":
        return c("nn.AdaptiveAvgPool2d", (1, 1))
    if op == "adaptive_avgpool":
        return c("nn.AdaptiveAvgPool2d", a["out"])
    if op == "upsample":
        return c("nn.Upsample", scale_factor=tuple(float(f) for f in a["factor"]), mode=a["mode"])
    if op == "center_crop":
        return c("CenterCrop", a["h"], a["w"])
    raise KeyError(f"no torch source for op {op!r}")


def functional(op: str, a: dict, x: str, inplace: bool) -> str | None:
    """An unlabelled layer without state, as a call in forward; None where it needs a module."""
    ip = ", inplace=True" if inplace else ""
    if op == "relu":
        return f"F.relu({x}{ip})"
    if op == "relu6":
        return f"F.relu6({x}{ip})"
    if op in ("tanh", "sigmoid"):
        return f"torch.{op}({x})"
    if op == "softmax":
        return f"torch.softmax({x}, 1)"
    if op == "identity":
        return x
    if op == "flatten":
        return f"torch.flatten({x}, 1)"
    if op == "global_avgpool":
        return f"F.adaptive_avg_pool2d({x}, (1, 1))"
    if op == "dropout":
        return f"F.dropout({x}, {a['p']!r}, self.training)"
    if op == "maxpool":
        ceil = ", ceil_mode=True" if a["ceil"] else ""
        return f"F.max_pool2d({x}, {_lit(a['k'])}, {_lit(a['stride'])}, {_lit(pool_pad(a))}{ceil})"
    if op == "adaptive_avgpool":
        return f"F.adaptive_avg_pool2d({x}, {_lit(a['out'])})"
    if op == "upsample":
        return f"F.interpolate({x}, scale_factor={tuple(float(f) for f in a['factor'])!r}, mode={a['mode']!r})"
    if op == "lrn":
        return f"F.local_response_norm({x}, {a['size']}, {a['alpha']!r}, {a['beta']!r}, {a['k']!r})"
    if op == "scale":
        return f"{x} * {a['s']!r}"
    if op == "avgpool":
        extra = (", ceil_mode=True" if a["ceil"] else "") + ("" if a["count_include_pad"] else ", count_include_pad=False")
        return f"F.avg_pool2d({x}, {_lit(a['k'])}, {_lit(a['stride'])}, {_lit(pool_pad(a))}{extra})"
    return None


# Helpers the generated file defines when it uses them, equal in behaviour to backends.pytorch's.
HELPERS = {
    "DropPath": '''
class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's whole branch with probability p and scale
    the survivors by 1 / (1 - p); the identity in eval."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep
''',
    "Scale": '''
class Scale(nn.Module):
    """Multiply by a constant (scaled residual branches)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s
''',
    "center_crop": '''
def center_crop(x, h, w):
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]
''',
    "CenterCrop": '''
class CenterCrop(nn.Module):
    def __init__(self, h, w):
        super().__init__()
        self.h, self.w = h, w

    def forward(self, x):
        return center_crop(x, self.h, self.w)
''',
    "cat_cropped": '''
def cat_cropped(xs, h, w):
    """Centre-crop every input to h x w, then join them along channels."""
    return torch.cat([center_crop(x, h, w) for x in xs], 1)
''',
    "mean_join": '''
def mean_join(xs, p, training):
    """The mean of the inputs; in training each is dropped with probability p (for the whole
    batch), and at least one is always kept."""
    if not training or p == 0.0:
        return torch.stack(xs).mean(0)
    n = len(xs)
    keep = torch.rand(n, device=xs[0].device) >= p
    chosen = torch.arange(n, device=xs[0].device) == torch.randint(n, (1,), device=xs[0].device)
    keep = keep | (chosen & ~keep.any())
    w = keep.to(xs[0].dtype)
    return (torch.stack(xs) * w.view(n, *([1] * xs[0].dim()))).sum(0) / w.sum()
''',
    "init_weights": '''
def init_weights(module):
    """Kaiming-normal convolutions (fan_out, relu) with zero bias, batchnorm weight 1 and bias 0,
    linear layers as PyTorch initialises them."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
''',
}
HELPER_NEEDS = {"CenterCrop": ["center_crop"], "cat_cropped": ["center_crop"]}
RESERVED = {"self", "x", "torch", "nn", "F", "super", "getattr", *HELPERS}


# ====================================================================== identifiers

def class_name(text: str, taken: set) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    base = "".join(w[:1].upper() + w[1:] for w in words) or "Module"
    if base[0].isdigit():
        base = "Net" + base
    if base in RESERVED or keyword.iskeyword(base):
        base += "Module"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}{i}", i + 1
    taken.add(name)
    return name


def unique_ident(text: str, taken: set, prefix: str) -> str:
    """An identifier made from text, not a keyword, a name the file uses or one in `taken`
    (which it joins): `prefix_` in front where text is not one, `_2`, `_3`... after a repeat."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", text)
    if not base.isidentifier() or keyword.iskeyword(base) or base in RESERVED:
        base = f"{prefix}_{base}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


def var_name(rel: str, op: str, taken: set) -> str:
    """A local variable for the value of the item `rel`: its label, or op and number (`relu3`)."""
    last = rel.rpartition(".")[2]
    return unique_ident(last if is_attr(last) else f"{op}{last}", taken, "v")


def comment(text: str) -> str:
    """Text safe inside a # comment: one line, printable ASCII."""
    return text.encode("ascii", "backslashreplace").decode().replace("\r", "\\r").replace("\n", "\\n")


# ====================================================================== the scope tree

@dataclass
class Unit:
    path: str                          # "" for the network
    kind: str                          # "root", "block", "seq", "merge"
    block: str | None
    args: dict
    given: tuple | None = None                     # the block parameters the call passed
    children: list = field(default_factory=list)   # direct children: node ids or scope paths
    callable: bool = True
    ext_input: str | None = None       # the one node outside it that it reads
    exposed: str | None = None         # the one node inside it read from outside
    as_sequential: bool = False
    cls: "Klass | None" = None
    forward: list = field(default_factory=list)


@dataclass
class Klass:
    name: str
    key: tuple
    units: list
    params: list = field(default_factory=list)     # constructor parameter names, in order
    template: list = field(default_factory=list)   # (attr name, expr with Slots)
    slots: list = field(default_factory=list)      # the constructor's parameters, as Slots
    n_positional: int = 0                          # leading slots named after block parameters
    defaults: dict = field(default_factory=dict)   # parameter -> the block's default, where calls left it out


class Generator:
    def __init__(self, G: nx.MultiDiGraph):
        verify(G, check_shapes=False)
        check_module_names(G)
        self.G = G
        self.order = topo_order(G)
        self.rank = {n: i for i, n in enumerate(self.order)}
        self.shares = shares_input(G, self.order)
        self.scopes = G.graph.get("scopes", {})
        self.used: set = set()
        self.units: dict[str, Unit] = {}
        self._build_tree()

    # ------------------------------------------------------------------ structure
    def _build_tree(self):
        G = self.G
        root = Unit("", "root", G.graph["name"], {})
        self.units[""] = root
        for path in sorted(self.scopes, key=lambda p: p.count(".")):
            info = self.scopes[path]
            self.units[path] = Unit(path, info["kind"], info.get("block"), info.get("args") or {}, info.get("given"))
        members: dict[str, set] = {p: set() for p in self.units}
        for n in self.order:
            if G.nodes[n]["op"] == "input":
                continue
            parent = G.nodes[n]["scope"]
            self._add_child(parent, n)
            p = parent
            while True:
                members[p].add(n)
                if not p:
                    break
                self._add_child(p.rpartition(".")[0], p)
                p = p.rpartition(".")[0]
        self.members = members
        for path, u in self.units.items():
            if not path:
                continue
            inside = members[path]
            ext = {s for n in inside for s in inputs_of(G, n) if s not in inside}
            exposed = {n for n in inside if n in G.graph["outputs"] or any(v not in inside for v in G.successors(n))}
            u.callable = len(ext) == 1 and len(exposed) == 1
            if u.callable:
                u.ext_input, u.exposed = next(iter(ext)), next(iter(exposed))
        for u in self.units.values():
            u.as_sequential = self._is_chain(u)
        # nn.Sequential numbers its children itself: every layer of a chain is a module there.
        self.in_sequential = {c for u in self.units.values() if u.as_sequential for c in u.children}

    def _add_child(self, parent: str, child: str):
        kids = self.units[parent].children
        if not kids or kids[-1] != child:
            if child not in kids:
                kids.append(child)

    def _is_chain(self, u: Unit) -> bool:
        if u.kind not in ("seq",) or not u.callable or not u.path:
            return False
        prev = u.ext_input
        for i, child in enumerate(u.children):
            if child.rpartition(".")[2] != str(i):
                return False
            if child in self.units:
                c = self.units[child]
                if not c.callable or c.ext_input != prev:
                    return False
                prev = c.exposed
            else:
                if self.G.nodes[child]["op"] in ops.MERGES or inputs_of(self.G, child) != [prev]:
                    return False
                prev = child
        return prev == u.exposed

    def is_module(self, n: str) -> bool:
        """Does this leaf become a module attribute (rather than inline code in forward)?"""
        data = self.G.nodes[n]
        op = data["op"]
        if op in ops.MERGES:
            return False
        if n in self.in_sequential:
            return True
        if ops.OPS[op].state(data["args"], [self.G.nodes[s]["shape"] for s in inputs_of(self.G, n)]):
            return True
        label = n.rpartition(".")[2]
        if not label.isdigit():
            return True
        return self._functional(n, "x") is None

    def inplace(self, n: str) -> bool:
        return bool(self.shares[n]) and not overwrites_saved_output(self.G, n)

    def _functional(self, n: str, x: str):
        data = self.G.nodes[n]
        return functional(data["op"], data["args"], x, self.inplace(n))

    # ------------------------------------------------------------------ forward
    def items(self, u: Unit) -> list:
        """What u's forward runs, in topological order: leaf nodes and callable sub-scopes
        (containers are looked through)."""
        out = []
        for child in u.children:
            if child in self.units:
                c = self.units[child]
                if c.callable:
                    out.append(child)
                else:
                    out += self.items(c)
            else:
                out.append(child)
        return sorted(out, key=lambda i: self.rank[self.units[i].exposed] if i in self.units else self.rank[i])

    def forward_lines(self, u: Unit) -> list[str]:
        G = self.G
        items = self.items(u)
        out_of = {i: (self.units[i].exposed if i in self.units else i) for i in items}
        ins_of = {i: ([self.units[i].ext_input] if i in self.units else inputs_of(G, i)) for i in items}
        outputs = G.graph["outputs"] if not u.path else [u.exposed]
        entry = u.ext_input if u.path else G.graph["inputs"][0]
        if not u.path and len(outputs) > 1:
            main_nodes = nx.ancestors(G, outputs[0]) | {outputs[0]}
            main = [i for i in items if out_of[i] in main_nodes]
            aux = [i for i in items if out_of[i] not in main_nodes]
        else:
            main, aux = items, []
        keep = set(outputs) | {s for i in aux for s in ins_of[i]}
        var = {entry: "x"}
        taken = {"x"}
        readers: dict = {}
        for i in items:
            for s in set(ins_of[i]):
                readers[s] = readers.get(s, 0) + 1
        lines: list[str] = []

        def emit(group):
            last = {}
            for i in group:
                for s in ins_of[i]:
                    last[s] = i
            for i in group:
                ins = ins_of[i]
                args = [var[s] for s in ins]
                rel = i[len(u.path) + 1:] if u.path else i
                expr = self.item_expr(i, rel, args)
                first = ins[0] if ins else None
                merge = i not in self.units and G.nodes[i]["op"] in ops.MERGES
                # A chain reuses its variable; a branch off a shared value and a join get names.
                if expr in args:                # an identity: the same value under its input's name
                    var[out_of[i]] = expr
                    continue
                if (first is not None and last.get(first) == i and first not in keep
                        and ins.count(first) == 1 and (merge or readers[first] == 1)):
                    name = var[first]
                elif merge and "out" not in taken:
                    name = "out"
                    taken.add(name)
                else:
                    op = G.nodes[out_of[i]]["op"] if i not in self.units else "out"
                    name = var_name(rel, op, taken)
                var[out_of[i]] = name
                if expr != name:
                    lines.append(f"{name} = {expr}")

        emit(main)
        # The value the forward returns reads best as `out` (torchvision's habit).
        final = var[outputs[0]]
        if final not in ("x", "out") and "out" not in taken and sum(f"{final} = " in ln for ln in lines) > 2:
            pat = re.compile(rf"(?<![\w.'\"]){final}\b")
            lines[:] = [pat.sub("out", ln) for ln in lines]
            var = {k: ("out" if v == final else v) for k, v in var.items()}
            taken.add("out")
        if len(outputs) == 1:
            lines.append(f"return {var[outputs[0]]}")
        else:
            lines.append("if not self.training:")
            lines.append(f"    return {var[outputs[0]]}")
            emit(aux)
            lines.append(f"return {', '.join(var[o] for o in outputs)}")
        return lines

    def item_expr(self, i: str, rel: str, args: list[str]) -> str:
        G = self.G
        if i in self.units or self.is_module(i):
            return f"{attr_ref('self', rel)}({args[0]})"
        if G.nodes[i]["op"] in ops.MERGES:
            expr, helper = merge_expr(G, i, args)
            if helper:
                self.used.add(helper)
            return expr
        return self._functional(i, args[0])

    # ------------------------------------------------------------------ construction
    def module_children(self, u: Unit) -> list[str]:
        return [c for c in u.children if c in self.units or self.is_module(c)]

    def expr_of(self, child: str):
        """The expression that builds a child module (after its class is templated)."""
        if child in self.units:
            c = self.units[child]
            if c.as_sequential:
                kids = self.module_children(c)
                return Call("nn.Sequential", tuple((str(j), self.expr_of(k)) for j, k in enumerate(kids)), len(kids))
            k = c.cls
            idx = k.units.index(c)
            return Call(k.name, tuple((s.name, s.values[idx]) for s in k.slots), k.n_positional)
        data = self.G.nodes[child]
        ins = [self.G.nodes[s]["shape"] for s in inputs_of(self.G, child)]
        e = module_expr(data["op"], data["args"], ins, self.inplace(child))
        if e.head in HELPERS:
            self.used.add(e.head)
        return e


# ====================================================================== templates

def _unify(exprs: list, slots: list, hint: str):
    """One template for the expressions of the same position in every call of a class."""
    first = exprs[0]
    if all(e == first for e in exprs):
        return first
    if all(isinstance(e, Call) for e in exprs) and \
            len({(e.head, tuple(k for k, _ in e.args), e.positional) for e in exprs}) == 1:
        args = []
        for j, (k, _) in enumerate(first.args):
            args.append((k, _unify([e.args[j][1] for e in exprs], slots, f"{hint}_{k}")))
        return Call(first.head, tuple(args), first.positional)
    s = Slot(list(exprs), hint)
    slots.append(s)
    return s


def _drop_defaults(e, classes: dict):
    """e without the keyword arguments equal to their defaults: PyTorch's, or those of a
    generated class (`classes`: class name -> {parameter: default})."""
    if not isinstance(e, Call):
        return e
    dflt = classes.get(e.head) or DEFAULTS.get(e.head, {})
    args = tuple((k, _drop_defaults(v, classes)) for j, (k, v) in enumerate(e.args)
                 if j < e.positional or not (k in dflt and isinstance(v, Lit) and _norm(v.value) == dflt[k]
                                             and type(_norm(v.value)) is type(dflt[k])))
    return Call(e.head, args, e.positional)


def _name_slots(k: Klass, in_channels: list) -> None:
    """Name each value slot after the block parameter (or input width) its values follow."""
    cands = []
    for p in k.units[0].args:
        vals = [u.args.get(p) for u in k.units]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and is_attr(p) \
                and p not in RESERVED:
            cands.append((p, vals))
    if in_channels is not None:
        cands.append(("in_channels", in_channels))
    used_params: list[str] = []
    named: dict[tuple, str] = {}
    taken = {c for c, _ in cands}
    for s in k.slots:
        vals = [v.value if isinstance(v, Lit) else None for v in s.values]
        plain = [_norm(v) for v in vals]
        if any(v is None for v in vals) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in plain):
            s.name = unique_ident(s.name or "arg", taken, "arg")
            continue
        text = None
        for cname, cv in cands:
            if plain == cv:
                text = cname
            elif all(isinstance(c, int) and c > 0 for c in cv) and all(isinstance(v, int) for v in plain):
                if all(v % c == 0 for v, c in zip(plain, cv)) and len({v // c for v, c in zip(plain, cv)}) == 1:
                    text = f"{cname} * {plain[0] // cv[0]}"
                elif all(c % v == 0 for v, c in zip(plain, cv) if v) and all(plain) \
                        and len({c // v for v, c in zip(plain, cv)}) == 1:
                    text = f"{cname} // {cv[0] // plain[0]}"
            if text:
                if cname not in used_params:
                    used_params.append(cname)
                break
        if text:
            s.name = text
            s.derived = True
        else:
            key = tuple(map(repr, plain))
            if key in named:
                s.name = named[key]
                s.derived = True
            else:
                s.name = named[key] = unique_ident(s.name or "arg", taken, "arg")
    # Constructor parameters: the input width and the block's parameters that slots follow,
    # then the other slots.
    params = [c for c, _ in cands[-1:] + cands[:-1] if c in used_params] if in_channels is not None \
        else [c for c, _ in cands if c in used_params]
    # A block parameter that some calls leave out takes, in the constructor, the value those
    # calls got: the block's default (`stride=1`), left out of the calls that use it.
    for p in params:
        if p == "in_channels":
            continue
        left_out = {repr(u.args.get(p)) for u in k.units if u.given is not None and p not in u.given}
        if len(left_out) == 1:
            k.defaults[p] = next(u.args.get(p) for u in k.units if u.given is not None and p not in u.given)
    required = [p for p in params if p not in k.defaults]
    ctor = [Slot([Lit(v) for v in dict(cands)[p]], p) for p in required]
    seen = set(params)
    for s in k.slots:
        if not getattr(s, "derived", False) and s.name not in seen:
            seen.add(s.name)
            ctor.append(s)
    ctor += [Slot([Lit(v) for v in dict(cands)[p]], p) for p in params if p in k.defaults]
    k.params = params
    k.n_positional = len(required)
    k.slots = ctor




def generate_source(G: nx.MultiDiGraph, header: str | None = None) -> str:
    """The network of G as a Python file that imports only torch; its last class is the network."""
    gen = Generator(G)
    units = gen.units
    taken_names: set = set()
    classes: dict[tuple, Klass] = {}
    # Deepest scopes first: a class is templated after the classes of its children.
    for path in sorted(units, key=lambda p: (-(p.count(".") + 1) if p else 1, p)):
        u = units[path]
        if u.as_sequential:
            continue
        u.forward = gen.forward_lines(u) if (u.callable or not path) else []
        kids = tuple(c.rpartition(".")[2] for c in gen.module_children(u))
        if not path:
            key = ("", G.graph["name"])
        elif u.kind == "block":
            key = ("block", u.block, tuple(u.forward), kids)
        else:
            key = ("seq", path.rpartition(".")[2] if not path.rpartition(".")[2].isdigit() else "", tuple(u.forward), kids)
        if key not in classes:
            label = (G.graph["name"] if not path else u.block if u.kind == "block" else
                     (path.rpartition(".")[2] if not path.rpartition(".")[2].isdigit() else "sequence"))
            classes[key] = Klass(class_name(label, taken_names), key, [])
        classes[key].units.append(u)
        u.cls = classes[key]

    # Template each class once all units are assigned, children before parents.
    done: set = set()
    ordered: list[Klass] = []
    class_defaults: dict = {}

    def template(k: Klass):
        if k.name in done:
            return
        done.add(k.name)
        for u in k.units:
            for c in gen.module_children(u):
                for d in _nested_classes(gen, c):
                    if d is not k:
                        template(d)
        # A call of the class itself (a recursive block) is built by the caller and passed in.
        per_unit = [[(c.rpartition(".")[2],
                      gen.expr_of(c) if c not in units or units[c].cls is not k else Deferred(lambda c=c: gen.expr_of(c)))
                     for c in gen.module_children(u)] for u in k.units]
        slots: list = []
        k.template = []
        for j, (attr, _) in enumerate(per_unit[0]):
            exprs = [row[j][1] for row in per_unit]
            k.template.append((attr, _drop_defaults(_unify(exprs, slots, attr), class_defaults)))
        k.slots = slots
        ins = None
        if k.units[0].path and all(u.ext_input for u in k.units):
            shapes = [G.nodes[u.ext_input]["shape"] for u in k.units]
            if all(len(s) == 3 for s in shapes):
                ins = [s[0] for s in shapes]
        _name_slots(k, ins)
        class_defaults[k.name] = k.defaults
        ordered.append(k)

    for k in sorted(classes.values(), key=lambda k: -len(k.units[0].path.split(".")) if k.units[0].path else 1):
        template(k)

    body = [_class_source(gen, k) for k in ordered]
    used = set(gen.used) | {"init_weights"}
    helpers = []
    for h in HELPERS:
        if h in used or any(h in HELPER_NEEDS.get(u, []) for u in used):
            helpers.append(HELPERS[h].strip("\n"))
    head = header or default_header(G)
    parts = [head, "import torch\nimport torch.nn.functional as F\nfrom torch import nn"]
    parts += helpers + body
    return "\n\n\n".join(parts) + "\n"


def _nested_classes(gen: Generator, child: str):
    if child not in gen.units:
        return []
    c = gen.units[child]
    if c.as_sequential:
        return [d for k in gen.module_children(c) for d in _nested_classes(gen, k)]
    return [c.cls]


def _class_source(gen: Generator, k: Klass) -> str:
    u0 = k.units[0]
    G = gen.G
    lines = [f"class {k.name}(nn.Module):"]
    if not u0.path:
        doc = f"network {G.graph['name']}"
    elif u0.kind == "block":
        info = gen.scopes[u0.path]
        loc = info.get("loc")
        where = f" (called at {loc.file}:{loc.line})" if loc else ""
        calls = sorted({gen.scopes[u.path].get("call") or "" for u in k.units})
        doc = f"block {u0.block}: {len(k.units)} call{'s' if len(k.units) != 1 else ''}, e.g. {calls[0]}{where}"
    else:
        doc = f"the layers labelled {u0.path.rpartition('.')[2]}"
    lines.append(f"    # {comment(doc)}")
    lines.append("")
    params = ", ".join(["self"] + [s.name + (f"={_lit(k.defaults[s.name])}" if s.name in k.defaults else "")
                                   for s in k.slots])
    lines.append(f"    def __init__({params}):")
    lines.append("        super().__init__()")
    for attr, e in k.template:
        if is_attr(attr):
            lines.append(f"        self.{attr} = {render(e, '        ', LINE - len(attr) - 16)}")
        else:
            lines.append(f"        self.add_module({attr!r}, {render(e, '        ', LINE - 30)})")
    if not u0.path:
        lines.append("        init_weights(self)")
    if u0.forward:
        lines.append("")
        lines.append("    def forward(self, x):")
        lines += [f"        {ln}" for ln in u0.forward]
    return "\n".join(lines)


def default_header(G: nx.MultiDiGraph) -> str:
    params = ", ".join(f"{k}={v!r}" for k, v in G.graph.get("params", {}).items())
    shape = "x".join(map(str, G.nodes[G.graph["inputs"][0]]["shape"]))
    out = [
        f"# Generated by netlang from {comment(str(G.graph.get('file') or '<text>'))},"
        f" network {comment(G.graph['name'])}, input {shape}.",
    ]
    if params:
        out.append(f"# Parameters: {comment(params)}")
    out.append("# Do not edit: change the .net file and compile again (netlang compile FILE --backend torch -o ...).")
    outs = G.graph["outputs"]
    if len(outs) > 1:
        out.append(f"# forward returns {comment(outs[0])} in eval; ({comment(', '.join(outs))}) in training.")
    return "\n".join(out)


__all__ = ["generate_source"]
