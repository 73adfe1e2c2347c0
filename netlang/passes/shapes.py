"""infer-shapes: shape inference over a whole graph.

Elaboration already gives each node its shape as it is placed (a block may read in.channels);
this pass recomputes every shape from the inputs in topological order, for graphs that a pass
has rewritten or that were built by hand, and reports a mismatch at the node's source line.
"""
from __future__ import annotations

import networkx as nx

from .. import ops
from ..errors import NetlangShapeError, NetlangValueError
from ..ir import inputs_of, topo_order


def infer_shapes(G: nx.MultiDiGraph) -> nx.MultiDiGraph:
    G = G.copy()
    for n in topo_order(G):
        data = G.nodes[n]
        op = ops.OPS[data["op"]]
        in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
        try:
            data["shape"] = tuple(op.shape(data["args"], in_shapes))
        except ops.OpError as err:
            cls = NetlangShapeError if err.kind == "shape" else NetlangValueError
            raise cls(f"{n}: {err.message}", data["loc"], hint=err.hint) from None
    return G
