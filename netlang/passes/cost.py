"""Cost analysis: parameters, multiply-accumulates, FLOPs and activation memory, per layer, per
scope and in total. The counting convention is stated in netlang/ops.py and docs/cost.md.

Activation memory:
  act_elems    elements of the tensor a layer materialises (0 where the output shares the
               input's storage: views, dropout and identity at inference, and in-place
               activations whose input nothing else reads); the input counts once. Their sum is
               the memory of all activations of one forward pass, as the lecture notes count it.
  training     2 x forward: each stored activation plus its gradient, the notes' rule of thumb.
  peak         the most activation memory live at once during inference, executing in the
               graph's topological order and freeing a tensor after its last reader.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import networkx as nx

from .. import ops
from ..errors import NetlangValueError, paused_gc
from ..ir import FUSED_ATTRS, inputs_of, node_state, topo_order

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}


@dataclass
class LayerCost:
    name: str
    op: str
    shape: tuple
    params: int
    buffers: int
    macs: int
    ew_ops: int
    act_elems: int
    scope: str

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class GroupCost:
    """The sum over a scope (a block call, a labelled sequence) or a single layer."""
    name: str
    kind: str                 # op name for a layer; block name or "seq" for a scope
    shape: tuple              # output shape of the last layer in the group
    params: int = 0
    buffers: int = 0
    macs: int = 0
    ew_ops: int = 0
    act_elems: int = 0
    layers: int = 0

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass
class CostReport:
    network: str
    layers: list[LayerCost]
    dtype: str = "float32"
    peak_elems: int = 0
    input_shape: tuple = ()
    outputs: list = field(default_factory=list)
    scopes: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        # One line, not every layer's row (the table is summary.table()).
        from ..summary import describe_network
        return f"<CostReport {describe_network(self)}, {self.dtype}>"

    # ------------------------------------------------------------ totals
    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def buffers(self) -> int:
        return sum(layer.buffers for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def ew_ops(self) -> int:
        return sum(layer.ew_ops for layer in self.layers)

    @property
    def act_elems(self) -> int:
        return sum(layer.act_elems for layer in self.layers)

    @property
    def bytes_per_elem(self) -> int:
        return DTYPE_BYTES[self.dtype]

    def totals(self) -> dict:
        b = self.bytes_per_elem
        return {
            "params": self.params,
            "buffers": self.buffers,
            "macs": self.macs,
            "flops": self.flops,
            "ew_ops": self.ew_ops,
            "act_elems": self.act_elems,
            "act_bytes_forward": self.act_elems * b,
            "act_bytes_training": 2 * self.act_elems * b,
            "peak_act_elems": self.peak_elems,
            "peak_act_bytes": self.peak_elems * b,
            "param_bytes": (self.params + self.buffers) * b,
            "dtype": self.dtype,
            "layers": sum(1 for layer in self.layers if layer.op != "input"),
        }

    # ------------------------------------------------------------ grouping
    def scope_cost(self, path: str) -> GroupCost:
        """Totals of everything named under `path` (a scope) or named `path` (a layer)."""
        members = [layer for layer in self.layers if layer.name == path or layer.name.startswith(path + ".")]
        if not members:
            raise KeyError(path)
        return self._group(path, members)

    def _group(self, name: str, members: list[LayerCost]) -> GroupCost:
        if len(members) == 1 and members[0].name == name:
            kind = members[0].op
        else:
            info = self.scopes.get(name) or {}
            kind = info.get("call") or info.get("block") or info.get("kind") or "seq"
        g = GroupCost(name, kind, members[-1].shape)
        for m in members:
            g.params += m.params
            g.buffers += m.buffers
            g.macs += m.macs
            g.ew_ops += m.ew_ops
            g.act_elems += m.act_elems
            g.layers += m.op != "input"
        return g

    def rows(self, depth: int | None = None) -> list[GroupCost]:
        """One row per layer, or with `depth`, names deeper than `depth` parts collapse into the
        scope that holds them, in order of first appearance."""
        if depth is None:
            return [self._group(layer.name, [layer]) for layer in self.layers]
        order: list[str] = []
        members: dict[str, list[LayerCost]] = {}
        for layer in self.layers:
            parts = layer.name.split(".")
            key = ".".join(parts[:depth]) if len(parts) > depth else layer.name
            if key not in members:
                order.append(key)
                members[key] = []
            members[key].append(layer)
        return [self._group(k, members[k]) for k in order]

    def to_json(self, depth: int | None = None) -> dict:
        rows = []
        for g in self.rows(depth):
            d = asdict(g)
            d["shape"] = list(g.shape)
            d["flops"] = g.flops
            rows.append(d)
        return {
            "network": self.network,
            "input": list(self.input_shape),
            "outputs": self.outputs,
            "convention": CONVENTION,
            "layers": rows,
            "totals": self.totals(),
        }


CONVENTION = ("macs: multiply-accumulates of conv, conv_t and linear weights (bias adds excluded); "
              "flops = 2 x macs; ew_ops: element-wise work (batchnorm, activations, pooling, merges, bias adds) "
              "counted apart; params: weights and biases; buffers: other state_dict entries; "
              "act_elems: elements each layer materialises (in-place, view and dropout outputs excluded), "
              "input included; training activations = 2 x forward")


def analyse(G: nx.MultiDiGraph, dtype: str = "float32") -> CostReport:
    if dtype not in DTYPE_BYTES:
        raise NetlangValueError(f"unknown dtype {dtype!r}", None, hint="dtypes: " + ", ".join(DTYPE_BYTES))
    with paused_gc():
        return _analyse(G, dtype)


def _analyse(G: nx.MultiDiGraph, dtype: str) -> CostReport:
    order = topo_order(G)
    shares = shares_input(G, order)
    layers: list[LayerCost] = []
    for n in order:
        data = G.nodes[n]
        op = ops.OPS[data["op"]]
        in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
        if any(k in data for k in FUSED_ATTRS):
            c = _fused_cost(G, n, in_shapes)
        else:
            c = op.costs(data["args"], in_shapes, data["shape"])
        act = 0 if shares[n] else ops.numel(data["shape"])
        layers.append(LayerCost(n, data["op"], data["shape"], c.params, c.buffers, c.macs, c.ew_ops, act,
                                data["scope"]))
    input_shape = G.nodes[G.graph["inputs"][0]]["shape"] if G.graph.get("inputs") else ()
    return CostReport(G.graph.get("name", ""), layers, dtype, _peak(G, order, shares), input_shape,
                      list(G.graph.get("outputs", [])), dict(G.graph.get("scopes", {})))


def _fused_cost(G: nx.MultiDiGraph, n: str, in_shapes: list) -> ops.Cost:
    """A node the fusion passes made costs what the nodes it stands for cost (the same MACs, the
    same element-wise work, the same state), except the memory of the tensors between them."""
    data = G.nodes[n]
    op = ops.OPS[data["op"]]
    base = in_shapes[:op.arity] if op.arity is not None else in_shapes
    out = data["shape"]
    own = op.cost(data["args"], base, out)
    macs, ew = own.macs, own.ew_ops
    for st in data.get("prologue", ()):
        ew += ops.OPS[st["op"]].cost(st["args"], [base[0]], base[0]).ew_ops
    if "siblings" in data:
        ew = 0
        for sib in data["siblings"]:
            shape = (sib["stop"] - sib["start"],) + tuple(out[1:])
            ew += op.cost(sib["args"], base, shape).ew_ops
            ew += sum(ops.OPS[st["op"]].cost(st["args"], [shape], shape).ew_ops for st in sib["epilogue"])
    for st in data.get("epilogue", ()):
        if st["op"] == "add":
            ew += len(st["inputs"]) * ops.numel(out)
        else:
            ew += ops.OPS[st["op"]].cost(st["args"], [out], out).ew_ops
    entries = node_state(G, n)
    return ops.Cost(params=sum(ops.numel(s) for _, s, buf in entries if not buf),
                    buffers=sum(ops.numel(s) for _, s, buf in entries if buf), macs=macs, ew_ops=ew)


def shares_input(G: nx.MultiDiGraph, order: list[str]) -> dict[str, bool]:
    """Which nodes' outputs live in their input's storage.

    Views and inference-time identities always do. An in-place op does only where its input's
    storage has no other reader: `add { relu \n identity }` must copy, or the identity branch
    would read the relu's result. After concat-in-place, a concat's buffer also holds the values
    placed into it, so an in-place op may not overwrite a concat one of whose placed values has
    another reader.
    """
    outputs = set(G.graph.get("outputs", []))
    inputs = set(G.graph.get("inputs", []))
    placed: dict[str, list] = {}        # concat -> the values placed into it
    for n in order:
        if "placement" in G.nodes[n]:
            placed.setdefault(G.nodes[n]["placement"]["into"], []).append(n)
    shares: dict[str, bool] = {}
    exclusive: dict[str, bool] = {}     # what the node's storage holds has one reader, the node's
    for n in order:
        op = ops.OPS[G.nodes[n]["op"]]
        ins = inputs_of(G, n)
        if op.aliases_input and ins:
            shares[n] = True
        elif op.inplace and ins:
            shares[n] = exclusive[ins[0]]
        else:
            shares[n] = False
        # (a placed value that is a view, an identity say, holds what its input holds)
        exclusive[n] = (G.out_degree(n) == 1 and n not in outputs and n not in inputs
                        and (not shares[n] or exclusive[ins[0]])
                        and all(exclusive[p] for p in placed.get(n, ())))
    return shares


def _peak(G: nx.MultiDiGraph, order: list[str], shares: dict[str, bool]) -> int:
    """Peak live activation elements during inference in `order`."""
    owner: dict[str, str] = {}          # node -> the node whose buffer its output lives in
    size: dict[str, int] = {}
    readers: dict[str, int] = {}        # buffer -> reads still to come
    outputs = set(G.graph.get("outputs", []))
    live = peak = 0
    for n in order:
        data = G.nodes[n]
        ins = inputs_of(G, n)
        if shares[n]:
            owner[n] = owner[ins[0]]
        else:
            owner[n] = n
            size[n] = ops.numel(data["shape"])
            readers[n] = 0
            live += size[n]
        peak = max(peak, live)
        readers[owner[n]] += G.out_degree(n) + (n in outputs)
        for s in ins:
            readers[owner[s]] -= 1
        for b in {owner[s] for s in ins}:
            if readers[b] == 0:
                live -= size[b]
    return peak
