"""Elaboration: naming rules (netlang/elaborate.py's docstring, docs/language.md) and semantics.

Every graph built here passes netlang.ir.verify().
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

import netlang
from netlang.errors import NetlangError, NetlangNameError, NetlangRecursionError
from netlang.ir import inputs_of, topo_order, verify, state_entries

DATA = Path(__file__).parent / "data"
RESNET = DATA / "resnet.net"


def build(text: str, **kw) -> netlang.Network:
    net = netlang.loads(text, **kw)
    verify(net.graph)
    return net


def load(path, **kw) -> netlang.Network:
    net = netlang.load(path, **kw)
    verify(net.graph)
    return net


def net(body: str, input: str = "3x8x8", decls: str = "") -> netlang.Network:
    """A network `t` with the given body lines."""
    return build(f"{decls}\nnetwork t {{\n    input {input}\n{body}\n}}\n")


def layers(n: netlang.Network) -> list[tuple[str, str]]:
    """(name, op) of every node but the input, in topological order."""
    return [(name, n.graph.nodes[name]["op"]) for name in topo_order(n.graph) if name != "input"]


def names(n: netlang.Network) -> list[str]:
    return [name for name, _ in layers(n)]


def state_dict_keys(G) -> list[str]:
    """The state_dict keys the IR promises (netlang.ir.state_entries), in order."""
    return [key for key, _, _ in state_entries(G)]


# ---------------------------------------------------------------------------- labels and numbering

def test_label_over_a_single_item_names_it():
    n = net("    conv1: conv(8, 3, pad=1)\n    bn1: batchnorm\n    relu\n    fc_in: flatten\n    fc: linear(10)")
    assert layers(n) == [("conv1", "conv"), ("bn1", "batchnorm"), ("2", "relu"), ("fc_in", "flatten"),
                         ("fc", "linear")]
    # a single labelled item opens no scope of its own
    assert n.graph.graph["scopes"] == {}
    assert all(n.graph.nodes[x]["scope"] == "" for x in names(n))


def test_labelled_pipeline_is_numbered_like_nn_sequential():
    n = net("    features: conv(4, 3) -> relu -> conv(4, 3) -> maxpool(2) -> dropout(0.5)")
    assert layers(n) == [("features.0", "conv"), ("features.1", "relu"), ("features.2", "conv"),
                         ("features.3", "maxpool"), ("features.4", "dropout")]
    assert n.graph.graph["scopes"]["features"]["kind"] == "seq"
    assert {n.graph.nodes[x]["scope"] for x in names(n)} == {"features"}
    # nn.Sequential's parameter names: features.0.weight, features.2.weight (relu, pool have none)
    assert state_dict_keys(n.graph) == ["features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias"]


def test_label_over_pipeline_versus_labels_per_item():
    whole = net("    x: conv(4, 1) -> relu -> conv(2, 1)")
    assert names(whole) == ["x.0", "x.1", "x.2"]
    per_item = net("    x: conv(4, 1) -> y: relu -> conv(2, 1)")
    # two labels: each names its own item; the unlabelled one is numbered in the enclosing scope
    assert names(per_item) == ["x", "y", "2"]
    later = net("    conv(4, 1) -> y: relu")
    assert names(later) == ["0", "y"]


def test_unlabelled_items_are_numbered_counting_every_item():
    n = net("    conv(4, 1)\n    relu\n    c: conv(4, 1)\n    maxpool(2)\n    flatten\n    linear(3)")
    assert names(n) == ["0", "1", "c", "3", "4", "5"]


def test_block_calls_open_scopes():
    decls = "block b(c) {\n    x: conv(c, 1) -> y: relu\n}"
    n = net("    b(4)\n    b(4)\n    z: b(2) -> b(3)", decls=decls)
    assert names(n) == ["0.x", "0.y", "1.x", "1.y", "z.0.x", "z.0.y", "z.1.x", "z.1.y"]
    scopes = n.graph.graph["scopes"]
    assert scopes["0"]["kind"] == "block" and scopes["0"]["block"] == "b" and scopes["0"]["call"] == "b(4)"
    assert scopes["z"]["kind"] == "seq" and scopes["z.1"]["call"] == "b(3)"
    assert n.graph.nodes["z.1.x"]["scope"] == "z.1"


def test_def_splices_and_block_scopes():
    decls = "def cr(c) = conv(c, 3, pad=1) -> relu\nblock bk(c) {\n    cr(c)\n}"
    n = net("    cr(4)\n    f: cr(4) -> cr(5)\n    g: cr(6)\n    h: bk(2)\n    bk(3)", decls=decls)
    assert names(n) == ["0", "1", "f.0", "f.1", "f.2", "f.3", "g.0", "g.1", "h.0", "h.1", "5.0", "5.1"]
    scopes = n.graph.graph["scopes"]
    assert "cr" not in str(sorted(scopes)) and scopes["h"]["block"] == "bk" and scopes["5"]["kind"] == "block"
    # a def call under a label records its call text on the label's scope
    assert scopes["g"]["call"] == "cr(6)"


def test_repetition():
    n = net("    a: conv(2, 1) * 3\n    s: (conv(4, 1) -> relu) * 2\n    conv(3, 1) * 0\n    e: identity")
    assert names(n) == ["a.0", "a.1", "a.2", "s.0", "s.1", "s.2", "s.3", "e"]
    assert n.shape("s.3") == (4, 8, 8)


def test_for_loop_with_interpolated_labels():
    n = net("    for i in range(1, 4) {\n        dense{i}: conv(4 * i, 3, pad=1)\n        relu{i}_{i * 2}: relu\n    }")
    assert names(n) == ["dense1", "relu1_2", "dense2", "relu2_4", "dense3", "relu3_6"]
    assert [n.shape(f"dense{i}")[0] for i in (1, 2, 3)] == [4, 8, 12]


def test_densenet_names_match_torchvision():
    # torchvision densenet: features.denseblock1.denselayer1.norm1.weight, features.transition1.conv.weight
    decls = """
block dense_layer(growth, bn_size) {
    concat {
        identity
        norm1: batchnorm -> relu1: relu -> conv1: conv(bn_size * growth, 1, bias=false)
            -> norm2: batchnorm -> relu2: relu -> conv2: conv(growth, 3, pad=1, bias=false)
    }
}
block dense_block(n, growth) {
    for i in range(1, n + 1) {
        denselayer{i}: dense_layer(growth, 4)
    }
}
block transition(out) {
    norm: batchnorm
    relu: relu
    conv: conv(out, 1, bias=false)
    pool: avgpool(2, stride=2)
}
"""
    body = """    features: (conv0: conv(16, 7, stride=2, pad=3, bias=false) -> norm0: batchnorm -> relu0: relu
               -> pool0: maxpool(3, stride=2, pad=1)
               -> denseblock1: dense_block(2, 8) -> transition1: transition(16)
               -> denseblock2: dense_block(2, 8) -> norm5: batchnorm)
    relu
    global_avgpool
    flatten
    classifier: linear(10)"""
    n = net(body, input="3x64x64", decls=decls)
    keys = state_dict_keys(n.graph)

    def bn(p):
        return [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var", f"{p}.num_batches_tracked"]

    def layer(p):
        return bn(f"{p}.norm1") + [f"{p}.conv1.weight"] + bn(f"{p}.norm2") + [f"{p}.conv2.weight"]

    expect = (["features.conv0.weight"] + bn("features.norm0")
              + layer("features.denseblock1.denselayer1") + layer("features.denseblock1.denselayer2")
              + bn("features.transition1.norm") + ["features.transition1.conv.weight"]
              + layer("features.denseblock2.denselayer1") + layer("features.denseblock2.denselayer2")
              + bn("features.norm5") + ["classifier.weight", "classifier.bias"])
    assert keys == expect
    # channels: 16 + 2*8 = 32 -> transition 16 -> 16 + 2*8 = 32
    assert n.shape("features.denseblock1.denselayer2.0") == (32, 16, 16)
    assert n.shape("features.transition1.pool") == (16, 8, 8)
    assert n.shape("features.norm5") == (32, 8, 8)


# ---------------------------------------------------------------------------- torchvision resnet

def _torchvision_resnet_keys(block: str, layers: list[int]) -> list[str]:
    """state_dict keys of torchvision.models.resnet{18,34,50} in registration order, written from
    torchvision/models/resnet.py: ResNet registers conv1, bn1, relu, maxpool, layer1..layer4, avgpool,
    fc; BasicBlock conv1, bn1, relu, conv2, bn2, downsample; Bottleneck conv1, bn1, conv2, bn2, conv3,
    bn3, relu, downsample (a Sequential of conv and batchnorm, only where the shape changes)."""
    def bn(p):
        return [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var", f"{p}.num_batches_tracked"]

    convs = ["conv1", "conv2"] if block == "basic" else ["conv1", "conv2", "conv3"]
    expansion = 1 if block == "basic" else 4
    keys = ["conv1.weight"] + bn("bn1")
    inplanes = 64
    for i, (n, width) in enumerate(zip(layers, (64, 128, 256, 512))):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            for c in convs:
                keys += [f"{p}.{c}.weight"] + bn(f"{p}.bn{c[-1]}")
            stride = 2 if i > 0 and j == 0 else 1
            if j == 0 and (stride != 1 or inplanes != width * expansion):
                keys += [f"{p}.downsample.0.weight"] + bn(f"{p}.downsample.1")
            inplanes = width * expansion
    return keys + ["fc.weight", "fc.bias"]


def test_resnet18_state_dict_keys_match_torchvision():
    n = load(RESNET, network="resnet18")
    keys = state_dict_keys(n.graph)
    assert keys == _torchvision_resnet_keys("basic", [2, 2, 2, 2])
    # spot checks written out in full
    assert keys[:7] == ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                        "bn1.num_batches_tracked", "layer1.0.conv1.weight"]
    assert "layer1.0.downsample.0.weight" not in keys
    assert "layer2.0.downsample.0.weight" in keys and "layer2.0.downsample.1.running_var" in keys
    assert "layer2.1.downsample.0.weight" not in keys
    assert len(keys) == 122
    # torchvision's published parameter count for resnet18
    assert n.params == 11_689_512
    assert n.shape("layer4.1.bn2") == (512, 7, 7) and n.shape("fc") == (1000,)


def test_resnet50_state_dict_keys_match_torchvision():
    n = load(RESNET, network="resnet50")
    keys = state_dict_keys(n.graph)
    assert keys == _torchvision_resnet_keys("bottleneck", [3, 4, 6, 3])
    # the first bottleneck needs a projection (64 -> 256 channels) even at stride 1
    assert "layer1.0.downsample.0.weight" in keys and "layer1.1.downsample.0.weight" not in keys
    assert n.params == 25_557_032
    assert n.shape("layer1.0.downsample.0") == (256, 56, 56)


# ---------------------------------------------------------------------------- control flow

def test_if_else_statement_and_conditional_expression():
    text = """
network t(n=2) {
    input 3x8x8
    if n > 1 {
        big: conv(8, 1)
    } else {
        small: conv(2, 1)
    }
    head: (conv(1, 1) if n == 2 else conv(5, 1))
}
"""
    assert layers(build(text)) == [("big", "conv"), ("head", "conv")]
    n = build(text, n="1")
    assert layers(n) == [("small", "conv"), ("head", "conv")] and n.shape("head") == (5, 8, 8)
    n = build(text, n="3")
    assert n.shape("head") == (5, 8, 8) and n.shape("big") == (8, 8, 8)


def test_else_if_chain():
    text = """
network t(n=0) {
    input 3x8x8
    if n == 0 { a: conv(1, 1) }
    else if n == 1 { b: conv(2, 1) }
    else { c: conv(3, 1) }
}
"""
    assert [names(build(text, n=str(v))) for v in (0, 1, 7)] == [["a"], ["b"], ["c"]]


def test_in_channels_decides_the_shortcut():
    n = load(RESNET, network="resnet18")
    ops = {x: n.graph.nodes[x]["op"] for x in n.graph}
    assert ops["layer1.0.downsample"] == "identity"              # 64 -> 64, stride 1
    assert ops["layer2.0.downsample.0"] == "conv"                 # stride 2
    assert ops["layer2.1.downsample"] == "identity"
    decls = ("block sc(c) {\n    add {\n        conv(c, 3, pad=1)\n"
             "        (conv(c, 1) if in.channels != c else identity)\n    }\n}")
    n = net("    a: sc(3)\n    b: sc(5)\n    c: sc(5)", decls=decls)
    assert n.graph.nodes["a.2"]["op"] == "identity" and n.graph.nodes["b.2"]["op"] == "conv"
    assert n.graph.nodes["c.2"]["op"] == "identity"


def test_in_height_and_width():
    decls = "block fit() {\n    conv(in.channels * 2, (in.height, in.width))\n}"
    n = net("    f: fit", input="3x5x7", decls=decls)
    assert n.shape("f.0") == (6, 1, 1)


# ---------------------------------------------------------------------------- references and merges

def test_references():
    n = net("    s: conv(4, 1) -> relu\n    @s -> t: conv(2, 1)\n    @s -> u: conv(3, 1)\n    output u, s, t")
    G = n.graph
    assert inputs_of(G, "t") == ["s.1"] and inputs_of(G, "u") == ["s.1"]
    assert G.graph["outputs"] == ["u", "s.1", "t"]


def test_dotted_references():
    n = net("    m: concat {\n        a: conv(2, 1)\n        b: conv(3, 1) -> relu\n    }\n"
            "    @m.a -> w: conv(3, 1)\n    outer: (conv(4, 1) -> inner: relu -> conv(2, 1))\n"
            "    @outer.inner -> v: conv(1, 1)\n    output m, w, outer, v")
    G = n.graph
    assert inputs_of(G, "w") == ["m.a"]
    assert inputs_of(G, "v") == ["outer.inner"]
    assert inputs_of(G, "m") == ["m.a", "m.b.1"] and n.shape("m") == (5, 8, 8)
    assert G.graph["outputs"] == ["m", "w", "outer.2", "v"]


def test_merge_branches_and_options():
    n = net("    x: conv(3, 1)\n    unet: concat(crop=true) {\n        conv(2, 3)\n        @x\n    }\n"
            "    m: mean(drop=0.15) {\n        conv(3, 1)\n        conv(3, 3, pad=1)\n    }\n"
            "    mul {\n        identity\n        global_avgpool -> conv(3, 1) -> sigmoid\n    }")
    G = n.graph
    assert G.nodes["unet"]["args"] == {"crop": True} and n.shape("unet") == (5, 6, 6)
    assert inputs_of(G, "unet") == ["unet.1", "x"]
    assert G.nodes["m"]["args"] == {"drop": 0.15}
    mul = [x for x in G if G.nodes[x]["op"] == "mul"]
    assert len(mul) == 1 and n.shape(mul[0]) == (3, 6, 6)
    # each branch starts from the merge's input
    assert [G.nodes[inputs_of(G, b)[0]]["op"] for b in inputs_of(G, "m")] == ["concat", "concat"]


def test_unlabelled_merge_is_transparent():
    n = net("    conv(4, 1)\n    add {\n        conv(4, 1)\n        identity\n    }\n    relu")
    # merge entry first (1), its branches' items in the enclosing scope (2, 3), then relu
    assert layers(n) == [("0", "conv"), ("2", "conv"), ("3", "identity"), ("1", "add"), ("4", "relu")]


def test_output_order():
    n = net("    a: conv(4, 1)\n    b: conv(4, 1)\n    c: conv(4, 1)\n    @a -> d: conv(1, 1)\n    output c, a, d")
    assert n.graph.graph["outputs"] == ["c", "a", "d"]
    assert n.cost.outputs == ["c", "a", "d"]


def test_without_output_the_last_statement_is_the_output():
    n = net("    a: conv(4, 1)\n    b: conv(4, 1)")
    assert n.graph.graph["outputs"] == ["b"] and n.graph.graph["inputs"] == ["input"]


# ---------------------------------------------------------------------------- imports and instances

def test_imports_relative_and_through_two_files():
    n = load(DATA / "imports" / "nets" / "main.net", network="small")
    assert layers(n) == [("stem.0", "conv"), ("stem.1", "relu"), ("unit1.body.0", "conv"), ("unit1.body.1", "relu"),
                         ("unit1.body.2", "conv"), ("unit1.2", "identity"), ("unit1.0", "add"), ("unit1.3", "relu")]
    # conv 4->4 1x1 + two 3x3 4->4 convs, with biases
    assert n.params == (4 * 4 + 4) + 2 * (4 * 4 * 9 + 4)


def test_network_instance_and_overrides():
    wide = load(DATA / "imports" / "nets" / "main.net", network="wide")
    assert wide.graph.graph["params"] == {"c": 8} and wide.name == "wide"
    assert wide.params == (4 * 8 + 8) + 2 * (8 * 8 * 9 + 8)
    over = load(DATA / "imports" / "nets" / "main.net", network="wide", c="2 * 3")
    assert over.graph.graph["params"] == {"c": 6} and over.shape("unit1.3") == (6, 8, 8)


def test_parameter_overrides_as_text_and_values():
    r18 = load(RESNET, network="resnet18")
    as_text = load(RESNET, network="resnet", block="basic_block", layers="[2, 2, 2, 2]")
    as_values = load(RESNET, network="resnet34", layers=[2, 2, 2, 2])
    for other in (as_text, as_values):
        assert names(other) == names(r18) and other.params == r18.params
    assert as_text.graph.graph["params"] == {"block": "basic_block", "layers": [2, 2, 2, 2], "classes": 1000}
    ten = load(RESNET, network="resnet18", classes="10")
    assert ten.shape("fc") == (10,) and r18.params - ten.params == 990 * 512 + 990
    with pytest.raises(NetlangNameError, match="has no parameter 'depth'"):
        netlang.load(RESNET, network="resnet18", depth="3")


def test_input_override():
    n = load(RESNET, network="resnet18", input=(3, 64, 64))
    assert n.shape("input") == (3, 64, 64)
    assert n.shape("conv1") == (64, 32, 32) and n.shape("layer4.1.bn2") == (512, 2, 2)
    assert n.params == 11_689_512          # parameters do not depend on the input size
    # a network without an input statement takes its input from the override
    m = build("network t {\n    conv(4, 3)\n}", input=(2, 5, 5))
    assert m.shape("0") == (4, 3, 3)


# ---------------------------------------------------------------------------- recursion

FRACTAL = """
def conv_relu(c, k, pad=0) = conv(c, k, pad=pad) -> relu

block fractal(c, cols) {
    if cols == 1 { conv_relu(c, 3, pad=1) }
    else { mean(drop=0.15) { conv_relu(c, 3, pad=1)
                             fractal(c, cols - 1) -> fractal(c, cols - 1) } }
}

network f(cols=1) {
    input 3x16x16
    fr: fractal(8, cols)
}
"""


@pytest.mark.parametrize("cols", [1, 2, 3, 4])
def test_fractal_recursion_grows_as_expected(cols):
    n = build(FRACTAL, cols=str(cols))
    count = Counter(d["op"] for _, d in n.graph.nodes(data=True))
    # convs(c) = 1 + 2 convs(c-1), convs(1) = 1; means(c) = 1 + 2 means(c-1), means(1) = 0
    expect = Counter({"input": 1, "conv": 2 ** cols - 1, "relu": 2 ** cols - 1, "mean": 2 ** (cols - 1) - 1})
    assert count == +expect           # unary + drops the zero count of means at cols=1
    assert n.shape(n.graph.graph["outputs"][0]) == (8, 16, 16)


def test_unbounded_recursion_is_a_located_error():
    with pytest.raises(NetlangRecursionError) as info:
        build("block r(n) {\n    r(n)\n}\nnetwork t {\n    input 3x8x8\n    r(1)\n}")
    assert info.value.loc.line == 2


# ---------------------------------------------------------------------------- values

def value_of(expr: str):
    """Evaluate a netlang expression (as a network parameter default) and return it as plain data."""
    n = build(f"network t(v={expr}) {{\n    input 1x1x1\n    identity\n}}")
    return n.graph.graph["params"]["v"]


@pytest.mark.parametrize("expr", [
    "1 + 2 * 3", "(1 + 2) * 3", "7 // 2", "-7 // 2", "7 % 3", "-7 % 3", "7 / 2", "2 - 3 - 4", "-(3 - 5)",
    "[3, 4, 6, 3][2]", "[3, 4, 6, 3][-1]", "[1, 2] + [3]", "[0] * 3", "(1, 7)", "(1, 7)[1]",
    "1 < 2", "2 <= 2", "3 > 4", "3 >= 4", "1 == 1.0", "1 != 2", "'a' < 'b'",
    "True and False", "True or False", "not True", "not 0", "0 or 5", "3 and 4", "1 < 2 and 2 < 3",
    "4 if 1 > 2 else 5", "4 if 2 > 1 else 5", "min(3, 1, 2)", "max([3, 9])", "sum([1, 2, 3])", "len([1, 2])",
    "int(3.7)", "(1, 2) + (3,)", "[[1, 2], [3]][0][1]", "1.5 * 2", "2 * 64 // 64 * 1",
])
def test_values_agree_with_python(expr):
    ours = expr.replace("True", "true").replace("False", "false")
    assert value_of(ours) == eval(expr)


def test_shape_literal_is_a_tuple():
    assert value_of("1x7") == (1, 7) and value_of("3x224x224") == (3, 224, 224)
    assert value_of("1x7 == (1, 7)") is True
    assert value_of("1x7[1]") == 7
    n = net("    a: conv(4, 1x7, pad=(0, 3))\n    b: conv(4, (7, 1), pad=3x0)", input="3x17x17")
    assert n.graph.nodes["a"]["args"]["k"] == (1, 7) and n.graph.nodes["b"]["args"]["pad"] == (3, 0)
    assert n.shape("a") == n.shape("b") == (4, 17, 17)


def test_let_and_lists_drive_layers():
    n = net("    let widths = [4, 8, 16]\n    for i in range(len(widths)) {\n"
            "        conv{i}: conv(widths[i], 3, stride=(2 if i > 0 else 1), pad=1)\n    }")
    assert [n.shape(f"conv{i}") for i in range(3)] == [(4, 8, 8), (8, 4, 4), (16, 2, 2)]


# ---------------------------------------------------------------------------- naming errors

def test_duplicate_label_and_unknown_reference_are_located():
    with pytest.raises(NetlangNameError, match="duplicate label 'a'") as info:
        net("    a: conv(4, 1)\n    a: conv(4, 1)")
    assert info.value.loc.line == 5
    with pytest.raises(NetlangNameError, match="no label 'b' before this point"):
        net("    a: conv(4, 1)\n    @b -> conv(1, 1)")


def test_two_layers_with_one_name_is_an_error():
    with pytest.raises(NetlangError, match="would both be named"):
        net("    conv(4, 1)\n    {0}: conv(4, 1)")


def test_pad_valid_is_no_padding():
    # "valid" is the papers' "V": the same layer as pad=0, in the IR's canonical form.
    src = "network t {\n    input 3x9x9\n    a: conv(4, 3, stride=2, pad=\"valid\")\n    b: maxpool(3, pad=\"valid\")\n}\n"
    net = netlang.loads(src)
    ref = netlang.loads(src.replace('pad="valid"', "pad=0"))
    for n in ("a", "b"):
        assert net.graph.nodes[n]["args"] == ref.graph.nodes[n]["args"]
        assert net.graph.nodes[n]["args"]["pad"] == (0, 0)
    assert net.graph.nodes["a"]["shape"] == (4, 4, 4) and net.graph.nodes["b"]["shape"] == (4, 1, 1)
