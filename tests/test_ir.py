"""The IR contract: verify() accepts elaborated graphs and rejects each kind of broken graph; the
infer-shapes pass; the pass pipeline; the IR is plain data."""
from __future__ import annotations

import pickle
from pathlib import Path

import networkx as nx
import pytest

import netlang
from netlang.errors import NetlangError, NetlangShapeError, NetlangValueError, SourceLoc
from netlang.ir import IRError, inputs_of, topo_order, verify
from netlang.passes import PASSES, run_pipeline
from netlang.passes.shapes import infer_shapes

DATA = Path(__file__).parent / "data"

SMALL = """
block unit(c) {
    add {
        body: conv(c, 3, pad=1) -> batchnorm -> relu
        identity
    }
    relu
}

network small(classes=10) {
    input 3x16x16
    stem: conv(8, 3, pad=1, bias=false)
    u: unit(8)
    pool: maxpool(2)
    side: concat {
        conv(4, 1)
        avgpool(3, stride=1, pad=1)
    }
    global_avgpool
    flatten
    fc: linear(classes)
    @pool -> aux: conv(2, 1)
    output fc, aux
}
"""


@pytest.fixture(scope="module")
def small():
    return netlang.loads(SMALL).graph


def broken(G, edit):
    H = G.copy()
    H.graph = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
               for k, v in G.graph.items()}
    for n in H.nodes:
        H.nodes[n]["args"] = dict(H.nodes[n]["args"])
    edit(H)
    return H


# ---------------------------------------------------------------------------- verify accepts

GRAPHS = [
    ("text", SMALL, {}),
    ("file", DATA / "resnet.net", {"network": "resnet18"}),
    ("file", DATA / "resnet.net", {"network": "resnet50", "input": (3, 64, 64)}),
    ("file", DATA / "imports" / "nets" / "main.net", {"network": "wide"}),
]


@pytest.mark.parametrize("kind,src,kw", GRAPHS, ids=["small", "resnet18", "resnet50", "imports"])
def test_verify_accepts_elaborated_graphs(kind, src, kw):
    net = netlang.loads(src, **kw) if kind == "text" else netlang.load(src, **kw)
    verify(net.graph)
    verify(net.graph, check_shapes=False)


def test_small_graph_shape(small):
    assert small.graph["outputs"] == ["fc", "aux"]
    assert small.nodes["side"]["shape"] == (12, 8, 8) and small.nodes["fc"]["shape"] == (10,)


# ---------------------------------------------------------------------------- verify rejects

def _add_cycle(H):
    H.add_edge("fc", "stem", key=1, pos=1)


def _set(node, attr, value):
    def edit(H):
        H.nodes[node][attr] = value
    return edit


def _drop(node, attr):
    def edit(H):
        del H.nodes[node][attr]
    return edit


def _extra_edge(src, dst, key):
    def edit(H):
        H.add_edge(src, dst, key=key, pos=key)
    return edit


def _rekey(H):
    (src, _, k, d), = H.in_edges("side.1", keys=True, data=True)
    H.remove_edge(src, "side.1", key=k)
    H.add_edge(src, "side.1", key=1, pos=1)


def _pos_differs(H):
    (src, _, k), = H.in_edges("stem", keys=True)
    H.edges[src, "stem", k]["pos"] = 3


def _one_branch_add(H):
    H.remove_edge("u.2", "u.0", key=1)        # the identity branch of the residual add


def _rename(H):
    nx.relabel_nodes(H, {"u.body.0": "body0"}, copy=False)


def _second_input(H):
    H.add_node("input2", **dict(H.nodes["input"]))
    H.add_edge("input2", "side", key=2, pos=2)


def _graph(key, value=None, delete=False):
    def edit(H):
        if delete:
            del H.graph[key]
        else:
            H.graph[key] = value
    return edit


def _scope(path, info):
    def edit(H):
        H.graph["scopes"][path] = info
    return edit


BROKEN = [
    ("cycle", _add_cycle, "cycle"),
    ("missing graph attr", _graph("outputs", delete=True), "graph attribute 'outputs' is missing"),
    ("missing graph name", _graph("name", delete=True), "graph attribute 'name' is missing"),
    ("missing op", _drop("stem", "op"), "lacks 'op'"),
    ("missing args", _drop("stem", "args"), "lacks 'args'"),
    ("missing shape", _drop("stem", "shape"), "lacks 'shape'"),
    ("missing loc", _drop("stem", "loc"), "lacks 'loc'"),
    ("missing scope", _drop("stem", "scope"), "lacks 'scope'"),
    ("unknown op", _set("stem", "op", "conv3d"), "unknown op 'conv3d'"),
    ("loc not a SourceLoc", _set("stem", "loc", ("f", 1, 1)), "loc is not a SourceLoc"),
    ("args missing one", lambda H: H.nodes["stem"]["args"].pop("dilation"), "do not match op conv"),
    ("args with an extra", lambda H: H.nodes["pool"]["args"].update(dilation=(1, 1)), "do not match op maxpool"),
    ("shape a list", _set("stem", "shape", [8, 16, 16]), "bad shape"),
    ("shape empty", _set("stem", "shape", ()), "bad shape"),
    ("shape with a zero", _set("stem", "shape", (8, 0, 16)), "bad shape"),
    ("shape with a float", _set("stem", "shape", (8, 16.0, 16)), "bad shape"),
    ("shape disagrees with the rule", _set("stem", "shape", (8, 15, 15)), "recorded shape"),
    ("rule fails on its inputs", lambda H: H.nodes["u.body.0"]["args"].update(groups=3),
     "shape rule fails on its own inputs"),
    ("unknown scope", _set("stem", "scope", "nowhere"), "unknown scope 'nowhere'"),
    ("node not under its scope", _rename, "node 'body0' is not named under its scope 'u.body'"),
    ("scope kind", _scope("u", {"kind": "package"}), "has kind 'package'"),
    ("scope under an unknown scope", _scope("a.b", {"kind": "seq"}), "sits under an unknown scope 'a'"),
    ("input positions", _rekey, "input positions [1] are not 0..0"),
    ("edge key and pos differ", _pos_differs, "edge key 0 and pos 3 differ"),
    ("too many inputs", _extra_edge("stem", "pool", 1), "op maxpool takes 1 inputs, has 2"),
    ("merge with one input", _one_branch_add, "op add needs at least 2 inputs, has 1"),
    ("no outputs", _graph("outputs", []), "graph has no outputs"),
    ("output not a node", _graph("outputs", ["fc", "nope"]), "graph output 'nope' is not a node"),
    ("graph input not an input", _graph("inputs", ["stem"]), "graph input 'stem' is not an input node"),
    ("input node not listed", _second_input, "input node 'input2' is not listed"),
    ("non-string node id", lambda H: nx.relabel_nodes(H, {"aux": 7}, copy=False), "node id 7 is not a dotted name"),
]


@pytest.mark.parametrize("what,edit,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_verify_rejects_broken_graphs(small, what, edit, message):
    H = broken(small, edit)
    with pytest.raises(IRError) as info:
        verify(H)
    assert message in str(info.value)
    verify(small)                        # the original is untouched


def test_shape_checks_can_be_skipped(small):
    H = broken(small, _set("stem", "shape", (8, 15, 15)))
    verify(H, check_shapes=False)


def test_ir_error_is_not_a_user_error():
    assert not issubclass(IRError, NetlangError)


# ---------------------------------------------------------------------------- passes

def test_infer_shapes_reproduces_elaboration(small):
    out = run_pipeline(small, ["infer-shapes"], check=True)
    assert out is not small
    assert list(out.nodes) == list(small.nodes)
    for n in small:
        for attr in ("shape", "loc", "scope", "op", "args"):
            assert out.nodes[n][attr] == small.nodes[n][attr], (n, attr)
    assert sorted(out.edges(keys=True)) == sorted(small.edges(keys=True))
    # the graph says which passes made it, and is otherwise the same
    assert out.graph == dict(small.graph, passes=("infer-shapes",))


def test_infer_shapes_recomputes_wrong_shapes(small):
    H = broken(small, lambda H: [H.nodes[n].update(shape=(1,)) for n in H if n != "input"])
    out = infer_shapes(H)
    verify(out)
    assert {n: out.nodes[n]["shape"] for n in out} == {n: small.nodes[n]["shape"] for n in small}
    assert H.nodes["stem"]["shape"] == (1,)         # the pass does not mutate its input


def test_infer_shapes_follows_a_changed_input(small):
    H = broken(small, lambda H: H.nodes["input"]["args"].update(shape=(3, 32, 32)))
    H.nodes["input"]["shape"] = (3, 32, 32)
    out = infer_shapes(H)
    verify(out)
    assert out.nodes["pool"]["shape"] == (8, 16, 16) and out.nodes["fc"]["shape"] == (10,)


def test_infer_shapes_reports_at_the_node_location(small):
    H = broken(small, lambda H: H.nodes["pool"]["args"].update(k=(40, 40), stride=(40, 40)))
    with pytest.raises(NetlangShapeError) as info:
        infer_shapes(H)
    assert info.value.loc == small.nodes["pool"]["loc"] and info.value.message.startswith("pool: maxpool")


def test_run_pipeline_unknown_pass():
    G = netlang.loads(SMALL).graph
    with pytest.raises(NetlangValueError, match="unknown pass 'fuse-everything'") as info:
        run_pipeline(G, ["infer-shapes", "fuse-everything"])
    assert "infer-shapes" in info.value.hint
    with pytest.raises(NetlangError):
        netlang.loads(SMALL, passes=["nope"])
    assert "infer-shapes" in PASSES


def test_pipeline_through_the_api():
    a = netlang.loads(SMALL)
    b = netlang.loads(SMALL, passes=["infer-shapes"])
    assert a.cost.totals() == b.cost.totals()


# ---------------------------------------------------------------------------- plain data

PLAIN = (int, float, str, bool, type(None))


def _plain(v) -> bool:
    if isinstance(v, SourceLoc):
        return all(isinstance(x, (str, int)) for x in v)
    if isinstance(v, (tuple, list)):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _plain(x) for k, x in v.items())
    return type(v) in PLAIN


@pytest.mark.parametrize("network", ["resnet", "resnet18"])
def test_ir_is_plain_data(network):
    G = netlang.load(DATA / "resnet.net", network=network).graph
    for n, data in G.nodes(data=True):
        for attr, v in data.items():
            assert _plain(v), (n, attr, v)
            text = repr(v)
            assert "netlang.ast" not in text and "Thunk" not in text and "Value(" not in text, (n, attr, text)
    for k, v in G.graph.items():
        assert _plain(v), (k, v)
    # a block passed as a network parameter is recorded by its name
    assert G.graph["params"]["block"] == ("bottleneck" if network == "resnet" else "basic_block")
    H = pickle.loads(pickle.dumps(G))
    assert list(H.nodes(data=True)) == list(G.nodes(data=True))
    assert list(H.edges(keys=True, data=True)) == list(G.edges(keys=True, data=True))
    assert H.graph == G.graph
    verify(H)


def test_topo_order_is_deterministic_and_respects_inputs(small):
    order = topo_order(small)
    assert order == topo_order(pickle.loads(pickle.dumps(small)))
    pos = {n: i for i, n in enumerate(order)}
    for n in small:
        assert all(pos[s] < pos[n] for s in inputs_of(small, n))
    # branches in source order: the concat's inputs are its first and second branch
    assert inputs_of(small, "side") == ["side.1", "side.2"]


def test_block_scopes_record_their_arguments_after_defaults():
    net = netlang.load(Path(__file__).resolve().parents[1] / "architectures" / "resnet.net", network="resnet50")
    scopes = net.graph.graph["scopes"]
    assert scopes["layer2.0"]["args"] == {"width": 128, "stride": 2, "groups": 1, "base_width": 64}
    assert scopes["layer2.1"]["args"] == {"width": 128, "stride": 1, "groups": 1, "base_width": 64}
    assert scopes["layer2"]["args"] is None and scopes["layer2.0.downsample"]["args"] is None
    # stage() calls block(width, stride=stride) and then block(width): what each call passed.
    assert scopes["layer2.0"]["given"] == ("width", "stride") and scopes["layer2.1"]["given"] == ("width",)
