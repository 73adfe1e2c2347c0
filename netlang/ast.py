"""The abstract syntax tree: plain dataclasses, each with the SourceLoc it was parsed from.

The parser only builds these; what they mean is worked out by elaborate.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from .errors import SourceLoc


@dataclass(frozen=True, eq=False)
class Node:
    loc: SourceLoc


# ---------------------------------------------------------------- expressions

@dataclass(frozen=True, eq=False)
class Const(Node):
    value: Any          # int, float, bool, str, or a tuple of ints (shape literal)


@dataclass(frozen=True, eq=False)
class Name(Node):
    id: str


@dataclass(frozen=True, eq=False)
class ListExpr(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True, eq=False)
class TupleExpr(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True, eq=False)
class BinOp(Node):
    op: str             # + - * / // % == != < <= > >= and or
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True, eq=False)
class Unary(Node):
    op: str             # - + not
    operand: "Expr"


@dataclass(frozen=True, eq=False)
class Cond(Node):
    test: "Expr"
    then: "Expr"
    orelse: "Expr"


@dataclass(frozen=True, eq=False)
class Arg(Node):
    name: str | None    # None for a positional argument
    value: "Expr"


@dataclass(frozen=True, eq=False)
class Call(Node):
    func: "Expr"
    args: tuple[Arg, ...]


@dataclass(frozen=True, eq=False)
class Index(Node):
    obj: "Expr"
    index: "Expr"


@dataclass(frozen=True, eq=False)
class Ref(Node):
    path: tuple[str, ...]   # @a.b.c


@dataclass(frozen=True, eq=False)
class InAttr(Node):
    attr: str               # in.channels / in.height / in.width


@dataclass(frozen=True, eq=False)
class Merge(Node):
    op: str                 # concat, add, mean, mul, split
    args: tuple[Arg, ...]
    branches: tuple["Pipe", ...]


@dataclass(frozen=True, eq=False)
class Template(Node):
    """A label: literal text with {expression} parts, e.g. denselayer{i}."""
    parts: tuple[Union[str, "Expr"], ...]

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else "{…}" for p in self.parts)

    @property
    def is_plain(self) -> bool:
        return all(isinstance(p, str) for p in self.parts)


@dataclass(frozen=True, eq=False)
class Labelled(Node):
    label: Template
    expr: "Expr"


@dataclass(frozen=True, eq=False)
class Pipe(Node):
    items: tuple["Expr", ...]


Expr = Union[Const, Name, ListExpr, TupleExpr, BinOp, Unary, Cond, Call, Index, Ref, InAttr,
             Merge, Labelled, Pipe]


# ---------------------------------------------------------------- statements

@dataclass(frozen=True, eq=False)
class Let(Node):
    name: str
    value: Expr


@dataclass(frozen=True, eq=False)
class If(Node):
    test: Expr
    then: tuple["Stmt", ...]
    orelse: tuple["Stmt", ...] | None


@dataclass(frozen=True, eq=False)
class For(Node):
    var: str
    iter: Expr
    body: tuple["Stmt", ...]


@dataclass(frozen=True, eq=False)
class InputStmt(Node):
    shape: Expr


@dataclass(frozen=True, eq=False)
class OutputStmt(Node):
    refs: tuple[Ref, ...]
    aux: tuple[bool, ...] = ()      # per reference: an auxiliary (training-only) output


@dataclass(frozen=True, eq=False)
class InitRule(Node):
    target: tuple[str, ...]     # a layer kind or name, dotted; maybe ending in weight or bias
    value: Expr


@dataclass(frozen=True, eq=False)
class InitStmt(Node):
    rules: tuple[InitRule, ...]


Stmt = Union[Let, If, For, InputStmt, OutputStmt, InitStmt, Pipe]


# ---------------------------------------------------------------- top level

@dataclass(frozen=True, eq=False)
class Param(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True, eq=False)
class Import(Node):
    path: str


@dataclass(frozen=True, eq=False)
class DefDecl(Node):
    name: str
    params: tuple[Param, ...]
    body: Pipe
    name_loc: SourceLoc | None = None


@dataclass(frozen=True, eq=False)
class BlockDecl(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    name_loc: SourceLoc | None = None


@dataclass(frozen=True, eq=False)
class NetworkDecl(Node):
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    name_loc: SourceLoc | None = None


@dataclass(frozen=True, eq=False)
class NetworkInst(Node):
    name: str
    target: str
    target_loc: SourceLoc
    args: tuple[Arg, ...]
    name_loc: SourceLoc | None = None


Decl = Union[Import, DefDecl, BlockDecl, NetworkDecl, NetworkInst]


@dataclass(frozen=True, eq=False)
class Module(Node):
    file: str
    decls: tuple[Decl, ...] = field(default=())


_FIELDS: dict = {}


def walk(*roots):
    """Every Node reachable from roots (nodes, or lists and tuples of them), each once."""
    todo, seen = list(roots), set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, (list, tuple)):
            todo.extend(node)
        elif isinstance(node, Node):
            yield node
            names = _FIELDS.get(node.__class__)
            if names is None:
                names = _FIELDS[node.__class__] = tuple(node.__class__.__dataclass_fields__)
            todo.extend(v for v in (getattr(node, f) for f in names) if isinstance(v, (Node, list, tuple)))
