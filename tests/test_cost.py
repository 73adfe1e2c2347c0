"""Cost rules on small networks against hand computation: activations, peak inference memory,
per-scope sums, batchnorm buffers and dtype sizes."""
from __future__ import annotations

from pathlib import Path

import pytest

import netlang
from netlang import NetlangError
from netlang.ir import verify
from netlang.passes.cost import DTYPE_BYTES, analyse

DATA = Path(__file__).parent / "data"

CHAIN = """
network chain {
    input 3x8x8
    c1: conv(4, 3, pad=1)
    r1: relu
    p1: maxpool(2)
    d1: dropout(0.5)
    i1: identity
    f1: flatten
    fc: linear(10)
    sm: softmax
}
"""


def build(text, **kw):
    net = netlang.loads(text, **kw)
    verify(net.graph)
    return net


def by_name(net):
    return {layer.name: layer for layer in net.cost.layers}


# ---------------------------------------------------------------------------- activations

def test_activation_elements_of_a_chain():
    net = build(CHAIN)
    L = by_name(net)
    assert L["input"].act_elems == 3 * 8 * 8                     # the input counts once
    assert L["c1"].act_elems == 4 * 8 * 8
    assert L["p1"].act_elems == 4 * 4 * 4
    assert L["fc"].act_elems == 10 and L["sm"].act_elems == 10
    # in place, views and inference identities materialise nothing
    for name in ("r1", "d1", "i1", "f1"):
        assert L[name].act_elems == 0, name
    assert net.cost.act_elems == 192 + 256 + 64 + 10 + 10
    t = net.cost.totals()
    assert t["act_bytes_forward"] == 4 * 532 and t["act_bytes_training"] == 2 * 4 * 532
    assert t["layers"] == 8


def test_params_and_macs_of_a_chain():
    net = build(CHAIN)
    L = by_name(net)
    assert L["c1"].params == 4 * 3 * 9 + 4 and L["c1"].macs == 8 * 8 * 4 * 3 * 9
    assert L["fc"].params == 64 * 10 + 10 and L["fc"].macs == 64 * 10
    assert net.params == 112 + 650 and net.macs == 6912 + 640
    assert net.cost.flops == 2 * net.macs
    assert all(L[n].params == L[n].macs == 0 for n in ("r1", "p1", "d1", "i1", "f1", "sm"))


def test_peak_memory_of_a_chain():
    net = build(CHAIN)
    # Running in order and freeing each tensor after its last reader, the most memory live at once
    # is while c1 runs: its input (192) and its output (256). Later steps hold less:
    # p1: 256 + 64; fc: 64 + 10; sm: 10 + 10.
    assert net.cost.peak_elems == 192 + 256
    assert net.cost.totals()["peak_act_bytes"] == 4 * 448


RESIDUAL = """
network res {
    input 4x8x8
    stem: conv(4, 3, pad=1)
    blk: add {
        conv(8, 3, pad=1) -> relu -> conv(4, 3, pad=1)
        identity
    }
    relu
}
"""


def test_peak_memory_of_a_residual_block():
    net = build(RESIDUAL)
    # Order: input, stem, blk.1 (conv 8), blk.2 (relu, in place), blk.3 (conv 4), blk.4 (identity),
    # blk (add), 2 (relu). The stem output stays alive across the branch for the shortcut, so while
    # blk.3 runs: stem (256) + blk.1 (512, its input) + blk.3 (256) are live.
    # Other steps: stem runs with the input: 256 + 256; add: stem + blk.3 + add = 768.
    assert [layer.name for layer in net.cost.layers] == ["input", "stem", "blk.1", "blk.2", "blk.3", "blk.4", "blk",
                                                         "2"]
    assert net.cost.peak_elems == 256 + 512 + 256
    assert net.cost.act_elems == 256 + 256 + 512 + 256 + 256


def test_peak_memory_of_parallel_branches():
    net = build("""
network par {
    input 2x4x4
    concat {
        conv(8, 1)
        conv(16, 1)
        maxpool(3, stride=1, pad=1)
    }
}
""")
    # every branch reads the input, so it stays live until the last branch has run; then
    # concat holds all three branch outputs and its own: 128 + 256 + 32 + 416.
    assert net.cost.peak_elems == 128 + 256 + 32 + (8 + 16 + 2) * 16
    # before the concat: input 32 + 128 + 256 + 32 = 448 < 832


def test_outputs_stay_live():
    net = build("""
network two {
    input 1x4x4
    a: conv(8, 1)
    b: conv(1, 1)
    c: conv(2, 1)
    output c, a
}
""")
    # a (128) is an output, so it is never freed: while c runs, a + b + c are live.
    assert net.cost.peak_elems == 128 + 16 + 32


# ---------------------------------------------------------------------------- scopes and rows

@pytest.fixture(scope="module")
def r18():
    net = netlang.load(DATA / "resnet.net", network="resnet18")
    verify(net.graph)
    return net


def test_scope_cost_resnet18_stages(r18):
    # torchvision resnet18: layer1 has 147,968 parameters, layer2 525,568 (by hand below)
    layer1 = 4 * (64 * 64 * 9) + 4 * (2 * 64)
    layer2 = 128 * 64 * 9 + 3 * (128 * 128 * 9) + 64 * 128 + 5 * (2 * 128)
    assert r18.cost.scope_cost("layer1").params == layer1 == 147_968
    assert r18.cost.scope_cost("layer2").params == layer2 == 525_568
    assert r18.cost.scope_cost("layer2.0.downsample").params == 64 * 128 + 2 * 128
    assert r18.cost.scope_cost("fc").params == 512 * 1000 + 1000
    # layer1's MACs: 4 convs of 64 -> 64, 3x3, at 56x56
    assert r18.cost.scope_cost("layer1").macs == 4 * 56 * 56 * 64 * 64 * 9
    g = r18.cost.scope_cost("layer1.0")
    assert g.layers == 8 and g.shape == (64, 56, 56) and g.kind == "basic_block(64, stride=1)"
    with pytest.raises(KeyError):
        r18.cost.scope_cost("layer9")


def test_scope_costs_partition_the_network(r18):
    top = ["conv1", "bn1", "2", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "9", "fc"]
    for field in ("params", "buffers", "macs", "ew_ops", "act_elems"):
        parts = sum(getattr(r18.cost.scope_cost(name), field) for name in top)
        assert parts + (getattr(by_name(r18)["input"], field)) == getattr(r18.cost, field), field


@pytest.mark.parametrize("depth", [None, 1, 2, 3, 4])
def test_rows_sum_to_the_totals(r18, depth):
    rows = r18.cost.rows(depth)
    t = r18.cost.totals()
    for field in ("params", "buffers", "macs", "ew_ops", "act_elems"):
        assert sum(getattr(r, field) for r in rows) == t[field], field
    assert sum(r.layers for r in rows) == t["layers"]
    assert all(len(r.name.split(".")) <= (depth or 99) for r in rows)


def test_rows_at_depth_1(r18):
    rows = r18.cost.rows(1)
    assert [r.name for r in rows] == ["input", "conv1", "bn1", "2", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                      "avgpool", "9", "fc"]
    layer3 = next(r for r in rows if r.name == "layer3")
    # block 0: conv1 bn1 relu conv2 bn2 downsample.0 downsample.1 add relu; block 1: identity shortcut
    assert layer3.layers == 9 + 8 and layer3.shape == (256, 14, 14)
    assert layer3.kind.startswith("stage(")
    assert len(r18.cost.rows()) == len(r18.graph)


# ---------------------------------------------------------------------------- buffers and dtypes

def test_batchnorm_buffers_against_torch(r18):
    torch = pytest.importorskip("torch")
    bns = [n for n in r18.graph if r18.graph.nodes[n]["op"] == "batchnorm"]
    assert len(bns) == 20
    total = 0
    for n in bns:
        c = r18.graph.nodes[n]["shape"][0]
        m = torch.nn.BatchNorm2d(c)
        params = {k for k, _ in m.named_parameters()}
        buffers = {k: v.numel() for k, v in m.state_dict().items() if k not in params}
        assert set(buffers) == {"running_mean", "running_var", "num_batches_tracked"}
        assert by_name(r18)[n].buffers == sum(buffers.values()) == 2 * c + 1
        total += sum(buffers.values())
    # channel sums: bn1 64, layer1 4 x 64, layer2..4 five each (with the downsample's)
    assert r18.cost.buffers == total == 2 * (64 + 4 * 64 + 5 * 128 + 5 * 256 + 5 * 512) + 20 == 9620


def test_dtype_bytes_against_torch():
    torch = pytest.importorskip("torch")
    for name, size in DTYPE_BYTES.items():
        assert torch.empty((), dtype=getattr(torch, name)).element_size() == size, name


@pytest.mark.parametrize("dtype", sorted(DTYPE_BYTES))
def test_byte_totals_follow_the_dtype(dtype):
    net = build(CHAIN + "\n", dtype=dtype)
    b = DTYPE_BYTES[dtype]
    t = net.cost.totals()
    assert t["dtype"] == dtype
    assert t["act_bytes_forward"] == 532 * b and t["act_bytes_training"] == 2 * 532 * b
    assert t["peak_act_bytes"] == 448 * b
    assert t["param_bytes"] == (112 + 650) * b          # no batchnorm: no buffers


def test_unknown_dtype():
    with pytest.raises(NetlangError, match="unknown dtype"):
        analyse(netlang.loads(CHAIN).graph, "float8")


def test_inplace_relu_copies_when_its_input_has_another_reader():
    # Standalone relu after a conv runs in place; in `add { relu, identity }` the identity branch
    # still reads the block input, so the relu must write a fresh tensor.
    net = netlang.loads("""
        network n {
            input 4x8x8
            c: conv(4, 3, pad=1)
            r1: relu
            add { r2: relu
                  identity }
        }
    """)
    acts = {layer.name: layer.act_elems for layer in net.cost.layers}
    assert acts["r1"] == 0            # conv output read only by r1
    assert acts["r2"] == 4 * 8 * 8    # r1's storage is also read by the identity branch


def test_json_rows_match_the_report(r18):
    data = r18.cost.to_json(2)
    assert data["totals"] == r18.cost.totals()
    assert sum(row["params"] for row in data["layers"]) == r18.params
    assert all(row["flops"] == 2 * row["macs"] for row in data["layers"])


def test_scope_cost_does_not_match_a_longer_name():
    net = build("""
network many {
    input 2x4x4
    for i in range(1, 12) {
        layer{i}: conv(2, 1) -> relu
    }
}
""")
    one = 2 * 2 + 2                     # a 1x1 conv from 2 to 2 channels, with bias
    assert net.cost.scope_cost("layer1").params == one
    assert net.cost.scope_cost("layer1").layers == 2
    assert net.cost.scope_cost("layer11").params == one
    assert net.params == 11 * one
    assert [r.name for r in net.cost.rows(1)] == ["input"] + [f"layer{i}" for i in range(1, 12)]
