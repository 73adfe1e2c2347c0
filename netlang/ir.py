"""The IR: a networkx.MultiDiGraph with one node per layer instance.

The contract (checked by verify()):

node id    the dotted module name, e.g. "layer1.0.conv1"; unique, so it doubles as the state_dict
           prefix of the layer's parameters.
node attrs op      name of an op in netlang.ops.OPS
           args    dict of canonical argument values (defaults filled, sizes as tuples)
           shape   output shape without the batch dimension, a tuple of ints
           loc     SourceLoc of the item that made the node
           scope   dotted path of the innermost scope the node belongs to ("" at the top)
           fused_from (optional) tuple of the names a pass merged into this node
edges      (src, dst, key=i) with attr pos=i: src is the i-th input of dst
graph      name, file, inputs (node ids), outputs (node ids; the first is the main output),
           params (the network's resolved parameters), scopes: {path: {kind, call, block, loc, args, given}}
           where kind is "block", "seq" or "merge".

Everything in the graph is plain data (numbers, strings, tuples, dicts), so it prints, pickles
and renders. A pass maps a graph to a graph and keeps names and locations of what it rewrites.
"""
from __future__ import annotations

import networkx as nx

from . import ops
from .errors import SourceLoc

NODE_ATTRS = ("op", "args", "shape", "loc", "scope")


class IRError(AssertionError):
    """A broken graph invariant: a bug in netlang or in a pass, never the user's fault."""


def inputs_of(G: nx.MultiDiGraph, node: str) -> list[str]:
    """The inputs of `node` in argument order."""
    # The edge key is the input position (see the contract above).
    pairs = sorted((k, src) for src, keys in G._pred[node].items() for k in keys)
    return [src for _, src in pairs]


def topo_order(G: nx.MultiDiGraph) -> list[str]:
    """A deterministic topological order: ties broken by insertion order of the nodes."""
    rank = {n: i for i, n in enumerate(G.nodes)}
    return list(nx.lexicographical_topological_sort(G, key=rank.__getitem__))


def verify(G: nx.MultiDiGraph, check_shapes: bool = True) -> None:
    """Check the IR contract; raise IRError naming the first broken invariant."""
    def fail(msg: str):
        raise IRError(msg)

    for key in ("name", "inputs", "outputs", "scopes"):
        if key not in G.graph:
            fail(f"graph attribute {key!r} is missing")
    if not nx.is_directed_acyclic_graph(G):
        fail(f"graph has a cycle: {nx.find_cycle(G)}")
    scopes = G.graph["scopes"]
    for path, info in scopes.items():
        if info.get("kind") not in ("block", "seq", "merge"):
            fail(f"scope {path!r} has kind {info.get('kind')!r}")
        parent = path.rpartition(".")[0]
        if parent and parent not in scopes:
            fail(f"scope {path!r} sits under an unknown scope {parent!r}")
    for n, data in G.nodes(data=True):
        if not isinstance(n, str) or not n:
            fail(f"node id {n!r} is not a dotted name")
        for attr in NODE_ATTRS:
            if attr not in data:
                fail(f"node {n!r} lacks {attr!r}")
        op = ops.OPS.get(data["op"])
        if op is None:
            fail(f"node {n!r} has unknown op {data['op']!r}")
        if not isinstance(data["loc"], SourceLoc):
            fail(f"node {n!r}: loc is not a SourceLoc")
        if set(data["args"]) != set(op.param_index):
            fail(f"node {n!r}: args {sorted(data['args'])} do not match op {op.name} {sorted(op.param_index)}")
        if not (isinstance(data["shape"], tuple) and data["shape"] and all(isinstance(d, int) and d > 0
                                                                          for d in data["shape"])):
            fail(f"node {n!r}: bad shape {data['shape']!r}")
        scope = data["scope"]
        if scope and scope not in scopes:
            fail(f"node {n!r}: unknown scope {scope!r}")
        if scope and not n.startswith(scope + "."):
            fail(f"node {n!r} is not named under its scope {scope!r}")
        positions = sorted(k for _, _, k in G.in_edges(n, keys=True))
        if positions != list(range(len(positions))):
            fail(f"node {n!r}: input positions {positions} are not 0..{len(positions) - 1}")
        for _, _, k, d in G.in_edges(n, keys=True, data=True):
            if d.get("pos") != k:
                fail(f"node {n!r}: edge key {k} and pos {d.get('pos')} differ")
        if op.arity is not None and len(positions) != op.arity:
            fail(f"node {n!r}: op {op.name} takes {op.arity} inputs, has {len(positions)}")
        if op.arity is None and len(positions) < op.min_inputs:
            fail(f"node {n!r}: op {op.name} needs at least {op.min_inputs} inputs, has {len(positions)}")
    for n in G.graph["inputs"]:
        if n not in G or G.nodes[n]["op"] != "input":
            fail(f"graph input {n!r} is not an input node")
    if not G.graph["outputs"]:
        fail("graph has no outputs")
    for n in G.graph["outputs"]:
        if n not in G:
            fail(f"graph output {n!r} is not a node")
    for n, data in G.nodes(data=True):
        if data["op"] == "input" and n not in G.graph["inputs"]:
            fail(f"input node {n!r} is not listed in graph inputs")
    if check_shapes:
        for n in topo_order(G):
            data = G.nodes[n]
            op = ops.OPS[data["op"]]
            in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
            try:
                expect = op.shape(data["args"], in_shapes)
            except ops.OpError as err:
                fail(f"node {n!r}: shape rule fails on its own inputs: {err.message}")
            if tuple(expect) != data["shape"]:
                fail(f"node {n!r}: recorded shape {data['shape']} but its rule gives {tuple(expect)}")


def state_entries(G: nx.MultiDiGraph) -> list[tuple[str, tuple, bool]]:
    """The state_dict a lowering of G must have: (key, shape, is_buffer), in topological order.

    Keys are `<node name>.<suffix>` with the suffixes and shapes PyTorch's own layers use, so the
    list can be checked against a checkpoint without torch.
    """
    out = []
    for n in topo_order(G):
        data = G.nodes[n]
        in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
        for suffix, shape, buffer in ops.OPS[data["op"]].state(data["args"], in_shapes):
            out.append((f"{n}.{suffix}", tuple(shape), buffer))
    return out
