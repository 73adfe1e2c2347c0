"""drop-identities: the ops that are the identity at inference go.

Matches   identity, dropout and drop_path (the identity at inference), and mean(drop=p) with one
          input is left alone (a merge); nothing with state.
Rewrites  every reader of such a node reads its input instead; a graph output it was becomes
          its input. They copied nothing anyway (views), but they stood between the nodes the
          other passes match: `add { identity ; ... }` reads the block's input directly, and
          DenseNet's `concat { identity ; layer }` chains concat to concat, so concat-in-place
          can put a whole dense block in one buffer.
Precondition: inference only (dropout and drop_path act in training).
"""
from __future__ import annotations

import networkx as nx

from ..ir import inputs_of, topo_order
from .rewrite import copy_graph

IDENTITIES = ("identity", "dropout", "drop_path")


def drop_identities(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    for n in topo_order(G):
        if G.nodes[n]["op"] not in IDENTITIES:
            continue
        (src,) = inputs_of(G, n)
        for _, dst, k in list(G.out_edges(n, keys=True)):
            G.add_edge(src, dst, key=k, pos=k)
        G.graph["outputs"] = [src if o == n else o for o in G.graph["outputs"]]
        G.remove_node(n)
    return G
