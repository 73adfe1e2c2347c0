"""The pieces the writer assembles: Python expressions with their dependencies, lines of code,
values of the dataflow, and the signals that make a class be written again."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

CLASS_REF = re.compile(r"\x00R(\d+)\x00")   # a class a call names, decided when the source is assembled
_FIELDS: dict = {}


def replace(obj, **changes):
    """`dataclasses.replace` for the writer's records (no __post_init__, no init-only fields), at a
    fraction of its cost: the writer makes thousands of these per network."""
    cls = obj.__class__
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in fields(cls))
    if not names.issuperset(changes):
        raise TypeError(f"{cls.__name__} has no field {sorted(set(changes) - names)}")
    new = object.__new__(cls)
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


# Precedence of Python expressions, loosest first.
P_IF, P_OR, P_AND, P_NOT, P_CMP, P_ADD, P_MUL, P_UNARY, P_POSTFIX, P_ATOM = range(10)


@dataclass(frozen=True)
class Py:
    """A Python expression: its source, the source variables it depends on (their keys) and its
    precedence."""
    code: str
    deps: frozenset = frozenset()
    prec: int = P_ATOM

    def at(self, prec: int) -> str:
        return self.code if self.prec >= prec else f"({self.code})"


class _Unknown:
    def __repr__(self):
        return "UNKNOWN"


UNKNOWN = _Unknown()


class Restart(Exception):
    """Write the class again with more resolved: AST nodes (conditionals and loops) that keep
    their taken branch or unroll, and source variables that become constants."""

    def __init__(self, nodes=(), keys=(), why: str = ""):
        super().__init__(why or "restart")
        self.nodes, self.keys = set(nodes), set(keys)


class Resolve(Exception):
    """An expression must become a constant (its source variables resolved)."""

    def __init__(self, py: "Py"):
        super().__init__(py.code)
        self.py = py


class NotAChain(Exception):
    """A sequence written as nn.Sequential met dataflow that is not a chain."""


class UseSequential(Exception):
    """The body is a chain of numbered modules: write it as an nn.Sequential."""


@dataclass
class Binding:
    """What a netlang name stands for while a class is written."""
    py: Py | None             # how __init__ reads it; None: decided when the source is written
    value: object             # its concrete value (UNKNOWN where not known)
    key: tuple | None = None  # the source variable it is: ("param", name), ("let", id), ("loop", id)
    fwd: str | None = None    # how forward reads it ("self.stride", a local), once it needs to
    local: bool = False       # a local of __init__ that forward can mirror (a loop variable)
    expr: object = None       # the let's expression (forward recomputes a let bound in a loop)
    env: object = None        # the SEnv the let was bound in


@dataclass
class Val:
    """A value of the dataflow of the class being written."""
    var: str | None           # its variable in forward (None inside an nn.Sequential)
    chan: Py                  # its channels (a vector's length), as __init__ computes them
    rank: int                 # 3: a CxHxW map, 1: a vector
    shape: tuple | None       # its concrete shape (None where not known)
    fresh: bool = False       # new storage made in this forward: an in-place op may overwrite it
    saves: bool = False       # its maker's backward reads it: never overwrite it
    tail: str | None = None   # chan reads the last module of this nn.Sequential (`seq[-1].out_channels`)
    alias: str | None = None  # the variable whose storage it views (a crop, a flatten): overwriting
                              # it in place overwrites that one too
    storage: int = 0          # which tensor storage it is (0: not made here); views share it
    sdeps: frozenset = frozenset()  # what its height and width depend on besides the class's input
                              # (parameters, lets, loop variables): a size read from it is a
                              # constant only where these are


class Lines:
    """Lines of one function body, each with its indentation."""

    def __init__(self):
        self.items: list = []

    def add(self, text: str, indent: int = 0) -> None:
        self.items.append([indent, text])

    def extend(self, other: "Lines", indent: int = 0) -> None:
        for ind, text in other.items:
            self.items.append([ind + indent, text])

    def render(self, base: int) -> list[str]:
        return [" " * (4 * (base + ind)) + t for ind, t in self.items]

    def flat(self) -> str:
        return "\n".join(f"{ind}|{t}" for ind, t in self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class Ref:
    """A reference to a generated class in the source (a token until the classes are named)."""
    block: str                                   # the block's (or def's) netlang name
    drafts: list = field(default_factory=list)   # the drafts it may stand for (empty: any class of it)
    node: object = None                          # what to resolve when the drafts disagree
    kind: str = "class"                          # "class", or "def": the function of a def of one block
    value: object = None                         # the DefValue, for a "def"
    rank: int | None = None                      # a call's: the rank of the input it is called on


class SEnv:
    """Names of the class being written: a dict of bindings over the concrete environment."""

    def __init__(self, cenv, vars: dict | None = None, parent: "SEnv | None" = None, foreign: bool = False):
        self.cenv = cenv            # the netlang Env with the concrete values
        self.vars = vars if vars is not None else {}
        self.parent = parent
        self.foreign = foreign      # bound in another class: every name is read as a constant

    def find(self, name: str):
        e = self
        while e is not None:
            if name in e.vars:
                return e.vars[name]
            e = e.parent
        return None
