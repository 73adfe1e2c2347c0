"""fuse-residual: a residual add, and the activation after it, join a convolution's epilogue.

Matches   add { ... -> conv [-> bn -> scale] ; shortcut ... } [-> relu]: an add one of whose
          inputs is a convolution or linear layer (with whatever epilogue fold-bn and
          fuse-activation gave it, but no add yet) whose only reader is the add. ResNet's
          `out += identity; relu`, ResNeXt's and Wide ResNet's, Inception-ResNet's scaled
          residuals (conv -> scale(0.17) -> add -> relu).
Rewrites  the convolution reads the add's other inputs too (at positions 1, 2, ...); its epilogue
          gains {"op": "add", "inputs": (1, ...)} and then the activation after the add, if the
          add is that activation's only input and the activation its only reader. The add node
          (and the activation) go. Where several inputs qualify (ResNet's projection shortcut
          is a conv too), the one computed last in topological order takes the add, so the
          other is ready when it runs.
Refuses   an add whose convolution input something else also reads, or a merged convolution
          (its output is several tensors); adds of three or more inputs are fused the same way
          (every other input becomes a residual input).
Precondition: run after fold-bn (a batchnorm between the conv and the add blocks the match)
          and merge-siblings (ResNet v1's downsample merges with conv1, and conv3 takes the add).
"""
from __future__ import annotations

import networkx as nx

from ..ir import FUSABLE, inputs_of, topo_order
from .fuse_activation import POINTWISE
from .rewrite import absorb, copy_graph, sole_reader, step


def fuse_residual(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    rank = {n: i for i, n in enumerate(topo_order(G))}
    for add in list(rank):
        if add not in G or G.nodes[add]["op"] != "add":
            continue
        ins = inputs_of(G, add)
        ok = [i for i, s in enumerate(ins) if _takes_add(G, s, add) and ins.count(s) == 1]
        if not ok:
            continue
        pos = max(ok, key=lambda i: rank[ins[i]])
        conv = ins[pos]
        others = [s for i, s in enumerate(ins) if i != pos]
        data = G.nodes[conv]
        G.remove_edge(conv, add, key=pos)
        for j, s in enumerate(others, 1):
            G.add_edge(s, conv, key=j, pos=j)
        data["epilogue"] = tuple(data.get("epilogue", ())) + (step(G, add, inputs=tuple(range(1, len(others) + 1))),)
        absorb(G, conv, add)
        act = sole_reader(G, conv)
        if act is not None and G.nodes[act]["op"] in POINTWISE and len(inputs_of(G, act)) == 1:
            data["epilogue"] += (step(G, act),)
            absorb(G, conv, act)
    return G


def _takes_add(G, n: str, add: str) -> bool:
    data = G.nodes[n]
    return (data["op"] in FUSABLE and sole_reader(G, n) == add and "siblings" not in data
            and not any(s["op"] == "add" for s in data.get("epilogue", ())))
