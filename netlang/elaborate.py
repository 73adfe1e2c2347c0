"""AST -> IR.

Elaboration is a small interpreter: it resolves imports, evaluates values, expands defs, blocks,
loops and conditionals, places every layer instance in the graph with its shape (a block may ask
`in.channels`, so shapes are known as soon as a layer is placed), and finally gives every node
its dotted module name.

Naming (docs/language.md has the user's version):
- Each block call opens a scope. A label over a layer, a block call or a merge names that item
  (`conv1: conv(...)` is simply `conv1`), and so does a label over a def whose body is one
  built-in layer (`pool1: pool` with `def pool = maxpool(2)` is `pool1`); a label over a
  pipeline, a repetition or another def call names a sequence whose items are numbered, even
  when there is only one.
- Unlabelled items are numbered in source order within their scope, counting every item, as
  nn.Sequential numbers its children.
- An unlabelled merge is transparent: its branches' items belong to the enclosing scope.
- `label: a -> b -> c`, with no other label in the pipeline, labels the whole pipeline.
"""
from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx

from . import ast, init, ops
from .errors import (NetlangError, NetlangImportError, NetlangNameError, NetlangRecursionError,
                     NetlangShapeError, NetlangTypeError, NetlangValueError, SourceLoc, did_you_mean,
                     paused_gc)
from .parser import parse
from .source import check_size, hide_foreign_text, read_source, resolved

from .limits import (MAX_DEPTH, MAX_DIM, MAX_ELEMS, MAX_IMPORT_DEPTH, MAX_INT, MAX_ITEMS,  # noqa: F401
                     MAX_LAYER_WEIGHTS, MAX_NETWORK_WEIGHTS, MAX_NODES, MAX_REPEAT, MAX_STEPS, MAX_VALUE_CALLS,
                     MAX_VALUE_WORK)

# a label: "-" joins parts (RegNet's block1-0), "." makes it a module path (fpn.inner_blocks.0.0)
_IDENT = re.compile(r"[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*(?:\.[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)*\Z")


# ====================================================================== values

@dataclass(frozen=True, eq=False)
class OpValue:
    op: ops.OpDef

    @property
    def name(self) -> str:
        return self.op.name


@dataclass(frozen=True, eq=False)
class BlockValue:
    decl: ast.BlockDecl
    env: "Env"

    @property
    def name(self) -> str:
        return self.decl.name


@dataclass(frozen=True, eq=False)
class DefValue:
    decl: ast.DefDecl
    env: "Env"

    @property
    def name(self) -> str:
        return self.decl.name


@dataclass(frozen=True, eq=False)
class NetworkValue:
    decl: ast.NetworkDecl | ast.NetworkInst
    env: "Env"

    @property
    def name(self) -> str:
        return self.decl.name


@dataclass(frozen=True, eq=False)
class FuncValue:
    name: str
    fn: Any


@dataclass(frozen=True, eq=False)
class Thunk:
    """A pipeline expression used as a value: it is placed where it is used."""
    expr: ast.Expr
    env: "Env"
    made_by: str | None = None      # the def whose call it is, for errors ("def conv_bn places layers")


_LAYERLIKE = (OpValue, BlockValue, DefValue, Thunk)

# Other libraries' names for activations netlang has under another spelling.
ACTIVATION_ALIASES = {"swish": "silu", "hswish": "hardswish", "hard_swish": "hardswish", "h_swish": "hardswish",
                      "hsigmoid": "hardsigmoid", "hard_sigmoid": "hardsigmoid", "h_sigmoid": "hardsigmoid",
                      "leakyrelu": "leaky_relu", "lrelu": "leaky_relu", "logsoftmax": "log_softmax",
                      "gelu_tanh": 'gelu(approximate="tanh")', "gelu_new": 'gelu(approximate="tanh")',
                      "gelu_pytorch_tanh": 'gelu(approximate="tanh")', "approx_gelu": 'gelu(approximate="tanh")'}
# Parts of a name that make it read like an activation.
_ACTIVATION_WORDS = ("lu", "sigm", "swish", "tanh", "softmax", "softplus", "mish", "act", "hard", "glu")


def _activation_hint(name: str, close: str | None) -> str | None:
    """The hint for an unknown layer name that reads like an activation (or whose nearest name is
    one): the activations the language has, and the nearest one or netlang's spelling of it.
    None for other names, which keep the plain "did you mean" hint."""
    listing = "the activations are " + ", ".join(ops.ACTIVATIONS)
    alias = ACTIVATION_ALIASES.get(name.lower())
    if alias is not None:
        return f"'{name}' is {alias} in netlang; {listing}"
    if close in ops.ACTIVATIONS or any(w in name.lower() for w in _ACTIVATION_WORDS):
        return (f"did you mean '{close}'? " if close else "") + listing
    return None


def fmt_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, tuple):
        if v and all(isinstance(x, int) and not isinstance(x, bool) for x in v) and len(v) > 1:
            return "x".join(str(x) for x in v)
        return "(" + ", ".join(fmt_value(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, (OpValue, BlockValue, DefValue, NetworkValue, FuncValue)):
        return v.name
    if isinstance(v, Thunk):
        return "<pipeline>"
    return str(v)


def plain(v):
    """A value as plain data for the IR (blocks and pipelines by name)."""
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return type(v)(plain(x) for x in v)
    return fmt_value(v)


def type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    return {int: "int", float: "float", str: "string", list: "list", tuple: "tuple"}.get(type(v)) or {
        OpValue: "layer", BlockValue: "block", DefValue: "def", NetworkValue: "network",
        FuncValue: "function", Thunk: "pipeline"}.get(type(v), type(v).__name__)


def a_type(v) -> str:
    name = type_name(v)
    return ("an " if name[0] in "aeiou" else "a ") + name


# ====================================================================== environments

class Env:
    __slots__ = ("vars", "parent")

    def __init__(self, parent: "Env | None" = None, vars: dict | None = None):
        self.vars = vars if vars is not None else {}
        self.parent = parent

    def lookup(self, name: str):
        env = self
        while env is not None:
            if name in env.vars:
                return env.vars[name]
            env = env.parent
        raise KeyError(name)

    def names(self) -> set[str]:
        out, env = set(), self
        while env is not None:
            out |= set(env.vars)
            env = env.parent
        return out


def _builtin_range(loc, *args):
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool) for a in args):
        raise NetlangTypeError("range takes one to three integers", loc)
    if len(args) == 3 and args[2] == 0:
        raise NetlangValueError("range step cannot be zero", loc)
    r = range(*args)
    n = max(0, -((r.start - r.stop) // r.step))     # len(r), which overflows past a machine word
    if n > MAX_REPEAT:
        raise NetlangValueError(f"range of {n} items is more than the limit of {MAX_REPEAT}", loc)
    return list(r)


def _numbers(loc, name, args):
    vals = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
    if not vals or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
        raise NetlangTypeError(f"{name} takes numbers or one list of numbers", loc)
    return vals


def _builtin_len(loc, *args):
    if len(args) != 1 or not isinstance(args[0], (list, tuple, str)):
        raise NetlangTypeError("len takes one list, tuple or string", loc)
    return len(args[0])


def _builtin_int(loc, *args):
    if len(args) != 1 or not isinstance(args[0], (int, float)):
        raise NetlangTypeError("int takes one number", loc)
    return _int_result(int(_finite(loc, "int", args[0])), loc)


def _builtin_round(loc, *args):
    if len(args) != 1 or not isinstance(args[0], (int, float)):
        raise NetlangTypeError("round takes one number", loc)
    return _int_result(int(round(_finite(loc, "round", args[0]))), loc)


def _finite(loc, name, v):
    if isinstance(v, float) and not math.isfinite(v):
        raise NetlangValueError(f"{name} of {v} has no integer value", loc)
    return v


def _int_result(v, loc):
    if isinstance(v, int) and not -MAX_INT <= v <= MAX_INT:
        # Far beyond any size, and Python cannot print integers of thousands of digits.
        raise NetlangValueError("integer overflow: the result is beyond 2**63", loc)
    return v


def _isnum(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _one_number(loc, name, args):
    if len(args) != 1:
        raise NetlangTypeError(f"{name} takes one number, got {len(args)} arguments", loc, hint=f"{name}(x)")
    if not _isnum(args[0]):
        raise NetlangTypeError(f"{name} takes a number, got {a_type(args[0])}", loc, hint=f"{name}(x)")
    return args[0]


def _builtin_float(loc, *args):
    return float(_one_number(loc, "float", args))


def _builtin_abs(loc, *args):
    return _int_result(abs(_one_number(loc, "abs", args)), loc)


def _builtin_ceil(loc, *args):
    return _int_result(math.ceil(_finite(loc, "ceil", _one_number(loc, "ceil", args))), loc)


def _builtin_floor(loc, *args):
    return _int_result(math.floor(_finite(loc, "floor", _one_number(loc, "floor", args))), loc)


def _positive(loc, name, v):
    if v <= 0:
        raise NetlangValueError(f"{name} of {fmt_value(v)}: the logarithm needs a number above 0", loc)
    return v


def _builtin_log(loc, *args):
    if not 1 <= len(args) <= 2 or not all(_isnum(a) for a in args):
        raise NetlangTypeError("log takes one number, or a number and a base" +
                               (f", got {len(args)} arguments" if not 1 <= len(args) <= 2 else ""),
                               loc, hint="log(x) is the natural logarithm; log(x, base)")
    x = _positive(loc, "log", args[0])
    if len(args) == 1:
        return math.log(x)
    base = _positive(loc, "log base", args[1])
    if base == 1:
        raise NetlangValueError("log base 1 is not a base", loc)
    return math.log(x, base)


def _builtin_log2(loc, *args):
    return math.log2(_positive(loc, "log2", _one_number(loc, "log2", args)))


def _builtin_pow(loc, *args):
    if len(args) != 2 or not all(_isnum(a) for a in args):
        raise NetlangTypeError("pow takes two numbers" + (f", got {len(args)} arguments" if len(args) != 2 else ""),
                               loc, hint="pow(base, exponent)")
    a, b = args
    if a == 0 and b < 0:
        raise NetlangValueError("pow: 0 to a negative power is a division by zero", loc)
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        if abs(a) > 1 and b * (abs(a).bit_length() - 1) > 64:     # before computing it, which could hang
            raise NetlangValueError("integer overflow: the result is beyond 2**63", loc)
        return _int_result(a ** b, loc)
    if a < 0 and not float(b).is_integer():
        raise NetlangValueError(f"pow of a negative number ({fmt_value(a)}) to a fractional power "
                                f"({fmt_value(b)}) is not a real number", loc)
    try:
        return math.pow(a, b)
    except OverflowError:
        raise NetlangValueError("pow overflows: the result is beyond the range of a float", loc) from None


def _builtin_str(loc, *args):
    if len(args) != 1:
        raise NetlangTypeError(f"str takes one value, got {len(args)} arguments", loc, hint="str(x)")
    v = args[0]
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, int, float)):
        return fmt_value(v)
    raise NetlangTypeError(f"str takes a number, a boolean or a string, got {a_type(v)}", loc,
                           hint="only plain values have a text form" if not isinstance(v, (list, tuple)) else
                           "index the list, e.g. str(xs[0])")


BUILTIN_FUNCS = {
    "range": _builtin_range,
    "len": _builtin_len,
    "min": lambda loc, *a: min(_numbers(loc, "min", a)),
    "max": lambda loc, *a: max(_numbers(loc, "max", a)),
    "sum": lambda loc, *a: _int_result(sum(_numbers(loc, "sum", a)), loc),
    "int": _builtin_int,
    "round": _builtin_round,
    "float": _builtin_float,
    "abs": _builtin_abs,
    "ceil": _builtin_ceil,
    "floor": _builtin_floor,
    "log": _builtin_log,
    "log2": _builtin_log2,
    "pow": _builtin_pow,
    "str": _builtin_str,
}


def builtin_env() -> Env:
    env = Env()
    for name, op in ops.LANGUAGE.items():
        if name != "input" and not op.merge:
            env.vars[name] = OpValue(op)
    for name, fn in BUILTIN_FUNCS.items():
        env.vars[name] = FuncValue(name, fn)
    return env


# ====================================================================== modules and imports

def bundled_architectures() -> Path | None:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "architectures", here.parent / "architectures"):
        if candidate.is_dir():
            return candidate
    return None


def resolve_path(path: str | Path, base: Path) -> Path:
    """Where a .net file named `path` is: beside `base` (the importing file's folder, or the
    working directory for the command line), else in the bundled zoo, else beside `base` (which
    the loader then reports as missing)."""
    target = base / path
    if not _present(target):
        bundled = bundled_architectures()
        if bundled is not None and _is_file(bundled / path):
            return bundled / path
    return target


class Module:
    """One loaded .net file: its global environment and the networks it declares."""

    def __init__(self, path: str, tree: ast.Module, env: Env):
        self.path = path
        self.tree = tree
        self.env = env
        self.networks: list[str] = [d.name for d in tree.decls if isinstance(d, (ast.NetworkDecl, ast.NetworkInst))]

    def network(self, name: str) -> NetworkValue:
        return self.env.vars[name]


def _present(p: Path) -> bool:
    # Anything at the path, a device or a FIFO included: the loader then says what it is rather
    # than taking the zoo's file of that name.
    try:
        return os.path.lexists(p)
    except (OSError, ValueError):
        return False


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except OSError:         # e.g. a name too long for the file system: reported when it is read
        return False


class Loader:
    """Loads files and their imports once each; detects import cycles."""

    def __init__(self):
        self.modules: dict[str, Module] = {}
        self.stack: list[str] = []
        self.builtins = builtin_env()

    def load_file(self, path: str | Path, loc: SourceLoc | None = None) -> Module:
        key = resolved(path)
        if key in self.modules:
            return self.modules[key]
        if key in self.stack:
            chain = " -> ".join(Path(s).name for s in self.stack[self.stack.index(key):] + [key])
            raise NetlangImportError(f"import cycle: {chain}", loc)
        if len(self.stack) >= MAX_IMPORT_DEPTH:
            raise NetlangImportError(f"imports nest more than {MAX_IMPORT_DEPTH} files deep", loc)
        return self._load(read_source(path, loc), str(path), key)

    def load_text(self, text: str, filename: str = "<string>") -> Module:
        check_size(text, filename)
        return self._load(text, filename, filename)

    def _load(self, text: str, filename: str, key: str) -> Module:
        try:
            tree = parse(text, filename)
        except NetlangError as err:
            hide_foreign_text(err, text, filename)
            raise
        self.stack.append(key)
        try:
            module = self._bind(tree, filename)
        finally:
            self.stack.pop()
        self.modules[key] = module
        return module

    def _bind(self, tree: ast.Module, filename: str) -> Module:
        imported = Env(self.builtins)
        origin: dict[str, str] = {}
        base = Path(filename).resolve().parent
        for decl in tree.decls:
            if not isinstance(decl, ast.Import):
                continue
            if "\0" in decl.path:
                raise NetlangImportError("an import path cannot contain a NUL character", decl.loc)
            try:
                mod = self.load_file(resolve_path(decl.path, base), decl.loc)
            except NetlangError as err:
                if err.loc is not None and err.loc.file != filename and len(err.notes) < 6:
                    err.with_note("imported here", decl.loc)
                raise
            for name, value in mod.env.vars.items():
                if name in imported.vars and imported.vars[name] is not value:
                    raise NetlangNameError(f"{name!r} is defined both in {origin[name]} and in {decl.path}", decl.loc)
                imported.vars[name] = value
                origin[name] = decl.path
            for name, value in mod.env.parent.vars.items():   # what that file imported, in turn
                if name not in imported.vars:
                    imported.vars[name] = value
                    origin[name] = decl.path
        env = Env(imported)
        seen: dict[str, ast.Node] = {}
        for decl in tree.decls:
            if isinstance(decl, ast.Import):
                continue
            if decl.name in seen:
                first = seen[decl.name].loc
                raise NetlangNameError(f"{decl.name!r} is already defined at line {first.line}",
                                       decl.name_loc or decl.loc)
            if decl.name in self.builtins.vars:
                raise NetlangNameError(f"{decl.name!r} is a built-in layer and cannot be redefined",
                                       decl.name_loc or decl.loc)
            seen[decl.name] = decl
            if isinstance(decl, ast.DefDecl):
                env.vars[decl.name] = DefValue(decl, env)
            elif isinstance(decl, ast.BlockDecl):
                env.vars[decl.name] = BlockValue(decl, env)
            else:
                env.vars[decl.name] = NetworkValue(decl, env)
            _check_params(decl)
        return Module(filename, tree, env)


def _check_params(decl) -> None:
    params = getattr(decl, "params", ())
    seen = set()
    default_seen = False
    for p in params:
        if p.name in seen:
            raise NetlangNameError(f"parameter {p.name!r} appears twice", p.loc)
        seen.add(p.name)
        if p.default is not None:
            default_seen = True
        elif default_seen:
            raise NetlangValueError(f"parameter {p.name!r} without a default follows one with a default", p.loc)


# ====================================================================== scopes and naming

class Scope:
    __slots__ = ("kind", "entries", "call", "block", "loc", "collapse", "args", "given")

    def __init__(self, kind: str, call: str | None = None, block: str | None = None, loc: SourceLoc | None = None,
                 args: dict | None = None, given: tuple | None = None):
        self.kind = kind
        self.args = args          # a block call's parameters after defaults, as plain data
        self.given = given        # the parameters the call passed (the others took their defaults)
        self.collapse = True      # a sequence whose only item is unlabelled takes that item's name
        self.entries: list[Entry] = []
        self.call = call
        self.block = block
        self.loc = loc


class Entry:
    __slots__ = ("label", "index", "target", "nested", "loc")

    def __init__(self, label, index, target, nested, loc):
        self.label, self.index, self.target, self.nested, self.loc = label, index, target, nested, loc


class Body:
    """One block or network body: the labels its statements can refer to with @name."""
    __slots__ = ("refs", "ref_locs")

    def __init__(self):
        self.refs: dict[str, int] = {}
        self.ref_locs: dict[str, SourceLoc] = {}


@dataclass(frozen=True)
class Ctx:
    scope: Scope
    body: Body
    prefix: tuple = ()        # labels from the body's root down to here, for @a.b references
    nested: bool = False      # inside a merge branch

    def place(self, target, label: str | None, loc) -> Entry:
        entry = Entry(label, len(self.scope.entries), target, self.nested, loc)
        self.scope.entries.append(entry)
        return entry


# ====================================================================== the elaborator

class _NoInput(NetlangValueError):
    """in.* where nothing flows in yet."""


class _NoHeight(NetlangShapeError):
    """in.height or in.width of a vector."""


# A def body of these forms places layers; any other is evaluated to tell a value function's
# result from a pipeline.
_LAYER_FORMS = (ast.Pipe, ast.Merge, ast.Labelled, ast.Ref)
_LAYERS = object()


class Elaborator:
    def __init__(self, network_name: str):
        self.G = nx.MultiDiGraph()
        self.next_id = 0
        self.depth = 0
        self.value_calls = 0        # calls made by the outermost value-function call under way
        self.value_work = 0         # value-function calls in all (None: not counted)
        self.weights = 0            # parameters and buffers of the layers placed so far
        self.steps = 0              # evaluations, placements and items copied: the whole work, bounded
        self.in_value = 0           # value-function calls under way
        self.network_name = network_name
        self.split_parts: list = []      # (slice node, its split's concat, part index)

    # ------------------------------------------------------------ errors
    def _note_call(self, err: NetlangError, what: str, loc: SourceLoc) -> NetlangError:
        note = (f"in {what}, called here", loc)
        if isinstance(err, NetlangRecursionError):
            # Hundreds of identical frames say nothing; keep where the recursion was entered.
            err.notes = (note,)
        elif len(err.notes) < 6:
            err.with_note(*note)
        return err

    # ------------------------------------------------------------ work
    def charge(self, n: int, loc) -> None:
        """Count n steps of work. Every evaluation and placement is one; building a list or a
        string of n items is n, so the budget bounds memory as well as time."""
        self.steps += n
        if self.steps > MAX_STEPS:
            raise NetlangValueError(f"elaboration takes more than {MAX_STEPS:,} steps", loc,
                                    hint="loops and repetitions multiply: what they nest is done "
                                         "(outer count) x (inner count) times")

    def sized(self, v, loc):
        """A list, tuple or string just built, held to MAX_ITEMS and charged for its size."""
        if len(v) > MAX_ITEMS:
            raise NetlangValueError(f"a {type_name(v)} of {len(v):,} items is more than the limit of {MAX_ITEMS:,}",
                                    loc)
        self.charge(len(v), loc)
        return v

    # ------------------------------------------------------------ values
    def eval(self, e, env: Env, cur: int | None):
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.charge(0, e.loc)
        t = type(e)
        if t is ast.Const:
            return e.value
        if t is ast.Name:
            return self.lookup(e, env)
        if t is ast.ListExpr:
            return [self.eval(x, env, cur) for x in e.items]
        if t is ast.TupleExpr:
            return tuple(self.eval(x, env, cur) for x in e.items)
        if t is ast.BinOp:
            return self.eval_binop(e, env, cur)
        if t is ast.Unary:
            v = self.eval(e.operand, env, cur)
            if e.op == "not":
                return not self.truth_value(v, e.operand)
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise NetlangTypeError(f"unary {e.op} needs a number, got {type_name(v)}", e.loc)
            return -v if e.op == "-" else v
        if t is ast.Cond:
            return self.eval(e.then if self.truth(e.test, env, cur) else e.orelse, env, cur)
        if t is ast.Index:
            return self.eval_index(e, env, cur)
        if t is ast.InAttr:
            return self.in_attr(e, cur)
        if t is ast.Call:
            callee = self.eval(e.func, env, cur)
            if isinstance(callee, FuncValue):
                args = [self.eval(a.value, env, cur) for a in e.args]
                if any(a.name for a in e.args):
                    raise NetlangTypeError(f"{callee.name} takes no keyword arguments", e.loc)
                self.charge(sum(len(a) for a in args if isinstance(a, (list, tuple, str))), e.loc)
                out = callee.fn(e.loc, *args)
                return self.sized(out, e.loc) if isinstance(out, list) else out
            if isinstance(callee, DefValue):
                found = self.def_value(callee, e.args, e.loc, env, cur)
                return Thunk(e, env, f"def {callee.name}") if found is _LAYERS else found
            if isinstance(callee, _LAYERLIKE):
                return Thunk(e, env)
            raise NetlangTypeError(f"{a_type(callee)} cannot be called", e.func.loc)
        if t in (ast.Pipe, ast.Merge, ast.Labelled, ast.Ref):
            return Thunk(e, env)
        raise NetlangTypeError("this is not a value", e.loc)

    def lookup(self, e: ast.Name, env: Env, layer: bool = False):
        """The value of a name. layer: it is placed as a layer, so an unknown name that reads
        like an activation gets the list of the activations that exist, never a lone "did you
        mean 'relu'?"."""
        try:
            return env.lookup(e.id)
        except KeyError:
            pass
        candidates = env.names()
        close = difflib.get_close_matches(e.id, sorted(candidates), n=1)
        hint = f"did you mean '{close[0]}'?" if close else None
        if layer:
            hint = _activation_hint(e.id, close[0] if close else None) or hint
        raise NetlangNameError(f"unknown name '{e.id}'", e.loc, hint=hint) from None

    def callee(self, e, env: Env, cur):
        """What a layer position names: eval, with lookup's hint for a layer."""
        return self.lookup(e, env, layer=True) if type(e) is ast.Name else self.eval(e, env, cur)

    def truth(self, e, env, cur) -> bool:
        return self.truth_value(self.eval(e, env, cur), e)

    def truth_value(self, v, e) -> bool:
        if isinstance(v, (bool, int, float, str, list, tuple)):
            return bool(v)
        raise NetlangTypeError(f"{a_type(v)} is not a condition", e.loc)

    def eval_binop(self, e: ast.BinOp, env, cur):
        op = e.op
        if op == "and":
            left = self.eval(e.left, env, cur)
            return self.eval(e.right, env, cur) if self.truth_value(left, e.left) else left
        if op == "or":
            left = self.eval(e.left, env, cur)
            return left if self.truth_value(left, e.left) else self.eval(e.right, env, cur)
        a, b = self.eval(e.left, env, cur), self.eval(e.right, env, cur)
        num = (int, float)
        isnum = lambda v: isinstance(v, num) and not isinstance(v, bool)  # noqa: E731
        try:
            if op in ("==", "!=", "<", "<=", ">", ">=") and isinstance(a, (list, tuple, str)):
                self.charge(len(a), e.loc)
            if op in ("==", "!="):
                same = (a == b) if type_name(a) == type_name(b) or (isnum(a) and isnum(b)) else False
                return same if op == "==" else not same
            if op in ("<", "<=", ">", ">="):
                if not ((isnum(a) and isnum(b)) or (isinstance(a, str) and isinstance(b, str))):
                    raise TypeError
                return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
            if isnum(a) and isnum(b):
                if op == "+":
                    return _int_result(a + b, e.loc)
                if op == "-":
                    return _int_result(a - b, e.loc)
                if op == "*":
                    return _int_result(a * b, e.loc)
                if op in ("/", "//", "%") and b == 0:
                    raise NetlangValueError("division by zero", e.right.loc)
                if op == "/":
                    return a / b
                if op == "//":
                    return a // b
                if op == "%":
                    return a % b
            if op == "+" and type(a) is type(b) and isinstance(a, (list, tuple, str)):
                if len(a) + len(b) > MAX_ITEMS:
                    raise NetlangValueError(f"a {type_name(a)} of {len(a) + len(b):,} items is more than the "
                                            f"limit of {MAX_ITEMS:,}", e.loc)
                return self.sized(a + b, e.loc)
            if op == "*" and isinstance(a, (list, tuple, str)) and isinstance(b, int) and not isinstance(b, bool):
                if b < 0:
                    raise NetlangValueError(f"a {type_name(a)} cannot be repeated a negative number of times "
                                            f"({b})", e.right.loc)
                if len(a) * b > MAX_REPEAT:
                    raise NetlangValueError(f"a {type_name(a)} of {len(a) * b} items is more than the limit "
                                            f"of {MAX_REPEAT}", e.loc)
                return self.sized(a * b if a else a, e.loc)     # (an empty one stays empty, however large b)
        except TypeError:
            pass
        if op == "*" and isinstance(a, _LAYERLIKE):
            return Thunk(e, env)
        raise NetlangTypeError(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", e.loc,
                               hint=_places_layers(a) or _places_layers(b))

    def eval_index(self, e: ast.Index, env, cur):
        obj = self.eval(e.obj, env, cur)
        idx = self.eval(e.index, env, cur)
        if not isinstance(obj, (list, tuple, str)):
            raise NetlangTypeError(f"{a_type(obj)} cannot be indexed", e.obj.loc)
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise NetlangTypeError(f"an index must be an int, got {type_name(idx)}", e.index.loc)
        if not -len(obj) <= idx < len(obj):
            raise NetlangValueError(f"index {idx} is out of range for a {type_name(obj)} of {len(obj)}", e.index.loc)
        return obj[idx]

    def in_attr(self, e: ast.InAttr, cur):
        if cur is None:
            raise _NoInput(f"in.{e.attr} has no value here: nothing flows in yet", e.loc)
        shape = self.G.nodes[cur]["shape"]
        if e.attr == "shape":
            return tuple(shape)
        if e.attr == "channels":
            return shape[0]
        if e.attr in ("height", "width"):
            if len(shape) != 3:
                raise _NoHeight(f"in.{e.attr}: the input here is a vector of {shape[0]}", e.loc)
            return shape[1] if e.attr == "height" else shape[2]
        raise NetlangNameError(f"unknown attribute in.{e.attr}", e.loc,
                               hint="in has channels, height, width and shape")

    # ------------------------------------------------------------ placing layers
    def add_node(self, op: ops.OpDef, args: dict, inputs: list[int], loc: SourceLoc, ctx: Ctx | None,
                 arg_locs: dict | None = None, entry: Entry | None = None) -> int:
        if self.next_id >= MAX_NODES:
            raise NetlangValueError(f"the network has more than {MAX_NODES} layers", loc)
        in_shapes = [self.G.nodes[i]["shape"] for i in inputs]
        try:
            shape = tuple(op.shape(args, in_shapes))
        except ops.OpError as err:
            where = (arg_locs or {}).get(err.arg, loc)
            cls = NetlangShapeError if err.kind == "shape" else NetlangValueError
            raise cls(err.message, where, hint=err.hint) from None
        if any(d > MAX_DIM for d in shape) or math.prod(shape) > MAX_ELEMS:
            raise NetlangValueError(f"{op.name} gives an absurd size {ops.fmt_shape(shape)}", loc)
        self.count_weights(op, args, in_shapes, loc)
        nid = self.next_id
        self.next_id += 1
        self.G.add_node(nid, op=op.name, args=args, shape=shape, loc=loc, scope="")
        for pos, src in enumerate(inputs):
            self.G.add_edge(src, nid, key=pos, pos=pos)
        if entry is not None:
            entry.target = nid
        elif ctx is not None:
            ctx.place(nid, None, loc)
        return nid

    def count_weights(self, op: ops.OpDef, args: dict, in_shapes: list, loc) -> None:
        """Hold the weights (parameters and buffers) of a layer and of the network to their limits,
        as shapes are held to theirs: a backend would allocate them all."""
        n = sum(ops.numel(shape) for _, shape, _ in op.state(args, in_shapes))
        if n > MAX_LAYER_WEIGHTS:
            raise NetlangValueError(f"this {op.name} has {n:,} weights, more than the limit of "
                                    f"{MAX_LAYER_WEIGHTS:,} for one layer", loc)
        self.weights += n
        if self.weights > MAX_NETWORK_WEIGHTS:
            raise NetlangValueError(f"the network's weights reach {self.weights:,} here, more than the limit of "
                                    f"{MAX_NETWORK_WEIGHTS:,} for one network", loc)

    def bind_op(self, op: ops.OpDef, arg_exprs, env, cur, loc) -> tuple[dict, dict]:
        values: dict = {}
        locs: dict = {}
        matched = match_args(op.name, [p.name for p in op.params], arg_exprs, _signature(op),
                             f"{op.name} takes at most {len(op.params)} positional arguments")
        for name, a in matched:
            spec = op.param_index[name]
            values[name] = _check_arg(op, spec, self.eval(a.value, env, cur), a.value.loc)
            locs[name] = a.loc
        for spec in op.params:
            if spec.name not in values:
                if spec.default is ops.REQUIRED:
                    raise NetlangTypeError(f"{op.name} needs its '{spec.name}' argument", loc, hint=_signature(op))
                values[spec.name] = _check_arg(op, spec, spec.default, loc)
        for spec in op.params:
            if spec.same_as and values[spec.name] is None:
                values[spec.name] = values[spec.same_as]
        return values, locs

    # ------------------------------------------------------------ pipelines
    def emit(self, e, env: Env, cur: int, ctx: Ctx) -> int:
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.charge(0, e.loc)
        t = type(e)
        if t is ast.Pipe:
            return self.emit_pipe(e, env, cur, ctx)
        if t is ast.Labelled:
            return self.emit_labelled(self.label_text(e.label, env, cur), e.expr, env, cur, ctx, e.loc)
        if t is ast.Ref:
            return self.resolve_ref(e, ctx)
        if t is ast.Merge:
            return self.emit_merge(e, env, cur, ctx)
        if t is ast.Cond:
            return self.emit(e.then if self.truth(e.test, env, cur) else e.orelse, env, cur, ctx)
        if t is ast.BinOp and e.op == "*":
            return self.emit_repeat(e, env, cur, ctx)
        if t is ast.Call:
            callee = self.callee(e.func, env, cur)
            return self.apply(callee, e.args, e.loc, env, cur, ctx, e)
        if t in (ast.Name, ast.Index):
            return self.apply(self.callee(e, env, cur), (), e.loc, env, cur, ctx, e)
        if t is ast.Const:
            raise NetlangTypeError(f"{fmt_value(e.value)} is {a_type(e.value)}, not a layer", e.loc)
        raise NetlangTypeError("this expression is a value, not a layer", e.loc)

    def emit_pipe(self, e: ast.Pipe, env, cur, ctx) -> int:
        items = list(e.items)
        while items and type(items[0]) is ast.Ref:
            cur = self.resolve_ref(items.pop(0), ctx)
        labelled = [x for x in items if type(x) is ast.Labelled]
        if len(items) > 1 and len(labelled) == 1 and items[0] is labelled[0]:
            # `label: a -> b -> c` with no other label names the whole pipeline.
            first = items[0]
            rest = ast.Pipe(first.loc, (first.expr,) + tuple(items[1:]))
            return self.emit_labelled(self.label_text(first.label, env, cur), rest, env, cur, ctx, first.loc)
        for item in items:
            if type(item) is ast.Ref:
                raise NetlangValueError("a reference can only start a pipeline", item.loc,
                                        hint="begin a new statement with it, e.g. @name -> ...")
            cur = self.emit(item, env, cur, ctx)
        return cur

    def emit_labelled(self, name: str, expr, env, cur, ctx: Ctx, loc) -> int:
        if type(expr) is ast.Ref:
            raise NetlangValueError("a reference cannot be labelled", loc)
        call = given = None
        if type(expr) is ast.Call:
            callee = self.callee(expr.func, env, cur)
            if isinstance(callee, DefValue):
                call = self.call_text(callee.name, expr.args, env, cur)
                # (a def's arguments are bound in order, then by name: no call passes more than it has)
                given = tuple(a.name or p.name for a, p in zip(expr.args, callee.decl.params))
        seq = Scope("seq", call=call, loc=loc, given=given)
        seq.collapse = not self.is_sequence(expr, env, cur)
        key = ".".join(ctx.prefix + (name,))
        if key in ctx.body.refs or key in ctx.body.ref_locs:
            first = ctx.body.ref_locs[key]
            raise NetlangNameError(f"duplicate label '{key}' (first used at line {first.line})", loc)
        ctx.body.ref_locs[key] = loc
        ctx.place(seq, name, loc)
        out = self.emit(expr, env, cur, Ctx(seq, ctx.body, ctx.prefix + (name,), False))
        if not seq.entries:
            raise NetlangValueError(f"label '{name}' names nothing: its item places no layer", loc)
        ctx.body.refs[key] = out
        return out

    def is_sequence(self, e, env, cur) -> bool:
        """Whether a label over `e` names a sequence (numbered like nn.Sequential, even when it
        holds one item): a pipeline, a repetition or a def call. A label over a layer, a block
        call, a merge or a def whose body is one built-in layer (`def pool = maxpool(2)`) names
        that item itself."""
        t = type(e)
        if t is ast.Pipe or (t is ast.BinOp and e.op == "*"):
            return True
        if t is ast.Cond:
            return self.is_sequence(e.then if self.truth(e.test, env, cur) else e.orelse, env, cur)
        if t in (ast.Call, ast.Name, ast.Index):
            value = self.callee(e.func if t is ast.Call else e, env, cur)
            if isinstance(value, Thunk):
                return self.is_sequence(value.expr, value.env, cur)
            return isinstance(value, DefValue) and not self.is_one_layer(value, cur)
        return False

    def is_one_layer(self, dv: DefValue, cur) -> bool:
        """A def whose body is a single built-in layer (not a parameter, pipe or call of a def)."""
        items = dv.decl.body.items if type(dv.decl.body) is ast.Pipe else (dv.decl.body,)
        if len(items) != 1 or type(items[0]) not in (ast.Call, ast.Name):
            return False
        func = items[0].func if type(items[0]) is ast.Call else items[0]
        if type(func) is not ast.Name or func.id in {p.name for p in dv.decl.params}:
            return False
        try:
            return isinstance(self.eval(func, dv.env, cur), OpValue)
        except NetlangError:
            return False

    def label_text(self, t: ast.Template, env, cur) -> str:
        if t.is_plain:
            return t.parts[0] if len(t.parts) == 1 else "".join(t.parts)
        out = []
        for p in t.parts:
            if isinstance(p, str):
                out.append(p)
                continue
            v = self.eval(p, env, cur)
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise NetlangTypeError(f"a label can only interpolate ints and strings, got {type_name(v)}", p.loc)
            out.append(str(v))
        text = "".join(out)
        if not _IDENT.match(text):
            raise NetlangValueError(f"label '{text}' is not a valid name (letters, digits and _, parts joined by - or .)",
                                    t.loc)
        return text

    def resolve_ref(self, e: ast.Ref, ctx: Ctx) -> int:
        key = ".".join(e.path)
        node = ctx.body.refs.get(key)
        if node is None:
            if key in ctx.body.ref_locs:
                raise NetlangNameError(f"@{key} refers to the item it is used in", e.loc)
            close = difflib.get_close_matches(key, list(ctx.body.refs), n=1)
            hint = f"did you mean '@{close[0]}'?" if close else "only labels placed earlier in this body can be referred to"
            raise NetlangNameError(f"no label '{key}' before this point", e.loc, hint=hint)
        return node

    def emit_repeat(self, e: ast.BinOp, env, cur, ctx) -> int:
        n = self.eval(e.right, env, cur)
        if isinstance(n, bool) or not isinstance(n, int):
            raise NetlangTypeError(f"a repetition count must be an int, got {type_name(n)}", e.right.loc)
        if n < 0:
            raise NetlangValueError(f"a repetition count cannot be negative ({n})", e.right.loc)
        if n > MAX_REPEAT:
            raise NetlangValueError(f"repetition count {n} is more than the limit of {MAX_REPEAT}", e.right.loc)
        for _ in range(n):
            cur = self.emit(e.left, env, cur, ctx)
        return cur

    def emit_merge(self, e: ast.Merge, env, cur, ctx: Ctx) -> int:
        if e.op == "split":
            return self.emit_split(e, env, cur, ctx)
        op = ops.OPS[e.op]
        args, locs = self.bind_op(op, e.args, env, cur, e.loc)
        if len(e.branches) < op.min_inputs:
            raise NetlangValueError(f"{e.op} needs at least {op.min_inputs} branches, got {len(e.branches)}", e.loc,
                                    hint="each line of a merge body is one branch")
        entry = ctx.place(None, None, e.loc)
        inner = Ctx(ctx.scope, ctx.body, ctx.prefix, True)
        outs = [self.emit(b, env, cur, inner) for b in e.branches]
        return self.add_node(op, args, outs, e.loc, ctx, locs, entry=entry)

    def emit_split(self, e: ast.Merge, env, cur, ctx: Ctx) -> int:
        """split(n) { b0 ... }: channels i*C/n:(i+1)*C/n, a slice (a view), flow into branch i; the
        branches are concatenated. The slices are no items of the scope (they hold no module, as
        torch.chunk does not); they are named after the concat ("<concat>:part<i>")."""
        op = ops.SPLIT
        args, locs = self.bind_op(op, e.args, env, cur, e.loc)
        n = args["parts"]
        form = f"split({n}) {{ ... }} takes one branch per part: {n} branches, one a line"
        if len(e.branches) != n:
            raise NetlangValueError(f"split({n}) has {len(e.branches)} branch{'es' if len(e.branches) != 1 else ''}"
                                    f", it needs one per part", e.loc, hint=form)
        shape = self.G.nodes[cur]["shape"]
        if len(shape) != 3:
            raise NetlangShapeError(f"split needs a CxHxW feature map, got {ops.fmt_shape(shape)}", e.loc,
                                    hint="split divides the channels of a map; it cannot follow flatten or linear")
        c = shape[0]
        if c % n:
            raise NetlangShapeError(f"split({n}): {c} channels are not divisible into {n} equal parts",
                                    locs.get("parts", e.loc),
                                    hint=f"split(n) gives each of its n branches C/n channels: n must divide {c}")
        entry = ctx.place(None, None, e.loc)
        inner = Ctx(ctx.scope, ctx.body, ctx.prefix, True)
        width = c // n
        parts = [self.add_node(ops.OPS["slice"], {"start": i * width, "stop": (i + 1) * width}, [cur], e.loc, None)
                 for i in range(n)]
        outs = []
        for i, (b, part) in enumerate(zip(e.branches, parts)):
            out = self.emit(b, env, part, inner)
            if not nx.has_path(self.G, part, out):
                raise NetlangValueError(f"split({n}): branch {i + 1} does not read its part", b.loc,
                                        hint="each branch of a split starts from its channels; a branch that "
                                             "begins with @label reads another tensor")
            outs.append(out)
        try:
            nid = self.add_node(ops.OPS["concat"], {"crop": False}, outs, e.loc, ctx, entry=entry)
        except NetlangShapeError as err:
            err.message = err.message.replace("concat:", f"split({n}):", 1)
            raise
        self.split_parts.extend((p, nid, i) for i, p in enumerate(parts))
        return nid

    def apply(self, callee, arg_exprs, loc, env, cur, ctx: Ctx, expr) -> int:
        if isinstance(callee, OpValue):
            args, locs = self.bind_op(callee.op, arg_exprs, env, cur, loc)
            return self.add_node(callee.op, args, [cur], loc, ctx, locs)
        if isinstance(callee, BlockValue):
            return self.emit_block(callee, arg_exprs, loc, env, cur, ctx)
        if isinstance(callee, DefValue):
            return self.emit_def(callee, arg_exprs, loc, env, cur, ctx)
        if isinstance(callee, Thunk):
            if arg_exprs:
                raise NetlangTypeError("this pipeline already has its arguments", loc)
            return self.emit(callee.expr, callee.env, cur, ctx)
        if isinstance(callee, NetworkValue):
            raise NetlangTypeError(f"network '{callee.name}' cannot be used as a layer", loc,
                                   hint="declare the reusable part as a block")
        if isinstance(callee, FuncValue):
            raise NetlangTypeError(f"{callee.name}(...) gives a value, not a layer", loc)
        raise NetlangTypeError(f"{fmt_value(callee)} is {a_type(callee)}, not a layer", loc)

    def init_rule(self, r: ast.InitRule, env: Env, cur) -> tuple:
        """(target, entry, scheme, arguments, loc) of one rule of an init statement (netlang/init.py)."""
        path, entry = r.target, "weight"
        if len(path) > 1 and path[-1] in ("weight", "bias"):
            path, entry = path[:-1], path[-1]
        target = ".".join(path)
        if target in init.KINDS and entry not in init.KINDS[target]:
            raise NetlangValueError(f"a {target} layer has no {entry} to initialise", r.loc)
        # `bottleneck.bn3` names bn3 inside every call of block bottleneck (timm's zero_init_last)
        if target not in init.KINDS and isinstance(_lookup(env, path[0]), BlockValue):
            target = (path[0], ".".join(path[1:]))
        v = r.value
        if type(v) is ast.Name:
            scheme, args = v.id, ()
        elif type(v) is ast.Call and type(v.func) is ast.Name:
            scheme, args = v.func.id, v.args
        else:
            raise NetlangTypeError("an init rule's value is a scheme", v.loc, hint="e.g. normal(0, 0.01) or zeros")
        if scheme not in init.SCHEMES:
            close = difflib.get_close_matches(scheme, sorted(init.SCHEMES), n=1)
            raise NetlangNameError(f"unknown init scheme '{scheme}'", v.loc,
                                   hint=(f"did you mean '{close[0]}'? " if close else "")
                                   + "the schemes are " + ", ".join(init.SCHEMES))
        params = init.SCHEMES[scheme][0]
        sig = f"{scheme}({', '.join(p if d is None else f'{p}={fmt_value(d)}' for p, d in params)})"
        matched = match_args(f"init scheme {scheme}", [p for p, _ in params], args, sig,
                             f"{scheme} takes {len(params)} arguments")
        vals = {p: d for p, d in params}
        for name, a in matched:
            vals[name] = self.eval(a.value, env, cur)
        for p, d in params:
            if vals[p] is None:
                raise NetlangTypeError(f"{scheme} needs its '{p}' argument", v.loc, hint=sig)
        wrong = init.check_args(scheme, vals)
        if wrong:
            raise NetlangValueError(f"{scheme}: {wrong}", v.loc, hint=sig)
        return target, entry, scheme, vals, r.loc

    def bind_params(self, what: str, params, arg_exprs, env, cur, loc, target_env: Env, preset=()) -> list:
        """Bind call arguments to declared parameters in target_env; return them for the call text.
        preset: parameters already bound there (a network's -p values)."""
        sig = _param_sig(what, params)
        matched = match_args(what, [p.name for p in params], arg_exprs, sig, f"{what} takes {len(params)} arguments")
        given = {name: self.eval(a.value, env, cur) for name, a in matched}
        for p in params:
            if p.name in preset:
                continue
            if p.name in given:
                target_env.vars[p.name] = given[p.name]
            elif p.default is not None:
                target_env.vars[p.name] = self.eval(p.default, target_env, cur)
            else:
                raise NetlangTypeError(f"{what} needs its '{p.name}' argument", loc, hint=sig)
        return [(name, a.name, given[name]) for name, a in matched]

    def call_text(self, name, arg_exprs, env, cur) -> str:
        parts = []
        for a in arg_exprs:
            v = self.eval(a.value, env, cur)
            parts.append(f"{a.name}={fmt_value(v)}" if a.name else fmt_value(v))
        text = f"{name}({', '.join(parts)})"
        self.charge(len(text), arg_exprs[0].loc if arg_exprs else None)
        return text

    def enter(self, what: str, loc):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise NetlangRecursionError(f"calls nest more than {MAX_DEPTH} deep (in {what})", loc,
                                        hint="does the recursion reach its base case?")

    def emit_block(self, bv: BlockValue, arg_exprs, loc, env, cur, ctx: Ctx) -> int:
        decl = bv.decl
        self.enter(f"block {decl.name}", loc)
        try:
            benv = Env(bv.env)
            shown = self.bind_params(f"block {decl.name}", decl.params, arg_exprs, env, cur, loc, benv)
            call = f"{decl.name}(" + ", ".join(f"{k}={fmt_value(v)}" if k else fmt_value(v) for _, k, v in shown) + ")"
            self.charge(len(call), loc)     # (the call text and the copied arguments are kept per call)
            scope = Scope("block", call=call, block=decl.name, loc=loc,
                          args={p.name: plain(benv.vars[p.name]) for p in decl.params},
                          given=tuple(name for name, _, _ in shown))
            ctx.place(scope, None, loc)
            if not decl.body:
                raise NetlangValueError(f"block {decl.name} has an empty body", decl.loc)
            out = self.run_body(decl.body, benv, cur, Ctx(scope, Body()), network=False)
            if not scope.entries:
                raise NetlangValueError(f"block {decl.name} places no layer", decl.loc)
            return out
        except NetlangError as err:
            raise self._note_call(err, f"block {decl.name}", loc)
        finally:
            self.depth -= 1

    def emit_def(self, dv: DefValue, arg_exprs, loc, env, cur, ctx: Ctx) -> int:
        value = self._emit_def(dv, arg_exprs, loc, env, cur, ctx)
        if type(value) is not int:      # (node ids are ints; a value function's int comes boxed)
            v = value[0]
            raise NetlangTypeError(f"def {dv.name} is a value function: it gives {a_type(v)} ({fmt_value(v)}), "
                                   "not a layer", loc, hint=f"use its value as an argument, e.g. conv({dv.name}(…), 3)")
        return value

    def def_value(self, dv: DefValue, arg_exprs, loc, env, cur):
        """The value a call of def `dv` gives where a value is wanted: a value function's result,
        or _LAYERS for a def whose body places layers (the call is then a pipeline value, placed
        where it is used)."""
        decl = dv.decl
        if type(decl.body) in _LAYER_FORMS:
            return _LAYERS
        self.value_calls = self.value_calls + 1 if self.in_value else 1
        if self.value_calls > MAX_VALUE_CALLS:
            raise NetlangRecursionError(f"value functions were called more than {MAX_VALUE_CALLS} times "
                                        f"(in def {decl.name})", loc, hint="does the recursion reach its base case?")
        if self.value_work is not None:
            self.value_work += 1
            if self.value_work > MAX_VALUE_WORK:
                raise NetlangRecursionError(f"value functions were called more than {MAX_VALUE_WORK} times in "
                                            f"this network (in def {decl.name})", loc,
                                            hint="a costly value function called in a loop: compute it once, in a let")
        self.enter(f"def {decl.name}", loc)
        self.in_value += 1
        try:
            denv = Env(dv.env)
            self.bind_params(f"def {decl.name}", decl.params, arg_exprs, env, cur, loc, denv)
            value = self.eval(decl.body, denv, cur)
        except (_NoInput, _NoHeight):
            # a layer def that reads in.* (`x if in.height > 4 else identity`) used as a value
            # where nothing flows in yet, or where a vector does: it is worked out where it is
            # placed, as before value functions
            return _LAYERS
        except NetlangError as err:
            raise self._note_call(err, f"def {decl.name}", loc)
        except RecursionError:
            # the Python stack ran out first (an evaluation outside elaborate(), which raises it)
            raise NetlangRecursionError(f"def {decl.name} nests too deeply to evaluate", loc,
                                        hint="does the recursion reach its base case?") from None
        finally:
            self.depth -= 1
            self.in_value -= 1
        return _LAYERS if isinstance(value, _LAYERLIKE) else value

    def _emit_def(self, dv: DefValue, arg_exprs, loc, env, cur, ctx: Ctx):
        decl = dv.decl
        self.enter(f"def {decl.name}", loc)
        try:
            denv = Env(dv.env)
            self.bind_params(f"def {decl.name}", decl.params, arg_exprs, env, cur, loc, denv)
            value = self.eval(decl.body, denv, cur) if type(decl.body) not in _LAYER_FORMS else None
            if value is None or isinstance(value, _LAYERLIKE):
                return self.emit(decl.body, denv, cur, ctx)
        except NetlangError as err:
            raise self._note_call(err, f"def {decl.name}", loc)
        finally:
            self.depth -= 1
        return (value,)

    # ------------------------------------------------------------ statements
    def run_body(self, stmts, env: Env, cur, ctx: Ctx, network: bool, net=None) -> int:
        for s in stmts:
            self.charge(1, s.loc)
            t = type(s)
            if t is ast.Let:
                if s.name in ops.LANGUAGE or s.name in BUILTIN_FUNCS:
                    raise NetlangNameError(f"'{s.name}' is a built-in and cannot be rebound", s.loc)
                env.vars[s.name] = self.eval(s.value, env, cur)
            elif t is ast.If:
                branch = s.then if self.truth(s.test, env, cur) else (s.orelse or ())
                cur = self.run_body(branch, env, cur, ctx, network, net)
            elif t is ast.For:
                seq = self.eval(s.iter, env, cur)
                if not isinstance(seq, (list, tuple)):
                    raise NetlangTypeError(f"for needs a list to loop over, got {type_name(seq)}", s.iter.loc,
                                           hint="e.g. for i in range(1, 7) { ... }")
                for v in seq:
                    env.vars[s.var] = v
                    cur = self.run_body(s.body, env, cur, ctx, network, net)
            elif t is ast.InputStmt:
                if not network:
                    raise NetlangValueError("input belongs in a network, not in a block", s.loc)
                cur = net.input_stmt(s, env, cur, ctx)
            elif t is ast.OutputStmt:
                if not network:
                    raise NetlangValueError("output belongs in a network, not in a block", s.loc)
                net.output_stmt(s, ctx)
            elif t is ast.InitStmt:
                if not network:
                    raise NetlangValueError("init belongs in a network, not in a block", s.loc,
                                            hint="a network's init rules reach its blocks' layers by kind or name")
                net.init += [self.init_rule(r, env, cur) for r in s.rules]
            else:
                if network and net.outputs is not None:
                    raise NetlangValueError("nothing may follow output", s.loc)
                if cur is None:
                    raise NetlangValueError("nothing flows in here: the network has no input yet", s.loc,
                                            hint="start the network with `input CxHxW` (or pass --input)")
                cur = self.emit(s, env, cur, ctx)
        return cur


def _places_layers(v) -> str | None:
    """The hint for a layer def's call used as a number."""
    if isinstance(v, Thunk) and v.made_by:
        return (f"{v.made_by} places layers, so its call is a pipeline; a def gives a value where its body "
                "is a value expression")
    if isinstance(v, DefValue):
        return f"a def gives a value where it is called: {v.name}(…)"
    return None


def _check_arg(op: ops.OpDef, spec: ops.Param, v, loc):
    """Check one op argument against its schema and return its canonical form."""
    what = f"{op.name}: '{spec.name}'"
    if v is None:
        return None
    k = spec.kind
    isint = isinstance(v, int) and not isinstance(v, bool)

    def bounded(x):
        if spec.minimum is not None and x < spec.minimum:
            raise NetlangValueError(f"{what} must be at least {spec.minimum}, got {fmt_value(v)}", loc)
        if spec.below is not None and x >= spec.below:
            raise NetlangValueError(f"{what} must be below {spec.below}, got {fmt_value(v)}", loc)
        if isinstance(x, int) and x > MAX_DIM:
            raise NetlangValueError(f"{what} = {x} is absurdly large", loc)
        return x

    if k == "int":
        if not isint:
            raise NetlangTypeError(f"{what} must be an int, got {type_name(v)} {fmt_value(v)}", loc,
                                   hint=_places_layers(v))
        return bounded(v)
    if k == "float":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise NetlangTypeError(f"{what} must be a number, got {type_name(v)} {fmt_value(v)}", loc,
                                   hint=_places_layers(v))
        if math.isnan(v) or math.isinf(v):
            raise NetlangValueError(f"{what} must be finite", loc)
        return bounded(float(v))
    if k == "bool":
        if not isinstance(v, bool):
            raise NetlangTypeError(f"{what} must be true or false, got {type_name(v)} {fmt_value(v)}", loc)
        return v
    if k == "str":
        if not isinstance(v, str):
            raise NetlangTypeError(f"{what} must be a string, got {type_name(v)}", loc)
        if spec.choices and v not in spec.choices:
            raise NetlangValueError(f"{what} must be one of {', '.join(map(repr, spec.choices))}, got {v!r}", loc)
        return v
    if k == "shape":
        return v
    if k in ("pair", "pad"):
        if k == "pad" and v == "same":
            return "same"
        if k == "pad" and v == "valid":
            return (0, 0)
        if isint:
            v2 = (v, v)
        elif isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) and not isinstance(x, bool)
                                                                  for x in v):
            v2 = tuple(v)
        else:
            extra = ', "same" or "valid"' if k == "pad" else ""
            raise NetlangTypeError(f"{what} must be an int or a pair like 1x7{extra}, got {type_name(v)} "
                                   f"{fmt_value(v)}", loc)
        minimum = spec.minimum if spec.minimum is not None else 0
        for x in v2:
            if x < minimum:
                raise NetlangValueError(f"{what} must be at least {minimum}, got {fmt_value(v)}", loc)
            if x > MAX_DIM:
                raise NetlangValueError(f"{what} = {x} is absurdly large", loc)
        return v2
    raise AssertionError(f"unknown parameter kind {k}")


def match_args(what: str, names: list[str], arg_exprs, signature: str, too_many: str) -> list[tuple[str, ast.Arg]]:
    """Match a call's arguments to parameter names, positional first, as Python does."""
    positional = [a for a in arg_exprs if a.name is None]
    if len(positional) > len(names):
        raise NetlangTypeError(f"{too_many}, got {len(positional)}", positional[len(names)].loc, hint=signature)
    matched: list[tuple[str, ast.Arg]] = []
    seen: set[str] = set()
    for a in arg_exprs:
        if a.name is None:
            if seen:
                raise NetlangTypeError("a positional argument follows a keyword argument", a.loc)
            name = names[len(matched)]
        else:
            if a.name not in names:
                close = difflib.get_close_matches(a.name, names, n=1)
                hint = (f"did you mean '{close[0]}'? " if close else "") + signature
                raise NetlangTypeError(f"{what} has no parameter '{a.name}'", a.loc, hint=hint)
            name = a.name
            if name in seen or name in (n for n, _ in matched):
                raise NetlangTypeError(f"{what}: '{name}' is given twice", a.loc)
            seen.add(name)
        matched.append((name, a))
    return matched


def _signature(op: ops.OpDef) -> str:
    parts = []
    for p in op.params:
        parts.append(p.name if p.default is ops.REQUIRED else f"{p.name}={fmt_value(p.default) if p.default is not None else '…'}")
    return f"{op.name}({', '.join(parts)})"


def _param_sig(what: str, params) -> str:
    return f"{what.split()[-1]}({', '.join(p.name if p.default is None else p.name + '=…' for p in params)})"


# ====================================================================== networks

class _NetworkRun:
    """State of one network body: its input and outputs."""

    def __init__(self, el: Elaborator, input_override):
        self.el = el
        self.input_override = input_override
        self.input_node: int | None = None
        self.outputs: list[int] | None = None
        self.aux: list[int] = []            # the outputs that exist in training only
        self.output_loc = None
        self.init: list = []            # the init statements' rules, evaluated

    def make_input(self, shape, loc, ctx: Ctx) -> int:
        shape = _check_input_shape(shape, loc)
        nid = self.el.add_node(ops.OPS["input"], {"shape": shape}, [], loc, None)
        self.input_node = nid
        return nid

    def input_stmt(self, s: ast.InputStmt, env, cur, ctx) -> int:
        if self.input_node is not None:
            raise NetlangValueError("the network already has an input", s.loc)
        if cur is not None:
            raise NetlangValueError("input must come before the first layer", s.loc)
        shape = self.input_override if self.input_override is not None else self.el.eval(s.shape, env, None)
        return self.make_input(shape, s.shape.loc, ctx)

    def output_stmt(self, s: ast.OutputStmt, ctx: Ctx) -> None:
        if self.outputs is not None:
            raise NetlangValueError("the network already has an output statement", s.loc)
        outs, aux = [], []
        for r, is_aux in zip(s.refs, s.aux or (False,) * len(s.refs)):
            node = self.el.resolve_ref(r, ctx)
            if node in outs:
                raise NetlangValueError(f"'{'.'.join(r.path)}' is listed twice", r.loc)
            outs.append(node)
            if is_aux:
                aux.append(node)
        if outs[0] in aux:
            raise NetlangValueError("the first output is the main one and cannot be auxiliary", s.refs[0].loc,
                                    hint="list the main output first: output fc, aux aux1")
        self.outputs = outs
        self.aux = aux
        self.output_loc = s.loc


def _check_input_shape(shape, loc) -> tuple:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if isinstance(shape, list):
        shape = tuple(shape)
    if (not isinstance(shape, tuple) or len(shape) not in (1, 3)
            or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)):
        raise NetlangTypeError(f"input must be a shape CxHxW (or a vector size), got {fmt_value(shape)}", loc)
    if any(d <= 0 for d in shape):
        raise NetlangValueError(f"input sizes must be positive, got {fmt_value(shape)}", loc)
    if any(d > MAX_DIM for d in shape) or math.prod(shape) > MAX_ELEMS:
        raise NetlangValueError(f"input {fmt_value(shape)} is absurdly large", loc)
    return shape


def elaborate(module: Module, name: str, params: dict | None = None, input_shape=None,
              param_locs: dict | None = None) -> nx.MultiDiGraph:
    """Build the IR of network `name` of `module`.

    params: overrides of the network's parameters, as values or as source text (parsed and
    evaluated in the module's scope, so `block=basic_block` works). input_shape: a CxHxW tuple
    that replaces the network's `input` statement.
    """
    try:
        value = module.env.lookup(name)          # (a network the file imports is one of its networks too)
    except KeyError:
        value = None
    if not isinstance(value, NetworkValue):
        raise NetlangNameError(f"no network '{name}'" + (f" in {module.path}" if module.path else ""), None,
                               hint="networks here: " + (", ".join(module.networks) or "none"))
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 20000))
    try:
        with paused_gc():
            return _elaborate(module, value, params or {}, input_shape)
    except RecursionError:
        raise NetlangRecursionError(f"network '{name}' nests too deeply to elaborate", value.decl.loc) from None
    finally:
        sys.setrecursionlimit(old_limit)


def _elaborate(module: Module, value: NetworkValue, overrides: dict, input_shape) -> nx.MultiDiGraph:
    el = Elaborator(value.name)
    decl = value.decl
    preset: list = []
    inst_env = value.env
    if isinstance(decl, ast.NetworkInst):
        target = value.env.vars.get(decl.target)
        if target is None:
            try:
                target = value.env.lookup(decl.target)
            except KeyError:
                raise NetlangNameError(f"unknown network '{decl.target}'", decl.target_loc) from None
        if not isinstance(target, NetworkValue) or not isinstance(target.decl, ast.NetworkDecl):
            raise NetlangTypeError(f"'{decl.target}' is {a_type(target)}, not a generic network",
                                   decl.target_loc)
        preset = list(decl.args)
        body_decl, body_env = target.decl, target.env
    else:
        body_decl, body_env = decl, value.env
    env = Env(body_env)
    # Overrides from the command line replace instance arguments of the same name.
    override_args = []
    for k, v in overrides.items():
        if k not in {p.name for p in body_decl.params}:
            raise NetlangNameError(f"network '{value.name}' has no parameter '{k}'", None,
                                   hint="its parameters: " + (", ".join(p.name for p in body_decl.params) or "none"))
        override_args.append(k)
    args = [a for a in preset if a.name not in overrides]
    el_args = args
    for k, v in overrides.items():
        env.vars[k] = _override_value(el, module, k, v)
    el.bind_params(f"network {body_decl.name}", body_decl.params, el_args, inst_env, None, decl.loc, env,
                   preset=set(overrides))
    root = Scope("block", call=None, block=body_decl.name, loc=decl.loc)
    body = Body()
    ctx = Ctx(root, body)
    run = _NetworkRun(el, input_shape)
    if input_shape is not None and not any(type(s) is ast.InputStmt for s in _flat_stmts(body_decl.body)):
        run.make_input(input_shape, decl.loc, ctx)
    try:
        last = el.run_body(body_decl.body, env, run.input_node, ctx, network=True, net=run)
    except NetlangError as err:
        if decl is not body_decl:
            el._note_call(err, f"network {body_decl.name}", decl.loc)
        raise
    if run.input_node is None:
        raise NetlangValueError(f"network '{value.name}' has no input", body_decl.loc,
                                hint="add `input CxHxW` as its first statement (or pass --input)")
    outputs = run.outputs if run.outputs is not None else [last]
    if outputs == [run.input_node]:
        raise NetlangValueError(f"network '{value.name}' has no layers", body_decl.loc)
    G = el.G
    _check_dead(G, outputs)
    names, scopes = _assign_names(root, G)
    for nid, name in names.items():
        if name == "input":
            raise NetlangNameError("'input' names the network's input; choose another label", G.nodes[nid]["loc"])
    names[run.input_node] = "input"
    for part, cat, i in el.split_parts:
        names[part] = f"{names[cat]}:part{i}"
    _check_unique(G, names)
    G = nx.relabel_nodes(G, names, copy=True)
    for n, data in G.nodes(data=True):
        data["scope"] = _scope_of(n, scopes)
    if run.init:
        G.graph["init"] = init.resolve(G, scopes, run.init)
    G.graph.update(
        name=value.name,
        file=module.path,
        inputs=["input"],
        outputs=[names[o] for o in outputs],
        output_aux=[o in run.aux for o in outputs],
        params={p.name: plain(env.vars[p.name]) for p in body_decl.params},
        scopes=scopes,
        loc=decl.loc,
    )
    return G


def _flat_stmts(stmts):
    for s in stmts:
        yield s
        if type(s) is ast.If:
            yield from _flat_stmts(s.then)
            yield from _flat_stmts(s.orelse or ())
        elif type(s) is ast.For:
            yield from _flat_stmts(s.body)


def _lookup(env: Env, name: str):
    try:
        return env.lookup(name)
    except KeyError:
        return None


def _override_value(el: Elaborator, module: Module, name: str, v):
    if isinstance(v, str):
        from .parser import parse_expr
        expr = parse_expr(v, f"<-p {name}>")
        return el.eval(expr, module.env, None)
    return v


def _check_dead(G, outputs) -> None:
    outs = set(outputs)
    for n in G.nodes:
        if G.out_degree(n) == 0 and n not in outs:
            data = G.nodes[n]
            raise NetlangValueError(f"this {data['op']} is computed but never used", data["loc"],
                                    hint="list it in `output`, or continue from it")


def _assign_names(root: Scope, G) -> tuple[dict, dict]:
    names: dict[int, str] = {}
    scopes: dict[str, dict] = {}
    dotted: list = []           # (name, entry) of each dotted label

    def place(e: Entry, name: str):
        target = e.target
        if e.label is not None and "." in e.label:
            dotted.append((name, e))
        if isinstance(target, Scope):
            visit(target, name)
        elif target is not None:
            names[target] = name

    def visit(scope: Scope, path: str):
        if path:
            info = {"kind": scope.kind, "call": scope.call, "block": scope.block, "loc": scope.loc, "args": scope.args,
                    "given": scope.given}
            tops = [e for e in scope.entries if not e.nested]
            if scope.kind == "seq" and scope.collapse and len(tops) == 1 and tops[0].label is None:
                # A label over a single unlabelled item names that item itself.
                top = tops[0]
                if isinstance(top.target, Scope):
                    if top.target.call is None and scope.call is not None:
                        top.target.call, top.target.given = scope.call, scope.given
                    visit(top.target, path)
                else:
                    names[top.target] = path
                rest = [e for e in scope.entries if e is not top]
                if rest:
                    scopes.setdefault(path, dict(info, kind="merge"))
                for e in rest:
                    place(e, f"{path}.{_own(e)}")
                return
            scopes[path] = info
        for e in scope.entries:
            place(e, f"{path}.{_own(e)}" if path else _own(e))

    visit(root, "")
    _check_containers(G, dotted, names, scopes)
    for name, e in dotted:
        parts = name.split(".")
        for k in range(len(parts) - e.label.count("."), len(parts)):
            scopes.setdefault(".".join(parts[:k]), {"kind": "module", "call": None, "block": None, "loc": e.loc,
                                                    "args": None, "given": None})
    return names, scopes


def _check_containers(G, dotted: list, names: dict, scopes: dict) -> None:
    """A dotted label (fpn.inner_blocks.0.0) places its item under containers that only dotted
    labels make: none of the paths before its last part may be a layer or a scope of its own
    (a layer holds no other layers, and its parameters are named under it)."""
    taken = {name: nid for nid, name in names.items()}
    for name, e in dotted:
        parts = name.split(".")
        for k in range(len(parts) - e.label.count("."), len(parts)):
            inside = ".".join(parts[:k])
            if inside in taken:
                data = G.nodes[taken[inside]]
                what = f"a {data['op']} (line {data['loc'].line})" if data.get("loc") else f"a {data['op']}"
            elif inside in scopes:
                info = scopes[inside]
                what = (f"a call of block {info['block']}" if info.get("block") else "a labelled item") + (
                    f" (line {info['loc'].line})" if info.get("loc") else "")
            else:
                continue
            raise NetlangNameError(f"label '{e.label}' would place a layer inside '{inside}', which is {what}",
                                   e.loc, hint="a dotted label's path runs through containers that only dotted "
                                   "labels make; a layer holds no other layers")


def _own(e: Entry) -> str:
    return e.label if e.label is not None else str(e.index)


def _check_unique(G, names: dict) -> None:
    seen: dict[str, int] = {}
    for nid, name in names.items():
        if name in seen:
            loc = G.nodes[nid]["loc"]
            raise NetlangNameError(f"two layers would both be named '{name}'", loc,
                                   hint="give one of them a different label")
        seen[name] = nid


def _scope_of(name: str, scopes: dict) -> str:
    path = name
    while "." in path:
        path = path.rpartition(".")[0]
        if path in scopes:
            return path
    return ""


# ====================================================================== templates

def template_params(module: Module, name: str, given=()) -> list[str]:
    """The parameters without a default of network `name` that `given` does not supply: a
    network with any is a template, elaborated only through its instances (or with -p)."""
    value = module.env.lookup(name)
    if not isinstance(value, NetworkValue) or not isinstance(value.decl, ast.NetworkDecl):
        return []
    return [p.name for p in value.decl.params if p.default is None and p.name not in given]


def instances_of(module: Module, name: str) -> list[str]:
    """The networks of `module` that are instances of network `name`."""
    out = []
    for n in module.networks:
        v = module.env.lookup(n)
        if isinstance(v.decl, ast.NetworkInst) and v.decl.target == name:
            out.append(n)
    return out


def check_template(module: Module, name: str) -> None:
    """What can be checked of a template network without its parameters (its syntax is already
    checked): every name its body uses is a parameter, a let or loop variable of the body, or a
    name of the file."""
    decl = module.env.lookup(name).decl
    bound = {p.name for p in decl.params}
    for node in ast.walk(decl.body):
        if type(node) is ast.Let:
            bound.add(node.name)
        elif type(node) is ast.For:
            bound.add(node.var)
    nodes = [n for n in ast.walk(decl.body, [p.default for p in decl.params if p.default is not None])
             if type(n) is ast.Name and n.id not in bound]
    for node in sorted(nodes, key=lambda n: (n.loc.line, n.loc.col)):
        try:
            module.env.lookup(node.id)
        except KeyError:
            raise NetlangNameError(f"unknown name '{node.id}'", node.loc,
                                   hint=did_you_mean(node.id, module.env.names() | bound)).with_note(
                f"in network {name}, a template (its parameters {', '.join(template_params(module, name))} "
                "have no default)", decl.name_loc or decl.loc) from None


# ====================================================================== entry points

def load(path: str | Path) -> Module:
    return Loader().load_file(path)


def load_text(text: str, filename: str = "<string>") -> Module:
    return Loader().load_text(text, filename)
