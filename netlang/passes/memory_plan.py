"""memory-plan: a static assignment of every activation to an offset in one arena.

Reads     the graph after the other passes, executed in topological order at inference.
Computes  the buffers: a node that makes a tensor owns one (its output's elements); a view
          (identity, dropout, flatten, a slice) and an in-place op whose input nothing else
          reads live in their input's buffer; a node placed into a concat lives in the concat's
          buffer, which then exists from the first of its producers on. A buffer is live from
          the step its first writer runs to the step its last reader (or any view of it) runs;
          graph outputs live to the end; the network's input is given, not planned.
          Offsets: largest buffer first, each at the lowest offset where it overlaps no placed
          buffer that is live at the same time (greedy by size, as TFLite's planner does).
Writes    G.graph["memory_plan"] = {"arena": elements, "peak": elements, "buffers": {buffer:
          (offset, elements, first step, last step)}, "owner": {node: (buffer, channel offset)}},
          per sample (a batch of N multiplies offsets and sizes by N) and in elements (the dtype
          is the backend's). A buffer is named after the node that owns it. "peak" is the most
          elements live at one step, a lower bound no arena beats.
"""
from __future__ import annotations

import networkx as nx

from .. import ops
from ..ir import inputs_of, topo_order
from .cost import shares_input
from .rewrite import copy_graph


def memory_plan(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    G.graph["memory_plan"] = plan(G)
    return G


def plan(G: nx.MultiDiGraph) -> dict:
    order = topo_order(G)
    step = {n: i for i, n in enumerate(order)}
    outputs = set(G.graph["outputs"])
    shares = shares_input(G, order)
    owner: dict = {}          # node -> (the node whose buffer holds it, channel offset in it)
    size: dict = {}
    first: dict = {}
    last: dict = {}

    def root(n):
        at = 0
        while "placement" in G.nodes[n]:
            p = G.nodes[n]["placement"]
            at += p["offset"]
            n = p["into"]
        return n, at

    for n in order:
        data = G.nodes[n]
        ins = inputs_of(G, n)
        if "placement" in data:
            owner[n] = root(n)
        elif shares[n]:
            b, at = owner[ins[0]]
            owner[n] = (b, at + (data["args"]["start"] if data["op"] == "slice" else 0))
        else:
            owner[n] = (n, 0)
        b = owner[n][0]
        if G.nodes[b]["op"] != "input":
            size.setdefault(b, ops.numel(G.nodes[b]["shape"]))
            first[b] = min(first.get(b, step[n]), step[n])
            last[b] = max(last.get(b, step[n]), step[n])
        for s in ins:
            sb = owner[s][0]
            if sb in size:
                last[sb] = max(last[sb], step[n])
    end = len(order)
    for o in outputs:
        if owner[o][0] in size:
            last[owner[o][0]] = end
    buffers = {}
    for b in sorted(size, key=lambda b: (-size[b], first[b], step[b])):
        lo, hi = first[b], last[b]
        busy = sorted((off, off + sz) for off, sz, f, l in buffers.values() if not (l < lo or f > hi))
        at = 0
        for start, stop in busy:
            if at + size[b] <= start:
                break
            at = max(at, stop)
        buffers[b] = (at, size[b], lo, hi)
    arena = max((off + sz for off, sz, _, _ in buffers.values()), default=0)
    peak = max((sum(sz for _, sz, f, l in buffers.values() if f <= t <= l) for t in range(end + 1)), default=0)
    return {"arena": arena, "peak": peak, "buffers": buffers, "owner": owner}
