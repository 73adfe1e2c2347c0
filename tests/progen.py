"""A generator of random *valid* netlang programs, for differential testing of the backends.

`generate(seed)` returns the source text of one small `.net` file: some blocks and defs, one
network `n` (every parameter has a default, so `netlang.loads(text, network="n")` elaborates it
without arguments) and sometimes an instance `network m = n(...)` with other arguments. The
programs are tiny to run (inputs like 3x8x8, at most a few thousand elements per tensor, about
forty layers) and between them use every construct of the language (docs/language.md): every
built-in layer and merge, labels of every kind (whole-pipeline, later items, groups, templates,
keywords, Python names, non-ASCII), references, blocks and defs as values, recursion, loops,
conditionals, repetition, network parameters and instances, and rare deep nesting.

How validity is reached: the generator builds programs in a small AST of its own and runs every
candidate piece on a small interpreter (`Sim`) that mirrors the elaborator's semantics and uses
the op registry's shape rules (`netlang.ops`). A piece that fails there is discarded and another
is drawn, so the text is valid by construction; `netlang` itself is the final judge
(`valid_programs`). The interpreter's graph (`_build(seed).final`) has the same layers and shapes
as netlang's IR, which tests/test_progen.py checks. Nothing here imports torch.

    generate(seed) -> str                 one program (deterministic: random.Random(seed))
    valid_programs(start, count, ...)     (seed, text) of those that elaborate; NetlangError
                                          skips one (a miss), any other exception propagates
    features(text) -> set[str]            the constructs a program uses; FEATURES lists them all

Names that nn.Module owns (netlang.backends.torchgen.names.MODULE_ATTRIBUTES) or that start with "__" are never
labels; block, def, parameter and let names are drawn from pools of awkward names (Python
keywords and builtins, the generated file's helpers, dunders, CamelCased block names).
"""
from __future__ import annotations

import math
import random
import re
import sys
from typing import Iterator

import netlang
from netlang.backends.torchgen.names import MODULE_ATTRIBUTES
from netlang import ops

# ====================================================================== the language's names

KEYWORDS = ("import", "def", "block", "network", "let", "if", "else", "for", "in", "input", "output",
            "true", "false", "and", "or", "not", "concat", "add", "mean", "mul", "split")
OP_NAMES = tuple(n for n, op in ops.LANGUAGE.items() if n != "input" and not op.merge)
MERGE_NAMES = tuple(n for n, op in ops.LANGUAGE.items() if op.merge) + tuple(ops.SYNTAX)
FUNC_NAMES = ("range", "len", "min", "max", "sum", "int", "round", "float", "abs", "ceil", "floor", "log", "log2",
              "pow", "str")
BUILTIN_NAMES = frozenset(OP_NAMES) | frozenset(FUNC_NAMES)
MATH_FUNCS = frozenset(("float", "abs", "ceil", "floor", "log", "log2", "pow", "str"))

MAX_DEPTH = 200            # netlang.elaborate.MAX_DEPTH
MAX_REPEAT = 100_000
CAP_ELEMS = 4096           # elements of any tensor (one sample): keeps a forward pass cheap
CAP_CH = 64
CAP_DIM = 40
HARD_NODES = 3000
WORK = 2500                # attempts per program before the generator keeps to simple pieces

IDENT = re.compile(r"[A-Za-z0-9_]+\Z")        # what a templated label must give
NAME_RE = re.compile(r"[A-Za-z_]\w*\Z")       # the grammar's NAME (Unicode \w, as Lark's lexer)


def ok_label(s: str) -> bool:
    """Can `s` be a plain label here: lexable, and free to name a PyTorch module."""
    return bool(NAME_RE.match(s)) and s not in MODULE_ATTRIBUTES and not s.startswith("__")


def refable(key: str) -> bool:
    """Can `@key` be written: every part a NAME that is not a keyword."""
    return all(NAME_RE.match(p) and p not in KEYWORDS for p in key.split("."))


def camel(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", name) if w)


# Label pools, by kind (features() reports which kinds a program uses).
PLAIN_LABELS = ["stem", "a", "b", "c1", "head", "fc", "body", "proj", "gate", "skip", "enc", "dec",
                "down", "up", "trunk", "branch", "left", "right", "mid", "pre", "post", "norm", "pool",
                "feat", "conv1", "bn1", "relu1", "shortcut", "downsample", "classifier", "features",
                "layer1", "unit", "w", "t", "z", "y", "_", "_h", "h0", "k9", "out", "res", "aux"]
KEYWORD_LABELS = [k for k in KEYWORDS if k != "input"]
BUILTIN_LABELS = list(OP_NAMES) + list(FUNC_NAMES)
PYKW_LABELS = ["class", "lambda", "return", "import", "def", "None", "True", "False", "pass", "yield",
               "from", "with", "is", "del", "global", "while", "try", "except", "raise", "async",
               "await", "nonlocal", "elif", "assert", "break", "continue", "as"]
PYNAME_LABELS = ["getattr", "len", "super", "self", "x", "torch", "nn", "F", "setattr", "hasattr",
                 "print", "object", "list", "dict", "math", "weight", "bias", "running_mean",
                 "Module", "Sequential", "ModuleList", "DropPath", "Scale", "CenterCrop",
                 "cat_cropped", "mean_join", "init_weights", "in_channels", "inplace", "x_1", "v_x",
                 "kind", "call", "args", "given", "scope", "loc", "op", "shape", "Tensor", "id",
                 "input_", "_modules_", "x2"]
NONASCII_LABELS = ["a²", "aﬁ", "afi", "café", "größe", "xΩ", "zé", "_ñ", "vµ"]
for _pool in (PLAIN_LABELS, KEYWORD_LABELS, BUILTIN_LABELS, PYKW_LABELS, PYNAME_LABELS, NONASCII_LABELS):
    _pool[:] = [s for s in _pool if ok_label(s)]

KIND_NAMES = {
    "ch": ["c", "w", "width", "out", "ch", "planes", "growth", "c_out", "filters", "channels", "in_channels"],
    "stride": ["stride", "s", "step"],
    "flag": ["use_bn", "bn", "flag", "wide", "pre", "last", "gated"],
    "layer": ["act", "body", "unit", "norm", "f", "op", "layer", "fn", "block"],
    "n": ["n", "depth", "reps", "d", "count", "times"],
    "k": ["k", "kernel", "ks", "size"],
    "p": ["p", "drop", "rate", "prob"],
    "list": ["widths", "cfg", "sizes", "ws"],
    "fn": ["block", "make", "sub", "unit_fn"],
    "shape": ["shape", "res", "size_in"],
}
# Parameter names that a source generator has to rename or keep apart (Python keywords and
# builtins, names the generated file uses, dunders, nn.Module attributes).
WEIRD_PARAMS = ["self", "x", "super", "nn", "F", "torch", "getattr", "__class__", "__init__", "__c",
                "_", "in_channels", "len", "max", "class", "lambda", "return", "None", "True", "pass",
                "from", "yield", "Scale", "DropPath", "mean_join", "cat_cropped", "init_weights",
                "forward", "training", "kind", "call", "object", "type"]
LET_NAMES = ["w2", "k2", "mid", "last", "pad", "t", "self", "x", "class", "torch", "nn", "F", "lambda",
             "half", "width2", "m_", "q", "None", "super"]
LOOP_VARS = ["i", "j", "idx", "s", "x", "self", "lambda", "_", "class"]
BLOCK_NAMES = ["inner", "Inner", "unit", "res", "stage", "branchy", "cbr", "conv2d", "sequential",
               "Sequential", "module", "Module", "torch", "nn", "F", "x", "self", "super", "getattr",
               "Scale", "DropPath", "CenterCrop", "cat_cropped", "mean_join", "init_weights",
               "res_block", "ResBlock", "b_", "block_a", "dense", "gate_", "fuse", "tower", "Net",
               "net", "x1", "_private", "__init__", "class_", "lambda", "Conv2d", "inner2", "inner_",
               "body_", "sub_block", "SubBlock", "forward_", "tiny"]
DEF_NAMES = ["pool", "act", "bn", "cbr1", "c1", "down", "proj", "head_", "side", "from_anchor", "mix",
             "double", "pair", "squash", "lambda_", "self_", "relu_bn", "conv_bn", "Def", "d_"]
SHAPES = [(3, 8, 8), (4, 6, 6), (2, 5, 7), (1, 9, 9), (3, 7, 7), (2, 6, 6), (1, 8, 8), (3, 6, 8),
          (4, 5, 5), (2, 8, 8), (3, 5, 6)]
VECTORS = [12, 7, 16, 10]

# the activations after relu, relu6, tanh and sigmoid: a little of each (weights in mk_layer)
# ConvNeXt's layers (issue 12, item 4), on maps and vectors; a linear on a map is per pixel
CONVNEXT_OPS = {"layernorm": 3, "layer_scale": 2}
NEW_ACTS = {"hardswish": 2, "hardsigmoid": 1, "silu": 2, "gelu": 2, "leaky_relu": 2, "elu": 1, "prelu": 2, "mish": 1,
            "softplus": 1, "log_softmax": 1}
ACT_OPS = ["relu", "relu6", "tanh", "sigmoid", "identity", "hardswish", "silu", "mish"]


# ====================================================================== the interpreter's values

class Invalid(Exception):
    """A candidate that the elaborator would reject (or that is too large): draw another."""


class V:
    __slots__ = ("shape", "nid")

    def __init__(self, shape, nid):
        self.shape, self.nid = shape, nid


class OpVal:
    def __init__(self, name):
        self.name = name


class BlockVal:
    def __init__(self, decl):
        self.decl = decl


class DefVal:
    def __init__(self, decl):
        self.decl = decl


class FuncVal:
    def __init__(self, name):
        self.name = name


class Thunk:
    def __init__(self, item, env):
        self.item, self.env = item, env


LAYERLIKE = (OpVal, BlockVal, DefVal, Thunk)


class Env:
    __slots__ = ("vars", "parent")

    def __init__(self, parent=None):
        self.vars = {}
        self.parent = parent

    def lookup(self, name):
        e = self
        while e is not None:
            if name in e.vars:
                return e.vars[name]
            e = e.parent
        raise Invalid(f"unknown name {name}")


def _isint(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _isnum(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tname(v):
    if isinstance(v, bool):
        return "bool"
    for t, n in ((int, "int"), (float, "float"), (str, "string"), (list, "list"), (tuple, "tuple")):
        if type(v) is t:
            return n
    return type(v).__name__


def truth(v):
    if isinstance(v, (bool, int, float, str, list, tuple)):
        return bool(v)
    raise Invalid("not a condition")


def builtin_env() -> Env:
    env = Env()
    for name in OP_NAMES:
        env.vars[name] = OpVal(name)
    for name in FUNC_NAMES:
        env.vars[name] = FuncVal(name)
    return env


def _nums(a):
    vals = a[0] if len(a) == 1 and isinstance(a[0], (list, tuple)) else a
    if not vals or not all(_isnum(v) for v in vals):
        raise Invalid("not numbers")
    return vals


def call_func(name, a):
    if name == "range":
        if not 1 <= len(a) <= 3 or not all(_isint(x) for x in a) or (len(a) == 3 and a[2] == 0):
            raise Invalid("range")
        r = list(range(*a))
        if len(r) > MAX_REPEAT:
            raise Invalid("range")
        return r
    if name == "len":
        if len(a) != 1 or not isinstance(a[0], (list, tuple, str)):
            raise Invalid("len")
        return len(a[0])
    if name in ("min", "max", "sum"):
        return {"min": min, "max": max, "sum": sum}[name](_nums(a))
    if name in ("int", "round"):
        if len(a) != 1 or not isinstance(a[0], (int, float)) or (isinstance(a[0], float) and not math.isfinite(a[0])):
            raise Invalid(name)
        return int(a[0]) if name == "int" else int(round(a[0]))
    if name in ("float", "abs", "ceil", "floor", "log2", "str") and len(a) != 1:
        raise Invalid(name)
    if name == "str":
        if not isinstance(a[0], (bool, int, float, str)):
            raise Invalid(name)
        return a[0] if isinstance(a[0], str) else fmt(a[0])
    if not a or not all(_isnum(x) for x in a):
        raise Invalid(name)
    x = a[0]
    if name == "float":
        return float(x)
    if name == "abs":
        return abs(x)
    if name in ("ceil", "floor"):
        if isinstance(x, float) and not math.isfinite(x):
            raise Invalid(name)
        return math.ceil(x) if name == "ceil" else math.floor(x)
    if name in ("log", "log2"):
        if x <= 0 or len(a) > (2 if name == "log" else 1) or (len(a) == 2 and (a[1] <= 0 or a[1] == 1)):
            raise Invalid(name)
        return math.log2(x) if name == "log2" else math.log(x) if len(a) == 1 else math.log(x, a[1])
    if name == "pow":
        if len(a) != 2 or (x == 0 and a[1] < 0) or (x < 0 and not float(a[1]).is_integer()):
            raise Invalid(name)
        if _isint(x) and _isint(a[1]) and a[1] >= 0:
            if abs(x) > 1 and a[1] * (abs(x).bit_length() - 1) > 64 or abs(x ** a[1]) > 1 << 63:
                raise Invalid(name)
            return x ** a[1]
        try:
            return math.pow(x, a[1])
        except OverflowError:
            raise Invalid(name) from None
    raise Invalid(name)


# ---------------------------------------------------------------- op arguments (bind_op, _check_arg)

def _bounded(spec, x):
    if spec.minimum is not None and x < spec.minimum:
        raise Invalid("below minimum")
    if spec.below is not None and x >= spec.below:
        raise Invalid("not below")
    if _isint(x) and x > (1 << 24):
        raise Invalid("absurd")
    return x


def _canon(spec, v):
    if v is None:
        return None
    k = spec.kind
    if k == "int":
        if not _isint(v):
            raise Invalid("int")
        return _bounded(spec, v)
    if k == "float":
        if not _isnum(v) or not math.isfinite(v):
            raise Invalid("float")
        return _bounded(spec, float(v))
    if k == "bool":
        if not isinstance(v, bool):
            raise Invalid("bool")
        return v
    if k == "str":
        if not isinstance(v, str) or (spec.choices and v not in spec.choices):
            raise Invalid("str")
        return v
    if k == "shape":
        return v
    if k in ("pair", "pad"):
        if k == "pad" and v == "same":
            return "same"
        if k == "pad" and v == "valid":
            return (0, 0)
        if _isint(v):
            v2 = (v, v)
        elif isinstance(v, (tuple, list)) and len(v) == 2 and all(_isint(x) for x in v):
            v2 = tuple(v)
        else:
            raise Invalid("pair")
        lo = spec.minimum if spec.minimum is not None else 0
        if any(x < lo or x > (1 << 24) for x in v2):
            raise Invalid("pair range")
        return v2
    raise Invalid("kind")


def bind_op(name, given):
    """given: [(keyword or None, value)] -> the op's canonical argument dict."""
    op = ops.OPS[name] if name in ops.OPS else ops.SYNTAX[name]
    names = [p.name for p in op.params]
    values = {}
    pos = 0
    seen_kw = False
    for kw, v in given:
        if kw is None:
            if seen_kw or pos >= len(names):
                raise Invalid("positional")
            key = names[pos]
            pos += 1
        else:
            if kw not in names or kw in values:
                raise Invalid("keyword")
            seen_kw = True
            key = kw
        values[key] = _canon(op.param_index[key], v)
    for spec in op.params:
        if spec.name not in values:
            if spec.default is ops.REQUIRED:
                raise Invalid("required")
            values[spec.name] = _canon(spec, spec.default)
    for spec in op.params:
        if spec.same_as and values[spec.name] is None:
            values[spec.name] = values[spec.same_as]
    return values


# ---------------------------------------------------------------- the dataflow graph

class Sim:
    """The graph being built: nodes (op, inputs, shape) and how often each is read."""

    def __init__(self):
        self.nodes = []
        self.cons = []
        self.depth = 0
        self.thunks = 0

    def add(self, op, args, ins):
        if op == "input":
            shape = tuple(args)
        else:
            try:
                shape = tuple(ops.OPS[op].shape(args, [v.shape for v in ins]))
            except ops.OpError as err:
                raise Invalid(err.message) from None
        if (not shape or any(d < 1 for d in shape) or math.prod(shape) > CAP_ELEMS or shape[0] > CAP_CH
                or (len(shape) == 3 and max(shape[1:]) > CAP_DIM)):
            raise Invalid("too large")
        if len(self.nodes) >= HARD_NODES:
            raise Invalid("too many nodes")
        nid = len(self.nodes)
        self.nodes.append((op, tuple(v.nid for v in ins), shape))
        self.cons.append(0)
        for v in ins:
            self.cons[v.nid] += 1
        return V(shape, nid)

    def truncate(self, n):
        for _, ins, _ in self.nodes[n:]:
            for i in ins:
                if i < n:
                    self.cons[i] -= 1
        del self.nodes[n:]
        del self.cons[n:]


class Body:
    """One block or network body: the labels placed so far (key -> value) and all keys used."""
    __slots__ = ("refs", "keys", "kind", "n0")

    def __init__(self, kind="block", n0=0):
        self.refs = {}
        self.keys = set()
        self.kind = kind
        self.n0 = n0                 # the first node the body placed (generator bookkeeping)


class Ctx:
    __slots__ = ("body", "prefix")

    def __init__(self, body, prefix=()):
        self.body, self.prefix = body, prefix


class NetState:
    def __init__(self):
        self.input = None
        self.outputs = None


# ====================================================================== the AST (text + semantics)

def fmt(v, style=0) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return ('"%s"' if style == 0 else "'%s'") % v
    if isinstance(v, tuple):
        if len(v) >= 2 and all(_isint(x) and x >= 0 for x in v) and style == 1:
            return "x".join(map(str, v))
        if len(v) == 1:
            return f"({fmt(v[0])},)"
        return "(" + ", ".join(fmt(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x) for x in v) + "]"
    raise TypeError(v)


def wrap(n, lo, ind="") -> str:
    t = n.text(ind)
    return f"({t})" if n.prec < lo or n.paren else t


def top(n, ind="") -> str:
    """A node where a whole pipeline may stand (a statement, branch, argument, let, list item)."""
    if (isinstance(n, Labelled) and n.flat and not n.paren and isinstance(n.item, Pipe) and not n.item.paren
            and not any(isinstance(x, Labelled) for x in n.item.items)):
        return n.label.text() + ": " + n.item.text(ind)
    return wrap(n, 1, ind)


class Node:
    prec = 12
    paren = False

    def ev(self, sim, env, cur):
        return Thunk(self, env)

    def place(self, sim, env, cur, ctx):
        raise Invalid("not a layer")


class Lit(Node):
    def __init__(self, v, style=0):
        self.v, self.style = v, style
        self.prec = 10 if _isnum(v) and v < 0 else 12

    def text(self, ind=""):
        return fmt(self.v, self.style)

    def ev(self, sim, env, cur):
        return self.v


class Name(Node):
    def __init__(self, id):
        self.id = id

    def text(self, ind=""):
        return self.id

    def ev(self, sim, env, cur):
        return env.lookup(self.id)

    def place(self, sim, env, cur, ctx):
        return apply(sim, self.ev(sim, env, cur), [], env, cur, ctx)


class InAttr(Node):
    def __init__(self, attr):
        self.attr = attr

    def text(self, ind=""):
        return "in." + self.attr

    def ev(self, sim, env, cur):
        if cur is None:
            raise Invalid("in before input")
        s = cur.shape
        if self.attr == "shape":
            return tuple(s)
        if self.attr == "channels":
            return s[0]
        if len(s) != 3:
            raise Invalid("in.height of a vector")
        return s[1] if self.attr == "height" else s[2]


_PREC = {"or": 4, "and": 5, "==": 7, "!=": 7, "<": 7, "<=": 7, ">": 7, ">=": 7, "+": 8, "-": 8,
         "*": 9, "/": 9, "//": 9, "%": 9}


class Bin(Node):
    def __init__(self, op, a, b):
        self.op, self.a, self.b = op, a, b
        self.prec = _PREC[op]

    def text(self, ind=""):
        p = self.prec
        lo = p + 1 if p == 7 else p
        return f"{wrap(self.a, lo, ind)} {self.op} {wrap(self.b, p + 1, ind)}"

    def ev(self, sim, env, cur):
        op = self.op
        if op in ("and", "or"):
            left = self.a.ev(sim, env, cur)
            if truth(left) == (op == "and"):
                return self.b.ev(sim, env, cur)
            return left
        a, b = self.a.ev(sim, env, cur), self.b.ev(sim, env, cur)
        if op in ("==", "!="):
            same = (a == b) if _tname(a) == _tname(b) or (_isnum(a) and _isnum(b)) else False
            return same if op == "==" else not same
        if op in ("<", "<=", ">", ">="):
            if not ((_isnum(a) and _isnum(b)) or (isinstance(a, str) and isinstance(b, str))):
                raise Invalid("compare")
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if _isnum(a) and _isnum(b):
            if op in ("/", "//", "%") and b == 0:
                raise Invalid("division by zero")
            return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
                    "//": lambda: a // b, "%": lambda: a % b}[op]()
        if op == "+" and type(a) is type(b) and isinstance(a, (list, tuple, str)):
            return a + b
        if op == "*" and isinstance(a, (list, tuple, str)) and _isint(b):
            if len(a) * b > MAX_REPEAT:
                raise Invalid("long")
            return a * b
        raise Invalid("operator")


class Unary(Node):
    def __init__(self, op, a):
        self.op, self.a = op, a
        self.prec = 6 if op == "not" else 10

    def text(self, ind=""):
        if self.op == "not":
            return "not " + wrap(self.a, 6, ind)
        return self.op + wrap(self.a, 10, ind)

    def ev(self, sim, env, cur):
        v = self.a.ev(sim, env, cur)
        if self.op == "not":
            return not truth(v)
        if not _isnum(v):
            raise Invalid("unary")
        return -v if self.op == "-" else v


class CondE(Node):
    prec = 3

    def __init__(self, then, test, orelse):
        self.then, self.test, self.orelse = then, test, orelse

    def text(self, ind=""):
        return f"{wrap(self.then, 4, ind)} if {wrap(self.test, 4, ind)} else {wrap(self.orelse, 3, ind)}"

    def pick(self, sim, env, cur):
        return self.then if truth(self.test.ev(sim, env, cur)) else self.orelse

    def ev(self, sim, env, cur):
        return self.pick(sim, env, cur).ev(sim, env, cur)

    def place(self, sim, env, cur, ctx):
        return self.pick(sim, env, cur).place(sim, env, cur, ctx)


def args_text(args, ind):
    return ", ".join((f"{k}={top(v, ind)}" if k else top(v, ind)) for k, v in args)


class Call(Node):
    prec = 11

    def __init__(self, func, args):
        self.func = Name(func) if isinstance(func, str) else func
        self.args = list(args)

    def text(self, ind=""):
        return f"{wrap(self.func, 11, ind)}({args_text(self.args, ind)})"

    def ev(self, sim, env, cur):
        callee = self.func.ev(sim, env, cur)
        if isinstance(callee, FuncVal):
            if any(k for k, _ in self.args):
                raise Invalid("keyword to a function")
            return call_func(callee.name, [v.ev(sim, env, cur) for _, v in self.args])
        if isinstance(callee, DefVal) and callee.decl.value:
            # a value function: its body's value (netlang.elaborate's def_value)
            decl = callee.decl
            sim.depth += 1
            try:
                if sim.depth > MAX_DEPTH:
                    raise Invalid("too deep")
                denv = Env(decl.env)
                bind_params(sim, decl.params, self.args, env, cur, denv)
                return decl.body.ev(sim, denv, cur)
            finally:
                sim.depth -= 1
        if isinstance(callee, LAYERLIKE):
            return Thunk(self, env)
        raise Invalid("not callable")

    def place(self, sim, env, cur, ctx):
        return apply(sim, self.func.ev(sim, env, cur), self.args, env, cur, ctx)


class Index(Node):
    prec = 11

    def __init__(self, obj, idx):
        self.obj, self.idx = obj, idx

    def text(self, ind=""):
        return f"{wrap(self.obj, 11, ind)}[{top(self.idx, ind)}]"

    def ev(self, sim, env, cur):
        o, i = self.obj.ev(sim, env, cur), self.idx.ev(sim, env, cur)
        if not isinstance(o, (list, tuple, str)) or not _isint(i) or not -len(o) <= i < len(o):
            raise Invalid("index")
        return o[i]

    def place(self, sim, env, cur, ctx):
        return apply(sim, self.ev(sim, env, cur), [], env, cur, ctx)


class ListE(Node):
    def __init__(self, items, trailing=False):
        self.items, self.trailing = list(items), trailing

    def text(self, ind=""):
        inner = ", ".join(top(x, ind) for x in self.items)
        return f"[{inner}{',' if self.trailing and self.items else ''}]"

    def ev(self, sim, env, cur):
        return [x.ev(sim, env, cur) for x in self.items]

    def place(self, sim, env, cur, ctx):
        raise Invalid("a list is not a layer")


class TupleE(Node):
    def __init__(self, items):
        self.items = list(items)

    def text(self, ind=""):
        if len(self.items) == 1:
            return f"({top(self.items[0], ind)},)"
        return "(" + ", ".join(top(x, ind) for x in self.items) + ")"

    def ev(self, sim, env, cur):
        return tuple(x.ev(sim, env, cur) for x in self.items)

    def place(self, sim, env, cur, ctx):
        raise Invalid("a tuple is not a layer")


class Ref(Node):
    def __init__(self, path):
        self.path = tuple(path.split(".")) if isinstance(path, str) else tuple(path)

    def text(self, ind=""):
        return "@" + ".".join(self.path)

    def place(self, sim, env, cur, ctx):
        v = ctx.body.refs.get(".".join(self.path))
        if v is None:
            raise Invalid("no such label")
        return v


class Pipe(Node):
    prec = 1

    def __init__(self, items, breaks=None):
        self.items = list(items)
        self.breaks = breaks or {}          # item index -> "pre", "post" or "bs" line break before it

    def text(self, ind=""):
        out = wrap(self.items[0], 2, ind)
        for i, it in enumerate(self.items[1:], 1):
            b = self.breaks.get(i)
            t = wrap(it, 2, ind + "    ")
            if b == "pre":
                out += f"\n{ind}    -> {t}"
            elif b == "post":
                out += f" ->\n{ind}    {t}"
            elif b == "bs":
                out += f" \\\n{ind}    -> {t}"
            else:
                out += f" -> {t}"
        return out

    def place(self, sim, env, cur, ctx):
        items = list(self.items)
        while items and isinstance(items[0], Ref):
            cur = items.pop(0).place(sim, env, cur, ctx)
        labelled = [x for x in items if isinstance(x, Labelled)]
        if len(items) > 1 and len(labelled) == 1 and items[0] is labelled[0]:
            first = items[0]
            return place_labelled(sim, first.label, Pipe([first.item] + items[1:]), env, cur, ctx)
        for it in items:
            if isinstance(it, Ref):
                raise Invalid("reference inside a pipeline")
            cur = it.place(sim, env, cur, ctx)
        return cur


class Label:
    def __init__(self, parts):
        self.parts = list(parts)

    def text(self):
        return "".join(p if isinstance(p, str) else "{" + p.text("") + "}" for p in self.parts)

    def evaluate(self, sim, env, cur):
        if all(isinstance(p, str) for p in self.parts):
            return "".join(self.parts)
        out = []
        for p in self.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v = p.ev(sim, env, cur)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise Invalid("label template")
            out.append(str(v))
        t = "".join(out)
        if not IDENT.match(t):
            raise Invalid("label text")
        return t


def place_labelled(sim, label, item, env, cur, ctx):
    name = label.evaluate(sim, env, cur)
    if isinstance(item, Ref):
        raise Invalid("labelled reference")
    key = ".".join(ctx.prefix + (name,))
    if key in ctx.body.keys:
        raise Invalid("duplicate label")
    ctx.body.keys.add(key)
    n0 = len(sim.nodes)
    out = item.place(sim, env, cur, Ctx(ctx.body, ctx.prefix + (name,)))
    if len(sim.nodes) == n0:
        raise Invalid("label names nothing")
    ctx.body.refs[key] = out
    return out


class Labelled(Node):
    prec = 2

    def __init__(self, label, item, flat=False):
        self.label, self.item, self.flat = label, item, flat

    def text(self, ind=""):
        return self.label.text() + ": " + wrap(self.item, 3, ind)

    def place(self, sim, env, cur, ctx):
        return place_labelled(sim, self.label, self.item, env, cur, ctx)


class Merge(Node):
    def __init__(self, op, args, branches, style=0, parens=False):
        self.op, self.args, self.branches, self.style, self.parens = op, list(args), list(branches), style, parens

    def text(self, ind=""):
        head = self.op
        if self.args or self.parens:
            head += f"({args_text(self.args, ind)})"
        inner = ind + "    "
        if self.style == 1:
            # compact: the first branch on the brace's line, the brace closed after the last
            col = ind + " " * (len(head) + 3)
            lines = [top(b, col) for b in self.branches]
            return head + " { " + f"\n{col}".join(lines) + " }"
        body = "".join(f"{inner}{top(b, inner)}\n" for b in self.branches)
        return f"{head} {{\n{body}{ind}}}"

    def place(self, sim, env, cur, ctx):
        vals = bind_op(self.op, [(k, v.ev(sim, env, cur)) for k, v in self.args])
        inner = Ctx(ctx.body, ctx.prefix)
        if self.op == "split":
            # one channel slice per branch, each branch on its own part, then a concat
            parts = split_parts(sim, cur, vals["parts"], len(self.branches))
            outs = [b.place(sim, env, p, inner) for b, p in zip(self.branches, parts)]
            for p, o in zip(parts, outs):
                if not reaches(sim, p.nid, o.nid):
                    raise Invalid("a split branch that does not read its part")
            return sim.add("concat", {"crop": False}, outs)
        if len(self.branches) < ops.OPS[self.op].min_inputs:
            raise Invalid("too few branches")
        outs = [b.place(sim, env, cur, inner) for b in self.branches]
        return sim.add(self.op, vals, outs)


def split_parts(sim, cur, n, branches):
    """split(n)'s parts of cur, as the elaborator makes them (Invalid where it refuses)."""
    if n != branches or len(cur.shape) != 3 or cur.shape[0] % n:
        raise Invalid("split")
    w = cur.shape[0] // n
    return [sim.add("slice", {"start": i * w, "stop": (i + 1) * w}, [cur]) for i in range(n)]


def reaches(sim, a, b):
    """Is node b node a or fed by it (the dataflow graph's nodes are in placing order)?"""
    seen = {a}
    for nid in range(a + 1, b + 1):
        if set(sim.nodes[nid][1]) & seen:
            seen.add(nid)
    return b in seen


class Repeat(Node):
    prec = 9

    def __init__(self, item, count):
        self.item, self.count = item, count

    def text(self, ind=""):
        return f"{wrap(self.item, 9, ind)} * {wrap(self.count, 10, ind)}"

    def place(self, sim, env, cur, ctx):
        n = self.count.ev(sim, env, cur)
        if not _isint(n) or n < 0 or n > MAX_REPEAT:
            raise Invalid("repetition count")
        for _ in range(n):
            cur = self.item.place(sim, env, cur, ctx)
        return cur


def bind_params(sim, params, args, call_env, cur, target_env):
    names = [p for p, _ in params]
    matched = []
    seen = False
    for kw, val in args:
        if kw is None:
            if seen or len(matched) >= len(names):
                raise Invalid("positional argument")
            matched.append((names[len(matched)], val))
        else:
            if kw not in names or kw in (n for n, _ in matched):
                raise Invalid("keyword argument")
            seen = True
            matched.append((kw, val))
    given = {n: v.ev(sim, call_env, cur) for n, v in matched}
    for pname, default in params:
        if pname in given:
            target_env.vars[pname] = given[pname]
        elif default is not None:
            target_env.vars[pname] = default.ev(sim, target_env, cur)
        else:
            raise Invalid("missing argument")


def apply(sim, callee, args, env, cur, ctx):
    if isinstance(callee, OpVal):
        if cur is None:
            raise Invalid("no input")
        vals = bind_op(callee.name, [(k, v.ev(sim, env, cur)) for k, v in args])
        return sim.add(callee.name, vals, [cur])
    if isinstance(callee, BlockVal):
        decl = callee.decl
        sim.depth += 1
        try:
            if sim.depth > MAX_DEPTH:
                raise Invalid("too deep")
            benv = Env(decl.env)
            bind_params(sim, decl.params, args, env, cur, benv)
            if not decl.body:
                raise Invalid("empty block")
            n0 = len(sim.nodes)
            out = run_body(decl.body, sim, benv, cur, Ctx(Body()), None)
            if len(sim.nodes) == n0:
                raise Invalid("block places nothing")
            # Nothing outside can refer into the block: what it computed and nobody read is dead.
            for nid in range(n0, len(sim.nodes)):
                if sim.cons[nid] == 0 and nid != out.nid:
                    raise Invalid("dead layer in a block")
            return out
        finally:
            sim.depth -= 1
    if isinstance(callee, DefVal):
        decl = callee.decl
        if decl.value:
            raise Invalid("a value function placed as a layer")
        sim.depth += 1
        try:
            if sim.depth > MAX_DEPTH:
                raise Invalid("too deep")
            denv = Env(decl.env)
            bind_params(sim, decl.params, args, env, cur, denv)
            return decl.body.place(sim, denv, cur, ctx)
        finally:
            sim.depth -= 1
    if isinstance(callee, Thunk):
        if args:
            raise Invalid("a pipeline already has its arguments")
        # A pipeline value is late-bound: `let t = relu -> t` refers to itself and never ends
        # (netlang reports a recursion error). Pipelines do not nest deeply in valid programs.
        sim.thunks += 1
        try:
            if sim.thunks > 400:
                raise Invalid("self-referent pipeline")
            return callee.item.place(sim, callee.env, cur, ctx)
        finally:
            sim.thunks -= 1
    raise Invalid("not a layer")


# ---------------------------------------------------------------- statements

def body_text(stmts, ind):
    if not stmts:
        return "{ }"
    inner = ind + "    "
    return "{\n" + "".join(f"{inner}{s.text(inner)}\n" for s in stmts) + ind + "}"


class SPipe:
    def __init__(self, item, comment=None):
        self.item, self.comment = item, comment

    def text(self, ind=""):
        t = top(self.item, ind)
        return t + (f"  # {self.comment}" if self.comment else "")

    def run(self, sim, env, cur, ctx, net):
        if net is not None and net.outputs is not None:
            raise Invalid("after output")
        if cur is None:
            raise Invalid("nothing flows in")
        return self.item.place(sim, env, cur, ctx)


class Let:
    def __init__(self, name, value):
        self.name, self.value = name, value

    def text(self, ind=""):
        return f"let {self.name} = {top(self.value, ind)}"

    def run(self, sim, env, cur, ctx, net):
        if self.name in BUILTIN_NAMES:
            raise Invalid("let rebinds a built-in")
        env.vars[self.name] = self.value.ev(sim, env, cur)
        return cur


class If:
    def __init__(self, test, then, orelse=None, newline_else=False):
        self.test, self.then, self.orelse, self.newline_else = test, then, orelse, newline_else

    def text(self, ind=""):
        t = f"if {wrap(self.test, 3, ind)} {body_text(self.then, ind)}"
        if self.orelse is None:
            return t
        sep = f"\n{ind}else " if self.newline_else else " else "
        if isinstance(self.orelse, If):
            return t + sep + self.orelse.text(ind)
        return t + sep + body_text(self.orelse, ind)

    def run(self, sim, env, cur, ctx, net):
        if truth(self.test.ev(sim, env, cur)):
            branch = self.then
        else:
            branch = [self.orelse] if isinstance(self.orelse, If) else (self.orelse or [])
        return run_body(branch, sim, env, cur, ctx, net)


class For:
    def __init__(self, var, it, body):
        self.var, self.it, self.body = var, it, body

    def text(self, ind=""):
        return f"for {self.var} in {wrap(self.it, 3, ind)} {body_text(self.body, ind)}"

    def run(self, sim, env, cur, ctx, net):
        seq = self.it.ev(sim, env, cur)
        if not isinstance(seq, (list, tuple)):
            raise Invalid("for over a non-list")
        for v in seq:
            env.vars[self.var] = v
            cur = run_body(self.body, sim, env, cur, ctx, net)
        return cur


class Input:
    def __init__(self, expr):
        self.expr = expr

    def text(self, ind=""):
        return f"input {wrap(self.expr, 3, ind)}"

    def run(self, sim, env, cur, ctx, net):
        if net is None or net.input is not None or cur is not None:
            raise Invalid("input")
        shape = self.expr.ev(sim, env, None)
        if _isint(shape):
            shape = (shape,)
        if isinstance(shape, list):
            shape = tuple(shape)
        if not isinstance(shape, tuple) or len(shape) not in (1, 3) or not all(_isint(d) and d > 0 for d in shape):
            raise Invalid("input shape")
        net.input = sim.add("input", shape, [])
        return net.input


class Output:
    def __init__(self, refs, aux=()):
        self.refs = refs                    # [(key, with_at)]
        self.aux = set(aux)                 # positions of auxiliary (training-only) outputs

    def text(self, ind=""):
        return "output " + ", ".join(("aux " if i in self.aux else "") + ("@" if at else "") + key
                                     for i, (key, at) in enumerate(self.refs))

    def run(self, sim, env, cur, ctx, net):
        if net is None or net.outputs is not None:
            raise Invalid("output")
        outs = []
        for key, _ in self.refs:
            v = ctx.body.refs.get(key)
            if v is None or any(o.nid == v.nid for o in outs):
                raise Invalid("output")
            outs.append(v)
        net.outputs = outs
        return cur


class Comment:
    def __init__(self, text):
        self.t = text

    def text(self, ind=""):
        return "# " + self.t

    def run(self, sim, env, cur, ctx, net):
        return cur


def run_body(stmts, sim, env, cur, ctx, net):
    for s in stmts:
        cur = s.run(sim, env, cur, ctx, net)
    return cur


# ---------------------------------------------------------------- declarations

def params_text(params, parens):
    if not params and not parens:
        return ""
    return "(" + ", ".join(p if d is None else f"{p}={wrap(d, 3)}" for p, d in params) + ")"


class BlockDecl:
    def __init__(self, name, params, kinds, env, parens=True):
        self.name, self.params, self.kinds, self.env, self.parens = name, params, kinds, env, parens
        self.body = []

    def text(self):
        return f"block {self.name}{params_text(self.params, self.parens)} {body_text(self.body, '')}"


class DefDecl:
    value = False       # a value function (Gen.value_functions): its body is a value expression

    def __init__(self, name, params, kinds, env, parens=False):
        self.name, self.params, self.kinds, self.env, self.parens = name, params, kinds, env, parens
        self.body = None

    def text(self):
        return f"def {self.name}{params_text(self.params, self.parens)} = {top(self.body, '')}"


class NetDecl:
    def __init__(self, name, params, body):
        self.name, self.params, self.body = name, params, body

    def text(self):
        return f"network {self.name}{params_text(self.params, False)} {body_text(self.body, '')}"


def sim_network(decl, args, genv):
    """Run a whole network as the elaborator would; raise Invalid where it would fail."""
    sim = Sim()
    env = Env(genv)
    bind_params(sim, decl.params, args, genv, None, env)
    net = NetState()
    body = Body("net")
    last = run_body(decl.body, sim, env, None, Ctx(body), net)
    if net.input is None:
        raise Invalid("no input")
    outs = net.outputs if net.outputs is not None else [last]
    if len(outs) == 1 and outs[0].nid == net.input.nid:
        raise Invalid("no layers")
    out_ids = {o.nid for o in outs}
    for nid in range(len(sim.nodes)):
        if sim.cons[nid] == 0 and nid not in out_ids:
            raise Invalid("dead layer")
    sim.outputs = outs
    return sim


# ====================================================================== the generator

class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng
        self.sim = Sim()
        self.builtins = builtin_env()
        self.genv = Env(self.builtins)
        self.decls = []
        self.cap = 40
        self.decl_depth = 0
        self.in_macro = 0            # generating a def body or a pipeline value (no `input` label)
        self.sym_p = 0.35            # how often an int argument is an expression, not a literal
        self.fresh = 0
        self.reserved = set()        # declaration names handed out (never handed out twice)
        self.work = 0                # attempts so far: past WORK, only simple pieces are drawn
        # Value functions and the math built-ins: drawn from a stream of their own, so that the
        # programs without them are the ones earlier versions wrote
        self.vr = random.Random(hash(rng.getstate()[1]))
        self.vfs: dict = {}          # kind -> the value function's name
        self.math = False            # int expressions may use ceil, floor, abs, pow, log2, str

    # ------------------------------------------------------------ randomness
    def chance(self, p):
        return self.r.random() < p

    def pick(self, seq):
        return seq[self.r.randrange(len(seq))]

    def rint(self, a, b):
        return self.r.randint(a, b)

    def wpick(self, w: dict):
        items = [(k, v) for k, v in w.items() if v > 0]
        total = sum(v for _, v in items)
        x = self.r.random() * total
        for k, v in items:
            x -= v
            if x < 0:
                return k
        return items[-1][0]

    # ------------------------------------------------------------ state
    def snap(self, env, ctx):
        b = ctx.body
        return (len(self.sim.nodes), self.sim.depth, self.sim.thunks, env, dict(env.vars), b, dict(b.refs),
                set(b.keys), len(self.decls))

    def restore(self, s, keep_decls=False):
        n, depth, thunks, env, vars_, b, refs, keys, nd = s
        self.sim.truncate(n)
        self.sim.depth = depth
        self.sim.thunks = thunks
        env.vars.clear()
        env.vars.update(vars_)
        b.refs.clear()
        b.refs.update(refs)
        b.keys.clear()
        b.keys.update(keys)
        if not keep_decls:
            while len(self.decls) > nd:
                d = self.decls.pop()
                del self.genv.vars[d.name]

    def attempt(self, build, do, env, ctx, tries=1):
        """build() makes a candidate (it may place pieces to learn their shapes); the state is
        rolled back and do(candidate) places it for real. None when every try fails."""
        for _ in range(tries):
            self.work += 1
            s = self.snap(env, ctx)
            try:
                node = build()
                self.restore(s, keep_decls=True)
                out = do(node)
                if len(self.sim.nodes) > self.cap:
                    raise Invalid("over budget")
                return node, out
            except (Invalid, RecursionError):
                self.restore(s)
        return None

    def placer(self, env, cur, ctx):
        return lambda n: n.place(self.sim, env, cur, ctx)

    def full(self):
        return len(self.sim.nodes) >= self.cap - 2

    def room(self, need=6):
        """Is there room (nodes and work) for a composite piece?"""
        return len(self.sim.nodes) + need <= self.cap and self.work < WORK

    # ------------------------------------------------------------ names
    def visible(self, env):
        """Innermost bindings of the names a body sees, builtins and declarations excluded."""
        out = {}
        e = env
        while e is not None and e is not self.genv and e is not self.builtins:
            for k, v in e.vars.items():
                out.setdefault(k, v)
            e = e.parent
        return out

    def is_op(self, env, name):
        try:
            v = env.lookup(name)
        except Invalid:
            return False
        return isinstance(v, OpVal) and v.name == name

    def is_func(self, env, name):
        try:
            return isinstance(env.lookup(name), FuncVal)
        except Invalid:
            return False

    def decl_name(self, pool):
        taken = set(self.genv.vars) | self.reserved | {"n", "m"}
        cands = [x for x in pool if x not in taken and x not in BUILTIN_NAMES and x not in KEYWORDS]
        if cands and self.chance(0.85):
            name = self.pick(cands)
        else:
            self.fresh += 1
            name = f"{self.pick(['blk', 'b', 'mk', 'layer', 'x'])}{self.fresh}_"
        self.reserved.add(name)
        return name

    def param_names(self, kinds):
        names = []
        camels = [camel(d.name) for d in self.decls if isinstance(d, BlockDecl)]
        for k in kinds:
            for _ in range(20):
                if camels and self.chance(0.08):
                    nm = self.pick(camels)         # a parameter named like another block's class
                elif self.chance(0.22):
                    nm = self.pick(WEIRD_PARAMS)
                elif k == "fn" and "block" not in names and self.chance(0.6):
                    nm = "block"
                else:
                    nm = self.pick(KIND_NAMES[k])
                if k == "layer" and self.chance(0.05):
                    nm = "relu"            # a parameter may shadow a built-in layer
                if nm not in names and (nm not in KEYWORDS or nm == "block") and NAME_RE.match(nm):
                    break
            else:
                self.fresh += 1
                nm = f"p{self.fresh}"
            names.append(nm)
        return names

    def pick_label(self, ctx, env, lv):
        """A label for an item here: (Label, its text). lv: loop variables [(name, kind)]."""
        body = ctx.body
        for _ in range(12):
            if lv:
                parts = [self.pick(["layer", "b", "stage", "blk", "x", "s", "class", "l", "unit", "t_", "self"])]
                for i, (var, kind) in enumerate(lv):
                    if i:
                        parts.append(self.pick(["_", "_x", "x"]))
                    if kind == "int" and self.chance(0.3):
                        parts.append(Bin("+", Name(var), Lit(1)))
                    else:
                        parts.append(Name(var))
                if self.chance(0.2):
                    parts.append(self.pick(["_conv", "_", "a"]))
                label = Label(parts)
                try:
                    text = label.evaluate(self.sim, env, None)
                except Invalid:
                    continue
            else:
                cat = self.wpick({"plain": 45, "keyword": 7, "builtin": 7, "pykw": 7, "pyname": 10,
                                  "nonascii": 4, "decl": 6, "camel": 3,
                                  "input": 3 if body.kind == "block" and not self.in_macro else 0})
                pool = {"plain": PLAIN_LABELS, "keyword": KEYWORD_LABELS, "builtin": BUILTIN_LABELS,
                        "pykw": PYKW_LABELS, "pyname": PYNAME_LABELS, "nonascii": NONASCII_LABELS,
                        "decl": [d.name for d in self.decls],
                        "camel": [camel(d.name) for d in self.decls], "input": ["input"]}[cat]
                pool = [x for x in pool if ok_label(x)]
                if not pool:
                    continue
                text = self.pick(pool)
                label = Label([text])
            if text == "input" and (body.kind != "block" or self.in_macro or ctx.prefix):
                continue
            key = ".".join(ctx.prefix + (text,))
            if key not in body.keys and ok_label_text(text):
                return label, text
        raise Invalid("no label")

    def refables(self, ctx, exclude=None):
        return [k for k, v in ctx.body.refs.items() if refable(k) and (exclude is None or v.nid != exclude)]

    def key_of(self, ctx, v):
        for k, x in ctx.body.refs.items():
            if x.nid == v.nid and refable(k):
                return k
        return None

    # ------------------------------------------------------------ expressions
    def int_e(self, v, env, shape, p=None):
        """An expression worth v here: a literal, or a parameter, in.channels, arithmetic..."""
        p = self.sym_p if p is None else p
        if not self.chance(p):
            return Lit(v)
        c = []
        for k, x in self.visible(env).items():
            if _isint(x):
                if x == v:
                    c += [Name(k)] * 4
                if x * 2 == v:
                    c.append(Bin("*", Name(k), Lit(2)))
                if x + 1 == v:
                    c.append(Bin("+", Name(k), Lit(1)))
                if x - 1 == v:
                    c.append(Bin("-", Name(k), Lit(1)))
                if x >= 2 and x // 2 == v:
                    c.append(Bin("//", Name(k), Lit(2)))
                if x > v and self.is_func(env, "min"):
                    c.append(Call("min", [(None, Name(k)), (None, Lit(v))]))
                if x < v and self.is_func(env, "max"):
                    c.append(Call("max", [(None, Lit(v)), (None, Name(k))]))
            elif isinstance(x, list) and x and all(_isint(y) for y in x):
                for i, y in enumerate(x):
                    if y == v:
                        c.append(Index(Name(k), Lit(i if self.chance(0.5) else i - len(x))))
                if len(x) == v and self.is_func(env, "len"):
                    c.append(Call("len", [(None, Name(k))]))
                if max(x) == v and self.is_func(env, "max"):
                    c.append(Call("max", [(None, Name(k))]))
        if shape is not None:
            C = shape[0]
            if C == v:
                c += [InAttr("channels")] * 3
            if C * 2 == v:
                c.append(Bin("*", InAttr("channels"), Lit(2)))
            if C >= 2 and C // 2 == v:
                c.append(Bin("//", InAttr("channels"), Lit(2)))
            if len(shape) == 3:
                if shape[1] == v:
                    c.append(InAttr("height"))
                if shape[2] == v:
                    c.append(InAttr("width"))
        if self.vfs or self.math:
            c += self.value_e(v, env, shape)
        if self.is_func(env, "int"):
            c.append(Call("int", [(None, Bin("/", Lit(v * 2 + 1), Lit(2)))]))
        if self.is_func(env, "round"):
            c.append(Call("round", [(None, Lit(v + 0.25))]))
        c.append(CondE(Lit(v), Lit(True), Lit(v + 1)))
        c.append(Bin("+", Lit(v - 1), Lit(1)) if v >= 1 else Bin("-", Lit(v + 1), Lit(1)))
        return self.pick(c)

    def int_sources(self, env, shape):
        src = []
        for k, x in self.visible(env).items():
            if _isint(x):
                src.append((Name(k), x))
            elif isinstance(x, list) and self.is_func(env, "len"):
                src.append((Call("len", [(None, Name(k))]), len(x)))
        if shape is not None:
            src += [(InAttr("channels"), shape[0])] * 3
            if len(shape) == 3:
                src += [(InAttr("height"), shape[1])] * 2 + [(InAttr("width"), shape[2])]
        return src

    def cmp_e(self, src, val, v):
        op = self.pick(["<", "<=", ">", ">=", "==", "!="])
        d1, d0 = self.rint(1, 3), self.rint(0, 2)
        b = {("==", True): val, ("==", False): val + d1, ("!=", True): val + d1, ("!=", False): val,
             (">", True): val - d1, (">", False): val + d0, (">=", True): val - d0, (">=", False): val + d1,
             ("<", True): val + d1, ("<", False): val - d0, ("<=", True): val + d0, ("<=", False): val - d1}[(op, v)]
        return Bin(op, src, Lit(b))

    def bool_e(self, v, env, shape, p=None, depth=0):
        p = self.sym_p if p is None else p
        if not self.chance(p):
            return Lit(v)
        c = []
        for k, x in self.visible(env).items():
            if isinstance(x, bool):
                c += [Name(k) if x == v else Unary("not", Name(k))] * 2
        src = self.int_sources(env, shape)
        for _ in range(3):
            if src:
                e, val = self.pick(src)
                c.append(self.cmp_e(e, val, v))
        if depth < 1:
            if v:
                c.append(Bin("or", self.bool_e(self.chance(0.5), env, shape, 1, 1), self.bool_e(True, env, shape, 1, 1)))
                c.append(Bin("and", self.bool_e(True, env, shape, 1, 1), self.bool_e(True, env, shape, 1, 1)))
            else:
                c.append(Bin("and", self.bool_e(self.chance(0.5), env, shape, 1, 1), self.bool_e(False, env, shape, 1, 1)))
            c.append(Unary("not", self.bool_e(not v, env, shape, 1, 1)))
        return self.pick(c) if c else Lit(v)

    def rand_test(self, env, shape):
        return self.bool_e(self.chance(0.5), env, shape, p=0.9)

    def val_e(self, v, env, shape):
        """An expression for a plain argument value (int, pair, string, bool, float)."""
        if isinstance(v, bool):
            return self.bool_e(v, env, shape, p=0.15)
        if _isint(v):
            return self.int_e(v, env, shape)
        if isinstance(v, tuple):
            st = self.wpick({"shape": 4, "tuple": 3, "list": 2})
            if st == "list":
                return ListE([self.int_e(x, env, shape, p=0.1) for x in v])
            if st == "tuple" or any(x < 0 for x in v):
                return TupleE([self.int_e(x, env, shape, p=0.1) for x in v])
            return Lit(v, 1)
        if isinstance(v, str):
            return Lit(v, self.rint(0, 1))
        return Lit(v)

    # ------------------------------------------------------------ layers
    def call_op(self, op, vals: dict, env, shape, npos=None):
        """A call of built-in `op` with the argument values `vals` (python values)."""
        names = [p.name for p in ops.OPS[op].params]
        required = [p.name for p in ops.OPS[op].params if p.default is ops.REQUIRED]
        if not vals and self.chance(0.9):
            return Name(op)
        prefix = 0
        while prefix < len(names) and names[prefix] in vals:
            prefix += 1
        if npos is None:
            lo = len(required) if self.chance(0.9) else 0
            lo = min(lo, prefix)
            npos = self.rint(lo, prefix) if self.chance(0.25) else lo
        args = [(None, self.val_e(vals[n], env, shape)) for n in names[:npos]]
        kws = [n for n in names[npos:] if n in vals]
        self.r.shuffle(kws)
        args += [(n, self.val_e(vals[n], env, shape)) for n in kws]
        return Call(op, args)

    def op_ok(self, op, vals, shape):
        try:
            canon = bind_op(op, list(vals.items()))
            out = tuple(ops.OPS[op].shape(canon, [shape]))
        except (Invalid, ops.OpError):
            return None
        if math.prod(out) > CAP_ELEMS or out[0] > CAP_CH or (len(out) == 3 and max(out[1:]) > CAP_DIM):
            return None
        return out

    def mk_layer(self, cur, env, ctx, depth, lv):
        s = cur.shape
        if len(s) == 1:
            w = {"linear": 30, "batchnorm": 10, "relu": 10, "relu6": 3, "tanh": 4, "sigmoid": 4, "softmax": 3,
                 "identity": 4, "scale": 3, "dropout": 4, "drop_path": 2, "flatten": 1, **NEW_ACTS,
                 **CONVNEXT_OPS}
        else:
            C, H, W = s
            w = {"conv": 30, "conv_t": 5, "batchnorm": 9, "lrn": 2, "relu": 9, "relu6": 3, "tanh": 3,
                 "sigmoid": 3, "softmax": 2, "identity": 3, "scale": 2, "dropout": 3, "drop_path": 2,
                 "flatten": 3, "maxpool": 7, "avgpool": 7, "global_avgpool": 2, "adaptive_avgpool": 3,
                 "upsample": 4 if C * H * W * 4 <= CAP_ELEMS else 0, "center_crop": 3 if min(H, W) > 1 else 0,
                 "channel_shuffle": 4, **NEW_ACTS, **CONVNEXT_OPS, "linear": 4}
        op = self.wpick(w)
        if not self.is_op(env, op):
            raise Invalid("shadowed")
        for _ in range(8):
            vals = self.layer_args(op, s)
            if vals is not None and self.op_ok(op, vals, s) is not None:
                return self.call_op(op, vals, env, s)
        raise Invalid("no arguments fit")

    def layer_args(self, op, s):
        r = self
        if op == "channel_shuffle":
            divs = [d for d in range(1, s[0] + 1) if s[0] % d == 0]
            g = r.pick(divs[1:-1] or divs) if r.chance(0.8) else r.pick(divs)
            return {"groups": g}
        if op == "conv":
            C, H, W = s
            g = 1
            if r.chance(0.2):
                divs = [d for d in range(2, C + 1) if C % d == 0]
                if divs:
                    g = r.pick(divs)
            vals = {"out": g * r.rint(1, max(1, 8 // g)), "k": 1}
            style = r.pick(["k1", "k3p1", "same", "valid", "pair", "dil", "k2s2", "plain", "k3p1"])
            if style == "k1":
                if r.chance(0.3):
                    vals["stride"] = 2
            elif style == "k3p1":
                vals.update(k=3, pad=1)
                if r.chance(0.35):
                    vals["stride"] = r.pick([2, (1, 2), (2, 1)])
            elif style == "same":
                vals.update(k=r.pick([1, 3, 3, 5, (1, 3), (3, 1)]), pad="same")
                if r.chance(0.3):
                    vals["dilation"] = 2
                if r.chance(0.2):
                    vals["stride"] = 1
            elif style == "valid":
                vals.update(k=r.pick([2, 3]), pad=r.pick(["valid", 0]))
            elif style == "pair":
                vals.update(k=(1, 3), pad=(0, 1)) if r.chance(0.5) else vals.update(k=(3, 1), pad=(1, 0))
            elif style == "dil":
                vals.update(k=3, dilation=2, pad=r.pick([2, 0, 1]))
            elif style == "k2s2":
                vals.update(k=2, stride=2)
            else:
                vals["k"] = r.pick([1, 2, 3])
            if g > 1:
                vals["groups"] = g
            if r.chance(0.3):
                vals["bias"] = r.chance(0.2)
            return vals
        if op == "conv_t":
            C, H, W = s
            k, st = r.pick([1, 2, 3]), r.pick([1, 2, 2])
            vals = {"out": r.rint(1, 8), "k": k}
            if st != 1:
                vals["stride"] = st
            if k >= 2 and r.chance(0.4):
                vals["pad"] = 1
            if st > 1 and r.chance(0.5):
                vals["output_pad"] = r.rint(0, st - 1) if r.chance(0.5) else (r.rint(0, st - 1), 0)
            if r.chance(0.15):
                vals["dilation"] = 2
            if r.chance(0.15):
                divs = [d for d in range(2, C + 1) if C % d == 0]
                if divs:
                    g = r.pick(divs)
                    vals["groups"] = g
                    vals["out"] = g * r.rint(1, max(1, 8 // g))
            if r.chance(0.2):
                vals["bias"] = False
            return vals
        if op == "linear":
            vals = {"out": r.rint(1, 12)}
            if len(s) == 3:
                vals["pointwise"] = True
            if r.chance(0.2):
                vals["bias"] = r.chance(0.3)
            return vals
        if op == "batchnorm":
            vals = {}
            if r.chance(0.25):
                vals["eps"] = r.pick([1e-3, 1e-05, 0.01])
            if r.chance(0.15):
                vals["momentum"] = r.pick([0.2, 0.0, 0.5])
            if r.chance(0.15):
                vals["affine"] = r.chance(0.3)
            return vals
        if op == "lrn":
            vals = {"size": r.pick([1, 2, 3, 5])}
            if r.chance(0.4):
                vals["alpha"] = r.pick([1e-4, 0.001, 2e-05])
            if r.chance(0.4):
                vals["beta"] = r.pick([0.75, 0.5])
            if r.chance(0.3):
                vals["k"] = r.pick([1.0, 2, 2.0])
            return vals
        if op == "scale":
            return {"s": r.pick([0.5, 2, -1.5, 0.1, 0.2, 1.0])}
        if op == "layernorm":
            # (no eps=0: a constant pixel, after a relu, would be 0/0 in every backend alike)
            return {} if r.chance(0.5) else {"eps": r.pick([1e-5, 1e-6, 0.1, 1e-3])}
        if op == "layer_scale":
            return {} if r.chance(0.4) else {"init": r.pick([0.5, 1e-6, -1.0, 2])}
        if op == "gelu":
            return {} if r.chance(0.5) else {"approximate": r.pick(["tanh", "none"])}
        if op == "leaky_relu":
            return {} if r.chance(0.4) else {"slope": r.pick([0.1, 0.2, -0.5, 0.01, 2])}
        if op == "elu":
            return {} if r.chance(0.5) else {"alpha": r.pick([0.5, 2, 1.0, -1.0])}
        if op == "prelu":
            vals = {"per_channel": r.chance(0.5)} if r.chance(0.7) else {}
            if r.chance(0.3):
                vals["init"] = r.pick([0.1, -0.5, 0.25, 1])
            return vals
        if op == "softplus":
            vals = {"beta": r.pick([2, 0.5, 1, -1.0])} if r.chance(0.6) else {}
            if r.chance(0.4):
                vals["threshold"] = r.pick([1, 0.5, 20, 5.0])
            return vals
        if op == "dropout":
            return {} if r.chance(0.5) else {"p": r.pick([0.1, 0.0, 0.25, 0.5])}
        if op == "drop_path":
            return {"p": r.pick([0.1, 0.0, 0.2, 0.5])}
        if op in ("maxpool", "avgpool"):
            C, H, W = s
            k = r.pick([2, 2, 3, 3, (2, 1), (3, 2), 1])
            vals = {"k": k}
            kk = k if isinstance(k, tuple) else (k, k)
            st = r.pick([None, None, 1, 2, (1, 2)])
            if st is not None:
                vals["stride"] = st
            pad = r.pick([0, 0, 1, "same", "valid", (0, 1)])
            if pad == "same" and (st not in (None, 1) or kk[0] % 2 == 0 or kk[1] % 2 == 0):
                vals["stride"] = 1
                vals["k"] = 3
            if pad != 0 or r.chance(0.1):
                vals["pad"] = pad
            if r.chance(0.35):
                vals["ceil"] = r.chance(0.7)
            if op == "avgpool" and r.chance(0.35):
                vals["count_include_pad"] = r.chance(0.3)
            return vals
        if op == "adaptive_avgpool":
            C, H, W = s
            o = r.pick([1, 2, 3, (1, 2), (2, 2), (2, 3)])
            oo = o if isinstance(o, tuple) else (o, o)
            if oo[0] > H or oo[1] > W:
                o = 1
            return {"out": o}
        if op == "upsample":
            vals = {"factor": r.pick([2, 2, (1, 2), (2, 1)])}
            if r.chance(0.6):
                vals["mode"] = r.pick(["nearest", "bilinear"])
            return vals
        if op == "center_crop":
            C, H, W = s
            h = r.rint(1, H)
            if r.chance(0.4) and h <= W:
                return {"h": h}
            return {"h": h, "w": r.rint(1, W)}
        return {}

    # ------------------------------------------------------------ items
    def gen_item(self, cur, env, ctx, depth, lv, kinds=None):
        vec = len(cur.shape) == 1
        w = kinds or {"layer": 52, "merge": 13 if depth < 3 else 0, "block": 9 if depth < 3 else 2, "def": 5,
                      "value": 10 if self.placeables(env) else 0, "cond": 4 if depth < 3 else 0,
                      "repeat": 4 if depth < 3 else 0, "sub": 3 if depth < 2 else 0}
        if vec and not kinds:
            w = dict(w, merge=w["merge"] // 2, block=2)
        if not self.room():
            w = {"layer": 1, "value": 1 if self.placeables(env) else 0}
        for _ in range(4 if self.work < WORK else 1):
            kind = self.wpick(w)
            res = self.attempt(lambda: getattr(self, "mk_" + kind)(cur, env, ctx, depth, lv),
                               self.placer(env, cur, ctx), env, ctx)
            if res:
                return res
        return self.fallback(cur, env, ctx)

    def fallback(self, cur, env, ctx):
        for op in ("identity", "relu", "tanh", "sigmoid", "relu6", "dropout", "batchnorm"):
            if self.is_op(env, op):
                node = Name(op)
                return node, node.place(self.sim, env, cur, ctx)
        raise Invalid("no fallback")

    def placeables(self, env):
        out = []
        for k, v in self.visible(env).items():
            if isinstance(v, LAYERLIKE):
                out.append((k, v))
            elif isinstance(v, list) and v and all(isinstance(x, LAYERLIKE) for x in v):
                out.append((k, v))
        return out

    def mk_value(self, cur, env, ctx, depth, lv):
        cands = self.placeables(env)
        if not cands:
            raise Invalid("no values")
        k, v = self.pick(cands)
        if isinstance(v, list):
            i = self.rint(0, len(v) - 1)
            return Index(Name(k), Lit(i if self.chance(0.6) else i - len(v)))
        if isinstance(v, (BlockVal, DefVal)) and v.decl.params and self.chance(0.7):
            return Call(Name(k), self.call_args(v.decl, env, cur.shape))
        return Name(k)

    def mk_cond(self, cur, env, ctx, depth, lv):
        test = self.rand_test(env, cur.shape)
        s = self.snap(env, ctx)
        a, _ = self.gen_pipe(cur, env, ctx, depth + 1, lv, nmax=2)
        self.restore(s, keep_decls=True)
        if self.chance(0.35) and self.is_op(env, "identity"):
            b = Name("identity")
        else:
            b, _ = self.gen_pipe(cur, env, ctx, depth + 1, lv, nmax=2)
            self.restore(s, keep_decls=True)
        node = CondE(a, test, b)
        node.paren = self.chance(0.3)
        return node

    def mk_repeat(self, cur, env, ctx, depth, lv):
        n = self.wpick({0: 12, 1: 22, 2: 30, 3: 30})
        item, _ = self.gen_item(cur, env, ctx, depth + 1, lv,
                                kinds={"layer": 50, "block": 12, "def": 6, "value": 6 if self.placeables(env) else 0,
                                       "sub": 10 if depth < 2 else 0, "merge": 8 if depth < 2 else 0})
        return Repeat(item, self.int_e(n, env, cur.shape))

    def mk_sub(self, cur, env, ctx, depth, lv):
        node, _ = self.gen_pipe(cur, env, ctx, depth + 1, lv, nmax=3, nmin=2)
        return node

    # ------------------------------------------------------------ pipelines and labels
    def gen_pipe(self, cur, env, ctx, depth, lv, nmax=3, nmin=1):
        n = max(nmin, min(nmax, self.wpick({1: 45, 2: 35, 3: 20})))
        mode = "none"
        if lv is not None:
            mode = self.wpick({"none": 48, "whole": 20, "some": 32})
        if mode == "whole":
            try:
                label, text = self.pick_label(ctx, env, lv)
            except Invalid:
                label = None
            if label is not None:
                sub = Ctx(ctx.body, ctx.prefix + (text,))
                inner, out = self.gen_items(cur, env, sub, depth, lv, n, "some" if self.chance(0.25) else "none")
                return Labelled(label, inner, flat=self.chance(0.7)), out
        return self.gen_items(cur, env, ctx, depth, lv, n, mode if mode != "whole" else "none")

    def gen_items(self, cur, env, ctx, depth, lv, n, mode):
        lab = set()
        if mode == "some" and lv is not None:
            lab = {i for i in range(n) if self.chance(0.45)} or {self.rint(0, n - 1)}
            if lab == {0} and n > 1:
                lab.add(n - 1)
        items = []
        v = cur
        for i in range(n):
            if i in lab:
                item, v = self.gen_labelled(v, env, ctx, depth, lv)
            else:
                item, v = self.gen_item(v, env, ctx, depth, lv)
            items.append(item)
        if len(items) == 1:
            return items[0], v
        breaks = {}
        if len(items) >= 3 and self.chance(0.3):
            breaks[self.rint(1, len(items) - 1)] = self.pick(["pre", "post", "bs"])
        return Pipe(items, breaks), v

    def gen_labelled(self, cur, env, ctx, depth, lv):
        def build():
            label, text = self.pick_label(ctx, env, lv)
            inner, _ = self.gen_item(cur, env, Ctx(ctx.body, ctx.prefix + (text,)), depth, lv)
            return Labelled(label, inner)
        res = self.attempt(build, self.placer(env, cur, ctx), env, ctx, tries=2)
        return res or self.gen_item(cur, env, ctx, depth, lv)

    # ------------------------------------------------------------ merges
    def mk_merge(self, cur, env, ctx, depth, lv):
        s = cur.shape
        vec = len(s) == 1
        splits = [n for n in (1, 2, 2, 2, 3, 4) if not vec and s[0] % n == 0 and s[0] > 1]
        op = self.wpick({"concat": 35, "add": 30, "mean": 15, "mul": 20, "split": 14 if splits else 0})
        if op == "split":
            return self.mk_split(cur, env, ctx, depth, lv, self.pick(splits))
        args = []
        crop = False
        if op == "concat" and not vec and self.chance(0.35):
            crop = True
            args.append(("crop", self.bool_e(True, env, s, p=0.2)) if self.chance(0.85) else (None, Lit(True)))
        elif op == "concat" and self.chance(0.05):
            args.append(("crop", Lit(False)))
        if op == "mean" and self.chance(0.5):
            p = self.pick([0.1, 0.2, 0.5, 0.0])
            args.append(("drop", Lit(p)) if self.chance(0.7) else (None, Lit(p)))
        nb = 1 if op == "concat" and self.chance(0.08) else self.wpick({2: 70, 3: 25, 4: 5})
        mode = {"concat": "crop" if crop else "spatial", "add": "exact", "mean": "exact", "mul": "mul"}[op]
        branches = []
        target = None
        from_input = False
        for i in range(nb):
            node, out = self.gen_branch(op, mode, cur, env, ctx, depth, lv, target,
                                        must_input=(i == nb - 1 and not from_input))
            branches.append(node)
            if not starts_with_ref(node):
                from_input = True
            target = out.shape if target is None else combine(mode, target, out.shape)
        if crop and all(b.__class__ is Name and b.id == "identity" for b in branches):
            raise Invalid("dull crop")
        return Merge(op, args, branches, style=1 if self.chance(0.25) else 0,
                     parens=not args and self.chance(0.05))

    def mk_split(self, cur, env, ctx, depth, lv, n):
        """split(n) { ... }: branch i on the i-th channel group; every branch reads its part."""
        arg = self.pick([(None, Lit(n)), ("parts", Lit(n)), (None, Lit(n))])
        if self.chance(0.2):
            arg = (arg[0], self.int_e(n, env, cur.shape))
        parts = split_parts(self.sim, cur, n, n)
        branches, target = [], None
        for part in parts:
            node, out = self.gen_branch("concat", "spatial", part, env, ctx, depth, lv, target, must_input=True)
            branches.append(node)
            target = out.shape if target is None else combine("spatial", target, out.shape)
        return Merge("split", [arg], branches, style=1 if self.chance(0.3) else 0)

    def gen_branch(self, op, mode, cur, env, ctx, depth, lv, target, must_input):
        w = {"identity": 20, "pipe": 45, "ref": 0 if must_input else 12, "refdef": 0 if must_input else 3,
             "merge": 7 if depth < 2 else 0, "nestid": 4, "block": 6,
             "gate": 18 if op == "mul" and target is not None else 0}
        if not self.room(3):
            w = {"identity": 1, "ref": w["ref"], "gate": w["gate"], "pipe": 1}
        for _ in range(5 if self.work < WORK else 2):
            kind = self.wpick(w)
            res = self.attempt(lambda: self.branch(kind, mode, cur, env, ctx, depth, lv, target),
                               self.placer(env, cur, ctx), env, ctx)
            if res:
                return res
        raise Invalid("no branch")

    def branch(self, kind, mode, cur, env, ctx, depth, lv, target):
        """One merge branch (unplaced) that gives a shape compatible with target."""
        head = []                               # leading items of the branch
        v = cur
        if kind == "identity":
            if not self.is_op(env, "identity"):
                raise Invalid("identity shadowed")
            head = [Name("identity")]
            if lv is not None and self.chance(0.15):
                label, _ = self.pick_label(ctx, env, lv)
                head = [Labelled(label, Name("identity"))]
        elif kind == "pipe":
            node, v = self.gen_pipe(cur, env, ctx, depth + 1, lv, nmax=2)
            head = [node]
        elif kind == "merge":
            node, v = self.attempt(lambda: self.mk_merge(cur, env, ctx, depth + 1, lv), self.placer(env, cur, ctx),
                                   env, ctx) or (None, None)
            if node is None:
                raise Invalid("no merge")
            head = [node]
        elif kind == "nestid":
            op2 = self.pick(["add", "mean", "mul", "concat"])
            inner = Merge(op2, [], [Name("identity") for _ in range(self.pick([2, 2, 3]))])
            v = inner.place(self.sim, env, cur, ctx)
            head = [inner]
        elif kind == "block":
            node, v = self.attempt(lambda: self.mk_block(cur, env, ctx, depth + 1, lv), self.placer(env, cur, ctx),
                                   env, ctx) or (None, None)
            if node is None:
                raise Invalid("no block")
            head = [node]
        elif kind == "ref":
            keys = [k for k in self.refables(ctx) if target is None or self.adapter(ctx.body.refs[k].shape, target, mode,
                                                                                     env, dry=True) is not None]
            if not keys:
                raise Invalid("no ref")
            k = self.pick(keys)
            head = [Ref(k)]
            v = ctx.body.refs[k]
        elif kind == "refdef":
            node, v = self.ref_def(cur, env, ctx, depth)
            head = [node]
        elif kind == "gate":
            if len(target) != 3 or len(cur.shape) != 3:
                raise Invalid("no gate")
            C, H, W = cur.shape
            if self.chance(0.35) and (H, W) == tuple(target[1:]):
                items = [self.call_op("conv", {"out": 1, "k": 1}, env, cur.shape), Name("sigmoid")]
            else:
                ct = target[0] if self.chance(0.8) else 1
                mid = max(1, ct // 2)
                items = [Name("global_avgpool"), self.call_op("conv", {"out": mid, "k": 1}, env, (C, 1, 1))]
                if self.chance(0.6):
                    items += [Name("relu"), self.call_op("conv", {"out": ct, "k": 1}, env, (mid, 1, 1))]
                elif mid != ct:
                    items[-1] = self.call_op("conv", {"out": ct, "k": 1}, env, (C, 1, 1))
                items.append(Name(self.pick(["sigmoid", "sigmoid", "tanh"])))
            node = Pipe(items)
            return node
        if target is not None and not compatible(v.shape, target, mode):
            ad = self.adapter(v.shape, target, mode, env)
            if ad is None:
                raise Invalid("no adapter")
        else:
            ad = []
        items = head + ad
        if len(items) == 1:
            return items[0]
        if isinstance(items[0], Pipe) and not items[0].paren and not any(isinstance(x, Labelled) for x in items[0].items):
            items = items[0].items + items[1:]
        return Pipe(items)

    def ref_def(self, cur, env, ctx, depth):
        """A def whose body starts from a label of the caller (`def side = @stem -> ...`), called here."""
        defs = [d for d in self.decls if isinstance(d, DefDecl) and not d.value and starts_with_ref(d.body)
                and ".".join(first_ref(d.body).path) in ctx.body.refs]
        if defs and self.chance(0.5):
            d = self.pick(defs)
            node = Call(Name(d.name), self.call_args(d, env, cur.shape)) if d.params else Name(d.name)
            return node, node.place(self.sim, env, cur, ctx)
        keys = self.refables(ctx)
        if not keys:
            raise Invalid("no anchor")
        k = self.pick(keys)
        start = ctx.body.refs[k]
        kinds = ["ch"] if self.chance(0.5) else []
        names = self.param_names(kinds)
        params = [(nm, None) for nm in names]
        decl = DefDecl(self.decl_name(DEF_NAMES), params, kinds, self.genv)
        args = self.call_args(decl, env, cur.shape, force=True)
        denv = Env(self.genv)
        bind_params(self.sim, params, args, env, cur, denv)
        self.in_macro += 1
        try:
            if self.chance(0.15):
                decl.body = Ref(k)
            else:
                node, _ = self.gen_items(start, denv, ctx, depth + 1, None, self.rint(1, 2), "none")
                decl.body = prepend_ref(Ref(k), node)
        finally:
            self.in_macro -= 1
        self.register(decl)
        call = Call(Name(decl.name), args) if args or self.chance(0.3) else Name(decl.name)
        return call, call.place(self.sim, env, cur, ctx)

    def adapter(self, s, t, mode, env, dry=False):
        """Items that take shape s to one compatible with t (None: no such items)."""
        if compatible(s, t, mode):
            return []
        if len(t) == 1:
            items = []
            if len(s) == 3:
                if s[0] * s[1] * s[2] <= 96 and self.chance(0.6):
                    items.append(Name("flatten"))
                    s = (s[0] * s[1] * s[2],)
                else:
                    items += [Name("global_avgpool"), Name("flatten")]
                    s = (s[0],)
            if not compatible(s, t, mode):
                items.append(Call("linear", [(None, Lit(t[0]))]))
            return items
        if len(s) == 1 or mode == "crop":
            return None
        C, H, W = s
        Ct, Ht, Wt = t
        if mode == "mul":
            need_sp = not all(a == b or a == 1 or b == 1 for a, b in ((H, Ht), (W, Wt)))
            need_ch = not (C == Ct or C == 1 or Ct == 1)
        else:
            need_sp = (H, W) != (Ht, Wt)
            need_ch = mode == "exact" and C != Ct
        items = []
        if need_sp:
            opts = self.spatial(s, (Ht, Wt), Ct if need_ch else None, env)
            if not opts:
                return None
            if dry:
                return []
            item, C = self.pick(opts)
            items.append(item)
        if need_ch and C != Ct:
            if dry:
                return []
            g = 1
            if self.chance(0.2):
                divs = [d for d in range(2, min(C, Ct) + 1) if C % d == 0 and Ct % d == 0]
                g = self.pick(divs) if divs else 1
            vals = {"out": Ct, "k": 1}
            if g > 1:
                vals["groups"] = g
            items.append(self.call_op("conv", vals, env, (C, Ht, Wt)))
        return items

    def spatial(self, s, hw, cout, env):
        C, H, W = s
        Ht, Wt = hw
        out = []
        for k in (1, 2, 3):
            for st in (1, 2, 3):
                for p in (0, 1):
                    if H + 2 * p < k or W + 2 * p < k:
                        continue
                    if (H + 2 * p - k) // st + 1 == Ht and (W + 2 * p - k) // st + 1 == Wt:
                        c2 = cout or C
                        vals = {"out": c2, "k": k}
                        if st != 1:
                            vals["stride"] = st
                        if p:
                            vals["pad"] = p
                        out.append((self.call_op("conv", vals, env, s), c2))
                        if 2 * p <= k and k > 1:
                            vals = {"k": k, "stride": st}
                            if p:
                                vals["pad"] = p
                            out.append((self.call_op(self.pick(["maxpool", "avgpool"]), vals, env, s), C))
        if Ht <= H and Wt <= W:
            vals = {"h": Ht} if Ht == Wt and self.chance(0.5) else {"h": Ht, "w": Wt}
            out.append((self.call_op("center_crop", vals, env, s), C))
            out.append((self.call_op("adaptive_avgpool", {"out": Ht if Ht == Wt else (Ht, Wt)}, env, s), C))
        if Ht % H == 0 and Wt % W == 0 and Ht >= H and Wt >= W and (Ht, Wt) != (H, W):
            f = Ht // H if Ht // H == Wt // W else (Ht // H, Wt // W)
            out.append((self.call_op("upsample", {"factor": f, "mode": self.pick(["nearest", "bilinear"])}, env, s), C))
        for k in (1, 2, 3):
            for st in (1, 2, 3):
                if (H - 1) * st + k == Ht and (W - 1) * st + k == Wt and (st, k) != (1, 1):
                    c2 = cout or C
                    out.append((self.call_op("conv_t", {"out": c2, "k": k, "stride": st}, env, s), c2))
        return out

    # ------------------------------------------------------------ blocks
    def register(self, decl):
        self.decls.append(decl)
        self.genv.vars[decl.name] = BlockVal(decl) if isinstance(decl, BlockDecl) else DefVal(decl)

    def fn_decls(self):
        """Blocks and defs that can be called with one channel count: values for a `block=` argument."""
        out = []
        for d in self.decls:
            if d.body and d.params and d.kinds and d.kinds[0] == "ch" and all(x is not None for _, x in d.params[1:]):
                out.append(d)
        return out

    def noarg_decls(self):
        return [d for d in self.decls if d.body and all(x is not None for _, x in d.params) and not starts_with_ref_decl(d)]

    def arg_value(self, kind, env, shape):
        if kind == "ch":
            return self.int_e(self.rint(1, 8), env, shape)
        if kind == "stride":
            return self.int_e(self.pick([1, 1, 2]), env, shape)
        if kind == "flag":
            return self.bool_e(self.chance(0.5), env, shape)
        if kind == "n":
            return self.int_e(self.wpick({0: 1, 1: 3, 2: 3, 3: 2}), env, shape)
        if kind == "k":
            return Lit(self.pick([1, 3]))
        if kind == "p":
            return Lit(self.pick([0.0, 0.1, 0.3]))
        if kind == "list":
            return ListE([Lit(self.rint(1, 8)) for _ in range(self.rint(1, 3))], trailing=self.chance(0.2))
        if kind == "layer":
            return self.layer_value(env, shape)
        if kind == "fn":
            fns = self.fn_decls()
            if not fns:
                raise Invalid("no fn")
            return Name(self.pick(fns).name)
        if kind == "shape":
            return Lit(self.pick(SHAPES), 1)
        raise Invalid(kind)

    def layer_value(self, env, shape):
        """A layer-like value that fits (nearly) any feature map."""
        opts = [lambda: Name(self.pick([o for o in ACT_OPS + ["batchnorm", "dropout"] if self.is_op(env, o)] or ["identity"])),
                lambda: Call("dropout", [(None, Lit(0.1))]),
                lambda: Call("scale", [(None, Lit(0.5))]),
                lambda: Pipe([Name("batchnorm"), Name(self.pick(ACT_OPS))]),
                lambda: Call("conv", [(None, InAttr("channels")), (None, Lit(1))]),
                lambda: Pipe([Call("conv", [(None, InAttr("channels")), (None, Lit(3)), ("pad", Lit(self.pick([1, "same"])))]),
                              Name(self.pick(ACT_OPS))]),
                lambda: Merge("add", [], [Name("identity"), Call("conv", [(None, InAttr("channels")), (None, Lit(1))])]),
                ]
        nd = self.noarg_decls()
        if nd:
            opts += [lambda: Name(self.pick(nd).name)] * 2
        th = [k for k, v in self.visible(env).items() if isinstance(v, LAYERLIKE)]
        if th:
            opts.append(lambda: Name(self.pick(th)))
        return self.pick(opts)()

    def call_args(self, decl, env, shape, force=False):
        args = []
        positional = True
        kw = []
        for (pname, default), kind in zip(decl.params, decl.kinds):
            if default is not None and not force and self.chance(0.45):
                positional = False
                continue
            val = self.arg_value(kind, env, shape)
            if positional and self.chance(0.65):
                args.append((None, val))
            else:
                positional = False
                kw.append((pname, val))
        self.r.shuffle(kw)
        return args + kw

    def param_default(self, kind, earlier):
        ch = [n for n, k in earlier if k == "ch"]
        if kind == "ch":
            o = [lambda: Lit(self.rint(1, 8)), lambda: InAttr("channels")]
            if ch:
                o += [lambda: Bin("*", Name(self.pick(ch)), Lit(2)), lambda: Name(self.pick(ch)),
                      lambda: Call("max", [(None, Bin("//", Name(self.pick(ch)), Lit(2))), (None, Lit(1))])]
            return self.pick(o)()
        if kind == "stride":
            return Lit(self.pick([1, 1, 2]))
        if kind == "flag":
            o = [lambda: Lit(self.chance(0.5)), lambda: Bin(">", InAttr("channels"), Lit(self.rint(1, 5)))]
            if ch:
                o.append(lambda: Bin(self.pick(["<", ">=", "=="]), Name(self.pick(ch)), Lit(self.rint(1, 6))))
            return self.pick(o)()
        if kind == "n":
            ns = [n for n, k in earlier if k == "n"]
            if ns and self.chance(0.4):
                return Name(self.pick(ns))
            return Lit(self.wpick({0: 1, 1: 3, 2: 3, 3: 1}))
        if kind == "k":
            return Lit(self.pick([1, 3]))
        if kind == "p":
            return Lit(self.pick([0.0, 0.1, 0.2]))
        if kind == "list":
            return ListE([Lit(self.rint(1, 8)) for _ in range(self.rint(1, 3))])
        if kind == "layer":
            return self.layer_value(self.genv, None)
        if kind == "fn":
            fns = self.fn_decls()
            if not fns:
                raise Invalid("no fn")
            return Name(self.pick(fns).name)
        if kind == "shape":
            return Lit(self.pick(SHAPES), 1)
        raise Invalid(kind)

    def make_params(self, kinds, ndefault):
        names = self.param_names(kinds)
        params = []
        for i, (nm, k) in enumerate(zip(names, kinds)):
            d = self.param_default(k, list(zip(names[:i], kinds[:i]))) if i >= len(kinds) - ndefault else None
            params.append((nm, d))
        return params

    def mk_block(self, cur, env, ctx, depth, lv):
        blocks = [d for d in self.decls if isinstance(d, BlockDecl) and d.body]
        if blocks and (self.chance(0.55) or self.decl_depth >= 2 or depth >= 3):
            d = self.pick(blocks)
            args = self.call_args(d, env, cur.shape)
            if not args and self.chance(0.5):
                return Name(d.name)
            return Call(Name(d.name), args)
        if self.decl_depth >= 2:
            raise Invalid("nested too deep")
        recipe = self.wpick({"random": 55, "residual": 9, "se": 6, "rec": 8, "dense": 5, "inception": 5,
                             "digits": 5, "higher": 9})
        if len(cur.shape) == 1 and recipe not in ("random", "higher"):
            recipe = "random"
        return getattr(self, "blk_" + recipe)(cur, env, ctx, depth)

    def new_block(self, kinds, params, args, make_body, cur, env, parens=None):
        decl = BlockDecl(self.decl_name(BLOCK_NAMES), params, kinds, self.genv,
                         parens=parens if parens is not None else (bool(params) or self.chance(0.2)))
        self.register(decl)
        benv = Env(self.genv)
        bind_params(self.sim, params, args, env, cur, benv)
        self.decl_depth += 1
        self.sim.depth += 1
        try:
            decl.body = make_body(decl, benv, cur)
        finally:
            self.decl_depth -= 1
            self.sim.depth -= 1
        if not args and self.chance(0.4):
            return Name(decl.name)
        return Call(Name(decl.name), args)

    def blk_random(self, cur, env, ctx, depth):
        n = self.wpick({0: 12, 1: 33, 2: 32, 3: 23})
        kinds = [self.wpick({"ch": 6, "stride": 2, "flag": 2, "layer": 3, "n": 2, "k": 1, "p": 1, "list": 1,
                             "fn": 1 if self.fn_decls() else 0}) for _ in range(n)]
        params = self.make_params(kinds, self.rint(0, n))
        decl_stub = BlockDecl("", params, kinds, self.genv)
        args = self.call_args(decl_stub, env, cur.shape)

        def body(decl, benv, cur):
            n0 = len(self.sim.nodes)
            bctx = Ctx(Body("block", n0))
            old = self.sym_p
            self.sym_p = 0.5
            try:
                stmts, out = self.gen_stmts(benv, cur, bctx, self.wpick({1: 3, 2: 3, 3: 2, 4: 1}), 1, [])
                if len(self.sim.nodes) == n0:
                    node, out = self.fallback(cur, benv, bctx)
                    stmts.append(SPipe(node))
                stmts, out = self.finish_body(stmts, benv, out, bctx, n0)
            finally:
                self.sym_p = old
            return stmts
        return self.new_block(kinds, params, args, body, cur, env)

    def finish_body(self, stmts, env, cur, ctx, n0):
        """Consume what the body computed and left unread (statements that began with @ref)."""
        for _ in range(6):
            pend = self.pending(ctx, cur, n0)
            if pend is None:
                raise Invalid("unreachable value")
            if not pend:
                return stmts, cur
            res = self.attempt(lambda: self.st_consume(env, cur, ctx, 1, [], pend), self.stmt_runner(env, cur, ctx),
                               env, ctx, tries=3)
            if not res:
                raise Invalid("cannot consume")
            s, cur = res
            stmts.append(s)
        raise Invalid("cannot consume")

    def pending(self, ctx, cur, n0):
        """Keys of values computed since n0 that nobody reads (cur aside); None if one has no key."""
        out = []
        for nid in range(n0, len(self.sim.nodes)):
            if self.sim.cons[nid] == 0 and nid != cur.nid and self.sim.nodes[nid][0] != "input":
                k = self.key_of(ctx, V(None, nid))
                if k is None:
                    return None
                out.append(k)
        return out

    def lab(self, ctx, env, lv=()):
        """A label text for a recipe (plain pools)."""
        return self.pick_label(ctx, env, list(lv) if lv else [])[0]

    def blk_residual(self, cur, env, ctx, depth):
        kinds = ["ch", "stride"] + (["layer"] if self.chance(0.3) else [])
        names = self.param_names(kinds)
        params = [(names[0], None), (names[1], Lit(1))] + ([(names[2], Name("relu"))] if len(kinds) > 2 else [])
        wn, sn = names[0], names[1]
        w = self.rint(1, 8)
        args = [(None, self.int_e(w, env, cur.shape, p=0.3))]
        if self.chance(0.6):
            args.append((None, Lit(self.pick([1, 2]))) if self.chance(0.5) else (sn, Lit(self.pick([1, 2]))))

        def body(decl, benv, cur):
            bctx = Ctx(Body("block"))
            main_ctx = bctx
            l1, l2, l3, l4 = (self.lab(main_ctx, benv) for _ in range(4))
            labels = []
            for lb in (l1, l2, l3, l4):
                t = lb.text()
                if t in labels:
                    raise Invalid("label clash")
                labels.append(t)
            bias = Lit(False) if self.chance(0.7) else Lit(True)
            main = Pipe([Labelled(l1, Call("conv", [(None, Name(wn)), (None, Lit(3)), ("stride", Name(sn)),
                                                     ("pad", Lit(1)), ("bias", bias)])),
                         Labelled(l2, Name("batchnorm")), Name("relu"),
                         Labelled(l3, Call("conv", [(None, Name(wn)), (None, Lit(3)), ("pad", Lit(1)), ("bias", bias)])),
                         Labelled(l4, Name("batchnorm"))], breaks={3: "pre"} if self.chance(0.5) else None)
            proj = Pipe([Call("conv", [(None, Name(wn)), (None, Lit(1)), ("stride", Name(sn)), ("bias", Lit(False))]),
                         Name("batchnorm")])
            test = Bin("or", Bin("!=", Name(sn), Lit(1)), Bin("!=", InAttr("channels"), Name(wn)))
            dlab = Label(["downsample"]) if "downsample" not in labels else self.lab(main_ctx, benv)
            short = Labelled(dlab, CondE(proj, test, Name("identity")))
            short.item.paren = self.chance(0.5)
            merge = Merge("add", [], [main, short] if self.chance(0.8) else [short, main])
            tail = SPipe(Name(names[2]) if len(kinds) > 2 else Name("relu"))
            return [SPipe(merge), tail]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_se(self, cur, env, ctx, depth):
        kinds = ["ch", "n"]
        names = self.param_names(kinds)
        cn, rn = names
        params = [(cn, InAttr("channels") if self.chance(0.7) else None), (rn, Lit(2))]
        if params[0][1] is None:
            args = [(None, InAttr("channels") if self.chance(0.7) else Lit(cur.shape[0]))]
        else:
            args = [] if self.chance(0.5) else [(cn, InAttr("channels"))]
        if self.chance(0.3):
            args.append((rn, Lit(self.pick([1, 2, 4]))))

        def body(decl, benv, cur):
            squeeze = Call("conv", [(None, Call("max", [(None, Bin("//", Name(cn), Name(rn))), (None, Lit(1))])), (None, Lit(1))])
            gate = Pipe([Name("global_avgpool"), squeeze, Name("relu"), Call("conv", [(None, Name(cn)), (None, Lit(1))]),
                         Name("sigmoid")])
            br = [Name("identity"), gate] if self.chance(0.7) else [gate, Name("identity")]
            m = Merge("mul", [], br, style=self.rint(0, 1))
            if self.chance(0.4):
                return [SPipe(Labelled(self.lab(Ctx(Body("block")), benv), m))]
            return [SPipe(m)]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_rec(self, cur, env, ctx, depth, deep=False):
        variant = self.pick(["chain", "residual", "fractal", "shrink"]) if not deep else self.pick(["chain", "residual"])
        kinds = ["ch"] if variant == "shrink" else ["ch", "n"]
        names = self.param_names(kinds)
        params = [(nm, None) for nm in names]
        cn = names[0]
        C = cur.shape[0]
        if variant == "residual":
            args = [(None, InAttr("channels") if self.chance(0.6) else Lit(C))]
        else:
            args = [(None, self.int_e(self.rint(1, 8), env, cur.shape))]
        d = self.rint(25, 35) if deep else (self.rint(1, 3) if variant == "fractal" else self.rint(0, 4))
        if variant != "shrink":
            args.append((None, Lit(d)) if self.chance(0.6) else (names[1], Lit(d)))

        def body(decl, benv, cur):
            me = decl.name
            base = self.pick([Call("conv", [(None, Name(cn)), (None, Lit(3)), ("pad", Lit(1))]),
                              Call("conv", [(None, Name(cn)), (None, Lit(1))]),
                              Pipe([Call("conv", [(None, Name(cn)), (None, Lit(1))]), Name("relu")])])
            if variant == "shrink":
                test = Bin("or", Bin("<=", InAttr("height"), Lit(2)), Bin("<=", InAttr("width"), Lit(2)))
                return [If(test, [SPipe(base)], [SPipe(Pipe([Call("maxpool", [(None, Lit(2))]), Call(me, [(None, Name(cn))])]))],
                           newline_else=self.chance(0.3))]
            dn = names[1]
            test = self.pick([Bin("<=", Name(dn), Lit(0)), Bin("==", Name(dn), Lit(0)), Unary("not", Name(dn)),
                              Bin("<", Name(dn), Lit(1))])
            rec = Call(me, [(None, Name(cn)), (None, Bin("-", Name(dn), Lit(1)))])
            if variant == "chain":
                other = [SPipe(Pipe([rec, Name(self.pick(ACT_OPS))]))] if self.chance(0.6) else \
                    [SPipe(Name("relu")), SPipe(rec)]
            elif variant == "residual":
                other = [SPipe(Merge("add", [], [Name("identity"), rec] if self.chance(0.5) else [rec, Name("identity")]))]
                base = Call("conv", [(None, Name(cn)), (None, Lit(3)), ("pad", Lit(1))])
            else:
                test = Bin("<=", Name(dn), Lit(1))
                margs = [("drop", Lit(0.15))] if self.chance(0.6) else []
                other = [SPipe(Merge("mean", margs, [base, Pipe([rec, rec])]))]
            if self.chance(0.5):
                return [If(test, [SPipe(base)], other, newline_else=self.chance(0.3))]
            return [If(Unary("not", test), other, [SPipe(base)])]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_dense(self, cur, env, ctx, depth):
        kinds = ["n", "ch"]
        names = self.param_names(kinds)
        params = [(names[0], None), (names[1], Lit(2) if self.chance(0.4) else None)]
        args = [(None, Lit(self.rint(1, 3)))]
        if params[1][1] is None or self.chance(0.5):
            args.append((None, Lit(self.rint(1, 4))))
        var = self.pick(LOOP_VARS)
        if var in names:
            var = "i"

        def body(decl, benv, cur):
            bctx = Ctx(Body("block"))
            benv.vars[var] = 0
            lab = self.pick_label(bctx, benv, [(var, "int")])[0]
            sub = Ctx(bctx.body, ("q",))
            ls = [self.lab(sub, benv) for _ in range(3)]
            if len({x.text() for x in ls}) < 3:
                raise Invalid("label clash")
            path = Pipe([Labelled(ls[0], Name("batchnorm")), Labelled(ls[1], Name("relu")),
                         Labelled(ls[2], Call("conv", [(None, Name(names[1])), (None, Lit(3)), ("pad", Lit(1))]))])
            m = Merge("concat", [], [Name("identity"), path])
            return [For(var, Call("range", [(None, Name(names[0]))]), [SPipe(Labelled(lab, m))])]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_inception(self, cur, env, ctx, depth):
        kinds = ["ch", "ch", "ch"]
        names = self.param_names(kinds)
        params = [(names[0], None), (names[1], None), (names[2], Lit(2))]
        args = [(None, self.int_e(self.rint(1, 4), env, cur.shape)), (None, Lit(self.rint(1, 4)))]
        if self.chance(0.5):
            args.append((names[2], Lit(self.rint(1, 4))))

        def body(decl, benv, cur):
            a, b, c = (Name(x) for x in names)
            opts = [Call("conv", [(None, a), (None, Lit(1))]),
                    Pipe([Call("conv", [(None, b), (None, Lit(1))]), Call("conv", [(None, c), (None, Lit(3)), ("pad", Lit(1))])]),
                    Pipe([Call("conv", [(None, b), (None, Lit(1))]), Call("conv", [(None, c), (None, Lit(5)), ("pad", Lit("same"))])]),
                    Pipe([Call("maxpool", [(None, Lit(3)), ("stride", Lit(1)), ("pad", Lit(1))]), Call("conv", [(None, a), (None, Lit(1))])]),
                    Call("avgpool", [(None, Lit(3)), ("stride", Lit(1)), ("pad", Lit(1)), ("count_include_pad", Lit(False))]),
                    Call("conv", [(None, c), (None, Lit((1, 3), 1)), ("pad", Lit((0, 1), 1))])]
            self.r.shuffle(opts)
            brs = opts[:self.rint(2, 4)]
            bctx = Ctx(Body("block"))
            if self.chance(0.7):
                used = []
                for i, br in enumerate(brs):
                    lb = self.lab(bctx, benv)
                    if lb.text() in used:
                        continue
                    used.append(lb.text())
                    brs[i] = Labelled(lb, br)
            return [SPipe(Merge("concat", [], brs))]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_digits(self, cur, env, ctx, depth):
        kinds = ["ch"]
        names = self.param_names(kinds)
        params = [(names[0], None)]
        args = [(None, self.int_e(self.rint(1, 8), env, cur.shape))]
        var = "i" if names[0] != "i" else "j"
        off = self.pick([0, 1])
        n = self.rint(2, 3)

        def body(decl, benv, cur):
            lab = Label([Name(var) if off == 0 else Bin("+", Name(var), Lit(off))])
            item = Call("conv", [(None, Name(names[0])), (None, Lit(1))])
            if self.chance(0.5):
                item = Pipe([item, Name("relu")])
            return [For(var, Call("range", [(None, Lit(n))]), [SPipe(Labelled(lab, item, flat=True))])]
        return self.new_block(kinds, params, args, body, cur, env)

    def blk_higher(self, cur, env, ctx, depth):
        fns = self.fn_decls()
        if fns and self.chance(0.6):
            kinds = ["fn", "ch", "layer"]
            names = self.param_names(kinds)
            params = [(names[0], None), (names[1], None), (names[2], Name(self.pick(ACT_OPS)))]
            f = self.pick(fns)
            if names[0] == "block":
                args = [("block", Name(f.name)), (names[1], self.int_e(self.rint(1, 8), env, cur.shape))]
            else:
                args = [(None, Name(f.name)), (None, self.int_e(self.rint(1, 8), env, cur.shape))]
            if self.chance(0.4):
                args.append((names[2], self.layer_value(env, cur.shape)))

            def body(decl, benv, cur):
                first = Call(Name(names[0]), [(None, Name(names[1]))])
                if self.chance(0.3):
                    first = Call(Name(names[0]), [(None, InAttr("channels"))])
                return [SPipe(first), SPipe(Name(names[2]))]
            return self.new_block(kinds, params, args, body, cur, env)
        kinds = ["layer", "n"]
        names = self.param_names(kinds)
        params = [(names[0], None), (names[1], Lit(self.rint(1, 2)))]
        args = [(None, self.layer_value(env, cur.shape))]
        if self.chance(0.5):
            args.append((names[1], Lit(self.rint(0, 3))))
        style = self.pick(["repeat", "residual", "plain"])

        def body(decl, benv, cur):
            u = Name(names[0])
            if style == "repeat":
                return [SPipe(Repeat(u, Name(names[1])))]
            if style == "residual":
                return [SPipe(Merge("add", [], [u, Name("identity")]))]
            return [SPipe(u), SPipe(Name("relu"))]
        return self.new_block(kinds, params, args, body, cur, env)

    # ------------------------------------------------------------ defs
    def mk_def(self, cur, env, ctx, depth, lv):
        defs = [d for d in self.decls if isinstance(d, DefDecl) and not starts_with_ref_decl(d) and not d.value]
        if defs and self.chance(0.5):
            d = self.pick(defs)
            if d.params and (self.chance(0.8) or any(x is None for _, x in d.params)):
                return Call(Name(d.name), self.call_args(d, env, cur.shape))
            return Name(d.name)
        if self.decl_depth >= 2:
            raise Invalid("nested too deep")
        recipe = self.wpick({"one": 35, "multi": 40, "labels": 20 if lv is not None else 0})
        n = self.wpick({0: 4, 1: 4, 2: 2}) if recipe != "one" else self.wpick({0: 5, 1: 3})
        kinds = [self.wpick({"ch": 5, "k": 2, "stride": 1, "layer": 2, "n": 1}) for _ in range(n)]
        params = self.make_params(kinds, self.rint(0, n))
        decl = DefDecl(self.decl_name(DEF_NAMES), params, kinds, self.genv, parens=bool(params) and True or self.chance(0.1))
        args = self.call_args(decl, env, cur.shape)
        denv = Env(self.genv)
        bind_params(self.sim, params, args, env, cur, denv)
        self.in_macro += 1
        self.decl_depth += 1
        try:
            if recipe == "one":
                decl.body = self.mk_layer(cur, denv, ctx, depth, None)
            else:
                node, _ = self.gen_items(cur, denv, ctx, depth + 1, None if recipe == "multi" else [],
                                         self.rint(2, 3), "some" if recipe == "labels" else "none")
                decl.body = node
        finally:
            self.in_macro -= 1
            self.decl_depth -= 1
        self.register(decl)
        if not args and self.chance(0.7):
            return Name(decl.name)
        return Call(Name(decl.name), args)

    # ------------------------------------------------------------ statements
    def stmt_runner(self, env, cur, ctx):
        sim = self.sim

        def do(s):
            n0 = len(sim.nodes)
            out = s.run(sim, env, cur, ctx, None)
            # What this statement computed (and the value it started from) must be read later:
            # either now, or by a label that a later statement can refer to.
            for nid in [cur.nid] + list(range(n0, len(sim.nodes))):
                if nid != out.nid and sim.cons[nid] == 0 and sim.nodes[nid][0] != "input" \
                        and self.key_of(ctx, V(None, nid)) is None:
                    raise Invalid("dead value")
            return out
        return do

    def gen_stmts(self, env, cur, ctx, n, depth, lv):
        stmts = []
        for _ in range(n):
            if self.full():
                break
            res = self.gen_stmt(env, cur, ctx, depth, lv)
            if res is None:
                continue
            s, cur = res
            stmts.append(s)
            if self.chance(0.04):
                stmts.append(Comment(self.pick(["a comment", "x: not a label", "@not a ref", "-> continues?"])))
        return stmts, cur

    def gen_stmt(self, env, cur, ctx, depth, lv, force=None):
        w = {"pipe": 55, "let_int": 4, "let_pipe": 6, "let_layer": 3, "let_list": 3,
             "if": 8 if depth < 2 else 0, "for": 7 if depth < 2 else 0,
             "ref": 6 if self.refables(ctx, cur.nid) and lv is not None else 0,
             "consume": 20 if self.pending(ctx, cur, ctx.body.n0) else 0}
        if not self.room():
            w = {"pipe": 1, "consume": w["consume"], "let_int": 1}
        if force:
            w = {force: 1}
        for _ in range(4 if self.work < WORK else 1):
            k = self.wpick(w)
            res = self.attempt(lambda: getattr(self, "st_" + k)(env, cur, ctx, depth, lv),
                               self.stmt_runner(env, cur, ctx), env, ctx)
            if res:
                return res
        return None

    def st_pipe(self, env, cur, ctx, depth, lv):
        node, _ = self.gen_pipe(cur, env, ctx, depth, lv)
        return SPipe(node, comment=self.pick(["tail", "x: y", "@z"]) if self.chance(0.03) else None)

    def let_name(self, env):
        for _ in range(10):
            nm = self.pick(LET_NAMES)
            if nm not in BUILTIN_NAMES and nm not in KEYWORDS and nm not in self.genv.vars:
                return nm
        raise Invalid("no let name")

    def st_let_int(self, env, cur, ctx, depth, lv):
        return Let(self.let_name(env), self.int_e(self.rint(1, 8), env, cur.shape, p=0.8))

    def st_let_pipe(self, env, cur, ctx, depth, lv):
        s = self.snap(env, ctx)
        self.in_macro += 1
        try:
            node, _ = self.gen_pipe(cur, env, ctx, depth + 1, lv if self.chance(0.2) else None, nmax=2)
        finally:
            self.in_macro -= 1
        self.restore(s, keep_decls=True)
        return Let(self.let_name(env), node)

    def st_let_layer(self, env, cur, ctx, depth, lv):
        return Let(self.let_name(env), self.layer_value(env, cur.shape))

    def st_let_list(self, env, cur, ctx, depth, lv):
        if self.chance(0.5):
            return Let(self.let_name(env), ListE([Lit(self.rint(1, 8)) for _ in range(self.rint(1, 4))]))
        return Let(self.let_name(env), ListE([self.layer_value(env, cur.shape) for _ in range(self.rint(1, 3))]))

    def st_if(self, env, cur, ctx, depth, lv):
        test = self.rand_test(env, cur.shape)
        s = self.snap(env, ctx)
        then, _ = self.gen_stmts(env, cur, ctx, self.rint(1, 2), depth + 1, lv)
        self.restore(s, keep_decls=True)
        k = self.wpick({"none": 3, "else": 4, "elif": 3, "empty": 1})
        orelse = None
        if k == "else":
            orelse, _ = self.gen_stmts(env, cur, ctx, self.rint(1, 2), depth + 1, lv)
            self.restore(s, keep_decls=True)
        elif k == "empty":
            orelse = []
        elif k == "elif":
            t2 = self.rand_test(env, cur.shape)
            b2, _ = self.gen_stmts(env, cur, ctx, 1, depth + 1, lv)
            self.restore(s, keep_decls=True)
            e2 = None
            if self.chance(0.7):
                e2, _ = self.gen_stmts(env, cur, ctx, 1, depth + 1, lv)
                self.restore(s, keep_decls=True)
            orelse = If(t2, b2, e2)
        if self.chance(0.08):
            then = []
        return If(test, then, orelse, newline_else=self.chance(0.3))

    def st_for(self, env, cur, ctx, depth, lv):
        var = self.pick([v for v in LOOP_VARS if not lv or v not in [x for x, _ in lv]])
        k = self.wpick({"range": 5, "list": 2, "str": 1, "layers": 2, "var": 1})
        vis = self.visible(env)
        if k == "range":
            form = self.pick(["n", "ab", "abs", "param"])
            if form == "n":
                it = Call("range", [(None, Lit(self.wpick({0: 1, 1: 2, 2: 4, 3: 3})))])
            elif form == "ab":
                a = self.rint(0, 2)
                it = Call("range", [(None, Lit(a)), (None, Lit(a + self.rint(1, 3)))])
            elif form == "abs":
                it = Call("range", [(None, Lit(0)), (None, Lit(self.rint(2, 5))), (None, Lit(2))])
            else:
                ints = [nm for nm, v in vis.items() if _isint(v) and 0 <= v <= 3]
                it = Call("range", [(None, Name(self.pick(ints)) if ints else Lit(2))])
            vk = "int"
        elif k == "list":
            it = ListE([Lit(self.rint(1, 8)) for _ in range(self.rint(1, 3))])
            vk = "int"
        elif k == "str":
            it = ListE([Lit(x, self.rint(0, 1)) for x in self.r.sample(["a", "b", "c", "x1", "_"], self.rint(1, 3))])
            vk = "str"
        elif k == "layers":
            it = ListE([self.layer_value(env, cur.shape) for _ in range(self.rint(1, 3))])
            vk = None
        else:
            lists = [nm for nm, v in vis.items() if isinstance(v, list)]
            if not lists:
                raise Invalid("no list")
            nm = self.pick(lists)
            it = Name(nm)
            vk = "int" if all(_isint(x) for x in vis[nm]) else (None if all(isinstance(x, LAYERLIKE) for x in vis[nm]) else "?")
            if vk == "?":
                raise Invalid("mixed list")
        seq = it.ev(self.sim, env, cur)
        if not isinstance(seq, list):
            raise Invalid("not a list")
        if len(seq) > 4:
            raise Invalid("long loop")
        s = self.snap(env, ctx)
        env.vars[var] = seq[0] if seq else 0
        sub_lv = None if lv is None or vk is None else lv + [(var, vk)]
        if sub_lv and len(sub_lv) == 1 and self.chance(0.25):
            # a loop in a loop: labels interpolate both variables (b{i}_{j})
            res = self.gen_stmt(env, cur, ctx, depth + 1, sub_lv, force="for")
            body = [res[0]] if res else []
        else:
            body, _ = self.gen_stmts(env, cur, ctx, self.rint(1, 2), depth + 1, sub_lv)
        if vk is None and self.chance(0.7):
            body = [SPipe(Name(var))] + body
        self.restore(s, keep_decls=True)
        return For(var, it, body)

    def st_ref(self, env, cur, ctx, depth, lv):
        keys = self.refables(ctx, cur.nid)
        if not keys:
            raise Invalid("no ref")
        if self.sim.cons[cur.nid] == 0 and self.key_of(ctx, cur) is None:
            raise Invalid("would drop the current value")
        k = self.pick(keys)
        if self.chance(0.3):
            return SPipe(Ref(k))
        node, _ = self.gen_pipe(ctx.body.refs[k], env, ctx, depth, lv, nmax=3)
        return SPipe(prepend_ref(Ref(k), node))

    def st_consume(self, env, cur, ctx, depth, lv, pend=None):
        pend = self.pending(ctx, cur, ctx.body.n0) if pend is None else pend
        if not pend:
            raise Invalid("nothing pending")
        k = self.pick(pend)
        v = ctx.body.refs[k]
        ref = Ref(k)
        cs, ps = cur.shape, v.shape
        ident = Name("identity")
        if len(cs) == 3 and len(ps) == 3:
            opt = self.pick(["crop", "add", "concat", "mul"])
            if opt == "crop":
                m = Merge("concat", [("crop", Lit(True))], [ident, ref])
            else:
                mode = {"add": "exact", "concat": "spatial", "mul": "mul"}[opt]
                ad = self.adapter(ps, cs, mode, env)
                if ad is None:
                    m = Merge("concat", [("crop", Lit(True))], [ident, ref])
                else:
                    m = Merge(opt, [], [ident, Pipe([ref] + ad) if ad else ref])
        elif len(cs) == 1 and len(ps) == 3:
            m = Merge("concat", [], [ident, Pipe([ref, Name("flatten")] if math.prod(ps) <= 256 else
                                                 [ref, Name("global_avgpool"), Name("flatten")])])
        elif len(cs) == 3 and len(ps) == 1:
            first = Name("flatten") if math.prod(cs) <= 256 else Pipe([Name("global_avgpool"), Name("flatten")])
            m = Merge("concat", [], [first, ref])
        else:
            opt = self.pick(["concat", "add", "mean"])
            if opt == "concat" or ps == cs:
                m = Merge(opt if ps == cs else "concat", [], [ident, ref])
            else:
                m = Merge(opt, [], [ident, Pipe([ref, Call("linear", [(None, Lit(cs[0]))])])])
        if self.chance(0.5):
            m.branches.reverse()
        node = m
        if lv is not None and self.chance(0.3):
            try:
                node = Labelled(self.pick_label(ctx, env, lv)[0], m)
            except Invalid:
                pass
        return SPipe(node)

    # ------------------------------------------------------------ the network
    def net_params(self):
        n = self.wpick({0: 3, 1: 3, 2: 3, 3: 2, 4: 1})
        kinds = [self.wpick({"ch": 4, "n": 2, "flag": 2, "layer": 2, "list": 1, "k": 1, "p": 1, "shape": 1})
                 for _ in range(n)]
        if kinds.count("shape") > 1:
            kinds = [k for k in kinds if k != "shape"] + ["shape"]
        names = self.param_names(kinds)
        params = []
        for i, (nm, k) in enumerate(zip(names, kinds)):
            earlier = list(zip(names[:i], kinds[:i]))
            ch = [x for x, kk in earlier if kk == "ch"]
            if k == "ch" and ch and self.chance(0.4):
                d = Bin("*", Name(self.pick(ch)), Lit(2)) if self.chance(0.5) else Bin("+", Name(self.pick(ch)), Lit(1))
            elif k == "ch":
                d = Lit(self.rint(1, 8))
            elif k == "flag":
                d = Lit(self.chance(0.5)) if not ch or self.chance(0.5) else Bin(">", Name(self.pick(ch)), Lit(3))
            elif k == "layer":
                d = self.layer_value(self.genv, None)
            else:
                d = self.param_default(k, [])
            params.append((nm, d))
        return params, kinds

    def gen_network(self, deep):
        params, kinds = self.net_params()
        env = Env(self.genv)
        bind_params(self.sim, params, [], self.genv, None, env)
        body = Body("net")
        ctx = Ctx(body)
        net = NetState()
        stmts = []
        if self.chance(0.15):
            s = Let(self.let_name(env), self.int_e(self.rint(1, 6), env, None, p=0.6))
            try:
                s.run(self.sim, env, None, ctx, net)
                stmts.append(s)
            except Invalid:
                pass
        shapes = [nm for (nm, _), k in zip(params, kinds) if k == "shape"]
        if shapes and self.chance(0.8):
            expr = Name(shapes[0])
        elif self.chance(0.1):
            v = self.pick(VECTORS)
            expr = self.pick([Lit(v), Lit((v,)), ListE([Lit(v)])])
        else:
            sh = self.pick(SHAPES)
            expr = self.pick([Lit(sh, 1), Lit(sh, 1), Lit(sh, 1), Lit(sh), ListE([Lit(x) for x in sh])])
        inp = Input(expr)
        cur = inp.run(self.sim, env, None, ctx, net)
        stmts.append(inp)
        if deep and len(cur.shape) == 3:
            self.cap = 80 if deep == "rec" else 260

            def build():
                node = self.deep_item(deep, cur, env, ctx)
                if self.chance(0.5):
                    node = Labelled(Label([self.pick(["deep", "tower", "x", "self"])]), node)
                return SPipe(node)
            res = self.attempt(build, self.stmt_runner(env, cur, ctx), env, ctx, tries=3)
            if res:
                s, cur = res
                stmts.append(s)
            self.cap = len(self.sim.nodes) + 40
        more, cur = self.gen_stmts(env, cur, ctx, self.wpick({2: 2, 3: 3, 4: 3, 5: 3, 6: 2, 7: 1}), 0, [])
        stmts += more
        # Run the statements again from scratch: what was generated piecewise must hold as a whole.
        self.sim = Sim()
        ctx = Ctx(Body("net"))
        env = Env(self.genv)
        bind_params(self.sim, params, [], self.genv, None, env)
        cur = run_body(stmts, self.sim, env, None, ctx, NetState())
        if len(self.sim.nodes) == 1:
            node, cur = self.fallback(cur, env, ctx)
            stmts.append(SPipe(node))
        stmts, cur = self.finish_network(stmts, env, cur, ctx)
        return NetDecl("n", params, stmts), kinds

    def deep_item(self, deep, cur, env, ctx):
        if deep == "rec":
            return self.blk_rec(cur, env, ctx, 0, deep=True)
        n = self.rint(50, 185)
        pn = self.pick(["c", "x", "self", "w", "in_channels"])
        base = self.decl_name(["chain", "lvl", "deep", "b"]).rstrip("_") + "_"
        names = [f"{base}{i}" for i in range(n)]
        extra = 0
        for i, nm in enumerate(names):
            decl = BlockDecl(nm, [(pn, None)], ["ch"], self.genv)
            if i == n - 1:
                decl.body = [SPipe(Call("conv", [(None, Name(pn)), (None, Lit(1))]))]
            else:
                call = Call(names[i + 1], [(None, Name(pn))])
                r = self.r.random()
                if r < 0.05 and extra < 8:
                    extra += 1
                    decl.body = [SPipe(Pipe([call, Name("relu")]))]
                elif r < 0.12:
                    decl.body = [SPipe(Labelled(Label([self.pick(["x", "inner", "self", "sub", "a²"])]), call))]
                else:
                    decl.body = [SPipe(call)]
            self.register(decl)
        return Call(names[0], [(None, self.int_e(self.rint(1, 6), env, cur.shape))])

    def finish_network(self, stmts, env, cur, ctx):
        pend = self.pending(ctx, cur, 0)
        if pend is None:
            raise Invalid("unreachable value")
        use_output = (pend and self.chance(0.6)) or self.chance(0.15)
        if not use_output:
            for _ in range(6):
                pend = self.pending(ctx, cur, 0)
                if not pend:
                    return stmts, cur
                res = self.attempt(lambda: self.st_consume(env, cur, ctx, 0, [], pend), self.stmt_runner(env, cur, ctx),
                                   env, ctx, tries=3)
                if not res:
                    break
                s, cur = res
                stmts.append(s)
            pend = self.pending(ctx, cur, 0)
            if not pend:
                return stmts, cur
        key = self.key_of(ctx, cur)
        if key is None:
            def build():
                ops_ = [o for o in ("identity", "relu", "dropout", "tanh") if self.is_op(env, o)]
                if not ops_:
                    raise Invalid("no op")
                return SPipe(Labelled(self.pick_label(ctx, env, [])[0], Name(self.pick(ops_))))
            res = self.attempt(build, self.stmt_runner(env, cur, ctx), env, ctx, tries=4)
            if not res:
                raise Invalid("no head label")
            s, cur = res
            stmts.append(s)
            key = self.key_of(ctx, cur)
            if key is None:
                raise Invalid("no head label")
        outs = [key] + [k for k in pend if ctx.body.refs[k].nid != cur.nid]
        nids = {ctx.body.refs[k].nid for k in outs}
        if self.chance(0.25):
            extra = [k for k in self.refables(ctx) if ctx.body.refs[k].nid not in nids]
            if extra:
                outs.append(self.pick(extra))
        if len(outs) > 1 and self.chance(0.4):
            rest = outs[1:]
            self.r.shuffle(rest)
            outs = [rest[0], outs[0]] + rest[1:] if self.chance(0.5) else [outs[0]] + rest
        # which outputs are auxiliary: from a stream of its own (programs are otherwise unchanged)
        aux = [i for i in range(1, len(outs)) if self.vr.random() < 0.5]
        stmts.append(Output([(k, self.chance(0.4)) for k in outs], aux))
        return stmts, cur

    def instance_args(self, params, kinds):
        args = []
        for (nm, _), k in zip(params, kinds):
            if self.chance(0.6):
                try:
                    val = self.arg_value(k, self.genv, None) if k not in ("ch",) else Lit(self.rint(1, 8))
                except Invalid:
                    continue
                args.append((nm, val))
        return args

    def value_functions(self):
        """Declare some value functions (docs/language.md): a sum with a default, torchvision's
        make_divisible (through a helper), a recursion and one that reads in.channels."""
        def declare(kind, params, body, name=None):
            decl = DefDecl(name or self.decl_name(DEF_NAMES), params, [], self.genv, parens=True)
            decl.value, decl.body = True, body
            self.register(decl)
            self.vfs[kind] = decl.name
            return decl.name

        kinds = [k for k in ("plus", "md", "rec", "inch") if self.vr.random() < 0.6] or ["md"]
        if "plus" in kinds:
            declare("plus", [("a", None), ("b", Lit(self.vr.randint(1, 3)))], Bin("+", Name("a"), Name("b")))
        if "md" in kinds:
            helper = declare("md_helper", [("v", None), ("d", None), ("m", None)],
                             CondE(Bin("+", Name("m"), Name("d")), Bin("<", Name("m"), Bin("*", Lit(0.9), Name("v"))),
                                   Name("m")))
            rounded = Bin("*", Bin("//", Call("int", [(None, Bin("+", Name("v"), Bin("/", Name("d"), Lit(2))))]),
                                   Name("d")), Name("d"))
            declare("md", [("v", None), ("d", Lit(8)), ("lo", Lit(0))],
                    Call(helper, [(None, Name("v")), (None, Name("d")),
                                  (None, Call("max", [(None, Bin("or", Name("lo"), Name("d"))), (None, rounded)]))]))
        if "rec" in kinds:
            name = self.decl_name(DEF_NAMES)
            self.reserved.add(name)
            declare("rec", [("k", None), ("acc", Lit(0))],
                    CondE(Name("acc"), Bin("<=", Name("k"), Lit(0)),
                          Call(name, [(None, Bin("-", Name("k"), Lit(1))), (None, Bin("+", Name("acc"), Lit(1)))])),
                    name=name)
        if "inch" in kinds:
            declare("inch", [("f", Lit(1))], Bin("*", InAttr("channels"), Name("f")))

    def value_e(self, v, env, shape) -> list:
        """Expressions worth the int v through value functions and the math built-ins."""
        c = []
        fns = {k: n for k, n in self.vfs.items() if k != "md_helper" and isinstance(self.genv.vars.get(n), DefVal)}
        ints = [(k, x) for k, x in self.visible(env).items() if _isint(x)]
        if "plus" in fns:
            c.append(Call(fns["plus"], [(None, Lit(v - self.genv.vars[fns["plus"]].decl.params[1][1].v))]))
            for k, x in ints:
                c.append(Call(fns["plus"], [(None, Name(k)), ("b" if self.vr.random() < 0.5 else None, Lit(v - x))]))
        if "md" in fns and v >= 1:
            for d in (1, 2, 4, 8):
                if v % d:
                    continue
                for x in (v, v - d / 4, v + d / 4 - 0.5, v - 1):
                    if x > 0 and _make_divisible(x, d) == v:
                        kw = ("d" if self.vr.random() < 0.5 else None) if d != 8 else None
                        args = [(None, Lit(x))] + ([] if d == 8 else [(kw, Lit(d))])
                        c.append(Call(fns["md"], args))
                for k, x in ints:
                    for f in (0.5, 0.75, 1.5, 2.0, 4):
                        if x > 0 and _make_divisible(x * f, d) == v:
                            args = [(None, Bin("*", Name(k), Lit(f)))] + ([] if d == 8 else [(None, Lit(d))])
                            c.append(Call(fns["md"], args))
        if "rec" in fns and 0 <= v <= 6:
            c.append(Call(fns["rec"], [(None, Lit(v))]))
        if "inch" in fns and shape is not None:
            for f in (1, 2):
                if shape[0] * f == v:
                    c.append(Call(fns["inch"], [] if f == 1 else [(None, Lit(f))]))
        if self.math:
            if v >= 1:
                c.append(Call("ceil", [(None, Lit(v - 0.5))]))
                c.append(Call("abs", [(None, Bin("-", Lit(0), Lit(v)))]))
            c.append(Call("floor", [(None, Lit(v + 0.25))]))
            c.append(Call("int", [(None, Call("pow", [(None, Call("float", [(None, Lit(v))])), (None, Lit(1))]))]))
            if v >= 1 and v & (v - 1) == 0:
                c.append(Call("pow", [(None, Lit(2)), (None, Call("int", [(None, Call("log2", [(None, Lit(v))]))]))]))
            if 1 <= v <= 6:
                c.append(Call("len", [(None, Call("str", [(None, Lit(10 ** (v - 1)))]))]))
            for k, x in ints:
                if x >= 0:
                    c.append(Bin("+", Call("abs", [(None, Name(k))]), Lit(v - x)))
        return c

    def program(self) -> str:
        if self.vr.random() < 0.3:
            self.value_functions()
            self.math = self.vr.random() < 0.7
        elif self.vr.random() < 0.15:
            self.math = True
        r = self.r.random()
        deep = "chain" if r < 0.02 else "rec" if r < 0.04 else None
        net, kinds = self.gen_network(deep)
        self.final = sim_network(net, [], self.genv)      # the graph netlang must build
        self.inst_final = inst = None
        if net.params and self.chance(0.35):
            for _ in range(4):
                args = self.instance_args(net.params, kinds)
                try:
                    self.inst_final = sim_network(net, args, self.genv)
                except Invalid:
                    continue
                inst = args
                break
        self.text = self.render(net, inst)
        return self.text

    def render(self, net, inst):
        forms = [d.text() for d in self.decls]
        self.r.shuffle(forms)
        forms.insert(self.rint(0, len(forms)), net.text())
        if inst is not None:
            line = "network m = n" + (f"({args_text(inst, '')})" if inst or self.chance(0.5) else "")
            forms.insert(self.rint(0, len(forms)), line)
        head = "# generated by tests/progen.py\n" if self.chance(0.5) else ""
        return head + "".join(f + ("\n\n" if self.chance(0.7) else "\n") for f in forms)


# ---------------------------------------------------------------- small helpers

def _make_divisible(v, divisor=8, min_value=None):
    # torchvision's _make_divisible, which the generated make_divisible computes
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def ok_label_text(t):
    return ok_label(t) or IDENT.match(t) is not None


def compatible(s, t, mode):
    if len(s) != len(t):
        return False
    if mode == "exact":
        return s == t
    if mode == "spatial":
        return len(s) == 1 or s[1:] == t[1:]
    if mode == "crop":
        return True
    if mode == "mul":
        return all(a == b or a == 1 or b == 1 for a, b in zip(s, t))
    return False


def combine(mode, t, s):
    if mode == "mul" and len(s) == len(t):
        return tuple(max(a, b) for a, b in zip(s, t))
    return t


def first_ref(node):
    if isinstance(node, Ref):
        return node
    if isinstance(node, Pipe) and isinstance(node.items[0], Ref):
        return node.items[0]
    if isinstance(node, Labelled):
        return first_ref(node.item)
    return None


def starts_with_ref(node):
    return first_ref(node) is not None


def starts_with_ref_decl(d):
    return isinstance(d, DefDecl) and d.body is not None and starts_with_ref(d.body)


def prepend_ref(ref, node):
    if isinstance(node, Pipe) and not node.paren:
        return Pipe([ref] + node.items, {i + 1: b for i, b in node.breaks.items()})
    if isinstance(node, Labelled) and isinstance(node.item, Pipe) and not node.item.paren:
        return Labelled(node.label, Pipe([ref] + node.item.items), flat=True)
    if isinstance(node, Labelled):
        return Labelled(node.label, Pipe([ref, node.item]), flat=True)
    return Pipe([ref, node])


# ====================================================================== public API

FALLBACK = """network n {
    input 3x8x8
    conv(4, 3, pad=1) -> relu
}
"""


def _build(seed: int):
    """The generator that made program `seed` (its .text, and .final: the graph it expects), or
    None when every try failed."""
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        rng = random.Random(seed)
        for _ in range(6):
            g = Gen(rng)
            try:
                g.program()
                return g
            except (Invalid, RecursionError):
                continue
        return None
    finally:
        sys.setrecursionlimit(old)


def generate(seed: int) -> str:
    """The source of one valid program (deterministic in seed)."""
    g = _build(seed)
    return g.text if g is not None else FALLBACK


def check(text: str):
    """Elaborate network n of text (NetlangError for a generator miss; anything else is a netlang bug)."""
    return netlang.loads(text, network="n")


def valid_programs(start: int = 0, count: int = 100, stats: dict | None = None,
                   with_net: bool = False, with_gen: bool = False) -> Iterator[tuple]:
    """Yield (seed, text) for the programs of seeds start .. start+count-1 that elaborate, with
    the analysed netlang.Network after them if with_net, and the generator (whose .final is the
    graph its interpreter expects) if with_gen.

    Programs that raise NetlangError are the generator's misses: skipped, and counted in
    stats["misses"] (stats["missed"] lists (seed, error)). Any other exception propagates: it is
    a bug in netlang, not in the program."""
    for seed in range(start, start + count):
        g = _build(seed)
        text = g.text if g is not None else FALLBACK
        try:
            net = check(text)
        except netlang.NetlangError as err:
            if stats is not None:
                stats["misses"] = stats.get("misses", 0) + 1
                stats.setdefault("missed", []).append((seed, err))
            continue
        if stats is not None:
            stats["valid"] = stats.get("valid", 0) + 1
        yield (seed, text) + ((net,) if with_net else ()) + ((g,) if with_gen else ())


# ====================================================================== coverage report

def features(text: str, net=None) -> set[str]:
    """The constructs a program uses: from its parse tree, and from the IR of network n where it
    elaborates. net: the program's netlang.Network if it is at hand (saves parsing it again)."""
    from netlang import ast
    from netlang.parser import parse

    f: set[str] = set()
    if net is not None:
        mod = net.module.tree
    else:
        try:
            mod = parse(text, "<features>")
        except netlang.NetlangError:
            return f
    blocks = {d.name: d for d in mod.decls if isinstance(d, ast.BlockDecl)}
    defs = {d.name: d for d in mod.decls if isinstance(d, ast.DefDecl)}
    decl_names = set(blocks) | set(defs)
    camels = {camel(b) for b in blocks}
    let_values: dict[str, object] = {}
    name_uses: dict[str, int] = {}

    def layerish(e):
        return (isinstance(e, (ast.Pipe, ast.Merge, ast.Labelled)) or
                (isinstance(e, ast.Name) and (e.id in OP_NAMES or e.id in decl_names)) or
                (isinstance(e, ast.Call) and isinstance(e.func, ast.Name) and (e.func.id in OP_NAMES or e.func.id in decl_names)))

    def label_kinds(t: ast.Template):
        exprs = [p for p in t.parts if not isinstance(p, str)]
        if exprs:
            f.add("label:template")
            if len(exprs) >= 2:
                f.add("label:template_multi")
            if all(not isinstance(p, str) for p in t.parts):
                f.add("label:digits")
            return
        s = "".join(t.parts)
        f.add("label:plain")
        if s in KEYWORDS:
            f.add("label:keyword")
        if s in BUILTIN_NAMES:
            f.add("label:builtin")
        if s in PYKW_LABELS:
            f.add("label:python_keyword")
        if s in ("getattr", "len", "super", "self", "x", "torch", "nn", "F"):
            f.add("label:python_builtin")
        if not s.isascii():
            f.add("label:non_ascii")
        if s in decl_names:
            f.add("label:block_name" if s in blocks else "label:def_name")
        if s in camels:
            f.add("label:camel")
        if s == "input":
            f.add("label:input_nested")

    def labels_in(e, acc):
        """Plain label texts placed by e (for references into earlier branches)."""
        if isinstance(e, ast.Labelled):
            if e.label.is_plain:
                acc.add("".join(e.label.parts))
            labels_in(e.expr, acc)
        elif isinstance(e, ast.Pipe):
            for x in e.items:
                labels_in(x, acc)
        elif isinstance(e, ast.Merge):
            for b in e.branches:
                labels_in(b, acc)
        elif isinstance(e, ast.Cond):
            labels_in(e.then, acc)
            labels_in(e.orelse, acc)
        return acc

    # value functions: a def whose body is arithmetic, a comparison-guarded value or a function call
    value_defs = {n for n, d in defs.items() if (isinstance(d.body, ast.BinOp) and d.body.op != "*")
                  or (isinstance(d.body, ast.Cond) and isinstance(d.body.then, (ast.BinOp, ast.Name))
                      and not layerish(d.body.then))
                  or (isinstance(d.body, ast.Call) and isinstance(d.body.func, ast.Name)
                      and d.body.func.id not in OP_NAMES and d.body.func.id not in blocks)}
    lines = text.split("\n")

    def is_else_if(node):
        """`else if` (not `else { if ... }`): the word before the nested if is `else`."""
        before = lines[node.loc.line - 1][:node.loc.col - 1].rstrip()
        return before.endswith("else")

    def first_is_ref(e):
        return isinstance(e, ast.Ref) or (isinstance(e, ast.Pipe) and isinstance(e.items[0], ast.Ref))

    def expr(e, st):
        """st: context flags (merge_depth, in_args, in_test, as_value, labelled, stmt)."""
        if isinstance(e, ast.Call) and isinstance(e.func, ast.Name):
            if e.func.id in value_defs:
                f.add("def:value")
            if e.func.id in MATH_FUNCS:
                f.add("call:math")
        if isinstance(e, ast.Name):
            name_uses[e.id] = name_uses.get(e.id, 0) + 1
            if e.id in defs and st.get("as_value"):
                f.add("def:as_value")
            if e.id in blocks and st.get("as_value"):
                f.add("block:block_arg")
        elif isinstance(e, ast.InAttr):
            if st.get("in_args"):
                f.add("in:arg")
            if st.get("in_test"):
                f.add("in:if_" + ("channels" if e.attr == "channels" else "height" if e.attr == "height" else "other"))
        elif isinstance(e, ast.Ref):
            f.add("ref")
            if len(e.path) > 1:
                f.add("ref:dotted")
        elif isinstance(e, ast.Labelled):
            label_kinds(e.label)
            for p in e.label.parts:
                if not isinstance(p, str):
                    expr(p, st)
            if isinstance(e.expr, ast.Merge):
                f.add("merge:labelled")
            if isinstance(e.expr, ast.Pipe) and any(isinstance(x, ast.Labelled) for x in e.expr.items):
                f.add("label:group")
            if isinstance(e.expr, ast.Cond) and (layerish(e.expr.then) or layerish(e.expr.orelse)):
                f.add("cond:labelled")
            if isinstance(e.expr, ast.BinOp) and e.expr.op == "*":
                f.add("repeat:labelled")
            expr(e.expr, dict(st, labelled=True))
            return
        elif isinstance(e, ast.Pipe):
            labs = [x for x in e.items if isinstance(x, ast.Labelled)]
            if len(e.items) > 1 and len(labs) == 1 and e.items[0] is labs[0]:
                f.add("label:whole_pipeline")
                if isinstance(labs[0].expr, ast.Pipe):
                    f.add("label:group_then_more")
            if any(isinstance(x, ast.Labelled) for x in e.items[1:]):
                f.add("label:later_item")
            if isinstance(e.items[0], ast.Ref) and st.get("stmt"):
                f.add("ref:statement_start")
            for x in e.items:
                expr(x, dict(st, stmt=False))
            return
        elif isinstance(e, ast.Merge):
            f.add("merge:labelled" if st.get("labelled") else "merge:unlabelled")
            if st.get("merge_depth", 0) > 0:
                f.add("merge:nested")
            seen_labels: set = set()
            for b in e.branches:
                if isinstance(b, ast.Name) and b.id == "identity":
                    f.add("merge:identity_branch")
                if first_is_ref(b):
                    f.add("merge:ref_branch")
                    r = b if isinstance(b, ast.Ref) else b.items[0]
                    if ".".join(r.path) in seen_labels or r.path[0] in seen_labels:
                        f.add("merge:ref_earlier_branch")
                if isinstance(b, ast.Merge) and all(isinstance(x, ast.Name) and x.id == "identity" for x in b.branches):
                    f.add("merge:nested_identity")
                labels_in(b, seen_labels)
                expr(b, dict(st, merge_depth=st.get("merge_depth", 0) + 1, labelled=False, stmt=False))
            for a in e.args:
                expr(a.value, st)
            return
        elif isinstance(e, ast.Cond):
            if layerish(e.then) or layerish(e.orelse):
                f.add("cond:item")
            expr(e.test, dict(st, in_test=True))
            expr(e.then, st)
            expr(e.orelse, st)
            return
        elif isinstance(e, ast.Call):
            fn = e.func.id if isinstance(e.func, ast.Name) else None
            expr(e.func, st)
            for a in e.args:
                if isinstance(a.value, ast.Pipe):
                    f.add("arg:pipeline")
                if a.name == "block":
                    f.add("block:block_arg")
                if fn == "conv" and a.name == "pad" and isinstance(a.value, ast.Const) and a.value.value == "valid":
                    f.add("conv:pad_valid")
                expr(a.value, dict(st, in_args=fn not in FUNC_NAMES or st.get("in_args"), as_value=fn not in FUNC_NAMES,
                                   labelled=False, stmt=False))
            return
        elif isinstance(e, ast.BinOp):
            if e.op == "*" and layerish(e.left) and isinstance(e.right, ast.Const):
                if e.right.value in (0, 1, 3):
                    f.add(f"repeat:{e.right.value}")
                f.add("repeat")
            expr(e.left, dict(st, labelled=False))
            expr(e.right, dict(st, labelled=False))
            return
        elif isinstance(e, (ast.ListExpr, ast.TupleExpr)):
            for x in e.items:
                expr(x, dict(st, as_value=True))
            return
        elif isinstance(e, ast.Unary):
            expr(e.operand, st)
        elif isinstance(e, ast.Index):
            expr(e.obj, st)
            expr(e.index, st)

    def stmts(body, st):
        for s in body:
            if isinstance(s, ast.Let):
                f.add("let")
                let_values[s.name] = s.value
                expr(s.value, dict(st, as_value=True))
            elif isinstance(s, ast.If):
                f.add("if")
                if s.orelse:
                    if len(s.orelse) == 1 and isinstance(s.orelse[0], ast.If) and is_else_if(s.orelse[0]):
                        f.add("if:else_if")
                    else:
                        f.add("if:else")
                expr(s.test, dict(st, in_test=True))
                stmts(s.then, st)
                stmts(s.orelse or (), st)
            elif isinstance(s, ast.For):
                it = s.iter
                if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
                    f.add("for:range")
                else:
                    f.add("for:list")
                    items = it.items if isinstance(it, ast.ListExpr) else getattr(let_values.get(getattr(it, "id", "")), "items", ())
                    if items and all(layerish(x) for x in items):
                        f.add("for:layers")
                expr(it, st)
                stmts(s.body, st)
            elif isinstance(s, ast.InputStmt):
                expr(s.shape, st)
            elif isinstance(s, ast.OutputStmt):
                if len(s.refs) >= 2:
                    f.add("output:multi")
            else:
                if isinstance(s, ast.Ref):
                    f.add("ref:statement_only")
                expr(s, dict(st, stmt=True))

    for d in mod.decls:
        if isinstance(d, ast.BlockDecl):
            f.add("block")
            pnames = [p.name for p in d.params]
            for i, p in enumerate(d.params):
                if p.default is not None:
                    f.add("block:default")
                    used = set()

                    def names_of(e):
                        if isinstance(e, ast.Name):
                            used.add(e.id)
                        for v in getattr(e, "__dict__", {}).values():
                            if isinstance(v, ast.Node):
                                names_of(v)
                            elif isinstance(v, tuple):
                                for x in v:
                                    if isinstance(x, ast.Node):
                                        names_of(x)
                    names_of(p.default)
                    if used & set(pnames[:i]):
                        f.add("block:default_dep")
                    if isinstance(p.default, ast.InAttr):
                        f.add("block:default_in")
            if "in_channels" in pnames:
                f.add("block:param_in_channels")
            if set(pnames) & {"self", "x", "super", "nn", "F", "torch", "getattr", "__class__"}:
                f.add("block:param_python_name")
            if set(pnames) & {"class", "lambda", "return", "None", "True", "pass", "from", "yield"}:
                f.add("block:param_python_keyword")
            if set(pnames) & camels:
                f.add("block:param_camel")
            if set(pnames) & BUILTIN_NAMES:
                f.add("block:param_shadows_builtin")
            if "block" in pnames:
                f.add("block:param_block")
            before = dict(name_uses)
            stmts(d.body, {})
            if name_uses.get(d.name, 0) > before.get(d.name, 0):
                f.add("block:recursive")
        elif isinstance(d, ast.DefDecl):
            f.add("def")
            b = d.body
            if (isinstance(b, ast.Name) and b.id in OP_NAMES) or (isinstance(b, ast.Call) and isinstance(b.func, ast.Name)
                                                                 and b.func.id in OP_NAMES):
                f.add("def:one_layer")
            if isinstance(b, ast.Pipe):
                f.add("def:multi")
            if labels_in(b, set()) or isinstance(b, ast.Labelled):
                f.add("def:labels")
            if first_is_ref(b) or (isinstance(b, ast.Labelled) and first_is_ref(b.expr)):
                f.add("def:ref")
            expr(b, {"stmt": True})
        elif isinstance(d, ast.NetworkDecl):
            if d.params:
                f.add("network:params")
            stmts(d.body, {})
        elif isinstance(d, ast.NetworkInst):
            f.add("network:instance")
            for a in d.args:
                expr(a.value, {"as_value": True})
    for name, v in let_values.items():
        if layerish(v) and name_uses.get(name, 0) >= 2:
            f.add("let:pipeline_twice")
    if net is None:
        try:
            net = check(text)
        except netlang.NetlangError:
            return f
    return f | ir_features(net.graph)


def ir_features(G) -> set[str]:
    from netlang.ir import inputs_of
    f: set[str] = set()
    depth = 0
    for n, d in G.nodes(data=True):
        op, a, shape = d["op"], d["args"], d["shape"]
        depth = max(depth, n.count("."))
        if op == "input":
            if len(shape) == 1:
                f.add("input:vector")
            continue
        f.add(("merge:" if op in MERGE_NAMES else "op:") + op)
        if op == "slice" and ":part" in n:          # (split's parts; merge-siblings' are ":view")
            f.add("merge:split")
        ins = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
        if op == "conv":
            if a["stride"] != (1, 1):
                f.add("conv:stride")
            if a["pad"] == "same":
                f.add("conv:pad_same")
            elif a["pad"] != (0, 0):
                f.add("conv:pad")
            if a["dilation"] != (1, 1):
                f.add("conv:dilation")
            if a["groups"] != 1:
                f.add("conv:groups")
            if not a["bias"]:
                f.add("conv:bias_false")
            if a["k"][0] != a["k"][1]:
                f.add("conv:kernel_pair")
        elif op == "conv_t":
            if a["output_pad"] != (0, 0):
                f.add("conv_t:output_pad")
            if a["groups"] != 1:
                f.add("conv_t:groups")
        elif op == "linear":
            if G.nodes[inputs_of(G, n)[0]]["op"] == "flatten":
                f.add("linear:after_flatten")
            if len(shape) == 3:
                f.add("linear:map")
        elif op == "layernorm":
            f.add("layernorm:map" if len(shape) == 3 else "layernorm:vector")
        elif op == "batchnorm":
            f.add("batchnorm:map" if len(shape) == 3 else "batchnorm:vector")
        elif op in ("maxpool", "avgpool"):
            if a["ceil"]:
                f.add("pool:ceil")
            if a["pad"] == "same" or a["pad"] != (0, 0):
                f.add("pool:pad")
            if op == "avgpool" and not a["count_include_pad"]:
                f.add("avgpool:count_include_pad")
        elif op == "upsample":
            f.add("upsample:" + a["mode"])
        elif op == "gelu" and a["approximate"] == "tanh":
            f.add("gelu:tanh")
        elif op == "prelu" and a["per_channel"]:
            f.add("prelu:per_channel")
        elif op == "softplus" and a["beta"] != 1:
            f.add("softplus:beta")
        elif op == "leaky_relu" and a["slope"] < 0:
            f.add("leaky_relu:negative")
        elif op == "concat":
            if a["crop"]:
                f.add("concat:crop")
                if len({s[1:] for s in ins}) > 1:
                    f.add("concat:crop_sizes_differ")
            if len(ins) == 1:
                f.add("concat:one_branch")
            if len(shape) == 1:
                f.add("concat:vectors")
        elif op == "mean":
            if a["drop"]:
                f.add("mean:drop")
        elif op == "mul":
            if len({tuple(s) for s in ins}) > 1:
                f.add("mul:gate_broadcast")
    if depth >= 50:
        f.add("deep:chain")
    counts: dict[str, list] = {}
    for path, info in G.graph["scopes"].items():
        if info["kind"] == "block":
            counts.setdefault(info["block"], []).append(repr(info.get("args")))
    for name, calls in counts.items():
        if len(calls) >= 3 and len(set(calls)) >= 2:
            f.add("block:many_calls")
        if len(calls) >= 25:
            f.add("deep:recursion")
    if len(G.graph["outputs"]) > 1:
        f.add("output:multi")
    return f


# Every construct the coverage test expects across a few hundred programs.
FEATURES = sorted(
    [f"op:{o}" for o in OP_NAMES] + [f"merge:{m}" for m in MERGE_NAMES] + [
        "conv:stride", "conv:pad", "conv:pad_same", "conv:pad_valid", "conv:dilation", "conv:groups",
        "conv:bias_false", "conv_t:output_pad", "linear:after_flatten", "linear:map", "layernorm:map",
        "layernorm:vector", "batchnorm:map", "batchnorm:vector",
        "pool:ceil", "pool:pad", "avgpool:count_include_pad", "upsample:nearest", "upsample:bilinear",
        "concat:crop", "concat:crop_sizes_differ", "mean:drop", "mul:gate_broadcast",
        "gelu:tanh", "prelu:per_channel", "softplus:beta", "leaky_relu:negative",
        "merge:nested", "merge:labelled", "merge:unlabelled", "merge:identity_branch", "merge:ref_branch",
        "merge:nested_identity", "merge:ref_earlier_branch",
        "label:plain", "label:whole_pipeline", "label:later_item", "label:group", "label:group_then_more",
        "label:template", "label:template_multi", "label:keyword", "label:builtin", "label:python_keyword",
        "label:python_builtin", "label:non_ascii", "label:block_name", "label:digits", "label:input_nested",
        "ref", "ref:dotted", "ref:statement_only", "ref:statement_start", "output:multi",
        "block", "block:default", "block:default_dep", "block:default_in", "in:arg", "in:if_channels",
        "in:if_height", "block:recursive", "block:param_in_channels", "block:param_python_name",
        "block:param_python_keyword", "block:param_camel", "block:param_shadows_builtin", "block:param_block",
        "block:many_calls", "block:block_arg",
        "def", "def:one_layer", "def:multi", "def:labels", "def:ref", "def:as_value", "def:value", "call:math",
        "let", "let:pipeline_twice", "arg:pipeline", "if", "if:else_if", "if:else", "cond:item", "cond:labelled",
        "for:range", "for:list", "for:layers", "repeat:0", "repeat:1", "repeat:3",
        "network:params", "network:instance", "input:vector", "deep:chain", "deep:recursion",
    ])
