"""IR -> onnx.ModelProto: the nodes in the IR's topological order, each through its rule in
lowering.LOWER, with every value's shape annotated from the IR's inferred shapes."""
from __future__ import annotations

import networkx as nx
import numpy as np
from onnx import helper

from netlang.errors import NetlangValueError
from netlang.ir import FUSED_ATTRS, eval_outputs, inputs_of, state_entries, topo_order

from . import OPSET, PRODUCER
from .graph import Builder, value_info
from .lowering import LOWER
from .weights import drawn, given

IR_VERSION = 8      # the IR version of opset 18: what onnxruntime >= 1.14 reads


def check_lowerable(G) -> None:
    """Every node is an op ONNX has a rule for, of the unfused IR."""
    for n in topo_order(G):
        data = G.nodes[n]
        if any(k in data for k in FUSED_ATTRS):
            raise NetlangValueError(f"the ONNX backend exports the unfused network; {n} is fused", data["loc"],
                                    hint="load it without passes: onnxruntime folds batchnorms itself")
        if data["op"] != "input" and data["op"] not in LOWER:
            raise NetlangValueError(f"ONNX has no lowering of op {data['op']} (layer {n})", data["loc"],
                                    hint="docs/onnx.md lists the ops the ONNX backend exports")


def build(net, state, init: bool, batch, seed: int):
    G = net.graph
    check_lowerable(G)
    name = G.graph["name"]
    if not (isinstance(batch, str) and batch or isinstance(batch, int) and not isinstance(batch, bool) and batch > 0):
        raise NetlangValueError(f"batch must be a dimension name or a positive int, got {batch!r}", None)
    entries = state_entries(G)
    if state is not None:
        weights = given(entries, state, name)
    elif init:
        weights = drawn(G, entries, seed)
    else:
        weights = {k: np.zeros(s, np.float32) for k, s, _ in entries if not k.endswith("num_batches_tracked")}
    outputs = eval_outputs(G)
    # auxiliary heads exist in training only: the layers only they read are left out
    keep = set(outputs).union(*(nx.ancestors(G, o) for o in outputs))
    b = Builder(weights)
    values, infos = {}, []
    inputs = []
    for n in topo_order(G):
        if n not in keep:
            continue
        data = G.nodes[n]
        values[n] = b.value_name(n)
        if data["op"] == "input":
            inputs.append(value_info(values[n], data["shape"], batch))
            continue
        ins = inputs_of(G, n)
        b.node, b.out_shape = n, data["shape"]
        LOWER[data["op"]](b, n, data["args"], [values[s] for s in ins], [G.nodes[s]["shape"] for s in ins],
                          values[n])
        if n not in outputs:
            infos.append(value_info(values[n], data["shape"], batch))
    graph = helper.make_graph(b.nodes, name, inputs,
                              [value_info(values[o], G.nodes[o]["shape"], batch) for o in outputs],
                              initializer=b.initializers(), value_info=infos,
                              doc_string=f"{name}: made by netlang from {G.graph.get('file') or '<string>'}")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER,
                              ir_version=IR_VERSION)
    helper.set_model_props(model, {"network": name, "outputs": ", ".join(outputs)})
    return model
