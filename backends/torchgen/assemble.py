"""From one network to one file: write every class the network's calls need (writer.py), decide
which calls share a class, name the classes, and lay the file out."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from netlang import ast
from netlang.elaborate import _LAYERS as LAYERS
from netlang.elaborate import BlockValue, Elaborator, Env

from .code import CLASS_REF, UNKNOWN, Lines, Restart, UseSequential
from .helpers import helper_source
from .names import NeedsConcrete, class_name, comment, py_ident
from .writer import Lazy, NotAChain, Writer

LINE = 100


class _NoIn(NeedsConcrete):
    """in.* that has no value here (nothing flows in, or in.height of a vector)."""


class _Eval(Elaborator):
    """netlang's evaluator, with the current value's shape standing for the current node."""

    def __init__(self, network_name):
        super().__init__(network_name)
        self.value_work = None      # elaborate bounded the program's work; writing it repeats that

    def in_attr(self, e, cur):
        if cur is None:
            raise _NoIn("in")
        if e.attr == "shape":
            return tuple(cur)
        if e.attr == "channels":
            return cur[0]
        if e.attr not in ("height", "width") or len(cur) != 3:
            raise _NoIn(f"in.{e.attr}")
        return cur[1] if e.attr == "height" else cur[2]

    def def_value(self, dv, arg_exprs, loc, env, cur):
        # as netlang.elaborate: a def whose body needs an in.* that has no value here is a
        # pipeline value, worked out where it is placed
        try:
            return super().def_value(dv, arg_exprs, loc, env, cur)
        except _NoIn:
            return LAYERS


@dataclass
class Draft:
    """One class, as written for one call of its block (or for the network)."""
    kind: str                       # "block" | "network"
    name: str                       # the block's (or network's) netlang name
    decl: object
    form: str = "graph"             # "graph": explicit forward; "seq": an nn.Sequential
    params: list = field(default_factory=list)   # [python name, ast.Param, default source]
    init: Lines = field(default_factory=Lines)
    fwd: Lines = field(default_factory=Lines)
    refs: list = field(default_factory=list)
    out: object = None
    outputs: object = None
    in_name: str = "in_channels"
    in_shape: tuple | None = None
    in_rank: int = 3                # 3: a block called on a map, 1: on a vector
    resolved: dict = field(default_factory=dict)
    reads_shape: bool = False       # writes a height or width of the call's as a constant
    in_fixed: bool = False          # the input width is fixed for this network (the class ignores in_channels)
    returns_fresh: bool = False
    groups: list = field(default_factory=list)
    locals: set = field(default_factory=set)
    needs: list = field(default_factory=list)    # drafts it builds through a parameter (`block(...)`)
    def_needs: list = field(default_factory=list)  # defs of one block it calls through a parameter
    key: str = ""
    cls: str = ""


class GlobalRestart(Exception):
    def __init__(self, nodes, blocks=()):
        super().__init__("global restart")
        self.nodes = set(nodes)
        self.blocks = set(blocks)


class Gen:
    """Writes the classes of one network."""

    def __init__(self, module, network: str, overrides: dict, G):
        self.module, self.network, self.overrides, self.G = module, network, dict(overrides), G
        self.input_shape_of_network = tuple(G.nodes[G.graph["inputs"][0]]["shape"])
        self.global_nodes: set = set()
        self.ref_labels = _referenced_labels(module)

    def reset(self):
        self.el = _Eval(self.network)
        self.drafts: dict = {}
        self.order: list = []
        self.helpers: set = {"init_weights", "check_input"}
        self.senv_of: dict = {}
        self.tokens = 0

    # ------------------------------------------------------------------ entry
    def run(self):
        from . import writer
        writer.GTIME_BLOCKS.clear()
        try:
            for _ in range(20):
                self.reset()
                try:
                    net = self._run()
                    self.settle(net)
                    return net
                except GlobalRestart as r:
                    new = {id(n) for n in r.nodes}
                    if not (new - self.global_nodes or r.blocks - writer.GTIME_BLOCKS):
                        raise RuntimeError("netlang internal error: class references do not settle") from None
                    self.global_nodes |= new
                    writer.GTIME_BLOCKS |= r.blocks
            raise RuntimeError("netlang internal error: class references do not settle")
        finally:
            self.gtime_blocks = set(writer.GTIME_BLOCKS)

    def _run(self) -> Draft:
        value = self.module.env.vars.get(self.network)
        if value is None:
            value = self.module.env.lookup(self.network)
        decl = value.decl
        inst_args = ()
        if isinstance(decl, ast.NetworkInst):
            target = value.env.vars.get(decl.target) or value.env.lookup(decl.target)
            inst_args = decl.args
            body_decl, body_env = target.decl, target.env
        else:
            body_decl, body_env = decl, value.env
        cenv = Env(body_env)
        preset = [a for a in inst_args if a.name not in self.overrides]
        self.el.bind_params(f"network {body_decl.name}", body_decl.params, preset, value.env, None, decl.loc, cenv)
        for k, v in self.overrides.items():
            if isinstance(v, str):
                from netlang.parser import parse_expr
                v = self.el.eval(parse_expr(v, f"<-p {k}>"), self.module.env, None)
            cenv.vars[k] = v
        self.net_decl, self.body_decl = decl, body_decl
        self.net_values = {p.name: cenv.vars[p.name] for p in body_decl.params}
        d = self.write_class("network", body_decl, cenv, None)
        self.order.append(d)
        return d

    def write_class(self, kind, decl, cenv: Env, in_shape, concrete: bool = True, in_rank: int = 3) -> Draft:
        """Write the class of `decl` for one call, again and again until nothing more needs
        resolving."""
        nodes: set = set(self.global_nodes)
        keys: set = set()
        forms = ["graph"]
        for _ in range(200):
            form = forms[-1]
            d = Draft(kind, decl.name, decl, form="seq" if form == "seq" else "graph", in_shape=in_shape)
            w = Writer(self, d, nodes, keys, form, concrete)
            try:
                # each attempt starts from the call's own values (an attempt's lets and loop
                # variables must not leak into the next)
                fresh = Env(cenv.parent, dict(cenv.vars)) if concrete else _unknown_env(cenv, decl)
                w.body_class(decl, fresh, in_shape, in_rank)
                if form == "graph" and kind == "block" and w.facts_chain and w.facts_numbered:
                    raise UseSequential()
                finish(d, w)
                return d
            except Restart as r:
                new = {id(n) for n in r.nodes}
                # a loop variable becomes a constant by unrolling its loop
                new |= {id(k[2]) for k in r.keys if k and k[0] == "loop"}
                if not (new - nodes or r.keys - keys):
                    raise RuntimeError(f"netlang internal error: no progress writing {decl.name} ({r})") from None
                nodes |= new
                keys |= r.keys
            except UseSequential:
                forms.append("seq")
            except NotAChain:
                if form != "seq":
                    raise
                forms.append("graph!")
        raise RuntimeError(f"netlang internal error: writing class {decl.name} does not settle")

    def block_draft(self, bv: BlockValue, benv: Env, in_shape) -> Draft:
        key = (id(bv.decl), _value_key({p.name: benv.vars[p.name] for p in bv.decl.params}), in_shape)
        d = self.drafts.get(key)
        if d is None:
            d = self.write_class("block", bv.decl, benv, in_shape)
            self.drafts[key] = d
            self.order.append(d)
        return d

    # ------------------------------------------------------------------ classes
    def settle(self, net: Draft) -> None:
        """Decide which drafts are one class (same source, same classes referred to), write the
        classes that are only referred to, and name every class."""
        # Blocks referred to only by name (a default argument, a branch not taken) get a class
        # written without a call.
        for _ in range(50):
            by_block = {}
            for d in self.order:
                if d.kind == "block":
                    by_block.setdefault(d.name, []).append(d)
            from .writer import block_def
            missing = {r.block for d in self.order for r in live_refs(d) if not r.drafts and r.block not in by_block}
            missing |= {block_def(dv) for dv in needed_defs(self.order) if block_def(dv) not in by_block}
            if not missing:
                break
            for name in sorted(missing):
                bv = self.module.env.lookup(name) if _known(self.module.env, name) else _find_block(self.order, name)
                calls = [r for o in self.order for r in live_refs(o) if r.block == name and r.rank is not None]
                ranks = {r.rank for r in calls}
                if len(ranks) > 1:
                    # called on a map and on a vector where no call writes its class: decided there
                    raise GlobalRestart({r.node for r in calls if r.node is not None}, {name})
                try:
                    d = self.write_class("block", bv.decl, Env(bv.env), None, concrete=False,
                                         in_rank=ranks.pop() if ranks else 3)
                except NeedsConcrete:
                    # No call of the block to write its class from, and it cannot be written
                    # generally: where it was passed as a value, it is decided there instead.
                    nodes = {r.node for o in self.order for r in live_refs(o) if r.block == name and r.node is not None}
                    raise GlobalRestart(nodes, {name}) from None
                self.drafts[("generic", name)] = d
                self.order.append(d)
        # Partition: same source first, then split where the classes referred to differ.
        cls = {}
        groups: dict = {}
        for d in self.order:
            cls[id(d)] = groups.setdefault((d.kind, d.name, d.key), len(groups))
        by_block: dict = {}
        for d in self.order:
            if d.kind == "block":
                by_block.setdefault(d.name, []).append(d)
        while True:
            sig = {}
            for d in self.order:
                parts = [cls[id(d)]]
                for r in live_refs(d):
                    cands = r.drafts or by_block.get(r.block, [])
                    parts.append(frozenset(cls[id(c)] for c in cands))
                sig[id(d)] = tuple(parts)
            ids: dict = {}
            new = {id(d): ids.setdefault(sig[id(d)], len(ids)) for d in self.order}
            if len(ids) == len(set(cls.values())):
                break
            cls = new
        # A reference must stand for one class.
        ambiguous, gtime_blocks = set(), set()
        for d in self.order:
            for r in live_refs(d):
                cands = r.drafts or by_block.get(r.block, [])
                if len({cls[id(c)] for c in cands}) > 1:
                    if r.node is None:
                        gtime_blocks.add(r.block)
                    else:
                        ambiguous.add(r.node)
                elif not r.drafts and r.node is not None and any(
                        c.resolved or c.in_fixed or (r.rank is not None and c.in_rank != r.rank) for c in cands):
                    # a call written without its values (a branch not taken) cannot use a class
                    # fixed for another call's values: its conditional is decided instead
                    ambiguous.add(r.node)
        if ambiguous or gtime_blocks:
            raise GlobalRestart(ambiguous, gtime_blocks)
        # Names: the network's class after the network, blocks after themselves, variants numbered.
        taken = set()
        for d in self.order:
            taken |= d.locals
        self.classes: dict = {}
        first_of: dict = {}
        for d in [net] + [d for d in self.order if d is not net]:
            c = cls[id(d)]
            if c not in first_of:
                first_of[c] = d
                d.cls = class_name(d.name, taken)
            d.cls = first_of[c].cls
        self.cls_of = cls
        self.first_of = first_of
        self.by_block = by_block
        self.defs = needed_defs(self.order)
        self.def_names = {}
        for dv in self.defs:
            if len({cls[id(c)] for c in by_block.get(block_def_name(dv), [])}) != 1:
                raise RuntimeError(f"netlang internal error: def {dv.decl.name} calls a block with several classes")
            self.def_names[dv.decl.name] = py_ident(dv.decl.name, taken | {d.cls for d in self.order}, "make")

    def class_for(self, r) -> str:
        if r.kind == "def":
            return self.def_names[r.block]
        cands = r.drafts or self.by_block.get(r.block, [])
        return self.first_of[self.cls_of[id(cands[0])]].cls


def live_refs(d: Draft, kind: str = "class"):
    """The class (or def function) references that made it into the draft's final source."""
    text = d.key_text
    return [r for i, r in enumerate(d.refs) if f"\x00R{i}\x00" in text and r.kind == kind]


def needed_defs(drafts) -> list:
    """The defs of one block call the file gives as functions: referred to by name, or called
    through a parameter."""
    out, seen = [], set()
    for d in drafts:
        for dv in [r.value for r in live_refs(d, "def")] + d.def_needs:
            if id(dv.decl) not in seen:
                seen.add(id(dv.decl))
                out.append(dv)
    return out


def block_def_name(dv):
    from .writer import block_def
    return block_def(dv)


def _known(env, name):
    try:
        return isinstance(env.lookup(name), BlockValue)
    except KeyError:
        return False


def _find_block(drafts, name):
    raise RuntimeError(f"netlang internal error: block {name} not found")


def _unknown_env(cenv: Env, decl) -> Env:
    env = Env(cenv.parent if cenv.parent is not None else cenv)
    for p in decl.params:
        env.vars[p.name] = cenv.vars.get(p.name, UNKNOWN)
    return env


def _value_key(values: dict) -> str:
    def k(v):
        if isinstance(v, (bool, int, float, str)):
            return type(v).__name__ + repr(v)
        if isinstance(v, (list, tuple)):
            return type(v).__name__ + "(" + ",".join(k(x) for x in v) + ")"
        inner = getattr(v, "decl", None) or getattr(v, "expr", None) or getattr(v, "op", None) or v
        return f"<{type(v).__name__}:{id(inner)}:{id(getattr(v, 'env', None))}>"
    return ";".join(f"{n}={k(v)}" for n, v in values.items())


def _referenced_labels(module) -> set:
    """Every label path a reference or an output statement anywhere in the program names: such
    a label's value keeps a variable of its own wherever it is placed."""
    decls = []
    env = module.env
    while env is not None:
        decls += [v.decl for v in env.vars.values() if isinstance(getattr(v, "decl", None), ast.Node)]
        env = env.parent
    return {".".join(n.path) for n in ast.walk(decls) if isinstance(n, ast.Ref)}


# ====================================================================== finishing a draft

def finish(d: Draft, w) -> None:
    """Decide what was left open (stored attributes, mirrored lets, carried tokens) and the
    draft's source with class references as block names: its identity."""
    # forward first: computing a mirrored let there may store another attribute for __init__
    d.fwd = _settle_lines(d.fwd)
    d.init = _settle_lines(d.init)
    # attributes forward reads
    taken = set(w.child_names) | {"out_channels", "training"}
    from .names import MODULE_ATTRIBUTES, is_attr
    subst = dict(w.subst)
    for b, token in w.stores.values():
        base = b.py.code.lstrip("_") if is_attr(b.py.code) else "v"
        name = base if base and not base[0].isdigit() else f"v{base}"
        while name in taken or name in MODULE_ATTRIBUTES:
            name += "_"
        taken.add(name)
        subst[token] = name
    d.subst = subst
    if d.kind == "block":
        d.init.add(f"self.out_channels = {d.out.chan.code}")
    d.init = _fill_empty_blocks(_drop_dead_lets(_apply(d.init, subst), w))
    d.fwd = _fill_empty_blocks(_drop_dead_lets(_apply(d.fwd, subst), w))
    d.locals = set(w.locals_i) | set(w.locals_f)
    d.writer_outputs = w.outputs
    d.writer_aux = getattr(w, "output_aux", None)
    d.key_text = "\n".join(["sig:" + ",".join(f"{p[0]}={p[2]}" for p in d.params), d.in_name, d.form,
                            "init:", d.init.flat(), "fwd:", d.fwd.flat(),
                            "out:" + (d.out.rank and str(d.out.rank) if d.out is not None else ""),
                            "outs:" + ",".join(str(o.var) for o in (w.outputs or ()))])
    d.key = CLASS_REF.sub(lambda m: f"<{d.refs[int(m.group(1))].block}>", d.key_text)
    d.key = _apply_text(d.key, subst)


def _drop_dead_lets(lines: Lines, w) -> Lines:
    """Lets nothing after them reads (computed for forward only, or for a branch's size)."""
    names = set(getattr(w, "_let_names", {}).values()) | set(w.chan_locals)
    if not names:
        return lines
    items = lines.items
    for _ in range(10):
        text = "\n".join(t for _, t in items)
        dead = set()
        for n in names:
            pat = re.compile(rf"(?<![\w.'\"]){re.escape(n)}\b")
            assigns = [i for i, (_, t) in enumerate(items) if t.startswith(f"{n} = ")]
            if assigns and len(pat.findall(text)) == len(assigns):
                dead.add(n)
        if not dead:
            break
        keep = []
        for i, (ind, t) in enumerate(items):
            if any(t.startswith(f"{n} = ") for n in dead):
                while keep and keep[-1][1].startswith("# in.") and keep[-1][0] == ind:
                    keep.pop()
                continue
            keep.append([ind, t])
        items = keep
    out = Lines()
    out.items = items
    return out


def _fill_empty_blocks(lines: Lines) -> Lines:
    """A compound statement left with nothing inside (its items wrote no line here): an empty
    `else:`, a repetition's loop or an `if` without `else` goes; any other header gets `pass`."""
    def header(t):
        return t.rstrip("\x01").endswith(":") and t.split(" ", 1)[0] in ("for", "if", "else:", "elif", "else")
    items = [list(x) for x in lines.items]
    changed = True
    while changed:
        changed = False
        out, i = [], 0
        while i < len(items):
            ind, t = items[i]
            if header(t):
                j = i + 1
                while j < len(items) and items[j][0] > ind:
                    j += 1
                body = items[i + 1:j]
                if all(b[1].startswith("#") for b in body):
                    changed = True
                    followed_by_else = j < len(items) and items[j][0] == ind and items[j][1] == "else:"
                    if t == "else:" or t.endswith("\x01") or (t.startswith("if ") and not followed_by_else):
                        i = j
                        continue
                    out.append([ind, t])
                    out.extend(body)
                    out.append([ind + 1, "pass"])
                    i = j
                    continue
            out.append([ind, t])
            i += 1
        items = out
    items = [[ind, t.rstrip("\x01")] for ind, t in items]
    new = Lines()
    new.items = items
    return new


def _settle_lines(lines: Lines) -> Lines:
    out = Lines()
    for ind, t in lines.items:
        if isinstance(t, Lazy):
            got = t.fn()
            for line in ([got] if isinstance(got, str) else got):
                if line:
                    out.add(line, ind)
        elif t != "":
            out.add(t, ind)
    return out


def _apply_text(text: str, subst: dict) -> str:
    for _ in range(50):
        new = _TOKEN.sub(lambda m: subst.get(m.group(0), m.group(0)), text)
        if new == text:
            return new
        text = new
    return text


def _apply(lines: Lines, subst: dict) -> Lines:
    out = Lines()
    for ind, t in lines.items:
        out.add(_apply_text(t, subst), ind)
    return out


# ====================================================================== the file

def render_file(gen: Gen, net: Draft, header: str) -> tuple[str, str]:
    """The source, and the expression that builds the network (`resnet18()`)."""
    order = _dependency_order(gen, net)
    body = []
    for d in order:
        body.append(render_class(gen, d))
    entry, factory = _entry(gen, net)
    parts = [header, "import torch\nimport torch.nn.functional as F\nfrom torch import nn"]
    parts += helper_source(gen.helpers)
    parts += [render_def(gen, dv) for dv in gen.defs]
    parts += body
    if factory:
        parts.append(factory)
    return "\n\n\n".join(parts) + "\n", entry


def _dependency_order(gen: Gen, net: Draft) -> list:
    seen: dict = {}
    out = []

    def visit(d):
        c = gen.cls_of[id(d)]
        if c in seen:
            return
        seen[c] = True
        rep = gen.first_of[c]
        for r in live_refs(rep):
            cands = r.drafts or gen.by_block.get(r.block, [])
            visit(gen.first_of[gen.cls_of[id(cands[0])]])
        for n in rep.needs:
            visit(n)
        out.append(rep)
    visit(net)
    for d in gen.order:
        if gen.cls_of[id(d)] not in seen:
            # classes only the constructor's other arguments would use (a default block)
            visit(d)
    # the network's class last
    out.remove(gen.first_of[gen.cls_of[id(net)]])
    out.append(gen.first_of[gen.cls_of[id(net)]])
    return out


def render_def(gen: Gen, dv) -> str:
    """A def of one block call as the function that builds that block's module."""
    from .code import Binding, Py, SEnv, Val
    from .writer import Scope, St, Writer
    decl = dv.decl
    d = Draft("def", decl.name, decl)
    w = Writer(gen, d, set(), set(), "graph", concrete=False)
    cenv = Env(dv.env)
    env = SEnv(cenv)
    from .writer import python_params
    names, in_name = python_params(decl)
    st = St(Val(None, Py(in_name), 3, None), Scope("graph", "self"), env, {})
    sig = [in_name]
    for p in decl.params:
        cenv.vars[p.name] = UNKNOWN
        env.vars[p.name] = Binding(Py(names[p.name], frozenset({("param", p.name)})), UNKNOWN, ("param", p.name))
        default = w.literal_default(p.default, st) if p.default is not None else None
        sig.append(names[p.name] if default is None else f"{names[p.name]}={default}")
    body = decl.body
    func = body.func if type(body) is ast.Call else body
    target = dv.env.lookup(func.id)
    klass = w.ref(target.decl.name)
    first = gen.by_block[target.decl.name][0]
    from .writer import python_params
    pymap = python_params(target.decl)[0]
    params = [p.name for p in target.decl.params]
    parts, keywords = [in_name], False
    for i, a in enumerate(body.args if type(body) is ast.Call else ()):
        pname = a.name if a.name is not None else params[i]
        if pname in first.resolved:
            keywords = True
            continue
        code = w.expr(a.value, st).code
        parts.append(code if a.name is None and not keywords else f"{pymap.get(pname, pname)}={code}")
    lines = _wrap_def(f"def {gen.def_names[decl.name]}(", sig, "):", 0)
    where = f"{_short(decl.loc.file)}:{decl.loc.line}"
    lines.append(f'    """{comment(_header(decl, "def") + f" ({where})")}"""')
    from .layout import wrap
    lines += wrap(f"return {klass}({', '.join(parts)})", "    ")
    d.key_text = "\n".join(lines)
    return _refs_to_names(gen, d, d.key_text)


def _refs_to_names(gen: Gen, d: Draft, text: str) -> str:
    return CLASS_REF.sub(lambda m: gen.class_for(d.refs[int(m.group(1))]), text)


def render_class(gen: Gen, d: Draft) -> str:
    base = "nn.Sequential" if d.form == "seq" else "nn.Module"
    out = [f"class {d.cls}({base}):"]
    out.append(f'    """{_docstring(gen, d)}"""')
    out.append("")
    sig = ["self"] + ([d.in_name] if d.kind == "block" else [])
    for name, p, default in d.params:
        sig.append(name if default is None else f"{name}={default}")
    out += _wrap_def("    def __init__(", sig, "):", 4)
    out.append("        super().__init__()")
    out += _wrapped(d.init, 2)
    if d.kind == "network":
        rules = gen.G.graph.get("init")
        if rules:
            out += _wrap_def("        init_weights(self, [", [repr(r) for r in rules], "])", 8)
        else:
            out.append("        init_weights(self)")
    fwd = _forward(gen, d)
    if fwd:
        out.append("")
        out += fwd
    return _refs_to_names(gen, d, "\n".join(out))


def _docstring(gen: Gen, d: Draft) -> str:
    decl = d.decl
    where = f"{_short(decl.loc.file)}:{decl.loc.line}"
    text = f"{_header(decl, 'block' if d.kind == 'block' else 'network')} ({where})"
    if d.resolved:
        fixed = ", ".join(f"{k}={_show(v)}" for k, v in d.resolved.items())
        text += f"; fixed for this network: {fixed}"
    return comment(text).replace('"""', "'''").replace("\\", "/")


def _header(decl, kind: str) -> str:
    """The declaration as the .net file writes it (`block bottleneck(width, stride=1)`)."""
    from netlang.errors import source_line
    line = source_line(decl.loc.file, decl.loc.line) or ""
    m = re.match(rf"\s*{kind}\s+{re.escape(decl.name)}\s*", line)
    if m:
        rest = line[m.end():]
        if not rest.startswith("("):
            if not decl.params:
                return f"{kind} {decl.name}"
        else:
            depth = 0
            for i, c in enumerate(rest):
                depth += c in "([{"
                depth -= c in ")]}"
                if depth == 0:
                    return f"{kind} {decl.name}{rest[:i + 1]}"
    return f"{kind} {decl.name}({', '.join(p.name for p in decl.params)})"


def _show(v) -> str:
    from netlang.elaborate import fmt_value
    return fmt_value(v)


def _short(path: str) -> str:
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return p.name


def _wrap_def(head: str, parts: list, tail: str, indent: int) -> list[str]:
    line = head + ", ".join(parts) + tail
    if len(line) <= LINE:
        return [line]
    lines, cur = [], head
    pad = " " * len(head)
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else tail)
        if len(cur) + len(piece) + 1 > LINE and cur.strip() not in ("", head.strip()):
            lines.append(cur.rstrip())
            cur = pad
        cur += piece + " "
    lines.append(cur.rstrip())
    return lines


def _forward(gen: Gen, d: Draft) -> list[str]:
    if d.form == "seq":
        if d.kind == "network":
            return ["    def forward(self, x):",
                    f"        check_input(self, x, {_shape_lit(gen.input_shape_of_network)})",
                    "        return super().forward(x)"]
        return []
    lines = ["    def forward(self, x):"]
    if d.kind == "network":
        lines.append(f"        check_input(self, x, {_shape_lit(gen.input_shape_of_network)})")
    outputs = d.writer_outputs
    main = outputs[0] if outputs else d.out
    if outputs and len(outputs) > 1:
        aux = d.writer_aux or [False] * len(outputs)
        lines += _with_aux(d, [o for o, a in zip(outputs, aux) if not a], outputs)
        return lines
    lines += _wrapped(d.fwd, 2)
    lines.append(f"        return {main.var}")
    return lines


def _wrapped(lines: Lines, base: int) -> list[str]:
    from .layout import wrap
    out = []
    for ind, t in lines.items:
        if t in ("\x03[", "\x03]"):
            continue
        out += wrap(t, " " * (4 * (base + ind)))
    return out


def _shape_lit(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


_NAME = re.compile(r"[A-Za-z_]\w*")
_TOKEN = re.compile(r"\x00[ACV][^\x00]*\x00")   # a name or text decided when the source is assembled


def _with_aux(d: Draft, mains: list, outputs) -> list[str]:
    """The network's forward when it has several outputs: eval returns `mains` (the outputs that
    are not auxiliary, one or a tuple), training every output; the statements only the
    auxiliary ones need run in training only (each top-level statement's lines sit between
    group markers)."""
    groups, cur = [], None
    for ind, t in d.fwd.items:
        if t == "\x03[":
            cur = []
        elif t == "\x03]":
            groups.append(cur)
            cur = None
        elif cur is not None:
            cur.append((ind, t))
        else:
            groups.append([(ind, t)])
    need = {o.var for o in mains}
    keep = [True] * len(groups)
    for gi in range(len(groups) - 1, -1, -1):
        defs, uses, compound = set(), set(), False
        for ind, t in groups[gi]:
            if t.startswith(("for ", "if ", "else", "elif ")) or ind > 0:
                compound = compound or t.startswith(("for ", "if "))
            if t.startswith(("for ", "if ", "else", "elif ")):
                uses |= set(_NAME.findall(t))
                continue
            lhs, op, rhs = t.partition(" += ") if " += " in t else t.partition(" = ")
            defs.add(lhs.strip())
            uses |= set(_NAME.findall(rhs))
            if op == " += ":
                uses.add(lhs.strip())
        needed = bool(defs & need) or not groups[gi]
        keep[gi] = needed
        if needed:
            if not compound:
                need -= defs
            need |= uses
    from .layout import wrap
    lines, training = [], []

    def flush():
        if training:
            lines.append("        if self.training:")
            for ind, t in training:
                lines.extend(wrap(t, " " * (4 * (3 + ind))))
            training.clear()
    for gi, g in enumerate(groups):
        if keep[gi]:
            flush()
            for ind, t in g:
                lines.extend(wrap(t, " " * (4 * (2 + ind))))
        else:
            training.extend(g)
    flush()
    rest = ", ".join(o.var for o in outputs)
    if len(mains) == len(outputs):
        lines.append(f"        return {rest}")
        return lines
    lines.append("        if self.training:")
    lines.append(f"            return {rest}")
    lines.append(f"        return {', '.join(o.var for o in mains)}")
    return lines


def _entry(gen: Gen, net: Draft) -> tuple[str, str]:
    """The call that builds the network, and (for a network instance, or parameters given on
    the command line) the function the file gives for it, taking the same arguments as the class
    with this network's values as defaults."""
    sig, call, differs = [], [], False
    for name, p, default in net.params:
        code = _value_code(gen, gen.net_values[p.name])
        differs |= default is None or code != _refs_to_names(gen, net, default)
        sig.append(f"{name}={code}")
        call.append(f"{name}={name}")
    decl = gen.net_decl
    if not differs and not isinstance(decl, ast.NetworkInst):
        return f"{net.cls}()", ""
    taken = {d.cls for d in gen.order} | set().union(*(d.locals for d in gen.order))
    fname = py_ident(gen.network, taken, "make")
    doc = f"network {gen.network}"
    if isinstance(decl, ast.NetworkInst):
        doc += " = " + gen.el.call_text(decl.target, decl.args, gen.module.env, None)
    if gen.overrides:
        doc += "; given: " + ", ".join(f"{k}={v}" for k, v in gen.overrides.items())
    lines = _wrap_def(f"def {fname}(", sig, "):", 0)
    lines.append(f'    """{comment(doc)}"""')
    from .layout import wrap
    lines += wrap(f"return {net.cls}({', '.join(call)})", "    ")
    return f"{fname}()", "\n".join(lines)


def _value_code(gen: Gen, v) -> str:
    from .names import lit
    if isinstance(v, BlockValue):
        ds = gen.by_block.get(v.decl.name, [])
        if not ds:
            raise RuntimeError(f"netlang internal error: no class for block {v.decl.name}")
        return gen.first_of[gen.cls_of[id(ds[0])]].cls
    if getattr(v, "decl", None) is not None and v.decl.name in getattr(gen, "def_names", {}):
        return gen.def_names[v.decl.name]
    if isinstance(v, list):
        return "[" + ", ".join(_value_code(gen, x) for x in v) + "]"
    if isinstance(v, tuple):
        inner = [_value_code(gen, x) for x in v]
        return "(" + ", ".join(inner) + ("," if len(inner) == 1 else "") + ")"
    return lit(v)
