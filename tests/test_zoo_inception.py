"""The Inception family of the zoo: Inception v3, Inception-v4 and Inception-ResNet-v2.

- inception_v3 against torchvision's golden listing (keys, shapes, order, parameter/buffer split,
  count) and its published 5.713 GMACs; inception_v3_no_aux against the same listing less the
  auxiliary head.
- Inception-v4 and Inception-ResNet-v2, which torchvision does not ship, against the parameter and
  MAC figures of the model cards of timm's ports of the released checkpoints (the paper prints no
  count): 42.7M / 12.3 GMACs and 55.8M / 13.2 GMACs.
- The output sizes the papers print (Table 1 of the v3 paper, Figures 3 and 9 of the v4 paper),
  read from the IR.
- What the seeds say of these networks (they print no figure for them): batch normalisation and
  factorised filters in v3, more maps at lower resolution, and "Inception-v4: ResNet + Inception".
- A forward pass through the torch backend at the smallest input each network takes.
"""
from __future__ import annotations

import math
from functools import lru_cache

import pytest

from netlang.errors import NetlangShapeError
from netlang.ir import state_entries
from zoo_checks import (check_figure, check_forward, check_torchvision_macs, check_torchvision_state_dict,
                        golden, load)

MEGA, GIGA = 10**6, 10**9


@lru_cache(maxsize=None)
def net(file: str, network: str | None = None):
    return load(file, network)


def in_scope(node: str, scope: str) -> bool:
    return node == scope or node.startswith(scope + ".")


def output_of(n, scope: str) -> str:
    """The one node of `scope` whose value leaves it (the output of a block call or a sequence)."""
    G = n.graph
    leaving = {v for v in G if in_scope(v, scope)
               and (v in G.graph["outputs"] or any(not in_scope(s, scope) for s in G.successors(v)))}
    assert len(leaving) == 1, (scope, leaving)
    return leaving.pop()


def hwc(n, scope: str) -> str:
    """The output size of `scope` as the papers print it: HxWxC, or C for a vector."""
    shape = n.graph.nodes[output_of(n, scope)]["shape"]
    return "x".join(map(str, (*shape[1:], shape[0]))) if len(shape) == 3 else str(shape[0])


def convs(n, scope: str = "") -> list[str]:
    return [v for v, d in n.graph.nodes(data=True) if d["op"] == "conv" and (not scope or in_scope(v, scope))]


# ------------------------------------------------------------------------------ Inception v3

def test_inception_v3_is_torchvisions():
    n = net("inception_v3.net", "inception_v3")
    check_torchvision_state_dict(n, "inception_v3")
    check_torchvision_macs(n, "inception_v3")


def test_inception_v3_published_gflops_are_the_network_without_its_auxiliary_head():
    # torchvision counts an eval-mode forward, which skips AuxLogits: without the head the MACs
    # are its 5.713 G to the last printed digit; with it, 5.68 M more (0.1%).
    n = net("inception_v3.net", "inception_v3")
    no_aux = net("inception_v3.net", "inception_v3_no_aux")
    check_figure(no_aux.cost.macs, golden("inception_v3")["meta"]["gflops"], GIGA, digits=3)
    aux = n.cost.scope_cost("AuxLogits").macs
    assert aux == 128 * 768 * 5 * 5 + 768 * 128 * 5 * 5 + 768 * 1000      # conv0 at 5x5, conv1 to 1x1, fc
    assert n.cost.macs == no_aux.cost.macs + aux


def test_inception_v3_no_aux_is_torchvisions_aux_logits_false():
    # torchvision's inception_v3(aux_logits=False) registers the same modules less AuxLogits.
    ref = golden("inception_v3")
    kept = [(k, tuple(s)) for k, s, _ in ref["state_dict"] if not k.startswith("AuxLogits.")]
    n = net("inception_v3.net", "inception_v3_no_aux")
    assert [(k, tuple(s)) for k, s, _ in state_entries(n.graph)] == kept
    aux_params = sum(math.prod(s) for k, s, _ in ref["state_dict"]
                     if k.startswith("AuxLogits.") and k not in ref["buffers"])
    assert n.cost.params == ref["num_params"] - aux_params == 23_834_568
    assert n.graph.graph["outputs"] == ["fc"]


def test_inception_v3_auxiliary_classifier_is_the_second_output():
    n = net("inception_v3.net", "inception_v3")
    G = n.graph
    assert G.graph["outputs"] == ["fc", "AuxLogits.fc"]
    assert G.nodes["AuxLogits.fc"]["shape"] == G.nodes["fc"]["shape"] == (1000,)
    # It reads the last 17x17 layer (the paper's section 4), and nothing of the main path reads it.
    first = [v for v in G if in_scope(v, "AuxLogits") and output_of(n, "Mixed_6e") in G.predecessors(v)]
    assert len(first) == 1 and G.nodes[first[0]]["op"] == "avgpool"
    assert not any(in_scope(u, "AuxLogits") for v in G if not in_scope(v, "AuxLogits") for u in G.predecessors(v))


@pytest.mark.parametrize("scope, printed", [
    # Table 1 of the paper lists each row's input; these are the rows the network reproduces.
    ("Conv2d_1a_3x3", "149x149x32"),
    ("Conv2d_2a_3x3", "147x147x32"),
    ("Conv2d_2b_3x3", "147x147x64"),
    ("maxpool1", "73x73x64"),
    ("Mixed_5d", "35x35x288"),          # the input of the 17x17 stage
    ("Mixed_6e", "17x17x768"),          # 5 x Inception, figure 6
    ("Mixed_7a", "8x8x1280"),           # the input of 2 x Inception, figure 7
    ("Mixed_7c", "8x8x2048"),           # the input of the 8x8 pool
    ("avgpool", "1x1x2048"),            # the input of the linear layer
    ("fc", "1000"),
])
def test_inception_v3_table_1_sizes(scope, printed):
    assert hwc(net("inception_v3.net", "inception_v3"), scope) == printed


def test_inception_v3_table_1_rows_it_does_not_reproduce():
    # After the first pool Table 1 has a 3x3/1 conv to 71x71x80, a 3x3/2 conv to 35x35x192 and a
    # 3x3/1 conv to 35x35x288; the released network (torchvision's) has a 1x1 conv to 80
    # channels, a valid 3x3 conv to 192 and a 3x3/2 max pool.
    n = net("inception_v3.net", "inception_v3")
    assert hwc(n, "Conv2d_3b_1x1") == "73x73x80"
    assert n.graph.nodes["Conv2d_3b_1x1.conv"]["args"]["k"] == (1, 1)
    assert hwc(n, "Conv2d_4a_3x3") == "71x71x192"
    assert hwc(n, "maxpool2") == "35x35x192"
    # So the first 35x35 module reads 35x35x192, not the table's 35x35x288; the modules give
    # 256, 288 and 288 channels.
    assert [hwc(n, f"Mixed_5{c}") for c in "bcd"] == ["35x35x256", "35x35x288", "35x35x288"]


def test_seed_001_inception_v3_batch_norm_and_factorised_filters():
    """Seed 001, "Inception v2, v3": batch normalisation, "aggressive factorization of filters",
    "increase the number of feature maps while decreasing spatial resolution"."""
    n = net("inception_v3.net", "inception_v3")
    G = n.graph
    # Every conv is followed by a batchnorm and nothing else.
    assert all([G.nodes[s]["op"] for s in G.successors(c)] == ["batchnorm"] for c in convs(n))
    # Factorised filters: 7x7 as 1x7 and 7x1 (17x17 stage, figure 6), 3x3 as 1x3 and 3x1 (8x8
    # stage, figure 7); no conv wider than 5x5.
    kernels = [G.nodes[c]["args"]["k"] for c in convs(n)]
    assert kernels.count((1, 7)) == kernels.count((7, 1)) == 4 * 3 + 1
    assert kernels.count((1, 3)) == kernels.count((3, 1)) == 2 * 2
    assert max(max(k) for k in kernels if 1 not in k) == 5
    # More maps at each lower resolution of the main path: 149, 73, 35, 17, 8.
    sizes = [G.nodes[output_of(n, s)]["shape"] for s in
             ["Conv2d_1a_3x3", "maxpool1", "maxpool2", "Mixed_6a", "Mixed_7a"]]
    assert all(a[1] > b[1] and a[0] < b[0] for a, b in zip(sizes, sizes[1:]))


def test_inception_v3_input_sizes():
    # The auxiliary head (5x5/3 pool, then a valid 5x5 conv) needs 17x17 at Mixed_6e: 299x299 is
    # the smallest input of the network with it; without it torchvision's minimum, 75x75.
    load("inception_v3.net", "inception_v3", input=(3, 299, 299))
    with pytest.raises(NetlangShapeError):
        load("inception_v3.net", "inception_v3", input=(3, 298, 298))
    load("inception_v3.net", "inception_v3_no_aux", input=(3, 75, 75))
    with pytest.raises(NetlangShapeError):
        load("inception_v3.net", "inception_v3_no_aux", input=(3, 74, 74))


def test_inception_v3_forward():
    check_forward("inception_v3.net", "inception_v3_no_aux", batch=1, input=(3, 75, 75))


# ------------------------------------------------------------------------------ Inception-v4

def test_inception_v4_params_and_macs():
    # timm's model card for inception_v4.tf_in1k: "Params (M): 42.7", "GMACs: 12.3".
    n = net("inception_v4.net")
    assert n.cost.params == 42_679_816
    check_figure(n.cost.params, 42.7, MEGA, digits=1)
    assert n.cost.macs == 12_253_974_624
    check_figure(n.cost.macs, 12.3, GIGA, digits=1)


@pytest.mark.parametrize("scope, printed", [
    # Figure 3, the stem.
    ("features.0", "149x149x32"),
    ("features.1", "147x147x32"),
    ("features.2", "147x147x64"),
    ("features.3", "73x73x160"),
    ("features.4", "71x71x192"),
    ("features.5", "35x35x384"),
    # Figure 9.
    ("features.9", "35x35x384"),        # 4 x Inception-A
    ("features.10", "17x17x1024"),      # Reduction-A
    ("features.17", "17x17x1024"),      # 7 x Inception-B
    ("features.18", "8x8x1536"),        # Reduction-B
    ("features.21", "8x8x1536"),        # 3 x Inception-C, the input of the pool
    ("last_linear", "1000"),
])
def test_inception_v4_figure_sizes(scope, printed):
    assert hwc(net("inception_v4.net"), scope) == printed


def test_inception_v4_modules_and_reduction_a_filters():
    n = net("inception_v4.net")
    blocks = [n.graph.graph["scopes"][f"features.{i}"]["block"] for i in range(3, 22)]
    assert blocks == (["mixed_3a", "mixed_4a", "mixed_5a"] + ["inception_a"] * 4 + ["reduction_a"]
                      + ["inception_b"] * 7 + ["reduction_b"] + ["inception_c"] * 3)
    # Table 1: k, l, m, n = 192, 224, 256, 384.
    outs = [n.graph.nodes[c]["args"]["out"] for c in convs(n, "features.10")]
    assert outs == [384, 192, 224, 256]


def test_seed_002_inception_v4_is_not_residual():
    """Seed 002: "Inception-v4: Resnet + Inception". The paper combines them in Inception-ResNet;
    Inception-v4 itself is a pure Inception network, without a single addition."""
    ops_v4 = {d["op"] for _, d in net("inception_v4.net").graph.nodes(data=True)}
    assert "add" not in ops_v4 and "concat" in ops_v4
    adds = [v for v, d in net("inception_resnet_v2.net").graph.nodes(data=True) if d["op"] == "add"]
    assert len(adds) == 10 + 20 + 10


def test_inception_v4_forward():
    check_forward("inception_v4.net", batch=1, input=(3, 75, 75))
    with pytest.raises(NetlangShapeError):
        load("inception_v4.net", input=(3, 74, 74))


# ----------------------------------------------------------------------- Inception-ResNet-v2

def test_inception_resnet_v2_params_and_macs():
    # timm's model card for inception_resnet_v2.tf_in1k: "Params (M): 55.8", "GMACs: 13.2".
    n = net("inception_resnet_v2.net")
    assert n.cost.params == 55_843_464
    check_figure(n.cost.params, 55.8, MEGA, digits=1)
    assert n.cost.macs == 13_155_794_016
    check_figure(n.cost.macs, 13.2, GIGA, digits=1)


@pytest.mark.parametrize("scope, printed", [
    ("conv2d_1a", "149x149x32"),
    ("conv2d_2b", "147x147x64"),
    ("conv2d_4a", "71x71x192"),
    ("maxpool_5a", "35x35x192"),
    ("mixed_5b", "35x35x320"),
    ("repeat", "35x35x320"),
    ("mixed_6a", "17x17x1088"),
    ("repeat_1", "17x17x1088"),
    ("mixed_7a", "8x8x2080"),
    ("block8", "8x8x2080"),
    ("conv2d_7b", "8x8x1536"),          # the input of the pool
    ("classif", "1000"),
])
def test_inception_resnet_v2_sizes(scope, printed):
    assert hwc(net("inception_resnet_v2.net"), scope) == printed


def test_inception_resnet_v2_reduction_a_filters():
    # Table 1: k, l, m, n = 256, 256, 384, 384.
    n = net("inception_resnet_v2.net")
    assert [n.graph.nodes[c]["args"]["out"] for c in convs(n, "mixed_6a")] == [384, 256, 256, 384]


@pytest.mark.parametrize("stage, count, scale", [
    ("repeat", 10, 0.17), ("repeat_1", 20, 0.10), ("repeat_2", 9, 0.20), ("block8", 1, 1.0),
])
def test_inception_resnet_v2_scaled_residuals(stage, count, scale):
    """Figure 20: the residual branch, a concat and a linear 1x1 conv back to the input's depth,
    is scaled, added to the input, then (except in the last module) passed through a ReLU."""
    n = net("inception_resnet_v2.net")
    G = n.graph
    modules = [stage] if count == 1 else [f"{stage}.{i}" for i in range(count)]
    assert f"{stage}.{count}" not in G.graph["scopes"]
    for m in modules:
        add = next(v for v in G if in_scope(v, m) and G.nodes[v]["op"] == "add")
        (x,) = {u for u in G.predecessors(add) if G.nodes[u]["op"] == "identity"}
        (s,) = {u for u in G.predecessors(add) if G.nodes[u]["op"] == "scale"}
        assert G.nodes[s]["args"]["s"] == pytest.approx(scale)
        (conv,) = G.predecessors(s)
        assert conv == f"{m}.conv2d" and G.nodes[conv]["args"]["bias"]
        assert G.nodes[conv]["shape"] == G.nodes[x]["shape"]
        assert [G.nodes[p]["op"] for p in G.predecessors(conv)] == ["concat"]
        after = [G.nodes[v]["op"] for v in G.successors(add)]
        assert after == (["conv"] if m == "block8" else ["relu"])


def test_inception_resnet_v2_forward():
    check_forward("inception_resnet_v2.net", batch=1, input=(3, 75, 75))
    with pytest.raises(NetlangShapeError):
        load("inception_resnet_v2.net", input=(3, 74, 74))
