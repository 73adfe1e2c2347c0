"""What the fusion passes share: who reads a node, and folding one node into another.

A node folded into another disappears: its readers read the node that absorbed it (at the same
input positions), a graph output it was becomes that node, and the absorbing node's `fused_from`
gains its names. Its own record (op, args, loc) lives on as a step of the absorbing node.
"""
from __future__ import annotations

import networkx as nx


def fused_from(G: nx.MultiDiGraph, n: str) -> tuple:
    return G.nodes[n].get("fused_from", (n,))


def readers(G: nx.MultiDiGraph, n: str) -> list[tuple[str, int]]:
    """(reader, input position) for every edge out of n."""
    return [(dst, k) for _, dst, k in G.out_edges(n, keys=True)]


def sole_reader(G: nx.MultiDiGraph, n: str) -> str | None:
    """The one node that reads n, where exactly one edge leaves n and n is not a graph output."""
    if n in G.graph["outputs"] or G.out_degree(n) != 1:
        return None
    return readers(G, n)[0][0]


def step(G: nx.MultiDiGraph, n: str, **extra) -> dict:
    """n as a step of the node that absorbs it."""
    data = G.nodes[n]
    return {"op": data["op"], "node": n, "args": dict(data["args"]), "loc": data["loc"], **extra}


def absorb(G: nx.MultiDiGraph, keep: str, gone: str, names: tuple | None = None) -> None:
    """Fold `gone`, whose only input is `keep`, into `keep` (in place on G)."""
    data = G.nodes[keep]
    data["fused_from"] = fused_from(G, keep) + (names if names is not None else fused_from(G, gone))
    for _, dst, k in list(G.out_edges(gone, keys=True)):
        G.add_edge(keep, dst, key=k, pos=k)
    G.graph["outputs"] = [keep if o == gone else o for o in G.graph["outputs"]]
    G.remove_node(gone)


def replace_input(G: nx.MultiDiGraph, n: str, pos: int, src: str) -> None:
    """Make `src` the input of n at position `pos`."""
    for s, _, k in list(G.in_edges(n, keys=True)):
        if k == pos:
            G.remove_edge(s, n, key=k)
    G.add_edge(src, n, key=pos, pos=pos)


def copy_graph(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    """A copy whose node dicts and graph attributes a pass may change without touching G's."""
    H = G.copy()            # (new dicts for the graph and every node; their values are shared)
    H.graph["outputs"] = list(G.graph["outputs"])
    return H
