"""fold-bn: a convolution (or linear layer) followed by a batchnorm at inference becomes one node.

Matches   conv -> batchnorm, linear -> batchnorm, where the batchnorm's only input is the
          convolution, the batchnorm is the convolution's only reader, neither has been fused
          with anything after it, and the convolution is not a graph output.
Rewrites  the convolution gains the batchnorm as the first step of its epilogue; the batchnorm
          node goes (its readers read the convolution). At inference a batchnorm is an affine
          map per channel, y = (x - mean) / sqrt(var + eps) * weight + bias, so a backend folds
          it into the convolution's weights and a bias: w' = w * s, b' = (b - mean) * s + bias
          with s = weight / sqrt(var + eps). The state_dict keeps the batchnorm's entries, so an
          unfused checkpoint loads and is folded as it loads.
Refuses   a batchnorm after anything else, a convolution another node also reads (its unfolded
          output is needed), and a convolution whose epilogue already has steps (an activation
          in between makes the map non-affine).
Precondition: inference only (training batchnorm normalises by the batch's statistics).
"""
from __future__ import annotations

import networkx as nx

from ..ir import FUSABLE, inputs_of, topo_order
from .rewrite import absorb, copy_graph, sole_reader, step


def fold_bn(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    for bn in topo_order(G):
        if G.nodes[bn]["op"] != "batchnorm":
            continue
        (src,) = inputs_of(G, bn)
        data = G.nodes[src]
        if data["op"] not in FUSABLE or sole_reader(G, src) != bn or data.get("epilogue") \
                or "siblings" in data:
            continue
        data["epilogue"] = (step(G, bn),)
        absorb(G, src, bn)
    return G
