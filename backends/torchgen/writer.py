"""The walk that writes one class: a block's (or the network's) statements, translated into the
lines of its __init__ and its forward, while the same statements are evaluated for the call at hand.

Every item is placed as netlang.elaborate places it (same numbering, labels, scopes), so the module
paths the source builds are the IR's names. What the walk cannot keep general it resolves, and
says why by raising Restart: the class is then written again with that conditional, loop or
variable fixed (backends/torchgen/assemble.py drives this).
"""
from __future__ import annotations

import functools
import io
import re
import tokenize
import weakref
from dataclasses import dataclass

from netlang import ast, ops
from netlang.elaborate import BlockValue, DefValue, Env, FuncValue, NetworkValue, OpValue, Thunk, match_args
from netlang.errors import NetlangError

from . import layers
from .code import (CLASS_REF, P_ADD, P_AND, P_ATOM, P_CMP, P_IF, P_MUL, P_NOT, P_OR, P_POSTFIX, P_UNARY, UNKNOWN,
                   Binding, Lines, NotAChain, Py, Ref, Resolve, Restart, SEnv, UseSequential, Val, replace)
from .names import NeedsConcrete, is_attr, lit, py_ident

GTIME = (OpValue, DefValue, Thunk, NetworkValue, FuncValue)

# a fresh tensor that nothing saves for backward (an in-place hardswish_, silu_ or mish_ does not
# save its result either, unlike relu_)
FRESH = {"conv", "conv_t", "linear", "batchnorm", "layernorm", "layer_scale", "add", "concat", "mul", "mean",
         "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "prelu", "mish", "softplus",
         "channel_shuffle"}
SAVES_OUTPUT = {"relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax"}
# written in place on a fresh input nothing else reads (the ops the cost model counts in place)
INPLACE = frozenset(n for n, op in ops.LANGUAGE.items() if op.inplace)
VIEW_OPS = {"identity", "flatten", "dropout", "drop_path", "center_crop"}


def python_params(decl) -> tuple[dict, str]:
    """The Python names of a block's (or def's, or network's) parameters, and of its input width:
    the same wherever the class is written or called."""
    cached = decl.__dict__.get("_torch_params")
    if cached is None:
        taken: set = set()
        names = {p.name: py_ident(p.name, taken, "p") for p in decl.params}
        in_name = py_ident("in_channels" if "in_channels" not in names else "c_in", taken)
        cached = (names, in_name)
        object.__setattr__(decl, "_torch_params", cached)
    return cached


def block_def(dv) -> str | None:
    """The block a def stands for when its body is one call of a block whose arguments are
    plain values of the def's parameters (`def resnext_32x4d(width, stride=1) = bottleneck(width,
    stride=stride, groups=32, base_width=4)`): such a def is a Python function returning that
    block's module, so it can be a constructor argument as a block can. None for any other def."""
    if not isinstance(dv, DefValue):
        return None
    cached = dv.decl.__dict__.get("_torch_block_def", 0)
    if cached != 0:
        return cached
    found = _block_def(dv)
    object.__setattr__(dv.decl, "_torch_block_def", found)
    return found


def _block_def(dv) -> str | None:
    decl = dv.decl
    body = decl.body
    if type(body) not in (ast.Call, ast.Name):
        return None
    func = body.func if type(body) is ast.Call else body
    params = {p.name for p in decl.params}
    if type(func) is not ast.Name or func.id in params:
        return None
    try:
        target = dv.env.lookup(func.id)
    except KeyError:
        return None
    if not isinstance(target, BlockValue):
        return None
    for p in decl.params:
        if p.default is not None and not _literal(p.default):
            return None

    def plain(e) -> bool:
        t = type(e)
        if t is ast.Const:
            return True
        if t is ast.Name:
            if e.id in params:
                return True
            try:
                return isinstance(dv.env.lookup(e.id), (BlockValue, FuncValue))
            except KeyError:
                return False
        if t in (ast.ListExpr, ast.TupleExpr):
            return all(plain(x) for x in e.items)
        if t is ast.BinOp:
            return plain(e.left) and plain(e.right)
        if t is ast.Unary:
            return plain(e.operand)
        if t is ast.Cond:
            return plain(e.test) and plain(e.then) and plain(e.orelse)
        if t is ast.Index:
            return plain(e.obj) and plain(e.index)
        if t is ast.Call and type(e.func) is ast.Name and e.func.id not in params:
            try:
                f = dv.env.lookup(e.func.id)
            except KeyError:
                return False
            return isinstance(f, FuncValue) and all(plain(a.value) for a in e.args)
        return False
    args = body.args if type(body) is ast.Call else ()
    if not all(plain(a.value) for a in args):
        return None
    return target.decl.name


# netlang's functions the generated source has no spelling of without an import (it imports only
# torch): their calls are written as their values
FOLDED_FUNCS = {"ceil", "floor", "log", "log2", "str"}


def _in_attrs(dv) -> list:
    """The in.* reads of a value function's body and of the defs it calls, transitively."""
    cached = dv.decl.__dict__.get("_torch_in_attrs")
    if cached is not None:
        return cached
    found, todo, seen = [], [dv], set()
    while todo:
        d = todo.pop()
        if id(d.decl) in seen:
            continue
        seen.add(id(d.decl))
        for node in ast.walk(d.decl.body, [p.default for p in d.decl.params if p.default is not None]):
            if type(node) is ast.InAttr:
                found.append(node)
            elif type(node) is ast.Name:
                try:
                    v = d.env.lookup(node.id)
                except KeyError:
                    continue
                if isinstance(v, DefValue):
                    todo.append(v)
    object.__setattr__(dv.decl, "_torch_in_attrs", found)
    return found


def _literal(e) -> bool:
    t = type(e)
    if t is ast.Const:
        return True
    if t is ast.Unary and e.op == "-" and type(e.operand) is ast.Const:
        return True
    if t in (ast.ListExpr, ast.TupleExpr):
        return all(_literal(x) for x in e.items)
    return False


# Blocks whose calls came out as several classes, where a reference to the block as a value could
# not choose one: their values are then decided where they are placed, as a layer's are (the
# generator of one network sets this and clears it).
GTIME_BLOCKS: set = set()


def is_gtime(v) -> bool:
    """A value the source cannot hold as a Python value: a layer, a def, a pipeline (they are
    expanded where they are placed). A block is a class and a def of one block call a function,
    so they can (unless the block came out as several classes)."""
    if isinstance(v, BlockValue):
        return v.decl.name in GTIME_BLOCKS
    if isinstance(v, DefValue) and block_def(v):
        return block_def(v) in GTIME_BLOCKS
    if isinstance(v, GTIME):
        return True
    if isinstance(v, (list, tuple)):
        return any(is_gtime(x) for x in v)
    return False


def _has_unknown(v) -> bool:
    if v is UNKNOWN:
        return True
    if isinstance(v, (list, tuple)):
        return any(_has_unknown(x) for x in v)
    return False


class GTimeValue(Exception):
    """An expression's value is a layer, def or pipeline: not a Python value."""


@dataclass(frozen=True)
class St:
    """Where the walk is."""
    cur: Val | None
    scope: "Scope"
    env: SEnv
    body: dict                  # label path -> Val, the labels @references can see
    prefix: tuple = ()          # labels from the body's root down to here
    nested: bool = False        # inside a merge branch
    loops: tuple = ()           # the loops forward mirrors, innermost last
    top: bool = True            # at the top level of the class body (not inside a loop or if)
    inside: tuple = ()          # the conditionals and loops written as such around here
    branch_end: bool = False    # the item ends a merge branch (its output gets its label's name)


class Scope:
    """A naming scope being written: the class body, or a label inside it."""

    def __init__(self, form: str, access: str, path: tuple = (), parent=None):
        self.form = form            # "graph": an nn.Module with attributes; "seq": an nn.Sequential
        self.access = access        # the container as Python source ("self", "self.layer1")
        self.faccess = access       # ... as forward reaches it (a template's names read there)
        self.path = path            # its names below the class (for the IR's names)
        self.count = 0              # entries placed so far
        self.numbered = 0           # numbered modules registered (graph form: by their index)
        self.dynamic = None         # the node that made the count depend on the parameters
        self.tops: list = []        # labels of its top-level entries (None: numbered)
        self.parent = parent
        self.make = None            # a callable that writes the container's creation, once
        self.keyed = False          # an nn.ModuleDict that a dotted label's path made: children by key
        self.items: list = []       # for "seq": ("append", code) / ("add", name, code) / ("stmt",)
        self.first = True           # nothing placed in it yet (an nn.Sequential's first item reads outside)

    def place(self, label: str | None, nested: bool) -> int:
        idx = self.count
        self.count += 1
        if not nested:
            self.tops.append(label)
        return idx


class Lazy:
    """A line (or part) decided once the class is written: a stored attribute, a mirrored let."""

    def __init__(self, fn, key: str):
        self.fn, self.key = fn, key

    def __str__(self):
        return self.key


class _Core:
    def __init__(self, gen, draft, rnodes: set, rkeys: set, form: str, concrete: bool = True):
        self.gen, self.d = gen, draft
        self.rnodes, self.rkeys = rnodes, rkeys
        self.form = form            # the body's form: "graph" | "seq" | "graph!" (a chain kept explicit)
        self.concrete = concrete
        self.init, self.fwd = draft.init, draft.fwd
        self.ii = 0                 # indentation of the next __init__ line
        self.fi = 0                 # ... of forward
        self.locals_i: set = set()  # names taken in __init__
        self.locals_f: set = set()  # names taken in forward
        self.let_owner: dict = {}   # a let's local -> what the let last assigned to it reads
        self.live_chans: list = []  # the incoming widths of the loops being written
        self.loop_reads: dict = {}  # a kept loop's key -> what its list reads
        self.round_reads: set = set()  # loops (("round", id)) a round of which read its input's size
        self.size_reads = None      # while a let's value is written: the free keys of the sizes it reads
        self.pins: dict = {}        # forward variables that must not be overwritten -> count
        self.stores: dict = {}      # binding id -> (binding, attr token)
        self.attr_names: dict = {}  # attr token -> final name
        self.notes: list = []       # comments for the next __init__ line
        self.facts_chain = True     # the body's dataflow is a chain
        self.facts_numbered = False  # it places numbered modules
        self.child_names: set = set()
        self.containers: dict = {}  # (scope, part) -> the nn.ModuleDict a dotted label's path made
        self.overwritten: set = set()  # loop tokens a round assigned to
        self.subst: dict = {}       # token -> its text, once decided
        self.chain_vars: set = set()  # forward variables that carry the chain (x, out, ...)
        self.label_vars: dict = {}  # (body, prefix, label) -> the forward variable named after it
        self.chan_locals: set = set()  # locals of __init__ that hold a width
        self.ctx_path: tuple = ()   # the def and pipeline expansions and unrolled rounds around here
        self.expansions: dict = {}
        self.outputs = None
        self.mirrored: set = set()  # lets forward computes again (their keys)
        self.in_group = False
        self.reads: dict = {}       # storage -> how many ops of forward read it so far
        self.storages = 0

    # ================================================================== lines
    def iline(self, text) -> None:
        for n in self.notes:
            self.init.add(f"# {n}", self.ii)
        self.notes = []
        self.init.add(text, self.ii)

    def fline(self, text) -> None:
        self.fwd.add(text, self.fi)

    def note(self, text: str) -> None:
        from .names import comment
        c = comment(text)
        if c not in self.notes:
            self.notes.append(c)

    # ================================================================== names and values
    def norm_refs(self, text: str) -> str:
        return CLASS_REF.sub(lambda m: f"<{self.d.refs[int(m.group(1))].block}>", text)

    def ref(self, block: str, drafts=(), node=None, kind: str = "class", value=None, rank=None) -> str:
        self.d.refs.append(Ref(block, list(drafts), node, kind, value, rank))
        return f"\x00R{len(self.d.refs) - 1}\x00"

    def lookup(self, name: str, env: SEnv) -> Binding:
        b = env.find(name)
        if b is not None and not env.foreign:
            return b
        cenv = env.cenv
        try:
            v = cenv.lookup(name)
        except KeyError:
            raise NeedsConcrete(f"unknown name {name}") from None
        if env.foreign and b is None:
            # a pipeline made in another class: its names are that call's constants
            return Binding(None if is_gtime(v) else self.const_py(v), v)
        if b is not None:
            return Binding(None if is_gtime(v) else self.const_py(v), v)
        if is_gtime(v):
            return Binding(None, v)
        if isinstance(v, BlockValue):
            return Binding(Py(self.ref(v.decl.name)), v)
        if block_def(v):
            return Binding(Py(self.ref(v.decl.name, kind="def", value=v)), v)
        return Binding(self.const_py(v), v)

    def const_py(self, v) -> Py:
        """A concrete value as Python source (a block as its class)."""
        if v is UNKNOWN or _has_unknown(v):
            raise NeedsConcrete("an unknown value")
        if isinstance(v, BlockValue):
            return Py(self.ref(v.decl.name))
        if block_def(v):
            return Py(self.ref(v.decl.name, kind="def", value=v))
        if isinstance(v, list):
            return Py("[" + ", ".join(self.const_py(x).code for x in v) + "]")
        if isinstance(v, tuple) and any(isinstance(x, (BlockValue, list, tuple)) for x in v):
            inner = [self.const_py(x).code for x in v]
            return Py("(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")")
        if is_gtime(v):
            raise GTimeValue()
        return Py(lit(v), prec=P_UNARY if isinstance(v, (int, float)) and v < 0 else P_ATOM)

    def shape_of(self, st):
        return st.cur.shape if st.cur is not None else None

    def cval(self, e, st):
        """e's concrete value, or UNKNOWN."""
        if self._unknown_in(e, st):
            return UNKNOWN
        try:
            return self.gen.el.eval(e, st.env.cenv, self.shape_of(st))
        except (NeedsConcrete, NetlangError):
            # netlang validated the program; an error here is a part it never evaluates (the
            # right side of a short-circuited `or`)
            return UNKNOWN

    def _unknown_in(self, e, st) -> bool:
        cenv, shape = st.env.cenv, self.shape_of(st)

        def look(name):
            try:
                return cenv.lookup(name)
            except KeyError:
                return UNKNOWN

        def decided(test):
            """The truth of a test whose names are known, or None where it cannot be worked out."""
            try:
                return self.gen.el.truth_value(self.gen.el.eval(test, cenv, shape), test)
            except (NeedsConcrete, NetlangError):
                return None

        def walk(e) -> bool:
            t = type(e)
            if t is ast.Name:
                return _has_unknown(look(e.id))
            if t is ast.InAttr:
                return shape is None
            if t in (ast.ListExpr, ast.TupleExpr):
                return any(walk(x) for x in e.items)
            if t is ast.BinOp:
                if walk(e.left):
                    return True
                if e.op in ("and", "or") and decided(e.left) is (e.op == "or"):
                    return False            # (the right side is never evaluated)
                return walk(e.right)
            if t is ast.Unary:
                return walk(e.operand)
            if t is ast.Cond:
                if walk(e.test):
                    return True
                taken = decided(e.test)
                # the side not taken may name what is not there: elaboration never looked
                return walk(e.then) or walk(e.orelse) if taken is None else walk(e.then if taken else e.orelse)
            if t is ast.Index:
                return walk(e.obj) or walk(e.index)
            if t is ast.Call:
                if walk(e.func):
                    return True
                f = e.func
                fv = look(f.id) if type(f) is ast.Name else None
                if isinstance(fv, FuncValue):
                    return any(walk(a.value) for a in e.args)
                return False
            return False
        return walk(e)

    def access(self, b: Binding, st: St, mode: str) -> Py:
        """How code in `mode` ("init" or forward's "fwd"/"crop") reads binding b."""
        size_keys = getattr(b, "size_keys", None)
        if size_keys and mode == "init" and size_keys - self.rkeys:
            # a let holding a size, read as __init__'s constant: what shaped it is fixed too
            self.size_read(set(size_keys - self.rkeys))
        if mode == "init" or not b.py.deps:
            return b.py
        kind = b.key[0] if b.key else None
        if kind == "param" or (kind == "let" and not b.local):
            return Py(f"self.{self.store(b)}", b.py.deps)
        if kind == "loop":
            if any(id(s) == b.key[1] for s in st.loops):
                return b.py
            raise Restart(nodes={b.key[2]}, why="a loop variable forward needs outside the loop")
        if kind == "let":
            return Py(self.mirror(b), b.py.deps)
        if kind == "arg":
            return self.expr(b.expr, b.env, mode)
        return b.py

    def store(self, b: Binding) -> str:
        """An attribute holding b's value for forward (`self.stride = stride`)."""
        if id(b) not in self.stores:
            # one token per binding, wherever it is asked for (the dict keeps the binding alive)
            self.stores[id(b)] = (b, f"\x00A{id(b)}\x00")
        return self.stores[id(b)][1]

    def mirror(self, b: Binding) -> str:
        """A let bound inside a loop or conditional: forward computes it again where it is."""
        self.mirrored.add(b.key)
        return b.py.code

    # ------------------------------------------------------------------ expressions
    def expr(self, e, st: St, mode: str = "init") -> Py:
        """An I-time value expression as Python (GTimeValue where it is a layer or pipeline);
        parts that depend on nothing are written as their values."""
        try:
            py = self._expr(e, st, mode)
        except GTimeValue:
            # a plain value computed from a layer, def or pipeline (`len(layers)`): its value here
            v = self.cval(e, st)
            if v is UNKNOWN or is_gtime(v) or _has_unknown(v):
                raise
            return self.const_py(v)
        if not py.deps and type(e) in (ast.BinOp, ast.Index, ast.Call, ast.Cond, ast.Unary) \
                and not (mode != "init" and "shape[" in py.code):
            v = self.cval(e, st)
            if v is not UNKNOWN and not is_gtime(v) and isinstance(v, (bool, int, float, str, tuple, list)):
                try:
                    return self.const_py(v)
                except (NeedsConcrete, GTimeValue):
                    pass
        return py

    def _expr(self, e, st: St, mode: str = "init") -> Py:
        t = type(e)
        if t is ast.Const:
            return self.const_py(e.value)
        if t is ast.Name:
            b = self.lookup(e.id, st.env)
            if b.py is None:
                raise GTimeValue()
            return self.access(b, st, mode)
        if t in (ast.ListExpr, ast.TupleExpr):
            items = [self.expr(x, st, mode) for x in e.items]
            deps = frozenset().union(*(i.deps for i in items)) if items else frozenset()
            inner = ", ".join(i.code for i in items)
            if t is ast.ListExpr:
                return Py(f"[{inner}]", deps)
            return Py(f"({inner},)" if len(items) == 1 else f"({inner})", deps)
        if t is ast.BinOp:
            return self.binop(e, st, mode)
        if t is ast.Unary:
            a = self.expr(e.operand, st, mode)
            if e.op == "not":
                return Py(f"not {a.at(P_NOT)}", a.deps, P_NOT)
            return Py(f"{e.op}{a.at(P_UNARY)}", a.deps, P_UNARY)
        if t is ast.Cond:
            c = self.expr(e.test, st, mode)
            if not c.deps:
                vc = self.cval(e.test, st)
                if vc is not UNKNOWN:
                    return self.expr(e.then if self.gen.el.truth_value(vc, e.test) else e.orelse, st, mode)
            try:
                a, b = self.expr(e.then, st, mode), self.expr(e.orelse, st, mode)
            except NeedsConcrete:
                # a side this call does not take names what is not there (elaboration never
                # looked): the test becomes this call's constant, and only the side taken is written
                if not self.concrete or not c.deps - self.rkeys:
                    raise
                raise Restart(keys=c.deps - self.rkeys, why="a conditional whose other side cannot be written") from None
            return Py(f"{a.at(P_OR)} if {c.at(P_OR)} else {b.at(P_IF)}", a.deps | b.deps | c.deps, P_IF)
        if t is ast.Index:
            o, i = self.expr(e.obj, st, mode), self.expr(e.index, st, mode)
            return Py(f"{o.at(P_POSTFIX)}[{i.code}]", o.deps | i.deps, P_POSTFIX)
        if t is ast.InAttr:
            return self.in_attr(e, st, mode)
        if t is ast.Call and type(e.func) is ast.Name:
            fb = self.lookup(e.func.id, st.env)
            if isinstance(fb.value, DefValue) and not block_def(fb.value):
                return self.value_call(e, fb.value, st, mode)
            if isinstance(fb.value, FuncValue):
                args = [self.expr(a.value, st, mode) for a in e.args]
                deps = frozenset().union(*(a.deps for a in args)) if args else frozenset()
                inner = ", ".join(a.code for a in args)
                name = fb.value.name
                if name in FOLDED_FUNCS:
                    return self.folded(e, deps, st, f"{name}(…) is worked out when the source is written")
                if name == "range":
                    return Py(f"list(range({inner}))", deps, P_POSTFIX)
                if name == "sum" and len(args) > 1:
                    return Py(f"sum(({inner}))", deps, P_POSTFIX)
                return Py(f"{name}({inner})", deps, P_POSTFIX)
        raise GTimeValue()

    def value_call(self, e, dv, st, mode) -> Py:
        """A value function's call (`make_divisible(32 * width)`): the generated source holds its
        value, so what its arguments and the input's size read becomes this class's constant."""
        v = self.cval(e, st)
        if v is UNKNOWN or is_gtime(v):
            raise GTimeValue()      # a def that places layers
        deps = frozenset()
        for a in e.args:
            deps |= self.expr(a.value, st, mode).deps
        for node in _in_attrs(dv) if st.cur is not None else ():
            deps |= self.in_attr(node, st, "init").deps
        return self.folded(e, deps, st, f"def {dv.name} is worked out when the source is written")

    def folded(self, e, deps, st, why: str) -> Py:
        left = deps - self.rkeys
        if left:
            raise Restart(keys=left, why=why)
        v = self.cval(e, st)
        if v is UNKNOWN:
            raise NeedsConcrete(why)
        return self.const_py(v)

    def binop(self, e, st, mode) -> Py:
        a = self.expr(e.left, st, mode)
        try:
            b = self.expr(e.right, st, mode)
        except NeedsConcrete:
            # `in.channels > 4 or in.height != 5` on a vector: netlang stops at the left side,
            # the right one has no meaning here; the left side becomes this class's constant
            va = self.cval(e.left, st) if e.op in ("and", "or") else UNKNOWN
            if va is UNKNOWN or bool(va) != (e.op == "or"):
                raise
            if a.deps:
                raise Restart(keys=a.deps, why="a condition that stops early") from None
            return a
        deps = a.deps | b.deps
        op = e.op
        if op in ("and", "or"):
            prec = P_AND if op == "and" else P_OR
            if not a.deps:
                va = self.cval(e.left, st)
                if va is not UNKNOWN and isinstance(va, bool):
                    # `true and x` is x, `false and x` is false (and likewise for or)
                    return b if (va if op == "and" else not va) else a
            return Py(f"{a.at(prec)} {op} {b.at(prec + 1)}", deps, prec)
        if op in ("==", "!="):
            va, vb = self.cval(e.left, st), self.cval(e.right, st)
            plain = (va is not UNKNOWN and vb is not UNKNOWN
                     and isinstance(va, bool) == isinstance(vb, bool))
            if not plain:
                # netlang: a boolean never equals a number (Python's True == 1)
                self.gen.helpers.add("same_value")
                code = f"same_value({a.code}, {b.code})"
                return Py(code if op == "==" else f"not {code}", deps, P_POSTFIX if op == "==" else P_NOT)
            return Py(f"{a.at(P_CMP + 1)} {op} {b.at(P_CMP + 1)}", deps, P_CMP)
        if op in ("<", "<=", ">", ">="):
            return Py(f"{a.at(P_CMP + 1)} {op} {b.at(P_CMP + 1)}", deps, P_CMP)
        prec = P_ADD if op in ("+", "-") else P_MUL
        return Py(f"{a.at(prec)} {op} {b.at(prec + 1)}", deps, prec)

    def in_attr(self, e, st, mode) -> Py:
        cur = st.cur
        if e.attr == "channels":
            if mode == "init" or cur.var is None:
                return cur.chan
            # (it varies with what shaped the width: `in.channels > 1 or p` is not `p`)
            return Py(f"{cur.var}.shape[1]", cur.chan.deps, P_POSTFIX)
        if mode == "crop" and cur.var is not None:
            if e.attr == "shape":
                return Py(f"tuple({cur.var}.shape[1:])", frozenset(), P_POSTFIX)
            return Py(f"{cur.var}.shape[{2 if e.attr == 'height' else 3}]", frozenset(), P_POSTFIX)
        shape = cur.shape
        if shape is None:
            raise NeedsConcrete("the input's size")
        self.reads_size(cur)
        where = self.where()
        if e.attr == "shape":
            rest = ", ".join(str(d) for d in shape[1:])
            self.note(f"in.shape is {'x'.join(map(str, shape))} here{where}")
            return Py(f"({cur.chan.code}, {rest})" if rest else f"({cur.chan.code},)", cur.chan.deps)
        if len(shape) != 3:
            raise NeedsConcrete("in.height of a vector")
        v = shape[1] if e.attr == "height" else shape[2]
        self.note(f"in.{e.attr} is {v} here{where}")
        return Py(str(v))

    def reads_size(self, cur: Val) -> None:
        """A height or width written as this call's constant: the parameters that shaped it are
        fixed too."""
        self.d.reads_shape = True
        self.size_read(self.free(cur.sdeps))

    def size_read(self, free: set) -> None:
        if free and self.size_reads is not None:
            self.size_reads |= free         # decided where the value is read
        elif free:
            raise Restart(keys=free, why="a size the parameters shape")

    def free(self, keys) -> set:
        """Of what a value depends on, what another call of the constructor may change: its
        parameters and input width (a let or a loop variable stands for what it reads)."""
        out, todo, seen = set(), list(keys), set()
        while todo:
            k = todo.pop()
            if k in seen:
                continue
            seen.add(k)
            if k[0] in ("param", "in"):
                out.add(k)
            elif k[0] == "loop":
                todo.extend(self.loop_reads.get(k, ()))
            elif k[0] == "round":
                self.round_reads.add(k)     # (decided where the loop ends: see loop())
        return out - self.rkeys

    def where(self) -> str:
        shape = self.gen.input_shape_of_network
        return f" (for a {'x'.join(map(str, shape))} input)" if shape else ""

    def value(self, e, st) -> Binding:
        """A value expression: its Python form (None for a layer, def or pipeline) and its
        concrete value."""
        v = self.cval(e, st)
        if v is not UNKNOWN and is_gtime(v):
            self.resolve_choice(e, st)
            return Binding(None, v)
        try:
            py = self.expr(e, st)
        except GTimeValue:
            if v is UNKNOWN:
                raise NeedsConcrete("a pipeline value here") from None
            self.resolve_choice(e, st)
            return Binding(None, v)
        return Binding(py, v)

    def resolve_choice(self, e, st) -> None:
        """A layer, def or pipeline chosen by a condition or an index: the condition's variables
        become constants of this class."""
        deps: set = set()

        def walk(e):
            t = type(e)
            if t is ast.Cond:
                deps.update(self.expr_deps(e.test, st))
                walk(e.then)
                walk(e.orelse)
            elif t is ast.Index:
                deps.update(self.expr_deps(e.index, st))
                walk(e.obj)
            elif t in (ast.ListExpr, ast.TupleExpr):
                for x in e.items:
                    walk(x)
            elif t is ast.BinOp and e.op in ("and", "or"):
                deps.update(self.expr_deps(e, st))
        walk(e)
        if deps:
            raise Restart(keys=deps, why="a choice between layers")

    def expr_deps(self, e, st) -> frozenset:
        try:
            return self.expr(e, st).deps
        except GTimeValue:
            return frozenset()

    def truth(self, e, st) -> bool:
        v = self.cval(e, st)
        if v is UNKNOWN:
            raise NeedsConcrete("a condition")
        return self.gen.el.truth_value(v, e)

    # ================================================================== the class body
    def bind_params(self, decl, cenv: Env, env: SEnv) -> None:
        """The class's constructor parameters: each parameter of the block or network, unless
        its value is decided here (a layer, def or pipeline, or resolved)."""
        d = self.d
        taken = self.locals_i
        params = list(decl.params)
        pynames, in_name = python_params(decl)
        taken.update(pynames.values())
        taken.add(in_name)
        for i, p in enumerate(params):
            v = cenv.vars.get(p.name, UNKNOWN)
            key = ("param", p.name)
            if is_gtime(v) or key in self.rkeys:
                if _has_unknown(v):
                    raise NeedsConcrete(f"parameter {p.name}")
                # a fixed parameter that took its default no longer follows the parameters the
                # default reads (`w=width + 1`): they are fixed too
                reads = self.default_reads(p, params[:i], cenv, v) - self.rkeys
                if reads:
                    raise Restart(keys=reads, why="what the default of a fixed parameter reads")
                d.resolved[p.name] = v
                env.vars[p.name] = Binding(None if is_gtime(v) else self.const_py(v), v, key)
                continue
            name = pynames[p.name]
            env.vars[p.name] = Binding(Py(name, frozenset({key})), v, key)
            d.params.append([name, p, None])
        d.in_name = in_name

    def default_reads(self, p, earlier, cenv: Env, v) -> set:
        """The earlier parameters p's default reads, where p may have taken its default (its
        value is what the default gives); none where the call gave p another value."""
        names = {q.name for q in earlier}
        reads = {("param", n.id) for n in ast.walk(p.default) if type(n) is ast.Name and n.id in names} \
            if p.default is not None else set()
        if not reads:
            return reads
        try:
            d = self.gen.el.eval(p.default, Env(cenv.parent, {q: cenv.vars[q] for q in names if q in cenv.vars}), None)
        except (NetlangError, NeedsConcrete, KeyError):
            return set()        # not evaluable here (it reads in.*, or is not netlang): as before
        same = type(d) is type(v) and d == v if isinstance(v, (bool, int, float, str, list, tuple)) else d is v
        return reads if same else set()

    def write_defaults(self, decl, st: St) -> None:
        """Python defaults: literals stay in the signature, others are computed in __init__
        (each where only the parameters before it are bound, as netlang evaluates it)."""
        order = [p.name for p in decl.params]
        full = st
        for entry in self.d.params:
            name, p, _ = entry
            if p.default is None:
                continue
            earlier = order[:order.index(p.name)]
            cenv = Env(full.env.cenv.parent, {q: full.env.cenv.vars[q] for q in earlier if q in full.env.cenv.vars})
            st = replace(full, env=SEnv(cenv, {q: full.env.vars[q] for q in earlier if q in full.env.vars}))
            self.gen.senv_of[id(cenv)] = (self, st.env)
            code = self.literal_default(p.default, st)
            if code is not None:
                entry[2] = code
                continue
            entry[2] = "None"
            try:
                b = self.value(p.default, st)
            except NeedsConcrete:
                raise Restart(keys={("param", p.name)}, why="a default not written in Python") from None
            if b.py is None:
                raise Restart(keys={("param", p.name)}, why="a default that is a layer")
            self.iline(f"if {name} is None:")
            self.init.add(f"{name} = {b.py.code}", self.ii + 1)

    def literal_default(self, e, st):
        t = type(e)
        if t is ast.Const:
            return lit(e.value)
        if t is ast.Unary and e.op == "-" and type(e.operand) is ast.Const and isinstance(e.operand.value, (int, float)):
            return f"-{lit(e.operand.value)}"
        if t in (ast.ListExpr, ast.TupleExpr):
            parts = [self.literal_default(x, st) for x in e.items]
            if any(p is None for p in parts):
                return None
            inner = ", ".join(parts)
            if t is ast.ListExpr:
                return f"[{inner}]"
            return f"({inner},)" if len(parts) == 1 else f"({inner})"
        if t is ast.Name and e.id not in st.env.vars:
            try:
                b = self.lookup(e.id, SEnv(st.env.cenv.parent if st.env.cenv.parent else st.env.cenv))
            except NeedsConcrete:
                return None
            if b.py is not None and (isinstance(b.value, BlockValue) or block_def(b.value)):
                return b.py.code
        return None

    # ================================================================== the walk
    def body_class(self, decl, cenv: Env, in_shape, in_rank: int = 3) -> None:
        d = self.d
        env = SEnv(cenv)
        self.gen.senv_of[id(cenv)] = (self, env)
        self.bind_params(decl, cenv, env)
        scope = Scope("seq" if self.form == "seq" else "graph", "self")
        self.locals_f.add("x")
        self.chain_vars.add("x")
        if d.kind == "block":
            rank = d.in_rank = len(in_shape) if in_shape else in_rank
            key = ("in",)
            d.in_fixed = key in self.rkeys and bool(in_shape)
            chan = self.const_py(in_shape[0]) if d.in_fixed else Py(d.in_name, frozenset({key}))
            cur = Val("x" if scope.form == "graph" else None, chan, rank, in_shape)
        else:
            cur = None
        st = St(cur, scope, env, {})
        self.write_defaults(decl, st)
        self.init.add(Lazy(self.param_stores, "<stores>"), self.ii)
        self.root = scope
        st = self.stmts(decl.body, st)
        d.out = st.cur
        d.outputs = getattr(self, "outputs", None)
        d.returns_fresh = bool(st.cur and st.cur.fresh and st.cur.var != "x")

    def param_stores(self) -> list[str]:
        out = []
        for b, token in self.stores.values():
            if b.key and b.key[0] == "param":
                out.append(f"self.{token} = {b.py.code}")
        return out

    def stmts(self, stmts, st: St) -> St:
        for s in stmts:
            t = type(s)
            mark = self.group_start(st)
            if t is ast.Let:
                st = self.stmt_let(s, st)
            elif t is ast.If and _only_init(s):
                pass                # (a conditional init rule: evaluated with the rest, see below)
            elif t is ast.If:
                st = self.stmt_if(s, st)
            elif t is ast.For:
                st = self.stmt_for(s, st)
            elif t is ast.InputStmt:
                st = self.stmt_input(s, st)
            elif t is ast.OutputStmt:
                self.stmt_output(s, st)
            elif t is ast.InitStmt:
                pass                # (the network's rules, evaluated, are init_weights' argument)
            else:
                st = replace(st, cur=self.emit(s, st))
            self.group_end(mark, st)
        return st

    # forward lines per top-level statement of a network, for the auxiliary heads
    def group_start(self, st):
        if st.top and self.d.kind == "network" and not self.in_group:
            self.in_group = True
            self.fwd.add("\x03[", self.fi)
            return True
        return None

    def group_end(self, mark, st):
        if mark is not None:
            self.in_group = False
            self.fwd.add("\x03]", self.fi)

    # ------------------------------------------------------------------ statements
    def stmt_let(self, s: ast.Let, st: St) -> St:
        # a size it reads counts where the let is read (forward reads its own copy)
        outer, self.size_reads = self.size_reads, set()
        try:
            b = self.value(s.value, st)
        finally:
            size_keys, self.size_reads = frozenset(self.size_reads), outer
        st.env.cenv.vars[s.name] = b.value
        key = ("let", id(s))
        if b.py is None:
            if st.inside:
                raise Restart(nodes={st.inside[-1]}, why="a let of a layer inside a conditional")
            st.env.vars[s.name] = Binding(None, b.value, key)
            return st
        local = self.let_local(s.name)
        self.let_rebinds(local, b.py.deps | {key}, st)
        if key in self.rkeys:
            # its uses read the constant; the local is still assigned, as a later let of the name
            # may read it where this call's values do not reach
            const = self.const_py(b.value)
            self.iline(f"{local} = {const.code}")
            st.env.vars[s.name] = binding = Binding(const, b.value, key)
            binding.size_keys = size_keys
            return st
        self.iline(f"{local} = {b.py.code}")
        spatial = self.follows_input(s.value, st)
        binding = Binding(Py(local, b.py.deps | {key}), b.value, key, local=not st.top or spatial, expr=s.value,
                          env=replace(st, env=_snapshot(st.env)))
        binding.spatial = spatial
        binding.size_keys = size_keys
        st.env.vars[s.name] = binding
        self.init.add(Lazy(lambda b=binding, local=local: self.let_store(b, local), "<store>"), self.ii)
        self.fwd.add(Lazy(lambda b=binding, local=local: self.let_mirror(b, local), f"<let {local}>"), self.fi)
        return st

    def follows_input(self, e, st) -> bool:
        """Does e read the input's size (in.shape, in.height, in.width), itself or through a let?"""
        found = False

        def walk(e):
            nonlocal found
            if isinstance(e, ast.InAttr) and e.attr != "channels":
                found = True
            elif isinstance(e, ast.Name):
                b = st.env.find(e.id)
                if b is not None and getattr(b, "spatial", False):
                    found = True
            elif isinstance(e, (list, tuple)):
                for x in e:
                    walk(x)
            elif isinstance(e, ast.Node) and not isinstance(e, (ast.Pipe, ast.Merge, ast.Labelled)):
                for f in e.__dataclass_fields__:
                    v = getattr(e, f)
                    if isinstance(v, (ast.Node, list, tuple)):
                        walk(v)
        walk(e)
        return found

    def let_local(self, name: str) -> str:
        if not hasattr(self, "_let_names"):
            self._let_names = {}
        if name not in self._let_names:
            self._let_names[name] = py_ident(name, self.locals_i | self.locals_f, "v")
        local = self._let_names[name]
        self.locals_i.add(local)
        self.locals_f.add(local)
        return local

    def let_rebinds(self, local: str, deps, st: St) -> None:
        """A let that assigns its local again while a width written with the local's old value
        is still to be read (`let m = 4; conv(m); let m = 8; conv(m)`, or a loop's incoming
        width): the old let is resolved, with what it reads."""
        owner = self.let_owner.get(local)
        self.let_owner[local] = deps
        if owner is None:
            return
        pat = re.compile(rf"(?<![\w.'\"]){re.escape(local)}\b")
        live = [v.chan.code for v in (st.cur, *st.body.values()) if isinstance(v, Val) and v.chan is not None]
        if any(pat.search(code) for code in live + self.live_chans) and owner - self.rkeys:
            raise Restart(keys=owner - self.rkeys, why="a let assigned again while its old value is read")

    def let_store(self, b, local):
        if id(b) in self.stores:
            return [f"self.{self.stores[id(b)][1]} = {local}"]
        return []

    def let_mirror(self, b, local):
        if b.key not in self.mirrored:
            return []
        return [f"{local} = {self.expr(b.expr, b.env, 'crop').code}"]

    def stmt_input(self, s, st: St) -> St:
        # the input's shape is this network's: a parameter it reads is fixed with it
        try:
            reads = self.expr(s.shape, st).deps - self.rkeys
        except (NeedsConcrete, GTimeValue):
            reads = set()
        if reads:
            raise Restart(keys=reads, why="the input's shape")
        shape = self.gen.input_shape_of_network
        rank = len(shape)
        self.d.in_shape = shape
        return replace(st, cur=Val("x", Py(str(shape[0])), rank, shape))

    def stmt_output(self, s, st: St) -> None:
        if st.inside:
            raise Restart(nodes=set(st.inside), why="output inside a conditional")
        self.facts_chain = False
        self.outputs = [self.resolve_ref(r, st) for r in s.refs]
        self.output_aux = list(s.aux or (False,) * len(s.refs))

    def stmt_if(self, s: ast.If, st: St) -> St:
        test = self.expr(s.test, st)
        if self.resolved(s, test) or not test.deps:
            if not self.concrete:
                raise NeedsConcrete("a resolved conditional on a branch not taken")
            if test.deps:
                self.note(f"resolved for this network: `if` at line {s.loc.line} takes its "
                          f"{'first' if self.truth(s.test, st) else 'other'} branch")
            chosen = s.then if self.truth(s.test, st) else (s.orelse or ())
            return self.stmts(chosen, st)
        return self.branches(s, test, s.test, lambda st2: self.stmts(s.then, st2),
                             lambda st2: self.stmts(s.orelse or (), st2), st, statement=True)

    def stmt_for(self, s: ast.For, st: St) -> St:
        b = self.value(s.iter, st)
        if b.py is None or self.resolved(s, b.py):
            if not self.concrete:
                raise NeedsConcrete("an unrolled loop on a branch not taken")
            return self.unroll(s, b.value, st)
        return self.loop(s, s.var, b, lambda st2: self.stmts(s.body, st2), st, iter_expr=s.iter)

    def resolved(self, node, reads: Py) -> bool:
        """Is this conditional or loop resolved for this network? Then what it reads (parameters,
        lets, the input's width) becomes constant too: a constructor never takes an argument its
        body would ignore."""
        if id(node) not in self.rnodes:
            return False
        left = reads.deps - self.rkeys
        if left:
            raise Restart(keys=left, why="what a resolved construct reads")
        return True

    def unroll(self, s, seq, st: St) -> St:
        if not isinstance(seq, (list, tuple)):
            raise NeedsConcrete("a loop over an unknown list")
        key = ("loop", id(s), s)
        saved = self.ctx_path
        for i, v in enumerate(seq):
            st.env.cenv.vars[s.var] = v
            py = None if is_gtime(v) else self.const_py(v)
            st.env.vars[s.var] = Binding(py, v, key)
            self.ctx_path = saved + ((id(s), i),)
            try:
                st = self.stmts(s.body, st)
            finally:
                self.ctx_path = saved
        return st

    # ------------------------------------------------------------------ output redirection
    def capture(self):
        """Send __init__ and forward lines to fresh buffers; the returned function restores the
        old ones and gives the captured (init, fwd)."""
        saved = (self.init, self.fwd, self.ii, self.fi, self.notes)
        self.init, self.fwd, self.ii, self.fi, self.notes = Lines(), Lines(), 0, 0, []

        def restore():
            out = (self.init, self.fwd)
            self.init, self.fwd, self.ii, self.fi, self.notes = saved
            return out
        return restore

    def splice_init(self, lines: Lines, extra: int = 1) -> None:
        for n in self.notes:
            self.init.add(f"# {n}", self.ii)
        self.notes = []
        self.init.extend(lines, self.ii + extra)

    # ------------------------------------------------------------------ loops
    def loop_local(self, var: str) -> str:
        if not hasattr(self, "_loop_names"):
            self._loop_names = {}
        if var not in self._loop_names:
            name = "_" if var == "\x02" and "_" not in self.locals_i | self.locals_f else \
                py_ident("i" if var == "\x02" else var, self.locals_i | self.locals_f, "i")
            self.locals_i.add(name)
            self.locals_f.add(name)
            self._loop_names[var] = name
        return self._loop_names[var]

    def nest_check(self, node, st: St, loop: bool) -> None:
        """Python reads at most 100 levels of indentation and 20 nested loops: a conditional or
        loop past NEST_LIMIT (LOOP_LIMIT) of them is resolved for this call, with everything
        inside it, in one restart."""
        if len(st.inside) >= NEST_LIMIT or (loop and len(st.loops) >= LOOP_LIMIT):
            raise Restart(nodes=set(ast.walk(node)), why="conditionals and loops nested deeper than Python allows")

    def loop(self, node, var, b: Binding, body_fn, st: St, iter_expr=None, count_expr=None) -> St:
        """A loop kept as a loop: each round is written on its own, with the channels and the
        forward variable it carries as tokens; the rounds must come out the same."""
        self.nest_check(node, st, loop=True)
        key = ("loop", id(node), node)
        self.loop_reads[key] = b.py.deps
        local = self.loop_local(var) if var is not None else self.loop_local("\x02")
        self.gen.tokens += 1
        tc, tv = f"\x00C{self.gen.tokens}\x00", f"\x00V{self.gen.tokens}\x00"
        cur = st.cur
        start = st.scope.count
        inside = st.inside + (node,)
        seq = b.value
        rounds = list(seq) if (self.concrete and isinstance(seq, (list, tuple))) else None
        runs = rounds if rounds else [UNKNOWN]
        records = []
        deltas = []
        shape = cur.shape
        out = st
        was = self.concrete
        # the variable the rounds carry: the value before the loop's, or (when that one must
        # live on) a new one chosen now; nothing else in a round may take either name
        spare = self.chain_var(st) if cur.var is not None and cur.var in self.pins else None
        self.pin(cur.var)
        self.pin(spare)
        real_env = st.env
        numbered0 = st.scope.numbered
        self.live_chans.append(cur.chan.code)
        # a round's input has the size the rounds before it left: where a round reads it and
        # the rounds change it, how many rounds run shapes what the source says
        marker = ("round", id(node))
        self.round_reads.discard(marker)
        round_sizes = []
        for v in runs:
            symbolic = v is UNKNOWN
            # a round no call runs must not touch this call's values
            st = replace(st, env=_clone_env(real_env, self.gen) if symbolic else real_env)
            if var is not None:
                st.env.cenv.vars[var] = v
                st.env.vars[var] = Binding(Py(local, frozenset({key})), v, key, local=True)
            restore = self.capture()
            self.concrete = was and not symbolic
            expansions0 = dict(self.expansions)
            count0 = st.scope.count
            dyn0 = st.scope.dynamic
            if symbolic:
                st.scope.dynamic = node
            try:
                rank = len(shape) if (shape and not symbolic) else cur.rank
                inner = replace(st, cur=Val(tv if cur.var is not None else None, Py(tc, cur.chan.deps), rank,
                                            None if symbolic else shape, tail=cur.tail,
                                            sdeps=cur.sdeps | {marker} |
                                            (records[-1][3].sdeps if records else frozenset())),
                                top=False, loops=st.loops + (node,), inside=inside)
                self.overwritten.discard(tv)
                out = body_fn(inner)
            except NeedsConcrete:
                if not symbolic or not was:
                    raise
                # a loop this call runs no round of, whose body needs values: unrolled (to nothing)
                raise Restart(nodes={node}, keys=b.py.deps, why="a loop with no round here") from None
            finally:
                self.concrete = was
                li, lf = restore()
                self.expansions = expansions0
            deltas.append(st.scope.count - count0)
            if symbolic:
                st.scope.count, st.scope.dynamic = count0, dyn0
            oc = out.cur
            text = (self.norm_refs(li.flat()), self.norm_refs(lf.flat()), self.norm_refs(oc.chan.code), oc.var,
                    oc.rank, 0)
            records.append((text, li, lf, oc, tv in self.overwritten, _ref_ids(li.flat() + lf.flat() + oc.chan.code)))
            round_sizes.append((_size(shape), _size(oc.shape)))
            shape = oc.shape
        self.live_chans.pop()
        self.unpin(cur.var)
        self.unpin(spare)
        if marker in self.round_reads and any(a != b_ for a, b_ in round_sizes):
            keys = self.free(b.py.deps)
            if keys:
                raise Restart(keys=keys, why="a size read in a loop whose rounds change it")
        first = records[0]
        named_by_index = st.scope.numbered != numbered0 and st.scope.form == "graph"
        if any(r[0] != first[0] for r in records[1:]) or (named_by_index and b.py.deps):
            # (modules named '7', '8', ... by their place: another count would need other names)
            if self.form == "graph" and self.d.kind == "block" and self.facts_chain and self.facts_numbered:
                # numbered modules named round by round: an nn.Sequential appends them instead
                raise UseSequential()
            raise Restart(nodes={node}, why="the rounds of a loop differ")
        # the first round's source stands for every round: its class references stand for the
        # classes of every round's calls
        for r in records[1:]:
            for mine, theirs in zip(first[5], r[5]):
                self.d.refs[mine].drafts += [x for x in self.d.refs[theirs].drafts if x not in self.d.refs[mine].drafts]
                if self.d.refs[mine].node is None:
                    self.d.refs[mine].node = node
        first = first[:5]
        (_, _, ochan, ovar, orank, per_round), li, lf, oc, overwritten = first
        # the channels it carries
        if ochan != tc and ochan != cur.chan.code:
            c = self.node_local(node, "c")
            self.iline(f"{c} = {cur.chan.code}")
            li.add(f"{c} = {ochan}")
            self.subst[tc] = c
            chan = Py(c, cur.chan.deps | b.py.deps)
        else:
            self.subst[tc] = cur.chan.at(P_POSTFIX)
            chan = cur.chan
        header = f"for {local} in {_iter_code(b.py.code)}:" + ("\x01" if var is None else "")
        self.iline(header)
        self.splice_init(li)
        # forward mirrors it where its rounds compute anything
        var = cur.var
        if cur.var is not None and (len(lf) or ovar != tv):
            carried = cur.var
            if spare is not None and (overwritten or ovar != tv):
                carried = spare
                self.fline(f"{carried} = {cur.var}")
            self.subst[tv] = carried
            if ovar != tv:
                lf.add(f"{carried} = {ovar}")
            if carried.startswith("\x00V"):
                self.overwritten.add(carried)       # an outer loop's variable, written here
            fiter = self.expr(iter_expr, st, "fwd").code if iter_expr is not None else \
                f"range({self.expr(count_expr, st, 'fwd').code})"
            self.fline(f"for {local} in {_iter_code(fiter)}:" + ("\x01" if var is None else ""))
            self.fwd.extend(lf, self.fi + 1)
            var = carried
        else:
            self.subst[tv] = cur.var or ""
            if cur.var is None and len(lf):
                # inside an nn.Sequential nothing of forward is written: the round's lets too
                self.subst[tv] = ""
        st.scope.count = start + (sum(deltas) if rounds else 0)
        if (len(set(deltas)) > 1 or (deltas[0] and b.py.deps)) or (not rounds and deltas[0]):
            st.scope.dynamic = node
        fresh = False
        sdeps = cur.sdeps | (oc.sdeps - {marker})
        if oc.sdeps - {marker} or any(r[3].shape != cur.shape for r in records) or not rounds:
            sdeps |= b.py.deps      # how many rounds run shapes it
        return replace(out, cur=Val(var, chan, orank, out.cur.shape if rounds else cur.shape, fresh, oc.saves,
                                    sdeps=sdeps),
                       top=st.top, loops=st.loops, inside=st.inside, env=real_env)

    # ------------------------------------------------------------------ conditionals
    def branches(self, node, test: Py, test_expr, then_fn, else_fn, st: St, statement: bool = False) -> St:
        """A conditional kept as one: the taken branch written as this call takes it, the other
        written without concrete values (a branch that needs them resolves the conditional)."""
        self.nest_check(node, st, loop=False)
        taken = self.truth(test_expr, st) if self.concrete else None
        inside = st.inside + (node,)
        start, dyn0 = st.scope.count, st.scope.dynamic
        # forward's test, read where the test stands (a branch may rebind its names); the
        # attributes it would store are kept only if forward needs the test
        stores0, mirrored0 = dict(self.stores), set(self.mirrored)
        try:
            early_ftest = self.expr(test_expr, st, "fwd")
        except (NeedsConcrete, GTimeValue, Restart) as err:
            early_ftest = err
        fstores, fmirrored = self.stores, self.mirrored
        self.stores, self.mirrored = stores0, mirrored0
        refs0 = dict(st.body)
        results, shapes = {}, {}
        was = self.concrete
        for which, fn in ((True, then_fn), (False, else_fn)):
            concrete = was and taken is which
            env = st.env if concrete else _clone_env(st.env, self.gen)
            body = st.body if concrete else dict(refs0)
            restore = self.capture()
            self.concrete = concrete
            st.scope.count, st.scope.dynamic = start, dyn0
            cur = st.cur if concrete or st.cur is None else replace(st.cur, shape=None)
            try:
                out = fn(replace(st, cur=cur, env=env, body=body, top=False, inside=inside))
            except NeedsConcrete:
                if concrete or not was:
                    raise
                raise Restart(nodes={node}, keys=test.deps, why="a branch that needs this call's values") from None
            finally:
                self.concrete = was
                li, lf = restore()
            results[which] = (li, lf, out, st.scope.count, st.scope.dynamic)
            # a branch that leaves the value as it is keeps its size (whatever its values)
            shapes[which] = st.cur.shape if out.cur is cur else out.cur.shape if concrete else None
        (ti, tf, tout, tcount, tdyn), (ei, ef, eout, ecount, edyn) = results[True], results[False]
        pick = tout if taken is not False else eout
        st.scope.count = tcount if taken is not False else ecount
        st.scope.dynamic = tdyn or edyn or (node if tcount != ecount else dyn0)
        tc, ec = tout.cur, eout.cur
        cur = st.cur
        if tc is not None and ec is not None:
            if tc.rank != ec.rank:
                raise Restart(nodes={node}, keys=test.deps, why="branches give a map and a vector")
            if tc.chan.code != ec.chan.code:
                c = self.node_local(node, "c")
                ti.add(f"{c} = {tc.chan.code}")
                ei.add(f"{c} = {ec.chan.code}")
                chan = Py(c, tc.chan.deps | ec.chan.deps | test.deps)
            else:
                chan = tc.chan
            var = tc.var
            if tc.var != ec.var:
                # (also where neither writes a line: a branch that only refers to a value)
                var = tc.var if tc.var not in self.pins and tc.var is not None else self.chain_var(st)
                if tc.var != var:
                    tf.add(f"{var} = {tc.var}")
                if ec.var != var:
                    ef.add(f"{var} = {ec.var}")
                if var.startswith("\x00V"):
                    self.overwritten.add(var)
            same_fwd = tf.flat() == ef.flat()
            shape = pick.cur.shape if was else None
            cur = Val(var, chan, tc.rank, shape, tc.fresh and ec.fresh, tc.saves or ec.saves,
                      sdeps=tc.sdeps | ec.sdeps | (frozenset() if shapes[True] is not None and shapes[True] == shapes[False]
                                                   else test.deps))
        else:
            same_fwd = tf.flat() == ef.flat()
        # __init__
        if len(ti) or len(ei):
            if len(ti):
                self.iline(f"if {test.code}:")
                self.splice_init(ti)
                if len(ei):
                    self.iline("else:")
                    self.splice_init(ei)
            else:
                self.iline(f"if not {test.at(P_NOT)}:")
                self.splice_init(ei)
        # forward
        if len(tf) or len(ef):
            if same_fwd:
                self.fwd.extend(tf, self.fi)
            else:
                if isinstance(early_ftest, Exception):
                    raise early_ftest
                ftest = early_ftest
                self.stores.update(fstores)
                self.mirrored |= fmirrored
                if len(tf):
                    self.fline(f"if {ftest.code}:")
                    self.fwd.extend(tf, self.fi + 1)
                    if len(ef):
                        self.fline("else:")
                        self.fwd.extend(ef, self.fi + 1)
                else:
                    self.fline(f"if not {ftest.at(P_NOT)}:")
                    self.fwd.extend(ef, self.fi + 1)
        return replace(pick, cur=cur, env=st.env, body=st.body, top=st.top, inside=st.inside, loops=st.loops)


SAME_SIZE = {"batchnorm", "layernorm", "layer_scale", "lrn", "relu", "relu6", "tanh", "sigmoid", "softmax", "identity",
             "scale", "dropout", "drop_path", "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "prelu",
             "mish", "softplus", "log_softmax", "channel_shuffle"}


def _names(expr) -> set:
    """The names an expression mentions, at any depth."""
    return {n.id for n in ast.walk(expr) if type(n) is ast.Name}


def _size(shape) -> tuple | None:
    """The height and width of a shape (a vector's length)."""
    return None if shape is None else tuple(shape[1:]) if len(shape) == 3 else tuple(shape)


def _layer_sdeps(name: str, a: dict, cur: Val, rank: int) -> frozenset:
    """What a layer's output height and width depend on (see Val.sdeps)."""
    if rank != 3 or name == "global_avgpool":
        return frozenset()
    if name == "adaptive_avgpool":
        return frozenset().union(*(v.deps for v in a.values()))
    if name in SAME_SIZE:
        return cur.sdeps
    return cur.sdeps.union(*(v.deps for k, v in a.items() if k not in ("out", "groups", "bias")))


def inplace_done(name, cur, var) -> bool:
    return name in INPLACE and var == cur.var


def _closed_form(child, parts: list, args, names) -> Py | None:
    """The width a block call gives, written from the call's own arguments where the block's
    class states it in terms of its parameters (`BasicConv(c, 64, 3)` gives 64)."""
    code = child.out.chan.code
    values = {child.in_name: parts[0]}
    pyname = {p.name: py for py, p, _ in child.params}
    given = {}
    for i, a in enumerate(args):
        pname = a.name if a.name is not None else (names[i] if names and i < len(names) else None)
        if pname in pyname:
            given[pyname[pname]] = i
    keyword_parts = {}
    for part in parts[1:]:
        k, eq, v = part.partition("=")
        if eq and k.isidentifier():
            keyword_parts[k] = v
    positional = [p for p in parts[1:] if not (p.partition("=")[1] and p.partition("=")[0].isidentifier())]
    for j, (py, p, default) in enumerate(child.params):
        if py in keyword_parts:
            values[py] = keyword_parts[py]
        elif j < len(positional):
            values[py] = positional[j]
        elif default is not None and default != "None":
            values[py] = default
    toks = _tokens(code)
    if toks is None:
        return None
    out = []
    for name, text in toks:
        if name:
            if text not in values:
                return None
            v = values[text]
            out.append(v if v.isidentifier() or v.isdigit() else f"({v})")
        else:
            out.append(text)
    text = " ".join(out) if len(out) > 1 else (out[0] if out else "")
    text = text.replace("( ", "(").replace(" )", ")")
    if not text or "[-1]" in text:
        return None         # (a width read off a sequence's last module is stale once it grows)
    return Py(text, frozenset(), P_ATOM if len(out) == 1 else P_ADD)


@functools.lru_cache(maxsize=4096)
def _tokens(code: str) -> tuple | None:
    """The names and operators of a width expression, in order ((is_name, text), ...); None where
    it holds anything else (a string, a call's keyword...)."""
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, IndentationError):
        return None
    out = []
    for t in toks:
        if t.type == tokenize.NAME:
            out.append((True, t.string))
        elif t.type in (tokenize.NUMBER, tokenize.OP):
            out.append((False, t.string))
        elif t.type not in (tokenize.NEWLINE, tokenize.ENDMARKER, tokenize.NL):
            return None
    return tuple(out)


def _ref_ids(text: str) -> list[int]:
    return [int(m) for m in CLASS_REF.findall(text)]


def _iter_code(code: str) -> str:
    if code.startswith("list(range(") and code.endswith("))"):
        return code[5:-1]
    return code


def _snapshot(env: SEnv) -> SEnv:
    return SEnv(env.cenv, dict(env.vars), env.parent, env.foreign)


def _clone_env(env: SEnv, gen) -> SEnv:
    """The environment of a branch not taken: its lets must not reach the taken path."""
    cenv = Env(env.cenv.parent, dict(env.cenv.vars))
    clone = SEnv(cenv, dict(env.vars), env.parent, env.foreign)
    owner = gen.senv_of.get(id(env.cenv))
    if owner is not None:
        gen.senv_of[id(cenv)] = (owner[0], clone)
    return clone


@dataclass(frozen=True)
class Seg:
    """One part of a module's name: a label (plain or templated) or a number."""
    text: str | None            # its concrete text, where known
    code: str                   # Python source of the name as a string ("'conv1'", "f'layer{i}'")
    attr: str | None = None     # the attribute it can be written as (an identifier), if any
    number: int | None = None
    hint: str | None = None     # the name a variable holding it takes (a template's fixed text)
    fcode: str | None = None    # the name as forward computes it (a template's names read there)
    key: object = None          # what tells two labels apart (a template by its node)


def seg_label(text: str) -> Seg:
    return Seg(text, repr(text), text if is_attr(text) else None)


def seg_number(i: int) -> Seg:
    return Seg(str(i), repr(str(i)), None, i)


class _Items:
    """Writer methods that place items (mixed into Writer below)."""

    # ------------------------------------------------------------------ forward variables
    def pin(self, var):
        if var is not None:
            self.pins[var] = self.pins.get(var, 0) + 1

    def unpin(self, var):
        if var is not None and var in self.pins:
            self.pins[var] -= 1
            if not self.pins[var]:
                del self.pins[var]

    def overwritable(self, v: Val) -> bool:
        """May the op reading v now write into its storage? No other op may have read that storage
        (it may have saved it for its backward) nor read it later (its variable, and the one it
        views, are not pinned)."""
        return (v.storage != 0 and self.reads.get(v.storage, 0) <= 1 and v.var not in self.pins
                and (v.alias is None or v.alias not in self.pins))

    def read(self, v: Val) -> None:
        if v is not None and v.storage:
            self.reads[v.storage] = self.reads.get(v.storage, 0) + 1

    def new_storage(self) -> int:
        self.storages += 1
        return self.storages

    def chain_var(self, st) -> str:
        base = "x" if self.d.kind == "network" else "out"
        for name in [base] + [f"{base}{i}" for i in range(2, 1000)]:
            if name in self.chain_vars and name not in self.pins:
                return name
            if name not in self.locals_f:
                self.locals_f.add(name)
                self.chain_vars.add(name)
                return name
        raise RuntimeError("netlang internal error: out of variable names")

    def node_local(self, node, base: str) -> str:
        """A local of __init__ for one AST node: the same name in every round of a loop."""
        if not hasattr(self, "_node_names"):
            self._node_names = {}
        key = (id(node), base, self.ctx_path)
        if key not in self._node_names:
            self._node_names[key] = py_ident(base, self.locals_i, "v")
            self.chan_locals.add(self._node_names[key])
        return self._node_names[key]

    def out_var(self, st, in_val: Val, seg: Seg | None = None, dedicated: bool = False) -> str:
        """The variable an item's output goes to: its label's (when others refer to it, or it ends
        a branch off a value others read), else its input's when nothing else reads that, else
        the chain's."""
        if dedicated and seg is not None and (seg.text is not None or seg.hint):
            key = (st.prefix, seg.key if seg.key is not None else seg.text)
            if key not in self.label_vars:
                self.label_vars[key] = py_ident(seg.hint or seg.text, self.locals_f, "v")
            return self.label_vars[key]
        v = in_val.var
        if v is not None and v not in self.pins and (v in self.chain_vars or v.startswith("\x00V") or v == "x"):
            if v.startswith("\x00V"):
                self.overwritten.add(v)
            return v
        return self.chain_var(st)

    # ------------------------------------------------------------------ items
    def emit(self, e, st: St) -> Val:
        t = type(e)
        if t is ast.Pipe:
            return self.emit_pipe(e, st)
        if t is ast.Labelled:
            return self.emit_labelled(e.label, e.expr, st)
        if t is ast.Ref:
            return self.resolve_ref(e, st)
        if t is ast.Merge:
            return self.emit_merge(e, st)
        if t is ast.Cond:
            return self.emit_cond(e, st)
        if t is ast.BinOp and e.op == "*":
            return self.emit_repeat(e, st)
        if t is ast.Call:
            return self.apply(self.callee(e.func, st), e.args, st, e)
        if t in (ast.Name, ast.Index):
            return self.apply(self.callee(e, st), (), st, e)
        raise NeedsConcrete("not a layer")

    def callee(self, e, st) -> Binding:
        if type(e) is ast.Name:
            return self.lookup(e.id, st.env)
        return self.value(e, st)

    def apply(self, b: Binding, args, st: St, e, name: Seg | None = None, end: bool = False) -> Val:
        v = b.value
        if isinstance(v, BlockValue) and b.py is None:
            # a block decided here: its class is the one this call gets (none without a call)
            if not self.concrete:
                raise NeedsConcrete(f"block {v.decl.name} with several classes")
            b = Binding(Py(self.ref(v.decl.name)), v)
        if b.py is not None and not isinstance(v, (OpValue, DefValue, Thunk)):
            return self.emit_block(b, args, st, e, name, end)
        if isinstance(v, DefValue) and b.key is not None and b.py is not None and block_def(v):
            # a parameter holding a def of one block call: call the function the file gives it
            return self.emit_block(b, args, st, e, name, end)
        if isinstance(v, OpValue):
            return self.emit_layer(v.op.name, args, st, e, name, end)
        if isinstance(v, DefValue):
            return self.emit_def(v, args, st, e, name, end)
        if isinstance(v, Thunk):
            saved = self.ctx_path
            self.ctx_path = saved + (id(e), self.expansion(e))
            try:
                return self.emit(v.expr, replace(st, env=self.thunk_env(v)))
            finally:
                self.ctx_path = saved
        raise NeedsConcrete("a callee not known here")

    def thunk_reads(self, value, seen=None) -> set:
        """The free keys (see free()) of the names a pipeline made in this class reads."""
        if not isinstance(value, Thunk):
            return set()
        env = self.thunk_env(value)
        seen = set() if seen is None else seen
        if env.foreign or id(value) in seen:
            return set()
        seen.add(id(value))
        out: set = set()
        for name in _names(value.expr):
            b = env.find(name)
            if b is None:
                continue
            if b.py is not None:
                out |= self.free(b.py.deps)
            else:
                out |= self.thunk_reads(b.value, seen)
        return out

    def thunk_env(self, th: Thunk) -> SEnv:
        owner = self.gen.senv_of.get(id(th.env))
        if owner is not None and owner[0] is self:
            return owner[1]
        return SEnv(th.env, foreign=True)

    def emit_pipe(self, e: ast.Pipe, st: St) -> Val:
        items = list(e.items)
        end = st.branch_end
        st = replace(st, branch_end=False)
        while items and type(items[0]) is ast.Ref:
            st = replace(st, cur=self.resolve_ref(items.pop(0), st))
        labelled = [x for x in items if type(x) is ast.Labelled]
        if len(items) > 1 and len(labelled) == 1 and items[0] is labelled[0]:
            first = items[0]
            rest = ast.Pipe(first.loc, (first.expr,) + tuple(items[1:]))
            return self.emit_labelled(first.label, rest, replace(st, branch_end=end))
        for i, item in enumerate(items):
            st = replace(st, cur=self.emit(item, replace(st, branch_end=end and i == len(items) - 1)))
        return st.cur

    def resolve_ref(self, e: ast.Ref, st: St) -> Val:
        if st.scope.form == "seq":
            raise NotAChain()
        self.facts_chain = False
        key = ".".join(e.path)
        v = st.body.get(key)
        if v is None:
            raise NeedsConcrete(f"@{key}")
        return v

    # ------------------------------------------------------------------ labels
    def label_seg(self, t: ast.Template, st: St) -> Seg:
        if t.is_plain:
            return seg_label("".join(t.parts))
        text = None
        if self.concrete:
            text = self.gen.el.label_text(t, st.env.cenv, self.shape_of(st))
        def fstring(mode):
            parts = []
            for p in t.parts:
                if isinstance(p, str):
                    parts.append(p.replace("{", "{{").replace("}", "}}"))
                    continue
                py = self.expr(p, st, mode)
                v = self.cval(p, st) if not py.deps else UNKNOWN
                if v is not UNKNOWN and isinstance(v, (int, str)) and not isinstance(v, bool):
                    parts.append(str(v).replace("{", "{{").replace("}", "}}"))
                else:
                    parts.append("{" + py.code + "}")
            body = "".join(parts)
            q = "'" if "'" not in body else '"'
            if q in body or "\\" in body:
                raise Restart(nodes=set(), keys=set().union(*(self.expr(p, st).deps for p in t.parts
                                                              if not isinstance(p, str))), why="a label template")
            return f"f{q}{body}{q}"
        code = fstring("init")
        deps = frozenset().union(*(self.expr(p, st).deps for p in t.parts if not isinstance(p, str)))
        if not deps and text is not None:
            return seg_label(text)
        hint = "".join(p for p in t.parts if isinstance(p, str)) or "v"
        fcode = fstring("fwd") if st.scope.form == "graph" else code
        return Seg(text, code, None, hint=hint, fcode=fcode, key=id(t))

    def emit_labelled(self, t: ast.Template, expr, st: St) -> Val:
        seg = self.label_seg(t, st)
        dotted = any(isinstance(p, str) and "." in p for p in t.parts)
        if dotted:
            seg, st = self.dotted_label(t, seg, st)
        parts = st.prefix + (seg.text,)
        path = ".".join(parts) if None not in parts else None
        referenced = path is not None and path in self.gen.ref_labels
        if seg.text is None and not t.is_plain:
            referenced = any(_template_match(t, r) for r in self.gen.ref_labels)
        if referenced and st.loops:
            raise Restart(nodes={st.loops[-1]}, why="a label referred to inside a loop")
        if referenced and st.scope.form == "seq":
            raise NotAChain()           # forward must hold its value: not inside an nn.Sequential
        if not dotted:                  # (a dotted label took its number where it stands)
            st.scope.place(seg.text or "?", st.nested)
        if st.scope is self.root and seg.text is not None:
            self.child_names.add(seg.text)
        val = self.build_labelled(seg, expr, st, referenced or (st.branch_end and st.cur is not None
                                                               and st.cur.var in self.pins))
        if path is not None:
            st.body[path] = val
        if referenced and val.var is not None:
            self.pin(val.var)
        return val

    def dotted_label(self, t: ast.Template, seg: Seg, st: St):
        """A label that is a module path (fpn.inner_blocks.0.0): the item is placed in the scope
        as a label is (it takes its number), and its module under nn.ModuleDict containers, one
        per part before the last, shared by every label of the scope that runs through them."""
        if seg.text is None or seg.fcode not in (None, seg.code):
            deps = frozenset().union(*(self.expr(p, st).deps for p in t.parts if not isinstance(p, str)))
            raise Restart(nodes=set(), keys=deps, why="a dotted label")
        if st.scope.form == "seq":
            raise NotAChain()           # an nn.Sequential holds its items in order, no containers
        *outer, last = seg.text.split(".")
        st.scope.place(seg.text, st.nested)
        if st.scope is self.root:
            self.child_names.add(outer[0])
        scope = st.scope
        for part in outer:
            key = (id(scope), part)
            if key not in self.containers:
                self.containers[key] = self.sub_scope(seg_label(part), replace(st, scope=scope), "dict")
            scope = self.containers[key]
        # its output's variable: the path from its last named part on (inner_blocks_3_0)
        named = max((i for i, p in enumerate(outer + [last]) if not p.isdigit()), default=0)
        hint = "_".join((outer + [last])[named:])
        return replace(seg_label(last), hint=hint), replace(st, scope=scope, prefix=st.prefix + tuple(outer))

    def item_kind(self, e, st):
        t = type(e)
        if t is ast.Pipe or (t is ast.BinOp and e.op == "*") or t is ast.Labelled:
            return ("seq",)
        if t is ast.Cond:
            return ("cond",)
        if t is ast.Merge:
            return ("merge",)
        if t in (ast.Call, ast.Name, ast.Index):
            b = self.callee(e.func if t is ast.Call else e, st)
            v = b.value
            if isinstance(v, BlockValue):
                return ("block", b)
            if b.py is not None and not isinstance(v, (OpValue, DefValue, Thunk)):
                return ("block", b)
            if isinstance(v, Thunk):
                return ("thunk", v)
            if isinstance(v, DefValue):
                return ("def1", b) if self.gen.el.is_one_layer(v, None) else ("seq",)
            if isinstance(v, OpValue):
                return ("layer", b)
        raise NeedsConcrete("what a label names")

    def build_labelled(self, seg: Seg, expr, st: St, dedicated: bool) -> Val:
        kind = self.item_kind(expr, st)
        k = kind[0]
        if k == "thunk":
            return self.build_labelled(seg, kind[1].expr, replace(st, env=self.thunk_env(kind[1])), dedicated)
        if k == "cond":
            test = self.expr(expr.test, st)
            if self.resolved(expr, test) or not test.deps:
                chosen = expr.then if self.truth(expr.test, st) else expr.orelse
                return self.build_labelled(seg, chosen, st, dedicated)
            out = self.branches(expr, test, expr.test,
                                lambda s: replace(s, cur=self.build_labelled(seg, expr.then, s, dedicated)),
                                lambda s: replace(s, cur=self.build_labelled(seg, expr.orelse, s, dedicated)), st)
            return out.cur
        args = expr.args if type(expr) is ast.Call else ()
        if k in ("layer", "block", "def1"):
            return self.apply(kind[1], args, st, expr, name=seg, end=dedicated)
        if k == "merge":
            sub = self.sub_scope(seg, st, "graph")
            out = self.emit_merge(expr, replace(st, scope=sub, prefix=st.prefix + (seg.text,), nested=False),
                                  name=seg, end=dedicated)
            self.close_scope(sub)
            return out
        return self.seq_scope(seg, expr, st, dedicated)

    # ------------------------------------------------------------------ scopes
    def child_access(self, scope: Scope, seg: Seg, fwd: bool = False) -> str:
        """How __init__ (or, with fwd, forward) reaches a child of the scope."""
        base = scope.faccess if fwd else scope.access
        if seg.attr is not None:
            return f"{base}.{seg.attr}"
        if seg.number is not None and scope.form == "seq":
            return f"{base}[{seg.number}]"
        if scope.keyed:
            return f"{base}[{seg.fcode if fwd and seg.fcode else seg.code}]"
        return f"getattr({base}, {seg.fcode if fwd and seg.fcode else seg.code})"

    def register(self, scope: Scope, seg: Seg, code: str, placed_number: bool) -> str:
        """Write the line that makes a module part of the scope; return how to reach it."""
        if scope.form == "seq":
            if placed_number:
                self.iline(f"{scope.access}.append({code})")
                scope.first = False
                return f"{scope.access}[-1]"
            self.iline(f"{scope.access}.add_module({seg.code}, {code})")
            scope.first = False
            return self.child_access(scope, seg)
        if seg.attr is not None:
            self.iline(f"{scope.access}.{seg.attr} = {code}")
        elif scope.keyed:
            self.iline(f"{scope.access}[{seg.code}] = {code}")
        else:
            self.iline(f"{scope.access}.add_module({seg.code}, {code})")
        scope.first = False
        scope.used = True
        return self.child_access(scope, seg)

    def sub_scope(self, seg: Seg, st: St, form: str) -> Scope:
        parent = st.scope
        placed = False
        code = {"seq": "nn.Sequential()", "dict": "nn.ModuleDict()"}.get(form, "nn.Module()")
        if parent.form == "seq" and form != "seq":
            raise NotAChain()
        access = self.register(parent, seg, code, placed)
        sub = Scope("graph" if form == "dict" else form, access, parent.path + (seg.text,), parent)
        sub.keyed = form == "dict"
        sub.faccess = self.child_access(parent, seg, fwd=True)
        sub.in_storage = st.cur.storage if st.cur is not None else 0
        sub.line = self.init.items[-1]
        sub.lines = self.init
        sub.start = len(self.init.items)
        sub.used = False
        return sub

    def close_scope(self, sub: Scope) -> None:
        if sub.form == "graph":
            if not getattr(sub, "used", False):
                sub.line[1] = ""
            return
        if sub.lines is not self.init:
            return
        items = self.init.items[sub.start:]
        prefix = f"{sub.access}.append("
        ind = sub.line[0]
        n = 0
        for i, t in items:
            if not (isinstance(t, str) and t.startswith(prefix) and t.endswith(")") and i == ind
                    and sub.access not in t[len(prefix):]):
                break
            n += 1
        if n:
            parts = [t[len(prefix):-1] for _, t in items[:n]]
            head, _, tail = sub.line[1].rpartition("nn.Sequential()")
            sub.line[1] = head + "nn.Sequential(" + ", ".join(parts) + ")" + tail
            del self.init.items[sub.start:sub.start + n]

    def seq_scope(self, seg: Seg, expr, st: St, dedicated: bool) -> Val:
        """A labelled sequence: an nn.Sequential where its items form a chain, otherwise a module
        holding them, with their dataflow in forward."""
        snap = self.snapshot(st)
        st = self.untail(st, expr)
        snap = self.snapshot(st)
        for form in ("seq", "graph"):
            sub = self.sub_scope(seg, st, form)
            try:
                inner_cur = replace(st.cur, var=None) if form == "seq" else st.cur
                inner = replace(st, scope=sub, prefix=st.prefix + (seg.text,), nested=False, cur=inner_cur,
                                branch_end=False)
                out = self.emit(expr, inner)
            except NotAChain:
                if form == "graph":
                    raise
                self.restore(snap, st)
                continue
            self.close_scope(sub)
            if form == "seq":
                if st.scope.form == "graph":
                    self.read(st.cur)
                    var = self.out_var(st, st.cur, seg, dedicated)
                    self.fline(f"{var} = {sub.faccess}({st.cur.var})")
                else:
                    var = None
                if out.storage == st.cur.storage:       # only views of its input: the same tensor
                    return replace(out, var=var, alias=st.cur.var, storage=st.cur.storage)
                return replace(out, var=var, alias=None, storage=self.new_storage())
            return out
        raise AssertionError("unreachable")

    def snapshot(self, st: St):
        return (len(self.init.items), len(self.fwd.items), self.init, self.fwd, dict(st.body), dict(self.pins),
                list(self.notes), st.scope.count, st.scope.dynamic, list(st.scope.tops), set(self.child_names),
                self.facts_chain, self.facts_numbered, dict(self.containers))

    def restore(self, snap, st: St) -> None:
        (ni, nf, init, fwd, body, pins, notes, count, dyn, tops, names, chain, numbered, containers) = snap
        self.containers = containers
        assert init is self.init and fwd is self.fwd
        del self.init.items[ni:]
        del self.fwd.items[nf:]
        st.body.clear()
        st.body.update(body)
        self.pins = pins
        self.notes = notes
        st.scope.count, st.scope.dynamic, st.scope.tops = count, dyn, tops
        self.child_names = names
        self.facts_chain, self.facts_numbered = chain, numbered


def _template_match(t: ast.Template, ref: str) -> bool:
    pat = "".join(re.escape(p) if isinstance(p, str) else r"[A-Za-z0-9_]+" for p in t.parts)
    return re.fullmatch(pat, ref.rpartition(".")[2]) is not None


class _Layers:
    """Writer methods for layers, blocks, defs, merges, conditionals and repetitions."""

    def layer_args(self, op, args, st: St, mode: str = "init") -> dict:
        names = [p.name for p in op.params]
        out = {}
        for pname, a in match_args(op.name, names, args, "", ""):
            if mode == "init":
                b = self.value(a.value, st)
                if b.py is None:
                    raise NeedsConcrete("a layer as a layer's argument")
                py = b.py
                raw = b.value
            else:
                py = self.expr(a.value, st, mode)
                raw = self.cval(a.value, st)
            if pname == "factor" and isinstance(raw, list) and not py.code.startswith("["):
                py = Py(f"tuple({py.code})", py.deps, P_POSTFIX)     # PyTorch takes no list here
            out[pname] = py
        return out

    def untail(self, st: St, node) -> St:
        """Before anything joins the nn.Sequential whose last module gives the current width,
        keep that width in a local (seq[-1] is about to be another module)."""
        cur = st.cur
        if cur is not None and cur.tail is not None and cur.tail == st.scope.access:
            c = self.node_local(node, "c")
            self.iline(f"{c} = {cur.chan.code}")
            return replace(st, cur=replace(cur, chan=Py(c, cur.chan.deps), tail=None))
        return st

    def emit_layer(self, name: str, args, st: St, e, seg: Seg | None = None, end: bool = False) -> Val:
        op = ops.OPS[name]
        st = self.untail(st, e)
        cur = st.cur
        # a crop's size, where forward reads it from the value it crops to, is no constant
        outer, self.size_reads = self.size_reads, set() if name == "center_crop" else self.size_reads
        try:
            a = self.layer_args(op, args, st)
        finally:
            crop_keys, self.size_reads = frozenset(self.size_reads or ()), outer
        cv, shape = None, None
        if self.concrete and cur.shape is not None:
            cv, _ = self.gen.el.bind_op(op, args, st.env.cenv, cur.shape, e.loc)
            shape = tuple(op.shape(cv, [cur.shape]))
        numbered = seg is None
        if numbered:
            idx = st.scope.place(None, st.nested)
            seg = seg_number(idx)
        scope = st.scope
        # a crop follows the size of what it crops to: forward computes it (in an nn.Sequential
        # it is a module, its size fixed for the declared input)
        module = name in layers.STATEFUL or (not numbered and name != "center_crop") or scope.form == "seq"
        if module and crop_keys:
            self.size_read(set(crop_keys))
        if scope.form == "graph" and name != "identity":
            self.read(cur)
        try:
            if module:
                if numbered and scope.form == "graph":
                    scope.numbered += 1
                    if scope.dynamic is not None:
                        raise Restart(nodes={scope.dynamic}, why="a numbered layer after a varying count")
                    if scope is self.root:
                        self.facts_numbered = True
                # in an nn.Sequential each value has one reader, the next module; but what a
                # view passes on may still be the sequence's input, which others read
                inplace = (name in INPLACE and cur.fresh and not cur.saves
                           and (cur.storage not in (0, getattr(scope, "in_storage", 0)) if scope.form == "seq"
                                else self.overwritable(cur)))
                if name in layers.PARAMETER:
                    var = self.emit_parameter(name, a, st, seg, numbered, end)
                    return Val(var, cur.chan, cur.rank, shape, True, False, storage=self.new_storage(),
                               sdeps=_layer_sdeps(name, a, cur, cur.rank))
                code = layers.module(name, a, cv, cur.chan, cur.rank, inplace)
                helper = layers.HELPER_OF_MODULE.get(name)
                if helper is not None and code.startswith(helper + "("):
                    self.gen.helpers.add(helper)
                self.register(scope, seg, code, numbered)
                var = None
                if scope.form == "graph":
                    var = self.out_var(st, cur, seg, end and not numbered)
                    self.fline(f"{var} = {self.child_access(scope, seg, fwd=True)}({cur.var})")
            else:
                if name == "identity":
                    return cur
                af = self.layer_args(op, args, st, "crop" if name == "center_crop" else "fwd")
                inplace = name in INPLACE and cur.fresh and not cur.saves and self.overwritable(cur)
                expr = layers.functional(name, af, cv, cur.var, inplace)
                if name in layers.HELPER_OF_CALL:
                    self.gen.helpers.add(layers.HELPER_OF_CALL[name])
                var = cur.var if inplace else self.out_var(st, cur)
                if inplace and var.startswith("\x00V"):
                    self.overwritten.add(var)
                self.fline(f"{var} = {expr}")
        except Resolve as r:
            raise Restart(keys=r.py.deps, why="an argument that must be a constant") from None
        if name == "flatten" and cur.rank == 3 and cur.shape is not None:
            self.reads_size(cur)        # its length is C*H*W, and H*W is this call's
        chan, rank = layers.output(name, a, cur.chan, cur.rank, cur.shape)
        alias = None
        if name in VIEW_OPS:
            fresh, saves = cur.fresh, cur.saves
            alias = cur.alias or (cur.var if cur.var != var else None)
        elif name in FRESH:
            fresh, saves = True, False
        elif name in SAVES_OUTPUT:
            fresh, saves = True, True
        else:
            fresh, saves = False, False
        storage = cur.storage if name in VIEW_OPS else self.new_storage()
        if inplace_done(name, cur, var):
            alias, storage = cur.alias, cur.storage
            self.reads[storage] = 0
        return Val(var, chan, rank, shape, fresh, saves, alias=alias, storage=storage,
                   sdeps=_layer_sdeps(name, a, cur, rank) | crop_keys)

    def emit_parameter(self, name: str, a: dict, st: St, seg: Seg, numbered: bool, end: bool) -> str:
        """A layer whose one parameter is named by the layer (layer_scale): an nn.Parameter of
        the module whose scope holds it, which forward multiplies in. An nn.Sequential cannot
        hold a parameter, so such a scope is written as a module of its own."""
        scope, cur = st.scope, st.cur
        if scope.form == "seq":
            raise NotAChain()
        code = layers.parameter(name, a, cur.chan, cur.rank)
        if seg.attr is not None:
            self.iline(f"{scope.access}.{seg.attr} = {code}")
        else:
            self.iline(f"{scope.access}.register_parameter({seg.code}, {code})")
        scope.first = False
        scope.used = True
        var = self.out_var(st, cur, seg, end and not numbered)
        self.fline(f"{var} = {self.child_access(scope, seg, fwd=True)} * {cur.var}")
        return var

    def emit_block(self, b: Binding, args, st: St, e, seg: Seg | None = None, end: bool = False) -> Val:
        cur = st.cur
        bv = b.value
        child = None
        inner_draft = None
        if isinstance(bv, DefValue):
            # the def's own call of its block, evaluated with this call's arguments
            if self.concrete and cur.shape is not None:
                denv = Env(bv.env)
                self.gen.el.bind_params(f"def {bv.decl.name}", bv.decl.params, args, st.env.cenv, cur.shape,
                                        e.loc, denv)
                inner = bv.decl.body
                target = bv.env.lookup((inner.func if type(inner) is ast.Call else inner).id)
                benv = Env(target.env)
                self.gen.el.bind_params(f"block {target.decl.name}", target.decl.params,
                                        inner.args if type(inner) is ast.Call else (), denv, cur.shape, e.loc, benv)
                inner_draft = self.gen.block_draft(target, benv, cur.shape)
                self.d.needs.append(inner_draft)
            self.d.def_needs.append(bv)
        elif isinstance(bv, BlockValue) and self.concrete and cur.shape is not None:
            benv = Env(bv.env)
            self.gen.el.bind_params(f"block {bv.decl.name}", bv.decl.params, args, st.env.cenv, cur.shape,
                                    e.loc, benv)
            child = self.gen.block_draft(bv, benv, cur.shape)
        decl = bv.decl if isinstance(bv, (BlockValue, DefValue)) else None
        # the class: a block named in the source is a reference to its class; a parameter holding
        # a block is that parameter
        if decl is not None and b.py.code.startswith("\x00R"):
            klass = self.ref(decl.name, [child] if child else [], st.inside[-1] if st.inside else None,
                             rank=cur.rank)
        else:
            klass = b.py.code
            if child is not None:
                self.d.needs.append(child)
        if child is not None and child.reads_shape:
            self.d.reads_shape = True
        if child is not None and child.reads_shape and self.free(cur.sdeps):
            raise Restart(keys=self.free(cur.sdeps), why="a class written for the size it is given")
        if child is not None and child.in_fixed and cur.chan.deps - self.rkeys:
            raise Restart(keys=cur.chan.deps - self.rkeys, why="an input width the class has fixed")
        parts = [cur.chan.code]
        keywords = False
        names = [p.name for p in decl.params] if decl is not None else None
        pymap = python_params(decl)[0] if decl is not None else {}
        resolved = child.resolved if child is not None else {}
        deps = set(cur.chan.deps)
        argdeps = set()
        for i, a in enumerate(args):
            pname = a.name if a.name is not None else (names[i] if names else None)
            v = self.value(a.value, st)
            if v.py is None:
                if child is None:
                    raise NeedsConcrete("a layer passed to a block not written here")
                if pname is not None and pname in resolved:
                    # expanded in the class with this call's values: what it reads is fixed here
                    reads = self.thunk_reads(v.value)
                    if reads:
                        raise Restart(keys=reads, why="a pipeline argument the class has fixed")
                keywords = True
                continue
            if pname is not None and pname in resolved:
                # the class is fixed for this value: so is what the argument reads here
                if v.py.deps - self.rkeys:
                    raise Restart(keys=v.py.deps - self.rkeys, why="an argument the class has fixed")
                keywords = True
                continue
            deps |= v.py.deps
            argdeps |= v.py.deps
            if a.name is None and not keywords:
                parts.append(v.py.code)
            else:
                parts.append(f"{pymap.get(pname, pname)}={v.py.code}")
        code = f"{klass}({', '.join(parts)})"
        numbered = seg is None
        if numbered:
            idx = st.scope.place(None, st.nested)
            seg = seg_number(idx)
            if st.scope.form == "graph":
                st.scope.numbered += 1
                if st.scope.dynamic is not None:
                    raise Restart(nodes={st.scope.dynamic}, why="a numbered block after a varying count")
                if st.scope is self.root:
                    self.facts_numbered = True
        access = self.register(st.scope, seg, code, numbered)
        var = None
        if st.scope.form == "graph":
            self.read(cur)
            var = self.out_var(st, cur, seg, end and not numbered)
            self.fline(f"{var} = {self.child_access(st.scope, seg, fwd=True)}({cur.var})")
        chan_code = f"{access}.out_channels"
        closed = _closed_form(child, parts, args, names) if child is not None and klass.startswith("\x00R") else None
        child = child or inner_draft
        out = child.out if child is not None else None
        fresh_out = bool(child and child.returns_fresh)
        storage = self.new_storage() if fresh_out else cur.storage
        # its size: the input's, and the arguments' where the class's parameters shape it
        sdeps = cur.sdeps | (frozenset(argdeps) if out is None or out.sdeps else frozenset())
        if closed is not None:
            closed = Py(closed.code, frozenset(deps), closed.prec)    # (it reads what the call's arguments read)
            return Val(var, closed, out.rank, out.shape, fresh_out, bool(out.saves), storage=storage, sdeps=sdeps)
        rank = out.rank if out is not None else cur.rank
        return Val(var, Py(chan_code, frozenset(deps), P_POSTFIX), rank, out.shape if out is not None else None,
                   fresh_out, bool(out and out.saves),
                   st.scope.access if st.scope.form == "seq" and numbered else None, storage=storage, sdeps=sdeps)

    def emit_def(self, dv: DefValue, args, st: St, e, seg: Seg | None = None, end: bool = False) -> Val:
        decl = dv.decl
        denv = Env(dv.env)
        if self.concrete and st.cur is not None and st.cur.shape is not None:
            self.gen.el.bind_params(f"def {decl.name}", decl.params, args, st.env.cenv, st.cur.shape, e.loc, denv)
        senv = SEnv(denv)
        self.gen.senv_of[id(denv)] = (self, senv)
        given = dict(match_args(f"def {decl.name}", [p.name for p in decl.params], args, "", ""))
        for p in decl.params:
            if p.name in given:
                a = given[p.name].value
                b = self.value(a, st)
                where = st
            else:
                a = p.default
                where = replace(st, env=senv)
                b = self.value(a, where)
            if p.name not in denv.vars:
                denv.vars[p.name] = b.value
            senv.vars[p.name] = Binding(b.py, denv.vars[p.name], ("arg",), expr=a, env=where)
        inner = replace(st, env=senv)
        body = decl.body
        saved = self.ctx_path
        self.ctx_path = saved + (id(e), self.expansion(e))
        try:
            return self._def_body(body, inner, seg, end)
        finally:
            self.ctx_path = saved

    def expansion(self, e) -> int:
        """How many times e was expanded before here (the same in every round of a loop)."""
        key = (self.ctx_path, id(e))
        n = self.expansions.get(key, 0)
        self.expansions[key] = n + 1
        return n

    def _def_body(self, body, inner, seg, end):
        if seg is not None and type(body) is not ast.Pipe:
            # a def of one built-in layer, named by the label over its call
            b = self.callee(body.func if type(body) is ast.Call else body, inner)
            return self.apply(b, body.args if type(body) is ast.Call else (), inner, body, seg, end)
        return self.emit(body, replace(inner, branch_end=end))

    def split_parts(self, e: ast.Merge, cur: Val) -> list[Val]:
        """split's parts: `part1, part2 = x.chunk(2, 1)`, views of x that nothing may overwrite."""
        n = len(e.branches)          # (elaboration checked that it is split's argument)
        if n == 1:
            return [cur]
        names = []
        for i in range(n):
            base = f"part{i + 1}"
            for v in [base] + [f"{base}_{k}" for k in range(2, 1000)]:
                if v in self.chain_vars and v not in self.pins and v not in names:
                    break
                if v not in self.locals_f:
                    self.locals_f.add(v)
                    self.chain_vars.add(v)
                    break
            names.append(v)
        self.fline(f"{', '.join(names)} = {cur.var}.chunk({n}, 1)")
        chan = Py(f"{cur.chan.at(P_MUL)} // {n}", cur.chan.deps, P_MUL)
        shape = None if cur.shape is None else (cur.shape[0] // n,) + tuple(cur.shape[1:])
        for _ in names:
            self.read(cur)
        return [Val(v, chan, cur.rank, shape, False, False, alias=cur.var, storage=cur.storage, sdeps=cur.sdeps)
                for v in names]

    def emit_merge(self, e: ast.Merge, st: St, name: Seg | None = None, end: bool = False) -> Val:
        split = e.op == "split"
        op = ops.SPLIT if split else ops.OPS[e.op]
        kind = "concat" if split else e.op
        if st.scope.form == "seq":
            raise NotAChain()
        if st.scope is self.root or st.scope.parent is None:
            self.facts_chain = False
        cur = st.cur
        a = self.layer_args(op, e.args, st)
        af = self.layer_args(op, e.args, st, "fwd")
        cv = None
        if self.concrete and cur.shape is not None:
            cv, _ = self.gen.el.bind_op(op, e.args, st.env.cenv, cur.shape, e.loc)
        st.scope.place(None, st.nested)
        inner = replace(st, nested=True)
        self.pin(cur.var)
        parts = self.split_parts(e, cur) if split else [cur] * len(e.branches)
        for p in parts[1:] if split else ():
            self.pin(p.var)
        outs = []
        for i, br in enumerate(e.branches):
            if split and i:
                self.unpin(parts[i].var)
            o = self.emit(br, replace(inner, cur=parts[i], branch_end=True))
            outs.append(o)
            self.pin(o.var)
        for o in outs:
            self.unpin(o.var)
        self.unpin(cur.var)
        shape = None
        if cv is not None and all(o.shape is not None for o in outs):
            shape = tuple(op.shape(cv, [o.shape for o in outs]))
        vs = [o.var for o in outs]
        deps = frozenset().union(*(o.chan.deps for o in outs))
        fresh, saves = True, False
        first = outs[0]
        for o in outs:
            self.read(o)
        storage = self.new_storage()
        if kind == "add" and first.fresh and not first.saves and self.overwritable(first) \
                and first.var not in vs[1:] and first.var != cur.var and first.var != "x" \
                and not first.var.startswith("\x00V"):
            for v in vs[1:]:
                self.fline(f"{first.var} += {v}")
            var = first.var
            storage = first.storage
            self.reads[storage] = 0     # a new version of it: what read the old one kept nothing of it
        else:
            if kind == "concat":
                crop = not split and (cv["crop"] if cv is not None else ("crop" in a and a["crop"].code != "False"))
                if crop and first.rank == 3:
                    self.gen.helpers.add("cat_cropped")
                    expr = f"cat_cropped([{', '.join(vs)}])"
                else:
                    expr = f"torch.cat([{', '.join(vs)}], 1)"
            elif kind == "add":
                expr = " + ".join(vs)
            elif kind == "mul":
                expr = " * ".join(vs)
            else:
                drop = af.get("drop")
                if drop is not None and (cv is None or cv["drop"]):
                    self.gen.helpers.add("mean_join")
                    expr = f"mean_join([{', '.join(vs)}], {drop.code}, self.training)"
                else:
                    expr = f"({' + '.join(vs)}) / {len(vs)}"
            dedicated = name is not None and end
            if dedicated:
                # the merge's own label belongs to the scope around it (st.prefix ends with it)
                var = self.out_var(replace(st, prefix=st.prefix[:-1]), cur, name, True)
            elif cur.var not in self.pins and (cur.var in self.chain_vars or cur.var.startswith("\x00V")) \
                    and cur.var not in vs[1:]:
                var = cur.var
                if var.startswith("\x00V"):
                    self.overwritten.add(var)
            else:
                var = self.chain_var(st)
            self.fline(f"{var} = {expr}")
        if kind == "concat":
            chans = [o.chan for o in outs]
            chan = Py(" + ".join(c.at(P_ADD) for c in chans), deps, P_ADD if len(chans) > 1 else chans[0].prec)
        elif kind == "mul":
            # widths of 1 broadcast: the width is the widest branch's (which one that is may
            # depend on the parameters)
            codes = list(dict.fromkeys(o.chan.code for o in outs if o.chan.code != "1"))
            if len(codes) <= 1:
                chan = next((o.chan for o in outs if o.chan.code != "1"), first.chan)
            else:
                chan = Py(f"max({', '.join(codes)})", frozenset().union(*(o.chan.deps for o in outs)), P_POSTFIX)
        else:
            chan = first.chan
        sdeps = frozenset().union(*(o.sdeps for o in outs), *(v.deps for v in a.values()))
        return Val(var, chan, first.rank, shape, fresh, saves, storage=storage, sdeps=sdeps)

    def emit_cond(self, e: ast.Cond, st: St) -> Val:
        test = self.expr(e.test, st)
        if self.resolved(e, test) or not test.deps:
            return self.emit(e.then if self.truth(e.test, st) else e.orelse, st)
        out = self.branches(e, test, e.test, lambda s: replace(s, cur=self.emit(e.then, s)),
                            lambda s: replace(s, cur=self.emit(e.orelse, s)), st)
        return out.cur

    def emit_repeat(self, e: ast.BinOp, st: St) -> Val:
        b = self.value(e.right, st)
        n = b.value
        if b.py is None:
            raise NeedsConcrete("a repetition count")
        if self.resolved(e, b.py) or (not b.py.deps and isinstance(n, int) and n <= 3):
            if not isinstance(n, int):
                raise NeedsConcrete("a repetition count")
            saved = self.ctx_path
            for i in range(n):
                self.ctx_path = saved + ((id(e), i),)
                try:
                    st = replace(st, cur=self.emit(e.left, st))
                finally:
                    self.ctx_path = saved
            return st.cur
        rounds = Binding(Py(f"list(range({b.py.code}))", b.py.deps, P_POSTFIX),
                         list(range(n)) if isinstance(n, int) else UNKNOWN)
        out = self.loop(e, None, rounds, lambda s: replace(s, cur=self.emit(e.left, s)), st, count_expr=e.right)
        return out.cur


class Writer(_Core, _Items, _Layers):
    pass


NEST_LIMIT = 60         # conditionals and loops written one inside another (Python: 100 indents)
LOOP_LIMIT = 15         # loops written one inside another (Python: 20 nested blocks)
_ONLY_INIT: "weakref.WeakKeyDictionary[ast.If, bool]" = weakref.WeakKeyDictionary()


def _only_init(s: ast.If) -> bool:
    """Whether a conditional holds init statements only (which place no layer). Remembered per
    node: `stmts` asks at every level of a nest, and asking afresh made n nested ifs cost n^2."""
    known = _ONLY_INIT.get(s)
    if known is None:
        stmts = list(s.then) + list(s.orelse or ())
        known = _ONLY_INIT[s] = all(type(x) is ast.InitStmt or (type(x) is ast.If and _only_init(x))
                                    for x in stmts)
    return known
