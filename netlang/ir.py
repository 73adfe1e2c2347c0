"""The IR: a networkx.MultiDiGraph with one node per layer instance.

The contract (checked by verify()):

node id    the dotted module name, e.g. "layer1.0.conv1"; unique, so it doubles as the state_dict
           prefix of the layer's parameters.
node attrs op      name of an op in netlang.ops.OPS
           args    dict of canonical argument values (defaults filled, sizes as tuples)
           shape   output shape without the batch dimension, a tuple of ints
           loc     SourceLoc of the item that made the node
           scope   dotted path of the innermost scope the node belongs to ("" at the top)
           fused_from (optional) tuple of the names a pass merged into this node
           prologue, epilogue, siblings, placement (optional) what fusion passes made a node
           do besides its op (see FUSED_ATTRS and docs/ir.md)
edges      (src, dst, key=i) with attr pos=i: src is the i-th input of dst
graph      name, file, inputs (node ids), outputs (node ids; the first is the main output),
           params (the network's resolved parameters), scopes: {path: {kind, call, block, loc, args, given}}
           where kind is "block", "seq" or "merge".

Everything in the graph is plain data (numbers, strings, tuples, dicts), so it prints, pickles
and renders. A pass maps a graph to a graph and keeps names and locations of what it rewrites.
"""
from __future__ import annotations

import networkx as nx

from . import ops
from .errors import SourceLoc

NODE_ATTRS = ("op", "args", "shape", "loc", "scope")

# What fusion passes add to a node (all optional, all plain data):
#   fused_from  tuple of the ids of the nodes it stands for, its own first
#   prologue    steps applied to input 0 as the op reads it (a pre-activation batchnorm and relu)
#   epilogue    steps applied to the op's output, in order (a folded batchnorm, an activation, a
#               scale, a residual add of further inputs)
#   siblings    a convolution that computes several: each {"node", "start", "stop", "args", "loc",
#               "epilogue"}, the original convolution's channels start:stop of this node's output
#   placement   {"into": a concat node, "offset": channels}: the node writes its output into
#               that slice of the concat's output, so the concat copies nothing
# A step is {"op", "node", "args", "loc"}: the op and arguments of the node it stands for (whose
# state_dict entries keep that node's name); an "add" step has "inputs", the positions (1, 2...)
# of the further inputs it adds.
FUSED_ATTRS = ("fused_from", "prologue", "epilogue", "siblings", "placement")
STEP_OPS = ("batchnorm", "relu", "relu6", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "gelu",
            "leaky_relu", "elu", "mish", "softplus", "scale", "add")
FUSABLE = ("conv", "linear")     # the ops that take prologues, epilogues and siblings


class IRError(AssertionError):
    """A broken graph invariant: a bug in netlang or in a pass, never the user's fault."""


def eval_outputs(G: nx.MultiDiGraph) -> list[str]:
    """The outputs a network returns at inference: its outputs but the auxiliary ones (which
    exist in training only), the main one first."""
    aux = G.graph.get("output_aux") or [False] * len(G.graph["outputs"])
    return [o for o, a in zip(G.graph["outputs"], aux) if not a]


def inputs_of(G: nx.MultiDiGraph, node: str) -> list[str]:
    """The inputs of `node` in argument order."""
    # The edge key is the input position (see the contract above).
    pairs = sorted((k, src) for src, keys in G._pred[node].items() for k in keys)
    return [src for _, src in pairs]


def topo_order(G: nx.MultiDiGraph) -> list[str]:
    """A deterministic topological order: ties broken by insertion order of the nodes."""
    rank = {n: i for i, n in enumerate(G.nodes)}
    return list(nx.lexicographical_topological_sort(G, key=rank.__getitem__))


def verify(G: nx.MultiDiGraph, check_shapes: bool = True) -> None:
    """Check the IR contract; raise IRError naming the first broken invariant."""
    def fail(msg: str):
        raise IRError(msg)

    for key in ("name", "inputs", "outputs", "scopes"):
        if key not in G.graph:
            fail(f"graph attribute {key!r} is missing")
    if not nx.is_directed_acyclic_graph(G):
        fail(f"graph has a cycle: {nx.find_cycle(G)}")
    scopes = G.graph["scopes"]
    for path, info in scopes.items():
        if info.get("kind") not in ("block", "seq", "merge", "module"):
            fail(f"scope {path!r} has kind {info.get('kind')!r}")
        parent = path.rpartition(".")[0]
        if parent and parent not in scopes:
            fail(f"scope {path!r} sits under an unknown scope {parent!r}")
    for n, data in G.nodes(data=True):
        if not isinstance(n, str) or not n:
            fail(f"node id {n!r} is not a dotted name")
        for attr in NODE_ATTRS:
            if attr not in data:
                fail(f"node {n!r} lacks {attr!r}")
        op = ops.OPS.get(data["op"])
        if op is None:
            fail(f"node {n!r} has unknown op {data['op']!r}")
        if not isinstance(data["loc"], SourceLoc):
            fail(f"node {n!r}: loc is not a SourceLoc")
        if set(data["args"]) != set(op.param_index):
            fail(f"node {n!r}: args {sorted(data['args'])} do not match op {op.name} {sorted(op.param_index)}")
        if not (isinstance(data["shape"], tuple) and data["shape"] and all(isinstance(d, int) and d > 0
                                                                          for d in data["shape"])):
            fail(f"node {n!r}: bad shape {data['shape']!r}")
        scope = data["scope"]
        if scope and scope not in scopes:
            fail(f"node {n!r}: unknown scope {scope!r}")
        if scope and not n.startswith(scope + "."):
            fail(f"node {n!r} is not named under its scope {scope!r}")
        positions = sorted(k for _, _, k in G.in_edges(n, keys=True))
        if positions != list(range(len(positions))):
            fail(f"node {n!r}: input positions {positions} are not 0..{len(positions) - 1}")
        for _, _, k, d in G.in_edges(n, keys=True, data=True):
            if d.get("pos") != k:
                fail(f"node {n!r}: edge key {k} and pos {d.get('pos')} differ")
        extra = _verify_fused(n, data, fail)
        if op.arity is not None and len(positions) != op.arity + extra:
            fail(f"node {n!r}: op {op.name} takes {op.arity + extra} inputs, has {len(positions)}")
        if op.arity is None and len(positions) < op.min_inputs:
            fail(f"node {n!r}: op {op.name} needs at least {op.min_inputs} inputs, has {len(positions)}")
    for n in G.graph["inputs"]:
        if n not in G or G.nodes[n]["op"] != "input":
            fail(f"graph input {n!r} is not an input node")
    if not G.graph["outputs"]:
        fail("graph has no outputs")
    for n in G.graph["outputs"]:
        if n not in G:
            fail(f"graph output {n!r} is not a node")
    for n, data in G.nodes(data=True):
        if data["op"] == "input" and n not in G.graph["inputs"]:
            fail(f"input node {n!r} is not listed in graph inputs")
    for n, data in G.nodes(data=True):
        place = data.get("placement")
        if place is not None:
            into = place.get("into")
            if into not in G or G.nodes[into]["op"] != "concat" or n not in inputs_of(G, into):
                fail(f"node {n!r} is placed into {into!r}, which is not a concat it feeds")
            offset = sum(G.nodes[s]["shape"][0] for s in inputs_of(G, into)[:inputs_of(G, into).index(n)])
            if place.get("offset") != offset:
                fail(f"node {n!r}: placed at channel {place.get('offset')} of {into!r}, its slice starts at {offset}")
    if check_shapes:
        for n in topo_order(G):
            data = G.nodes[n]
            op = ops.OPS[data["op"]]
            in_shapes = [G.nodes[s]["shape"] for s in inputs_of(G, n)]
            base = in_shapes[:op.arity] if op.arity is not None else in_shapes
            try:
                expect = op.shape(data["args"], base)
            except ops.OpError as err:
                fail(f"node {n!r}: shape rule fails on its own inputs: {err.message}")
            if tuple(expect) != data["shape"]:
                fail(f"node {n!r}: recorded shape {data['shape']} but its rule gives {tuple(expect)}")
            for i, s in enumerate(in_shapes[len(base):], len(base)):
                if tuple(s) != data["shape"]:
                    fail(f"node {n!r}: residual input {i} has shape {s}, the node {data['shape']}")


def _verify_fused(n: str, data: dict, fail) -> int:
    """Check a node's fusion attributes; return how many inputs its epilogue adds."""
    if not any(k in data for k in FUSED_ATTRS):
        return 0
    ff = data.get("fused_from", (n,))
    if not (isinstance(ff, tuple) and ff and ff[0] == n and all(isinstance(x, str) for x in ff)):
        fail(f"node {n!r}: fused_from {ff!r} is not a tuple of names starting with its own")
    fused = any(k in data for k in ("prologue", "epilogue", "siblings"))
    if fused and data["op"] not in FUSABLE:
        fail(f"node {n!r}: op {data['op']} takes no prologue, epilogue or siblings")
    extra = []
    for part in ("prologue", "epilogue"):
        for step in data.get(part, ()):
            extra += _verify_step(n, step, part, fail)
    if extra and sorted(extra) != list(range(1, len(extra) + 1)):
        fail(f"node {n!r}: the epilogue adds inputs {sorted(extra)}, not 1..{len(extra)}")
    sibs = data.get("siblings")
    if sibs is not None:
        if "epilogue" in data or "prologue" in data or data["op"] != "conv":
            fail(f"node {n!r}: merged siblings are a convolution whose epilogues are the siblings' own")
        at = 0
        for sib in sibs:
            if not {"node", "start", "stop", "args", "loc", "epilogue"} <= set(sib) or sib["start"] != at:
                fail(f"node {n!r}: sibling {sib.get('node')!r} is not the next channels from {at}")
            if dict(sib["args"], out=data["args"]["out"]) != data["args"]:
                fail(f"node {n!r}: sibling {sib['node']!r} is another kind of convolution")
            if sib["args"]["out"] != sib["stop"] - sib["start"]:
                fail(f"node {n!r}: sibling {sib['node']!r} has {sib['args']['out']} channels, not its slice's")
            for step in sib["epilogue"]:
                if _verify_step(n, step, "sibling epilogue", fail):
                    fail(f"node {n!r}: a sibling's epilogue adds no inputs")
            at = sib["stop"]
        if at != data["args"]["out"]:
            fail(f"node {n!r}: siblings cover {at} of {data['args']['out']} channels")
    return len(extra)


def _verify_step(n: str, step, part: str, fail) -> list:
    if not (isinstance(step, dict) and step.get("op") in STEP_OPS and isinstance(step.get("node"), str)
            and isinstance(step.get("loc"), SourceLoc) and isinstance(step.get("args"), dict)):
        fail(f"node {n!r}: {part} step {step!r} is not {{op, node, args, loc}} with op in {STEP_OPS}")
    if step["op"] == "add":
        if part != "epilogue":
            fail(f"node {n!r}: an add in its {part}")
        return list(step.get("inputs", ()))
    if set(step["args"]) != set(ops.OPS[step["op"]].param_index):
        fail(f"node {n!r}: {part} step {step['node']!r} has args {sorted(step['args'])}")
    return []


def state_entries(G: nx.MultiDiGraph) -> list[tuple[str, tuple, bool]]:
    """The state_dict a lowering of G must have: (key, shape, is_buffer), in topological order.

    Keys are `<node name>.<suffix>` with the suffixes and shapes PyTorch's own layers use, so the
    list can be checked against a checkpoint without torch.
    """
    out, at = [], []
    order = topo_order(G)
    for i, n in enumerate(order):
        entries = node_state(G, n)
        out += entries
        at += [i] * len(entries)
    return _tree_order(_own_first(G, order, out, at))


def _tree_order(entries: list) -> list:
    """PyTorch's state_dict walks the module tree: every entry under a module comes together, at
    the place where the module was registered (the first entry under it). A dotted label's
    container (fpn of fpn.inner_blocks.0.0) is registered by its first label, so a later label
    under it comes before the layers placed between the two."""
    first: dict = {}

    def rank(key: str) -> list:
        parts = key.split(".")
        return [first.setdefault(".".join(parts[:k]), len(first)) for k in range(1, len(parts))]

    ranked = [(rank(e[0]), i, e) for i, e in enumerate(entries)]
    return [e for _, _, e in sorted(ranked)]


def state_key(node: str, suffix: str) -> str:
    """`<node>.<suffix>`; a layer whose state is one tensor named by the layer itself (suffix "",
    layer_scale) has the key `<node>`: it is a parameter of the module that holds the layer."""
    return f"{node}.{suffix}" if suffix else node


def _own_first(G, order: list, entries: list, at: list) -> list:
    """PyTorch's state_dict order: a module's own parameters (the layers keyed by their own name)
    come before everything registered after the module was, that is before the state of every
    node from the first node of its scope on (in topological order, which is the order modules
    are registered in)."""
    own = [(e, i) for e, i in zip(entries, at) if e[0] in G]
    if not own:
        return entries
    first: dict = {}                     # scope -> topological index of its first node
    for i, n in enumerate(order):
        parts = n.split(".")
        for k in range(len(parts)):
            first.setdefault(".".join(parts[:k]), i)
    rest = [(e, i) for e, i in zip(entries, at) if e[0] not in G]
    for e, i in own:
        start = first[e[0].rpartition(".")[0]]
        pos = next((j for j, (r, ri) in enumerate(rest) if ri >= start
                    and not (r[0] in G and r[0].rpartition(".")[0] == e[0].rpartition(".")[0])), len(rest))
        rest.insert(pos, (e, start))
    return [e for e, _ in rest]


def node_state(G: nx.MultiDiGraph, n: str) -> list[tuple[str, tuple, bool]]:
    """The state_dict entries of one node: a fused node keeps those of every node it stands for,
    under their names (a checkpoint of the unfused network loads into the fused one)."""
    data = G.nodes[n]
    ins = inputs_of(G, n)
    in_shape = G.nodes[ins[0]]["shape"] if ins else None
    op = ops.OPS[data["op"]]
    parts = []
    if "siblings" in data:
        for sib in data["siblings"]:
            out_shape = (sib["stop"] - sib["start"],) + tuple(data["shape"][1:])
            parts.append((sib["node"], data["op"], sib["args"], in_shape))
            parts += [(st["node"], st["op"], st["args"], out_shape) for st in sib["epilogue"]]
    else:
        parts += [(st["node"], st["op"], st["args"], in_shape) for st in data.get("prologue", ())]
        base = [G.nodes[s]["shape"] for s in ins[:op.arity]] if op.arity is not None else \
            [G.nodes[s]["shape"] for s in ins]
        out = [(state_key(n, suffix), tuple(shape), buffer) for suffix, shape, buffer in op.state(data["args"], base)]
        parts += [(st["node"], st["op"], st["args"], data["shape"]) for st in data.get("epilogue", ())
                  if st["op"] != "add"]
        before = len(data.get("prologue", ()))
        return _entries(parts[:before]) + out + _entries(parts[before:])
    return _entries(parts)


def _entries(parts) -> list:
    return [(state_key(name, suffix), tuple(shape), buffer)
            for name, op, args, in_shape in parts
            for suffix, shape, buffer in ops.OPS[op].state(args, [in_shape])]


def dump(G: nx.MultiDiGraph, under: str | None = None) -> str:
    """The graph as text, one node per line in topological order (a fused node's parts indented
    under it): what golden tests of passes compare. `under` keeps the nodes named under that
    scope and the nodes they read."""
    def fmt(v):
        if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v):
            return f"{v[0]}x{v[1]}"
        return repr(v)

    def call(op, args):
        return f"{op}({', '.join(f'{k}={fmt(v)}' for k, v in args.items())})"

    def steps(seq):
        return " -> ".join(f"add(+{', +'.join(map(str, s['inputs']))})" if s["op"] == "add" else
                           f"{call(s['op'], s['args'])} [{s['node']}]" for s in seq)

    keep = [n for n in topo_order(G) if under is None or n.startswith(under + ".")]
    shown = set(keep)
    lines = []
    for n in topo_order(G):
        if n not in shown and not any(n in inputs_of(G, m) for m in keep):
            continue
        data = G.nodes[n]
        ins = ", ".join(inputs_of(G, n))
        lines.append(f"{n} = {call(data['op'], data['args'])}({ins}) : {'x'.join(map(str, data['shape']))}"
                     + ("" if n in shown else "   (read)"))
        if n not in shown:
            continue
        if data.get("prologue"):
            lines.append(f"    prologue: {steps(data['prologue'])}")
        if data.get("epilogue"):
            lines.append(f"    epilogue: {steps(data['epilogue'])}")
        for sib in data.get("siblings", ()):
            tail = f" -> {steps(sib['epilogue'])}" if sib["epilogue"] else ""
            lines.append(f"    sibling {sib['node']} [{sib['start']}:{sib['stop']}]{tail}")
        if "placement" in data:
            lines.append(f"    placed into {data['placement']['into']} at channel {data['placement']['offset']}")
    plan = G.graph.get("memory_plan")
    if plan is not None:
        lines.append(f"memory plan: an arena of {plan['arena']} elements per sample, {plan['peak']} live at most")
    return "\n".join(lines) + "\n"
