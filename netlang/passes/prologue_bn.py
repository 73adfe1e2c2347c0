"""prologue-bn: a batchnorm and activation in front of a convolution join it as its prologue.

Matches   batchnorm [-> relu/relu6] -> conv, where the batchnorm's output goes only to the
          activation (or the conv) and the activation's only to the conv, and neither is a graph
          output: pre-activation ResNet's and Wide ResNet's bn -> relu -> conv inside a block,
          DenseNet's norm -> relu -> conv in every dense layer and transition.
Rewrites  the conv reads the batchnorm's input and applies scale, shift and activation to each
          value as it reads it; zero padding stays zero (the prologue applies to real pixels
          only, as the unfused network pads the activated map). The two nodes go.
Refuses   a pre-activation shared by two convolutions (pre-activation ResNet's first block of a
          stage feeds conv1 and the projection shortcut from one bn -> relu): the activated map
          is needed twice, and computing it once is cheaper than twice.
Precondition: inference only. The PyTorch backend computes the prologue as one fused
          element-wise pass before the convolution; a GPU kernel applies it as it loads a tile.
"""
from __future__ import annotations

import networkx as nx

from ..ir import inputs_of, topo_order
from .rewrite import copy_graph, fused_from, replace_input, sole_reader, step

ACTS = ("relu", "relu6")


def prologue_bn(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    for conv in topo_order(G):
        data = G.nodes[conv]
        if data["op"] != "conv" or "prologue" in data or "siblings" in data:
            continue
        chain = []
        n = inputs_of(G, conv)[0]
        if G.nodes[n]["op"] in ACTS and sole_reader(G, n) == conv:
            chain.append(n)
            n = inputs_of(G, n)[0]
        if G.nodes[n]["op"] != "batchnorm" or sole_reader(G, n) != (chain[0] if chain else conv) \
                or "fused_from" in G.nodes[n]:
            continue
        chain.insert(0, n)
        src = inputs_of(G, n)[0]
        data["prologue"] = tuple(step(G, m) for m in chain)
        data["fused_from"] = fused_from(G, conv) + tuple(chain)
        replace_input(G, conv, 0, src)
        G.remove_nodes_from(chain)
    return G
