"""merge-siblings: convolutions that read the same tensor the same way become one convolution.

Matches   two or more convolutions reading the same input with the same kernel, stride, padding,
          dilation and bias, groups=1, no prologue and no residual add: the Inception
          "bottleneck" 1x1 reducers (three on one input in the seed's Inception module), and
          ResNet v1's stride-2 conv1 with its stride-2 downsample (both 1x1, stride 2). ResNet
          v1.5 puts the stride on the 3x3 conv2, so its conv1 (1x1, stride 1) and downsample
          (1x1, stride 2) differ and stay apart. Each keeps its own epilogue (its folded
          batchnorm, its activation or none): a backend applies each to its channels, and once
          to all of them where they are the same.
Rewrites  one convolution, named after the first sibling in topological order, whose output
          channels are the siblings' concatenated; "siblings" records each one's channels, args,
          location and epilogue. Each sibling's readers read a `slice` node ("<sibling>:view"),
          a view of its channels, so nothing is copied.
Refuses   siblings that are graph outputs; grouped convolutions (their groups would interleave).
Precondition: runs before fuse-residual, which would give the shortcut convolution an add.
"""
from __future__ import annotations

import networkx as nx

from ..ir import topo_order
from .rewrite import copy_graph, fused_from, readers

KEY_ARGS = ("k", "stride", "pad", "dilation", "groups", "bias")


def merge_siblings(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    order = topo_order(G)
    for src in order:
        if src not in G:
            continue
        groups: dict = {}
        for dst, pos in readers(G, src):
            if pos != 0 or not _mergeable(G, dst):
                continue
            a = G.nodes[dst]["args"]
            key = tuple(a[k] for k in KEY_ARGS)
            if dst not in groups.setdefault(key, []):
                groups[key].append(dst)
        for sibs in groups.values():
            if len(sibs) > 1:
                _merge(G, sorted(sibs, key=order.index))
    return G


def _mergeable(G, n: str) -> bool:
    data = G.nodes[n]
    return (data["op"] == "conv" and data["args"]["groups"] == 1 and "siblings" not in data
            and "prologue" not in data and n not in G.graph["outputs"] and G.in_degree(n) == 1
            and not any(s["op"] == "add" for s in data.get("epilogue", ())))


def _merge(G, sibs: list[str]) -> None:
    first = sibs[0]
    records, at, names = [], 0, ()
    for s in sibs:
        d = G.nodes[s]
        out = d["args"]["out"]
        records.append({"node": s, "start": at, "stop": at + out, "args": dict(d["args"]), "loc": d["loc"],
                        "epilogue": tuple(d.get("epilogue", ()))})
        names += fused_from(G, s)
        at += out
    (src,) = [u for u, _ in G.in_edges(first)]
    edges = {s: list(G.out_edges(s, keys=True)) for s in sibs}
    views = {s: f"{s}:view" for s in sibs}
    nodes = {}
    for n, d in G.nodes(data=True):
        if n == first:
            nodes[n] = {"op": "conv", "args": dict(d["args"], out=at), "shape": (at,) + tuple(d["shape"][1:]),
                        "loc": d["loc"], "scope": d["scope"], "fused_from": names, "siblings": tuple(records)}
            for rec in records:     # the views come right after the merged convolution
                sd = G.nodes[rec["node"]]
                nodes[views[rec["node"]]] = {"op": "slice", "args": {"start": rec["start"], "stop": rec["stop"]},
                                             "shape": sd["shape"], "loc": sd["loc"], "scope": sd["scope"]}
        elif n not in views:
            nodes[n] = d
    kept = [(u, v, k) for u, v, k in G.edges(keys=True) if u not in views and v not in views]
    G.clear_edges()
    G.remove_nodes_from(list(G.nodes))
    G.add_nodes_from(nodes.items())
    G.add_edges_from((u, v, k, {"pos": k}) for u, v, k in kept)
    G.add_edge(src, first, key=0, pos=0)
    for s in sibs:
        G.add_edge(first, views[s], key=0, pos=0)
        for _, dst, k in edges[s]:
            G.add_edge(views[s], dst, key=k, pos=k)
    G.graph["outputs"] = [views.get(o, o) for o in G.graph["outputs"]]
