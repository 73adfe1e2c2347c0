"""fuse-activation: an element-wise op after a convolution or linear layer joins its epilogue.

Matches   conv/linear (fused or not) -> an element-wise op without state (POINTWISE: relu, relu6,
          tanh, sigmoid, hardswish, hardsigmoid, silu, gelu, leaky_relu, elu, mish, softplus,
          scale), where the op is the node's only reader and the node is not a graph output.
Rewrites  the op becomes the next step of the node's epilogue and its node goes. A chain of them
          (conv -> bn -> relu -> scale) folds step by step, in order.
Refuses   an op another node's output feeds, or a node whose unactivated output something else
          reads; ops that are not element-wise (softmax, log_softmax, lrn, pooling); prelu, whose
          slope is state of its own (a step would need a tensor argument).
"""
from __future__ import annotations

import networkx as nx

from ..ir import FUSABLE, inputs_of, topo_order
from .rewrite import absorb, copy_graph, sole_reader, step

POINTWISE = ("relu", "relu6", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu",
             "mish", "softplus", "scale")


def fuse_activation(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    for act in topo_order(G):
        if act not in G or G.nodes[act]["op"] not in POINTWISE:
            continue
        (src,) = inputs_of(G, act)
        data = G.nodes[src]
        if data["op"] not in FUSABLE or sole_reader(G, src) != act or "siblings" in data:
            continue
        data["epilogue"] = tuple(data.get("epilogue", ())) + (step(G, act),)
        absorb(G, src, act)
    return G
