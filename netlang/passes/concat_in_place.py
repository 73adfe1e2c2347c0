"""concat-in-place: the inputs of a concat write straight into its output.

Matches   every input of a concat (crop=false, or a crop that crops nothing) that is made here:
          a node that is not the network's input, not a view of another tensor (identity,
          dropout, flatten, a merged sibling's slice), not already placed, and the concat's input
          at one position only.
Rewrites  the producer gains {"placement": {"into": concat, "offset": c}}: it writes its output
          into channels c.. of the concat's buffer, and the concat copies nothing for it. A
          concat placed into another concat nests: DenseNet's dense block is one chain of
          concats, each the first input of the next, so the whole block lives in one buffer of
          the block's final width; each layer writes its growth-rate channels into the slice it
          adds, and reads the channels before it as a view. The chain ends at the transition,
          whose convolution makes a new tensor.
Refuses   a producer a second concat also reads (it is placed into the first in topological
          order; the second copies it), the graph input, views, and inputs a crop shrinks.
Precondition: a backend that can write a node's output into a slice of another buffer (the GPU
          backend); the PyTorch backend keeps torch.cat, whose copies cost little on the CPU.
"""
from __future__ import annotations

import networkx as nx

from .. import ops
from ..ir import inputs_of, topo_order
from .rewrite import copy_graph


def concat_in_place(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = copy_graph(G)
    for cat in topo_order(G):
        data = G.nodes[cat]
        if data["op"] != "concat" or len(data["shape"]) != 3:
            continue
        ins = inputs_of(G, cat)
        offset = 0
        for src in ins:
            s = G.nodes[src]
            if (tuple(s["shape"][1:]) == tuple(data["shape"][1:]) and ins.count(src) == 1
                    and s["op"] != "input" and not ops.OPS[s["op"]].aliases_input and "placement" not in s
                    and src not in G.graph["outputs"]):
                s["placement"] = {"into": cat, "offset": offset}
            offset += s["shape"][0]
    return G
