"""Diagrams: an analysed network drawn as Graphviz DOT, and `dot` for SVG, PNG and PDF.

What is drawn (docs/render.md has the user's version):
- a layer is a box labelled with its op and key arguments (`conv 3x3/2, 64`); unless `expand`,
  the batch norms, activations, dropouts and flattens that follow it in a plain chain fold into
  its box as a second line (`bn · relu`), so a conv-bn-relu reads as one step;
- a merge is a small join: `+` for add, `×` for mul, `mean`, `concat`; an identity (a
  shortcut) is the edge it is, not a box;
- an edge carries the shape of the tensor on it, written once per tensor;
- a scope (block call, labelled sequence) that is drawn open is a cluster labelled with its call;
  one that would hold a single item is not drawn, its item stands in the enclosing cluster;
- `depth=N` draws scopes of N or more name parts as single boxes with their totals, as
  `netlang summary --depth N` groups rows; `depth=None` opens every scope; the default, "auto",
  picks the deepest depth whose drawing stays under AUTO_BUDGET items and AUTO_NESTING levels
  of clusters, judged on the folded drawing, so that `expand` only ever adds items;
- a scope's label is its call with the arguments named (netlang/calltext.py), wrapped;
- unless `expand`, a run of identical consecutive block calls (each feeding only the next) is
  one box, `bottleneck(256) ×5`; so is a run of identical steps between the points where one
  tensor carries everything on (a dense block's `concat{identity, composite(32, 4)} ×6`). Where
  nothing drawn before shows the repeated block's inside, the run's first piece stays open;
- `color` shades each item by its params, MACs or activation memory on a log scale, with a
  legend; a run by its cost per call.

The output is deterministic: items, clusters and edges follow the IR's topological order and
every number is formatted the same way, so a DOT file can be golden-tested.
"""
from __future__ import annotations

import html
import math
import os
import shutil
import subprocess
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .calltext import CALL_WIDTH, CLUSTER_WIDTH, named_call, wrap_call
from .errors import NetlangError, NetlangValueError, shown
from .ir import topo_order
from .ops import fmt_shape
from .summary import describe_op, fusion_parts, human, human_bytes

FORMATS = ("svg", "png", "pdf", "dot")
COLORS = ("params", "macs", "memory")
RANKDIRS = ("TB", "LR")
# The most items (boxes, layers, joins) the automatic depth draws: a page of a paper or a slide
# holds about this many readable boxes.
AUTO_BUDGET = 100
AUTO_NESTING = 4           # clusters inside clusters: a recursive definition opens into many
# Shape-keeping (or flattening) single-input ops that read as decorations of the layer before.
FOLD = {"batchnorm": "bn", "layernorm": "ln", "layer_scale": None, "relu": "relu", "relu6": "relu6", "tanh": "tanh",
        "sigmoid": "sigmoid",
        "hardswish": "hardswish", "hardsigmoid": "hardsigmoid", "silu": "silu", "mish": "mish", "gelu": None,
        "leaky_relu": None, "elu": None, "prelu": None, "softplus": None, "dropout": None, "drop_path": None, "flatten": "flatten", "lrn": None, "scale": None}
JOIN = {"add": "+", "mul": "×", "mean": "mean", "concat": "concat"}
MIN_RUN_LAYERS = 4         # a run collapses only where it holds this many layers besides decorations
# ColorBrewer YlOrRd, light to dark: one shade per bucket of the log scale.
SHADES = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026")
FILL = {"layer": "white", "input": "#e8f0e0", "join": "#fff5d6", "box": "#e3ecf7", "run": "#e3ecf7"}
CLUSTER_FILLS = ("#f4f6f9", "#e9edf3")
INSTALL_HINT = ("install Graphviz's `dot` (apt-get install graphviz / brew install graphviz / "
                "conda install graphviz), or write DOT text with `-o FILE.dot`")


class RenderError(NetlangError):
    kind = "render error"


# ============================================================================ layout

@dataclass
class Item:
    """One drawn box: a layer (with the chain folded into it), a join, a collapsed scope or a run."""
    id: str
    kind: str                     # "layer", "input", "join", "box", "run"
    members: list = field(default_factory=list)   # IR nodes, topological order
    scope: str = ""               # the scope it is drawn in (before dissolving one-item clusters)
    scopes: tuple = ()            # box: (path,); run: the scopes it holds
    run: "_Run | None" = None


@dataclass
class Layout:
    items: list                   # Item, in order of first appearance
    unit: dict                    # IR node -> Item
    clusters: dict                # kept scope path -> parent kept path ("" is the graph)
    place: dict                   # item id -> kept cluster path it is drawn in
    alias: dict                   # identity not drawn -> the node whose tensor it passes on


def _parent(path: str) -> str:
    return path.rpartition(".")[0]


def _parts(path: str) -> int:
    return path.count(".") + 1


class _Tree:
    """Scopes in order of first appearance, their members and children; independent of depth."""

    def __init__(self, G):
        self.G = G
        self.order = topo_order(G)
        self.index = {n: i for i, n in enumerate(self.order)}
        info = G.graph["scopes"]
        # A labelled merge's node takes the label, so its scope is itself: the join is drawn
        # inside the cluster of its branches.
        self.eff = {n: (n if n in info else G.nodes[n]["scope"]) for n in self.order}
        self.members: dict[str, list] = {}
        self.direct: dict[str, list] = defaultdict(list)
        for n in self.order:
            s = self.eff[n]
            self.direct[s].append(n)
            while s:
                m = self.members.get(s)
                if m is None:
                    self.members[s] = [n]
                else:
                    m.append(n)
                s = _parent(s)
        self.info = info
        self.scopes = sorted(self.members, key=lambda s: (self.index[self.members[s][0]], _parts(s)))
        self.children: dict[str, list] = defaultdict(list)
        for s in self.scopes:
            self.children[_parent(s)].append(s)
        self.outputs = set(G.graph["outputs"])
        self.runs: dict[str, list] = {}
        self._entries: dict[str, list] = {}

    def entries(self, p: str) -> list[tuple]:
        """What scope p holds directly, in order: ("n", node, [node]) and ("s", scope, members)."""
        got = self._entries.get(p)
        if got is None:
            got = [(self.index[n], "n", n, [n]) for n in self.direct.get(p, ())]
            got += [(self.index[self.members[s][0]], "s", s, self.members[s]) for s in self.children.get(p, ())]
            got.sort(key=lambda e: e[0])
            got = self._entries[p] = [e[1:] for e in got]
        return got


@dataclass
class _Run:
    pieces: list                  # the repeated pieces, each a list of entries
    label: str                    # one piece, as text

    @property
    def entries(self) -> list:
        return [e for piece in self.pieces for e in piece]

    @property
    def count(self) -> int:
        return len(self.pieces)


def _segments(tree: _Tree, entries: list) -> list[tuple[int, int]] | None:
    """Cut a scope's entries where a single tensor carries everything onward.

    A cut after entry j needs: one node of entries 0..j is read after j (by later entries, by
    anything outside the scope, or as an output), and no later entry reads from outside the
    scope. Returns (first, last) entry ranges ending at cuts; None where entries are not in
    data-flow order.
    """
    m = len(entries)
    pos = {n: i for i, (_, _, nodes) in enumerate(entries) for n in nodes}
    succ, pred, outputs = tree.G._succ, tree.G._pred, tree.outputs
    last: dict[str, int] = {}
    reads_outside = [False] * m
    for i, (_, _, nodes) in enumerate(entries):
        for n in nodes:
            lr = m if n in outputs else -1
            for v in succ[n]:
                j = pos.get(v)
                if j is None:
                    lr = m
                elif j < i:
                    return None
                elif j > lr:
                    lr = j
            last[n] = lr
            if not reads_outside[i] and any(u not in pos for u in pred[n]):
                reads_outside[i] = True
    later = [False] * m
    acc = False
    for j in range(m - 1, -1, -1):
        later[j] = acc
        acc = acc or reads_outside[j]
    alive: set = set()
    expire: dict[int, list] = defaultdict(list)
    segs, start = [], 0
    for j, (_, _, nodes) in enumerate(entries):
        for n in nodes:
            if last[n] > j:
                alive.add(n)
                expire[last[n]].append(n)
        for n in expire.pop(j, ()):
            alive.discard(n)
        if len(alive) == 1 and not later[j]:
            segs.append((start, j))
            start = j + 1
    return segs


def _signature(tree: _Tree, entries: list, a: int, b: int):
    """The structure of entries a..b: ops, arguments, wiring and block calls, not shapes or
    names (a dense layer reads more channels than the one before, and is the same call)."""
    G = tree.G
    nodes = sorted((n for e in entries[a:b + 1] for n in e[2]), key=tree.index.__getitem__)
    local = {n: i for i, n in enumerate(nodes)}
    outside = set()
    sig = []
    for n in nodes:
        d = G.nodes[n]
        ins = sorted((k, u) for u, keys in G._pred[n].items() for k in keys)
        refs = []
        for _, u in ins:
            if u in local:
                refs.append(local[u])
            else:
                outside.add(u)
                refs.append(-1)
        sig.append((d["op"], tuple(sorted(d["args"].items())), tuple(refs)))
    if len(outside) > 1:
        return None
    calls = tuple((kind, tree.info[obj].get("call") if kind == "s" else None, obj.rpartition(".")[2].isdigit())
                  for kind, obj, _ in entries[a:b + 1])
    return calls, tuple(sig)


def _entry_label(tree: _Tree, kind: str, obj: str) -> str:
    if kind == "s":
        return named_call(tree.info[obj]) or obj.rpartition(".")[2]
    d = tree.G.nodes[obj]
    return describe_op(d["op"], d["args"])


def _segment_label(tree: _Tree, entries: list) -> str:
    """`bottleneck(256)`, or for a merge with its branches `concat{identity, composite(32, 4)}`."""
    labels = [_entry_label(tree, k, o) for k, o, _ in entries]
    if len(entries) == 1:
        return labels[0]
    kind, obj, _ = entries[-1]
    G = tree.G
    if kind == "n" and G.nodes[obj]["op"] in JOIN:
        owner = {n: i for i, (_, _, nodes) in enumerate(entries) for n in nodes}
        branches, used = [], set()
        for u in sorted(((k, u) for u, keys in G._pred[obj].items() for k in keys)):
            chain, cur = [], u[1]
            while cur in owner and owner[cur] not in used:
                i = owner[cur]
                used.add(i)
                chain.append(labels[i])
                first = entries[i][2][0]
                srcs = [v for v in G._pred[first] if v in owner]
                cur = srcs[0] if len(srcs) == 1 else None
            branches.append(" → ".join(reversed(chain)) or "identity")
        if len(used) == len(entries) - 1:
            return f"{G.nodes[obj]['op']}{{{', '.join(branches)}}}"
    return " → ".join(labels)


def _chained(tree: _Tree, a: tuple, b: tuple) -> bool:
    """Entry a's one output feeds entry b only, and b reads nothing else."""
    succ, pred, outputs = tree.G._succ, tree.G._pred, tree.outputs
    aset, bset = set(a[2]), set(b[2])
    exits = [n for n in a[2] if n in outputs or any(v not in aset for v in succ[n])]
    if len(exits) != 1 or exits[0] in outputs:
        return False
    x = exits[0]
    return (all(v in bset for v in succ[x] if v not in aset)
            and all(u == x for n in b[2] for u in pred[n] if u not in bset))


def _find_runs(tree: _Tree, entries: list) -> list[_Run]:
    """Runs (two or more) of consecutive pieces with the same structure: segments between the
    scope's cuts (a dense block's `concat { identity  composite(...) }` steps), then single
    entries that feed one another (the block calls of a stage, also inside a branch)."""
    if len(entries) < 2:
        return []
    memo: dict[tuple, object] = {}

    def same(a: tuple, b: tuple) -> bool:
        # Calls, ops and sizes first: the full signature of a big scope is the costly part.
        ca = [(k, tree.info[o].get("call") if k == "s" else tree.G.nodes[o]["op"], len(ns))
              for k, o, ns in entries[a[0]:a[1] + 1]]
        cb = [(k, tree.info[o].get("call") if k == "s" else tree.G.nodes[o]["op"], len(ns))
              for k, o, ns in entries[b[0]:b[1] + 1]]
        if ca != cb:
            return False
        for x in (a, b):
            if x not in memo:
                memo[x] = _signature(tree, entries, *x)
        return memo[a] is not None and memo[a] == memo[b]

    runs, taken = [], [False] * len(entries)
    segs = _segments(tree, entries) or []
    if any(b > a for a, b in segs):
        i = 0
        while i < len(segs):
            j = i
            while j + 1 < len(segs) and same(segs[i], segs[j + 1]):
                j += 1
            if j > i:
                a, b = segs[i][0], segs[j][1]
                first = entries[segs[i][0]:segs[i][1] + 1]
                pieces = [entries[x:y + 1] for x, y in segs[i:j + 1]]
                runs.append(_Run(pieces, _segment_label(tree, first)))
                taken[a:b + 1] = [True] * (b + 1 - a)
            i = j + 1
    cur: list[int] = []

    def close():
        if len(cur) > 1:
            runs.append(_Run([[entries[k]] for k in cur], _segment_label(tree, [entries[cur[0]]])))

    for k, e in enumerate(entries):
        if taken[k]:
            close()
            cur = []
            continue
        if cur and same((cur[0], cur[0]), (k, k)) and _chained(tree, entries[cur[-1]], e):
            cur.append(k)
            continue
        close()
        cur = [k]
    close()
    runs.sort(key=lambda r: tree.index[r.entries[0][2][0]])
    return runs


def layout(G, depth: int | None = None, expand: bool = False, tree: _Tree | None = None) -> Layout:
    """Decide what is drawn: which scopes are clusters, boxes or runs, and what each item holds."""
    tree = tree or _Tree(G)

    # Runs, among the entries of every scope drawn open, top-down in data-flow order. Where a
    # run's block is drawn open nowhere before it, its first piece stays open, so that the
    # picture shows the block's inside once (Inception-v4's `inception_a() ×3` follows one open
    # inception_a); a run that is left with one piece is no run.
    run_of: dict[str, str] = {}           # scope or direct node -> run id
    runs: dict[str, _Run] = {}
    seen: set[str] = set()                # blocks drawn open so far

    def opens(s: str) -> bool:
        return depth is None or _parts(s) < depth

    stack = [""]
    while stack:
        p = stack.pop()
        if p:
            seen.add(tree.info[p].get("block") or "")
        if not expand:
            entries = tree.entries(p)
            if p not in tree.runs:          # runs do not depend on depth: found once per scope
                tree.runs[p] = _find_runs(tree, entries)
            found = {id(r.pieces[0][0]): r for r in tree.runs[p]}
            for e in entries:
                run = found.get(id(e))
                if run is None:
                    if e[0] == "s" and e[1] not in run_of and opens(e[1]):
                        seen.add(tree.info[e[1]].get("block") or "")
                    continue
                if sum(1 for n in (n for _, _, ns in run.entries for n in ns)
                       if tree.G.nodes[n]["op"] not in FOLD) < MIN_RUN_LAYERS:
                    continue          # `basic_conv(96, 3) ×2` would hide two boxes to save one
                blocks = {tree.info[o].get("block") for k, o, _ in run.pieces[0] if k == "s" and opens(o)}
                blocks.discard(None)
                if blocks and not blocks & seen:
                    seen.update(blocks)
                    run = _Run(run.pieces[1:], run.label)
                    if run.count < 2:
                        continue
                rid = "run:" + run.entries[0][1]
                runs[rid] = run
                for _, obj, _ in run.entries:
                    run_of[obj] = rid
        for s in reversed(tree.children.get(p, ())):
            if s not in run_of and (depth is None or _parts(s) < depth):
                stack.append(s)

    # Which item swallows each scope (None: drawn open).
    owner: dict[str, str | None] = {}
    for s in tree.scopes:
        up = owner.get(_parent(s))
        if up is not None:
            owner[s] = up
        elif s in run_of:
            owner[s] = run_of[s]
        elif depth is not None and _parts(s) >= depth:
            owner[s] = "box:" + s
        else:
            owner[s] = None

    items: list[Item] = []
    by_id: dict[str, Item] = {}
    unit: dict[str, Item] = {}
    alias: dict[str, str] = {}            # an identity left out -> the node whose tensor it passes on
    G_nodes = G.nodes
    outputs = tree.outputs
    for n in tree.order:
        s = tree.eff[n]
        oid = run_of.get(n) or (owner.get(s) if s else None)
        if oid is not None:
            it = by_id.get(oid)
            if it is None:
                if oid.startswith("run:"):
                    run = runs[oid]
                    first = run.entries[0][1]
                    where = tree.eff[first] if run.entries[0][0] == "n" else _parent(first)
                    it = Item(oid, "run", scope=where, scopes=tuple(o for k, o, _ in run.entries if k == "s"),
                              run=run)
                else:
                    path = oid[4:]
                    it = Item(oid, "box", scope=_parent(path), scopes=(path,))
                by_id[oid] = it
                items.append(it)
            it.members.append(n)
            unit[n] = it
            continue
        op = G_nodes[n]["op"]
        if not expand and op == "identity" and G.in_degree(n) == 1 and n not in outputs:
            # A shortcut is drawn as the edge it is: the identity's readers read its input.
            (p,) = G._pred[n]
            alias[n] = alias.get(p, p)
            unit[n] = unit[p]
            continue
        if not expand and op in FOLD and G.in_degree(n) == 1:
            (p,) = G._pred[n]
            if p in alias and G.out_degree(p) == 1:     # through an identity only n reads (ConvNeXt's
                p = alias[p]                           # stand-ins for permutes)
            head = unit[p]
            if (head.kind == "layer" and tree.eff[p] == s and G.out_degree(p) == 1 and p not in outputs
                    and head.members[-1] == p):
                head.members.append(n)
                unit[n] = head
                continue
        kind = "input" if op == "input" else "join" if op in JOIN else "layer"
        it = Item("n:" + n, kind, [n], s)
        items.append(it)
        unit[n] = it

    # Clusters: an open scope holding fewer than two items is not drawn, unless its one item is a
    # run (the cluster's label says which call repeats it).
    direct: dict[str, int] = defaultdict(int)
    lone_run: set[str] = set()
    for it in items:
        direct[it.scope] += 1
        if it.kind == "run":
            lone_run.add(it.scope)
    open_scopes = [s for s in tree.scopes if owner[s] is None]
    count = dict(direct)
    kept: set[str] = set()
    for s in reversed(open_scopes):          # children before parents
        c = count.get(s, 0)
        if c >= 2 or (c == 1 and s in lone_run):
            kept.add(s)
            c = 1
        p = _parent(s)
        count[p] = count.get(p, 0) + c

    def nearest(s: str) -> str:
        while s and s not in kept:
            s = _parent(s)
        return s

    clusters = {s: nearest(_parent(s)) for s in open_scopes if s in kept}
    place = {it.id: nearest(it.scope) for it in items}
    return Layout(items, unit, clusters, place, alias)


def _nesting(lay: Layout) -> int:
    level: dict[str, int] = {"": 0}
    for s, parent in lay.clusters.items():       # parents come first
        level[s] = level[parent] + 1
    return max(level.values())


def auto_depth(G, expand: bool = False, tree: _Tree | None = None) -> tuple[int | None, Layout]:
    """The deepest depth (None: every scope open) whose drawing has at most AUTO_BUDGET items in
    clusters nested at most AUTO_NESTING deep, and its layout.

    The depth is chosen on the folded drawing even where `expand` is asked for: expanding is a
    request to see more, and judged on its own count it would close scopes instead."""
    tree = tree or _Tree(G)
    deepest = max((_parts(s) for s in tree.scopes), default=0)
    for d in [None] + list(range(deepest, 0, -1)):
        lay = layout(G, d, False, tree)
        if len(lay.items) <= AUTO_BUDGET and _nesting(lay) <= AUTO_NESTING:
            break
    # (else the shallowest: nothing smaller can be drawn)
    return d, layout(G, d, True, tree) if expand else lay


# ============================================================================ DOT text

def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(s: str) -> str:
    return html.escape(s, quote=False)


def _title(tree: _Tree, path: str, width: int = CALL_WIDTH) -> list[str]:
    """`name: call` for a labelled scope, the call alone for a numbered one, as wrapped lines."""
    own = path.rpartition(".")[2]
    call = named_call(tree.info[path])
    if not call:
        return [own]
    return wrap_call(call if own.isdigit() else f"{own}: {call}", width)


def _run_names(it: Item) -> str:
    """`layer3.1–5`, `features.denseblock1.denselayer1–6`: the names a run spans."""
    objs = list(it.scopes) or [o for _, o, _ in it.run.entries]
    first, last = objs[0], objs[-1]
    a, b = first.rpartition(".")[2], last.rpartition(".")[2]
    pa, pb = a.rstrip("0123456789"), b.rstrip("0123456789")
    if pa == pb and a != pa and b != pb and _parent(first) == _parent(last):
        return f"{first}–{b[len(pb):]}"
    return f"{first}–{b}"


def _where(loc) -> str:
    # (shown: a file name that is not UTF-8 cannot be written into the DOT text as it is)
    return f"{shown(os.path.basename(loc.file))}:{loc.line}" if loc else ""


class _Costs:
    def __init__(self, cost):
        self.by = {c.name: c for c in cost.layers}
        self.bytes = cost.bytes_per_elem

    def of(self, members, metric: str) -> int:
        by = self.by
        if metric == "params":
            return sum(by[n].params for n in members)
        if metric == "macs":
            return sum(by[n].macs for n in members)
        return self.bytes * sum(by[n].act_elems for n in members)


def _fmt_metric(v: float, metric: str) -> str:
    return human_bytes(int(v)) if metric == "memory" else human(round(v))


def _buckets(values: list[int]) -> list[float]:
    """Bucket edges, log-spaced from the smallest positive value to the largest."""
    pos = [v for v in values if v > 0]
    if not pos:
        return []
    lo, hi = min(pos), max(pos)
    if lo == hi:
        return [lo, hi]
    k = len(SHADES)
    step = (math.log10(hi) - math.log10(lo)) / k
    return [10 ** (math.log10(lo) + i * step) for i in range(k)] + [hi]


def _shade(v: int, edges: list[float]) -> int | None:
    if v <= 0 or not edges:
        return None
    k = len(edges) - 1
    for i in range(k):
        if v <= edges[i + 1] * (1 + 1e-9):
            return min(i, len(SHADES) - 1) if k > 1 else len(SHADES) - 1
    return len(SHADES) - 1


def to_dot(net, depth="auto", expand: bool = False, color: str | None = None, rankdir: str = "TB") -> str:
    """DOT source of an analysed network (a netlang.Network)."""
    if color is not None and color not in COLORS:
        raise NetlangValueError(f"unknown --color {color!r}", None, hint="choose one of: " + ", ".join(COLORS))
    if rankdir not in RANKDIRS:
        raise NetlangValueError(f"unknown --rankdir {rankdir!r}", None, hint="choose TB or LR")
    G = net.graph
    tree = _Tree(G)
    if depth == "auto":
        depth, lay = auto_depth(G, expand, tree)
    elif depth is not None and (not isinstance(depth, int) or isinstance(depth, bool) or depth < 1):
        raise NetlangValueError(f"depth must be a positive integer, None or 'auto', got {depth!r}", None)
    else:
        lay = layout(G, depth, expand, tree)
    costs = _Costs(net.cost)
    nodes = G.nodes

    # A run is shaded by its cost per call, so that `bottleneck(256) ×5` has the shade of one
    # bottleneck(256) beside it; its label gives the total.
    values = ({it.id: costs.of(it.members, color) / (it.run.count if it.run else 1) for it in lay.items}
              if color else {})
    edges = _buckets(list(values.values())) if color else []

    def item_line(it: Item) -> str:
        attrs: dict[str, str] = {}
        first = it.members[0]
        tip: list[str] = []
        if it.kind in ("box", "run"):
            mem = it.members
            if it.kind == "box":
                path = it.scopes[0]
                head = _title(tree, path)
                tip.append(f"{path}  {named_call(tree.info[path]) or ''}".rstrip())
                tip.append(_where(tree.info[path].get("loc")))
            else:
                head = wrap_call(it.run.label)
                head[-1] += f" ×{it.run.count}"
                tip.append(f"{_run_names(it)}  {it.run.label} ×{it.run.count}")
                kind, obj, _ = it.run.entries[0]
                tip.append(_where(tree.info[obj].get("loc") if kind == "s" else nodes[obj]["loc"]))
            layers = sum(1 for n in mem if nodes[n]["op"] != "input")
            p, m = costs.of(mem, "params"), costs.of(mem, "macs")
            sub = [f"{'in all: ' if it.run else ''}{layers} layers"]
            if p:
                sub.append(f"{human(p)} params")
            if m:
                sub.append(f"{human(m)} MACs")
            name = it.scopes[0] if it.kind == "box" else _run_names(it)
            last = nodes[mem[-1]]["shape"]
            label = (f"<<b>{'<br/>'.join(_h(h) for h in head)}</b>"
                     f"<br/><font point-size=\"8\">{_h(name)} · {fmt_shape(last)}</font>"
                     f"<br/><font point-size=\"8\">{_h(' · '.join(sub))}</font>>")
            attrs["shape"] = "box"
            attrs["style"] = '"filled,bold"'
        elif it.kind == "join":
            op = nodes[first]["op"]
            sym = JOIN[op]
            if op == "mean" and nodes[first]["args"].get("drop"):
                sym = f"mean drop {nodes[first]['args']['drop']:g}"
            if op == "concat" and nodes[first]["args"].get("crop"):
                sym = "concat crop"
            label = _q(sym)
            if len(sym) == 1:
                attrs["shape"] = "circle"
                attrs["width"] = attrs["height"] = "0.3"
                attrs["fixedsize"] = "true"
                attrs["fontsize"] = "14"
            else:
                attrs["shape"] = "box"
                attrs["style"] = '"rounded,filled"'
                attrs["height"] = "0.22"
                attrs["fontsize"] = "9"
            tip.append(f"{first}  {op}")
            tip.append(_where(nodes[first]["loc"]))
        elif it.kind == "input":
            label = f"<<b>input</b><br/><font point-size=\"8\">{fmt_shape(nodes[first]['shape'])}</font>>"
            attrs["shape"] = "box"
            tip.append(first)
        else:
            d = nodes[first]
            text = f"<b>{_h(describe_op(d['op'], d['args']))}</b>"
            fused = fusion_parts(d)
            if fused:
                # a node the fusion passes made names its parts (and its split, and its concat)
                text += f"<br/><font point-size=\"8\">{_h(' '.join(fused))}</font>"
                tip.append(", ".join(d.get("fused_from", ())))
                if d.get("placement"):
                    attrs["style"] = '"rounded,filled,dashed"'
            tails = []
            for n in it.members[1:]:
                t = nodes[n]
                short = FOLD.get(t["op"])
                tails.append(short or describe_op(t["op"], t["args"]))
            if tails:
                text += f"<br/><font point-size=\"8\">{_h(' · '.join(tails))}</font>"
            label = f"<{text}>"
            tip.append("\n".join(it.members))
            tip.append(_where(d["loc"]))
        if any(n in tree.outputs for n in it.members):
            attrs["peripheries"] = "2"
        fill = FILL[it.kind]
        if color:
            shade = _shade(values[it.id], edges)
            fill = SHADES[shade] if shade is not None else "white"
            if shade is not None and shade >= len(SHADES) - 2:
                attrs["fontcolor"] = "white"
            tip.append(f"{color}: {_fmt_metric(values[it.id], color)}" + (
                f" per call, {_fmt_metric(costs.of(it.members, color), color)} in all" if it.run else ""))
        attrs["fillcolor"] = _q(fill)
        attrs["tooltip"] = _q("\n".join(t for t in tip if t))
        return f"{_q(it.id)} [label={label} " + " ".join(f"{k}={v}" for k, v in attrs.items()) + "]"

    # Items and clusters in order of first appearance, nested.
    content: dict[str, list] = defaultdict(list)
    for i, it in enumerate(lay.items):
        content[lay.place[it.id]].append((tree.index[it.members[0]], 0, it))
    for s, parent in lay.clusters.items():
        content[parent].append((tree.index[tree.members[s][0]], 1, s))

    out: list[str] = []
    net_name = G.graph.get("name", "network")
    t = net.cost.totals()
    title = (f"<b>{_h(net_name)}</b>  <font point-size=\"10\">input {fmt_shape(net.cost.input_shape)} · "
             f"{human(t['params'])} params · {human(t['macs'])} MACs · "
             f"{'full depth' if depth is None else f'depth {depth}'}</font>")
    # The legend sits in the graph's label, under the title, where it never pushes boxes apart.
    title = f"<{title}>" if not (color and edges) else (
        f"<<table border=\"0\" cellborder=\"0\" cellspacing=\"0\" cellpadding=\"2\"><tr><td>{title}</td></tr>"
        f"<tr><td>{_legend(color, edges, any(it.run for it in lay.items))}</td></tr></table>>")
    out.append(f"digraph {_q(net_name)} {{")
    out.append(f"  graph [rankdir={rankdir} label={title} labelloc=t fontname=\"Helvetica\" fontsize=14 "
               f"nodesep=0.18 ranksep=0.28 newrank=true]")
    out.append("  node [shape=box style=\"rounded,filled\" fontname=\"Helvetica\" fontsize=10 height=0.3 "
               "margin=\"0.1,0.04\" color=\"#4d4d4d\" penwidth=0.8]")
    out.append("  edge [fontname=\"Helvetica\" fontsize=8 fontcolor=\"#4d4d4d\" color=\"#6b6b6b\" "
               "arrowsize=0.6 penwidth=0.8]")

    def emit(container: str, indent: str, level: int) -> None:
        for _, kind, obj in sorted(content.get(container, ()), key=lambda x: (x[0], x[1])):
            if kind == 0:
                out.append(indent + item_line(obj))
            else:
                tip = "\n".join(x for x in (obj, named_call(tree.info[obj]), _where(tree.info[obj].get("loc"))) if x)
                out.append(f"{indent}subgraph {_q('cluster:' + obj)} {{")
                lines = _title(tree, obj, width=CLUSTER_WIDTH)
                # `\l` ends a left-aligned line, as the label itself is (labeljust=l)
                label = '"' + "".join(_q(t)[1:-1] + "\\l" for t in lines) + '"' if len(lines) > 1 else _q(lines[0])
                out.append(f"{indent}  label={label} tooltip={_q(tip)} "
                           f"labeljust=l fontsize=9 fontcolor=\"#333333\" style=\"rounded,filled\" "
                           f"fillcolor=\"{CLUSTER_FILLS[level % 2]}\" color=\"#9aa5b1\" penwidth=0.8")
                emit(obj, indent + "  ", level + 1)
                out.append(indent + "}")

    emit("", "  ", 0)

    # Edges: one per (tensor, consumer item); each tensor's shape is written on its first edge
    # (the input's in its box).
    labelled: set[str] = set()
    seen: set[tuple] = set()
    unit = lay.unit
    pred = G._pred
    alias = lay.alias
    for v in tree.order:
        if v in alias:
            continue
        iv = unit[v]
        pairs = sorted((k, u) for u, keys in pred[v].items() for k in keys)
        for _, u in pairs:
            u = alias.get(u, u)
            iu = unit[u]
            if iu is iv or (u, iv.id) in seen:
                continue
            seen.add((u, iv.id))
            attrs = ""
            if u not in labelled and iu.kind != "input":      # the input box shows its shape
                labelled.add(u)
                attrs = f" [label={_q(' ' + fmt_shape(nodes[u]['shape']))}]"
            out.append(f"  {_q(iu.id)} -> {_q(iv.id)}{attrs}")

    out.append("}")
    return "\n".join(out) + "\n"


def _legend(metric: str, edges: list[float], runs: bool = False) -> str:
    """One row: the metric's name, then a swatch per bucket with its upper end, then `none`, and
    where the picture has runs, that they are shaded per call."""
    what = {"params": "parameters", "macs": "MACs", "memory": "activation memory"}[metric]
    cells = [f"<td border=\"0\"><font point-size=\"9\">{what}</font></td>"]
    k = len(edges) - 1
    for i in range(k):
        shade = SHADES[min(i, len(SHADES) - 1)] if k > 1 else SHADES[-1]
        ink = " color=\"white\"" if shade in SHADES[-2:] else ""
        cells.append(f"<td bgcolor=\"{shade}\"><font point-size=\"8\"{ink}>≤ {_h(_fmt_metric(edges[i + 1], metric))}"
                     "</font></td>")
    cells.append("<td bgcolor=\"white\"><font point-size=\"8\">none</font></td>")
    if runs:
        cells.append("<td border=\"0\"><font point-size=\"8\">a run ×n: per call</font></td>")
    return ("<table border=\"0\" cellborder=\"1\" cellspacing=\"0\" cellpadding=\"3\" color=\"#9aa5b1\"><tr>"
            + "".join(cells) + "</tr></table>")


# ============================================================================ dot

def dot_program() -> str:
    """The path of Graphviz's `dot`, or a RenderError that says how to install it."""
    path = shutil.which("dot")
    if path is None:
        raise RenderError("Graphviz's `dot` program was not found on PATH, so only DOT text can be written",
                          None, hint=INSTALL_HINT)
    return path


def check_dpi(dpi, fmt: str) -> None:
    """A NetlangValueError unless `dpi` is None or a positive int for a PNG."""
    if dpi is None:
        return
    if isinstance(dpi, bool) or not isinstance(dpi, int) or dpi < 1:
        raise NetlangValueError(f"dpi must be a positive whole number, got {dpi!r}", None)
    if fmt != "png":
        raise NetlangValueError(f"--dpi sets a PNG's resolution; {fmt.upper()} has none", None,
                                hint="write FILE.png, or leave out --dpi")


def run_dot(dot_text: str, fmt: str, dpi: int | None = None) -> bytes:
    """Lay out DOT text with `dot` and return the output in `fmt` (svg, png or pdf); `dpi` sets
    a PNG's resolution. What dot warns of (a bitmap too large, scaled down) goes to stderr."""
    if fmt not in FORMATS or fmt == "dot":
        raise NetlangValueError(f"dot cannot make {fmt!r}", None, hint="formats: svg, png, pdf")
    check_dpi(dpi, fmt)
    prog = dot_program()
    cmd = [prog, "-T" + fmt] + ([f"-Gdpi={dpi}"] if dpi is not None else [])
    proc = subprocess.run(cmd, input=dot_text.encode("utf-8"), capture_output=True)
    said = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        # DOT written by to_dot() is always valid; a failure here is dot's own (a crash, no memory).
        raise RenderError(f"dot failed (exit {proc.returncode}): {said[:500]}", None)
    for line in said.splitlines():
        # dot only warns of what it changed, e.g. "Warning: ... too large for cairo-renderer
        # bitmaps. Scaling by 0.5 to fit": the picture is not what was asked for.
        sys.stderr.write(line + "\n" if line.startswith("dot") else f"dot: {line}\n")
    return proc.stdout


def format_of(path: str | Path, fmt: str | None = None) -> str:
    if fmt is None:
        fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise NetlangValueError(f"cannot tell the format of {str(path)!r}", None,
                                hint="name the output FILE.svg, FILE.png, FILE.pdf or FILE.dot")
    return fmt


def render(net, path: str | Path, fmt: str | None = None, dpi: int | None = None, **opts) -> Path:
    """Draw `net` into `path`; the format is `fmt` or the file's suffix (svg, png, pdf, dot);
    `dpi` sets a PNG's resolution (dot's default is 96).

    opts: depth ("auto", None for every scope, or N), expand, color, rankdir (see to_dot)."""
    path = Path(path)
    fmt = format_of(path, fmt)
    check_dpi(dpi, fmt)                      # before the work
    text = to_dot(net, **opts)
    _write(path, text.encode("utf-8") if fmt == "dot" else run_dot(text, fmt, dpi))
    return path


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as err:
        raise RenderError(f"cannot write {str(path)!r}: {err.strerror or err}", None) from None


def svg(net, **opts) -> str:
    return run_dot(to_dot(net, **opts), "svg").decode("utf-8")


def source(net, **opts):
    """The diagram as a `graphviz.Source` of to_dot()'s text (the graphviz package)."""
    try:
        import graphviz
    except ImportError:
        raise RenderError("net.graphviz() needs the `graphviz` Python package", None,
                          hint="install netlang[render] (pip install 'netlang[render]'), or use net.to_dot() "
                               "for the DOT text and net.render(path) for a file") from None
    return graphviz.Source(to_dot(net, **opts), filename=f"{net.name}.gv")


def repr_svg(net) -> str | None:
    """The notebook's picture of a network; None (with a warning) where `dot` is missing."""
    try:
        return svg(net)
    except RenderError as err:
        warnings.warn(f"{err.message}; {err.hint or ''}".rstrip("; "), stacklevel=2)
        return None


def render_all(nets, folder: str | Path, fmt: str = "svg", jobs: int | None = None, progress=None,
               dpi: int | None = None, **opts) -> list[Path]:
    """Draw each network of `nets` ((file name, Network) pairs) into `folder` as NAME.fmt (a name
    two files share becomes FILESTEM-NAME.fmt); `dot` runs in parallel. Returns the paths.
    progress(done, what, name), if given, hears of each network as it is laid out and drawn;
    `dpi` sets the PNGs' resolution."""
    from concurrent.futures import ThreadPoolExecutor

    fmt = format_of(f"x.{fmt}")
    check_dpi(dpi, fmt)
    if fmt != "dot":
        dot_program()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RenderError(f"cannot make the folder {str(folder)!r}: {err.strerror or err}", None) from None
    nets = list(nets)
    counts: dict[str, int] = defaultdict(int)
    for _, net in nets:
        counts[net.name] += 1
    jobs_list = []
    for i, (filename, net) in enumerate(nets):
        if progress:
            progress(i, "laying out", net.name)
        stem = net.name if counts[net.name] == 1 else f"{Path(filename).stem}-{net.name}"
        jobs_list.append((folder / f"{stem}.{fmt}", to_dot(net, **opts)))

    def one(job):
        path, text = job
        _write(path, text.encode("utf-8") if fmt == "dot" else run_dot(text, fmt, dpi))
        return path

    # dot is a separate process, so threads run several at once.
    with ThreadPoolExecutor(max_workers=jobs or min(8, os.cpu_count() or 1)) as pool:
        paths = []
        for (_, net), path in zip(nets, pool.map(one, jobs_list)):
            paths.append(path)
            if progress:
                progress(len(paths), "drew", net.name)
        return paths
