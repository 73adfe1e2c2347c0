"""The user documentation (docs/language.md, docs/ir.md, docs/cost.md) against the implementation.

Every `netlang` code block of docs/language.md must come from a file in tests/data/doc_examples/;
those files must elaborate, and the names and shapes the documents state are checked here. The
module names are checked against torchvision's state_dict keys, built independently below from
the structure of torchvision's model classes, and the totals against torchvision's published
parameter counts and GFLOPS (which are MACs).
"""
from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

import pytest

import netlang
from netlang import elaborate, limits, ops
from netlang.api import load_module
from netlang.ir import inputs_of, topo_order, verify, state_entries
from netlang.passes import PASSES
from netlang.passes.cost import analyse

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EX = Path(__file__).parent / "data" / "doc_examples"
LANGUAGE = (DOCS / "language.md").read_text(encoding="utf-8")
IR = (DOCS / "ir.md").read_text(encoding="utf-8")
COST = (DOCS / "cost.md").read_text(encoding="utf-8")

EXAMPLE_FILES = sorted(p for p in EX.rglob("*.net") if "errors" not in p.parts)
ERROR_FILES = sorted((EX / "errors").glob("*.net"))


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, flags=re.S | re.M)


def between(text: str, marker: str) -> str:
    return text.split(f"<!-- {marker}:begin -->", 1)[1].split(f"<!-- {marker}:end -->", 1)[0]


def load(path: Path, network: str | None = None, **params) -> netlang.Network:
    net = netlang.load(path, network=network, **params)
    verify(net.graph)
    return net


def layer_names(net: netlang.Network) -> list[str]:
    return [n for n in topo_order(net.graph) if n != "input"]


def op_of(net: netlang.Network, name: str) -> str:
    return net.graph.nodes[name]["op"]


# ------------------------------------------------------------------ every example works

@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: str(p.relative_to(EX)))
def test_example_elaborates(path):
    module = load_module(path)
    for name in module.networks:
        load(path, name)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_every_netlang_block_of_the_reference_comes_from_an_example_file():
    files = {p: _lines(p.read_text(encoding="utf-8")) for p in EX.rglob("*.net")}
    blocks = fenced(LANGUAGE, "netlang")
    assert len(blocks) >= 20
    for block in blocks:
        want = _lines(block)
        found = any(want == lines[i:i + len(want)] for lines in files.values()
                    for i in range(len(lines) - len(want) + 1))
        assert found, f"this example is in no file of {EX}:\n{block}"


def test_every_error_example_is_shown_with_its_exact_message():
    shown = dict(re.findall(r"<!-- error:(\S+) -->\n```text\n(.*?)```", LANGUAGE, flags=re.S))
    assert sorted(shown) == sorted(p.name for p in ERROR_FILES)
    for path in ERROR_FILES:
        with pytest.raises(netlang.NetlangError) as info:
            netlang.loads(path.read_text(encoding="utf-8"), filename=path.name)
        assert info.value.format() == shown[path.name].rstrip("\n"), path.name


# ------------------------------------------------------------------ the op table

def _table_rows() -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in between(LANGUAGE, "op-table").splitlines() if line.startswith("| `")]


def test_op_table_lists_exactly_the_registry():
    names = [row[0].strip("`") for row in _table_rows()]
    assert Counter(names) == Counter(list(ops.LANGUAGE))
    assert names == list(ops.LANGUAGE)


def test_op_table_is_the_output_of_its_generator():
    code = fenced(between(LANGUAGE, "op-table-generator"), "python")
    assert len(code) == 1
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code[0], "docs/language.md", "exec"), {"__name__": "op_table"})
    table = [line for line in between(LANGUAGE, "op-table").splitlines() if line.startswith("|")]
    assert out.getvalue().splitlines() == table


def test_op_table_signatures_agree_with_argument_binding():
    # Independent of the generator: each documented signature's parameter order is the order in
    # which positional arguments bind, and its required parameters are the ones an empty call misses.
    for row in _table_rows():
        name, sig = row[0].strip("`"), row[1].strip("`")
        params = re.findall(r"(\w+)(=[^,)]*)?[,)]", sig[len(name):]) if "(" in sig else []
        assert [p for p, _ in params] == [p.name for p in ops.OPS[name].params], name
        required = [p for p, default in params if not default]
        assert required == [p.name for p in ops.OPS[name].params if p.default is ops.REQUIRED], name


def test_limits_table_matches_the_constants():
    table = dict(re.findall(r"^\| `(MAX_\w+)` \| ([^|]+) \|", LANGUAGE, flags=re.M))
    constants = {k: v for k, v in vars(limits).items() if k.startswith("MAX_")}
    assert sorted(table) == sorted(constants)

    def value(text: str) -> int:
        text = text.split("=")[-1].strip().replace(",", "")
        sup = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
        if text.startswith("2") and len(text) > 1 and text[1] in "⁰¹²³⁴⁵⁶⁷⁸⁹":
            return 2 ** int(text[1:].translate(sup))
        return int(text)

    for name, text in table.items():
        assert value(text) == constants[name], name


# ------------------------------------------------------------------ names and shapes the reference states

def test_quickstart():
    net = load(EX / "quickstart.net")
    assert layer_names(net) == (["stem.0", "stem.1", "stem.2"] + [f"stage1.{i}" for i in range(6)]
                                + [f"stage2.{i}" for i in range(6)] + ["pool", "4", "fc"])
    assert op_of(net, "stage1.3") == "conv" and net.shape("stage1.3") == (64, 16, 16)
    assert op_of(net, "4") == "flatten" and net.shape("fc") == (10,)
    assert load(EX / "quickstart.net", classes=100).shape("fc") == (100,)


def test_lexical():
    net = load(EX / "lexical.net")
    assert layer_names(net) == ["stem.0", "stem.1", "stem.2", "down.0", "down.1", "head", "pool.0", "pool.1"]
    assert net.shape("head") == (10, 16, 16)
    assert net.shape("pool.1") == (10,)


def test_values():
    net = load(EX / "values.net")
    assert [(n, net.shape(n)) for n in layer_names(net)] == [
        ("a", (16, 32, 32)), ("b", (40, 32, 32)), ("c", (64, 32, 32)), ("d", (6, 32, 32))]
    args = net.graph.nodes
    assert args["a"]["args"]["pad"] == (1, 1)
    assert args["b"]["args"]["k"] == (1, 3) and args["b"]["args"]["pad"] == (0, 1)
    assert args["d"]["args"]["bias"] is True


def test_statements():
    net = load(EX / "statements.net")
    shapes = {n: net.shape(n) for n in layer_names(net)}
    assert shapes["stem"] == (16, 32, 32)
    assert shapes["stage0.0"] == (16, 32, 32)
    assert shapes["stage1.0"] == (32, 16, 16)
    assert shapes["stage2.0"] == (48, 8, 8)
    assert op_of(net, "pool") == "maxpool" and shapes["pool"] == (48, 4, 4)
    assert op_of(net, "head.2") == "linear" and shapes["head.2"] == (48,)


def test_imports_relative_to_the_file():
    net = load(EX / "imports" / "main.net")
    assert layer_names(net) == ["stem.0", "stem.1", "stem.2", "1", "2"]
    assert op_of(net, "stem.0") == "conv" and net.shape("stem.0") == (32, 16, 16)


def test_imports_fall_back_to_the_bundled_architectures(tmp_path, monkeypatch):
    # The imported file is not beside the importing one, only in the (stand-in) bundled folder.
    monkeypatch.setattr(elaborate, "bundled_architectures", lambda: EX / "imports")
    main = tmp_path / "main.net"
    main.write_text((EX / "imports" / "main.net").read_text(encoding="utf-8"), encoding="utf-8")
    assert layer_names(load(main)) == ["stem.0", "stem.1", "stem.2", "1", "2"]


def test_generic_values():
    net = load(EX / "generic.net", "generic")
    assert layer_names(net)[:4] == ["body.0.0", "body.0.1", "body.1.0", "body.1.1"]
    assert op_of(net, "res.1") == "conv"
    assert [(op_of(net, n), net.shape(n)[0]) for n in ("2", "3", "4", "5")] == [
        ("conv", 32), ("relu", 32), ("conv", 64), ("relu", 64)]
    one = load(EX / "generic.net", "generic_sigmoid")
    assert layer_names(one)[:2] == ["body.0.0", "body.0.1"]
    assert op_of(one, "3") == op_of(one, "5") == "sigmoid"


def test_references():
    net = load(EX / "refs.net", "two_heads")
    assert net.graph.graph["outputs"] == ["fc.2", "aux.2"]
    assert inputs_of(net.graph, "aux.0") == ["stage1.1"]
    assert net.shape("aux.1") == (32,) and net.shape("aux.2") == (10,)
    skip = load(EX / "refs.net", "skip")
    assert op_of(skip, "cat") == "concat" and skip.shape("cat") == (32, 32, 32)
    assert inputs_of(skip.graph, "cat") == ["cat.1", "enc.1"]
    assert inputs_of(skip.graph, "side") == ["down.1"] and skip.shape("side") == (4, 16, 16)
    assert skip.graph.graph["outputs"] == ["head", "side"]


def test_merges():
    net = load(EX / "merges.net", "merges")
    assert op_of(net, "inc") == "concat" and net.shape("inc") == (128, 32, 32)
    assert op_of(net, "se.3") == "conv" and net.shape("se.3") == (8, 1, 1)
    assert op_of(net, "se.0") == "mul" and net.shape("se.0") == (128, 32, 32)
    assert net.graph.nodes["frac.0"]["args"] == {"drop": 0.15}
    unet = load(EX / "merges.net", "unet_tiny")
    assert op_of(unet, "3") == "concat" and unet.shape("3") == (32, 64, 64)
    assert inputs_of(unet.graph, "3") == ["4", "enc1.1"] and inputs_of(unet.graph, "4") == ["up"]
    crop = load(EX / "merges.net", "crop")
    assert crop.shape("small") == (8, 60, 60)
    assert crop.shape("2") == (16, 60, 60) and crop.graph.nodes["2"]["args"] == {"crop": True}


def _make_divisible(v, divisor=8, min_value=None):
    # torchvision.models._utils._make_divisible, verbatim
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _mobilenet_v2_widths(width_mult):
    """The output channels of torchvision's MobileNetV2 features, as its constructor works them out."""
    settings = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                [6, 320, 1, 1]]
    widths = [_make_divisible(32 * width_mult, 8)]
    for _, c, n, _ in settings:
        widths += [_make_divisible(c * width_mult, 8)] * n
    return widths + [_make_divisible(1280 * max(1.0, width_mult), 8)]


@pytest.mark.parametrize("width_mult", [0.5, 0.75, 1.0, 1.4])
def test_value_functions_mobilenet_v2_widths(width_mult):
    net = load(EX / "value_functions.net", width_mult=width_mult)
    features = [f"features.{i}" for i in range(19)]
    outs = [net.shape(f"{f}.0" if i in (0, 18) else f"{f}.{_last_conv(net, f)}")[0] for i, f in enumerate(features)]
    assert outs == _mobilenet_v2_widths(width_mult)
    assert net.shape("classifier.1") == (1000,)


def _last_conv(net, block):
    return max((n for n in net.graph.nodes if n.startswith(block + ".") and op_of(net, n) == "conv"),
               key=lambda n: topo_order(net.graph).index(n))[len(block) + 1:]


def test_value_functions_mobilenet_v2_figures():
    # stated in docs/language.md, and torchvision's MobileNetV2 (3,504,872 parameters, 0.30 GFLOPS)
    assert _mobilenet_v2_widths(0.75)[0] == 24 and _mobilenet_v2_widths(1.4)[-1] == 1792
    net = load(EX / "value_functions.net")
    assert net.params == 3_504_872 and round(net.macs / 1e9, 2) == 0.30
    assert "3,504,872" in LANGUAGE
    small = load(EX / "value_functions.net", width_mult=0.75)
    assert small.shape("features.0.0") == (24, 112, 112)
    # t=1: no expansion (an identity), then the depthwise conv
    assert op_of(small, "features.1.0") == "identity"
    assert small.graph.nodes["features.1.1.0"]["args"]["groups"] == 24
    assert op_of(small, "features.2.3") == "batchnorm"            # a stride-2 block: no residual add
    assert op_of(small, "features.3.0") == "add"                  # a residual block: the add is item 0


def test_make_divisible_against_torchvision_for_many_inputs():
    from netlang.elaborate import Elaborator
    from netlang.parser import parse_expr
    module = load_module(EX / "value_functions.net")
    el = Elaborator("values")
    cases = [(v / 4, d, m) for v in range(1, 2000, 7) for d in (1, 3, 8, 16) for m in (None, 0, 8, 32)]
    cases += [(c * w, 8, None) for c in (16, 24, 32, 40, 64, 96, 112, 160, 192, 320, 1280)
              for w in (0.25, 0.35, 0.5, 0.75, 1.0, 1.1, 1.2, 1.3, 1.4, 1.6, 1.8, 2.0)]
    for v, d, m in cases:
        args = f"{v!r}, {d}" + (f", min_value={m}" if m else "")
        got = el.eval(parse_expr(f"make_divisible({args})", "<test>"), module.env, None)
        assert got == _make_divisible(v, d, m or None), (v, d, m)


# EfficientNet B0..B7: (width_mult, depth_mult), torchvision's
EFFICIENTNETS = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8), (1.6, 2.2), (1.8, 2.6), (2.0, 3.1)]


@pytest.mark.parametrize("width_mult,depth_mult", EFFICIENTNETS, ids=[f"b{i}" for i in range(8)])
def test_efficientnet_round_filters_and_repeats(width_mult, depth_mult):
    import math
    net = load(EX / "efficientnet_scaling.net", "efficientnet_stages", width_mult=width_mult, depth_mult=depth_mult)
    assert net.shape("stem.0")[0] == _make_divisible(32 * width_mult, 8)
    for c, n in [(16, 1), (24, 2), (40, 2), (80, 3), (112, 3), (192, 4), (320, 1)]:
        convs = [x for x in net.graph.nodes if x.startswith(f"stage{c}.") and op_of(net, x) == "conv"]
        assert len(convs) == int(math.ceil(n * depth_mult)), c
        assert {net.shape(x)[0] for x in convs} == {_make_divisible(c * width_mult, 8)}
    assert net.shape("head.0")[0] == 4 * _make_divisible(320 * width_mult, 8)


def test_value_function_figures_the_reference_states():
    from netlang.elaborate import Elaborator
    from netlang.parser import parse_expr
    module = load_module(EX / "efficientnet_scaling.net")
    stated = {"make_divisible(32 * 0.75)": 24, "make_divisible(1280 * 1.4)": 1792, "make_divisible(11)": 16,
              "ceil(2 * 1.8)": 4, "make_divisible(40 * 1.4)": 56, "gcd(48, 3)": 3, "log(1000, 10)": 2.9999999999999996,
              "floor(log(1000, 10))": 2, "ceil(2.1)": 3, "floor(-0.5)": -1, "pow(2, 10)": 1024, "pow(2, -1)": 0.5,
              'str(8) + str(0.5) + str(true)': "80.5true"}
    for text, want in stated.items():
        got = Elaborator("doc").eval(parse_expr(text, "<doc>"), module.env, None)
        assert got == want and type(got) is type(want), text
        assert f"`{text}" in LANGUAGE or text.startswith("str(") or text == "gcd(48, 3)", text


def test_efficientnet_b4_instance_and_regnet_widths():
    b4 = load(EX / "efficientnet_scaling.net", "efficientnet_b4_stages")
    assert b4.shape("head.2") == (1792, 2, 2)
    stage40 = [x for x in b4.graph.nodes if x.startswith("stage40.") and op_of(b4, x) == "conv"]
    assert len(stage40) == 4 and {b4.shape(x)[0] for x in stage40} == {56}
    net = load(EX / "efficientnet_scaling.net", "regnet_widths")
    widths = [net.shape(f"block{i}")[0] for i in range(16)]
    # RegNetY-400MF in torchvision: stage widths 48, 104, 208, 440 and depths 1, 3, 6, 6
    assert [(w, widths.count(w)) for w in sorted(set(widths))] == [(48, 1), (104, 3), (208, 6), (440, 6)]
    assert net.graph.nodes["block0"]["args"]["groups"] == 3 and net.graph.nodes["block1"]["args"]["groups"] == 8
    assert net.shape("head") == (len("regnet_16_27.89"), 32, 32)


def test_split_example():
    net = load(EX / "split.net")
    G = net.graph
    assert op_of(net, "stage.1.0") == "concat" and op_of(net, "stage.1.3") == "channel_shuffle"
    parts = [G.nodes[f"stage.1.0:part{i}"] for i in range(2)]
    assert [(p["op"], p["args"]) for p in parts] == [("slice", {"start": 0, "stop": 24}),
                                                     ("slice", {"start": 24, "stop": 48})]
    assert inputs_of(G, "stage.1.0:part0") == ["stage.0.3"] and net.shape("stage.0.3") == (48, 16, 16)
    assert inputs_of(G, "stage.1.branch2.0") == ["stage.1.0:part1"]
    assert dict((k, s) for k, s, _ in state_entries(G))["stage.1.branch2.0.weight"] == (24, 24, 1, 1)
    assert not any(k.startswith("stage.1.0") for k, _, _ in state_entries(G))
    assert [net.shape(f"three:part{i}") for i in range(3)] == [(16, 16, 16)] * 3
    assert net.shape("three") == (48, 16, 16)
    flat = " ".join(LANGUAGE.split())
    for text in ("`stage.1.0:part0` and `stage.1.0:part1` (channels 0:24 and 24:48",
                 "`stage.1.branch2` reads the second", "the shuffle is `stage.1.3`",
                 "`stage.1.branch2.0` has 24 input channels"):
        assert text in flat, text


def test_activations_example():
    from netlang.passes import run_pipeline
    net = load(EX / "activations.net")
    assert op_of(net, "features.0.block.2") == "hardswish" and op_of(net, "features.0.block.6.6") == "hardsigmoid"
    assert net.graph.nodes["mix.1"]["args"] == {"approximate": "tanh"}
    assert net.graph.nodes["mix.3"]["args"] == {"slope": 0.1}
    assert ("act.weight", (32,), False) in state_entries(net.graph)
    assert op_of(net, "head.1") == "log_softmax"
    assert net.cost.totals()["params"] == 13_066
    assert "13,066 parameters" in LANGUAGE
    H = run_pipeline(net.graph, ["fuse"])
    assert [s["op"] for s in H.nodes["features.0.block.0"]["epilogue"]] == ["batchnorm", "hardswish"]
    assert H.nodes["act"]["op"] == "prelu" and H.nodes["head.1"]["op"] == "log_softmax"


def test_naming_worked_example():
    net = load(EX / "naming.net")
    unit = lambda p: [f"{p}.conv", f"{p}.bn", f"{p}.2"]  # noqa: E731
    assert sorted(layer_names(net)) == sorted(
        ["stem", "1"] + unit("2") + unit("b") + ["seq.0", "seq.1", "5", "6", "d.0", "d.1", "8", "y",
                                                 "10", "11", "12", "r", "r.x", "r.2",
                                                 "pair.c", "pair.s", "pair.2", "one.c.0", "one.c.1"]
        + unit("rep.0") + unit("rep.1") + unit("single.0") + ["p"])
    assert op_of(net, "p") == "maxpool"
    assert op_of(net, "10") == "add" and inputs_of(net.graph, "10") == ["11", "12"]
    assert op_of(net, "r") == "add" and inputs_of(net.graph, "r") == ["r.x", "r.2"]
    assert op_of(net, "8") == "conv" and op_of(net, "y") == "relu"
    # The comments of the example state the same names.
    stated = set()
    for line in (EX / "naming.net").read_text(encoding="utf-8").splitlines():
        if "#" in line:
            comment = re.sub(r"\(.*?\)", "", line.split("#", 1)[1])
            stated |= {w for w in comment.split() if w != "..."}
    stated |= {"10", "r"}   # named in the parenthetical remarks
    assert stated <= set(layer_names(net))


# ------------------------------------------------------------------ torchvision's names and figures

def bn(p: str) -> list[str]:
    return [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var", f"{p}.num_batches_tracked"]


def state_dict_keys(G) -> list[str]:
    """The state_dict keys the IR promises (netlang.ir.state_entries), in order."""
    return [key for key, _, _ in state_entries(G)]


def torchvision_resnet(bottleneck: bool, layers: list[int]) -> list[str]:
    """torchvision.models.resnet.ResNet's keys: _make_layer adds a downsample to a stage's first
    block when the stride or the channel count changes."""
    keys = ["conv1.weight", *bn("bn1")]
    expansion, inplanes = (4 if bottleneck else 1), 64
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers), 1):
        stride = 1 if i == 1 else 2
        for b in range(n):
            p = f"layer{i}.{b}"
            for c in range(1, 4 if bottleneck else 3):
                keys += [f"{p}.conv{c}.weight", *bn(f"{p}.bn{c}")]
            if b == 0 and (stride != 1 or inplanes != planes * expansion):
                keys += [f"{p}.downsample.0.weight", *bn(f"{p}.downsample.1")]
            inplanes = planes * expansion
    return keys + ["fc.weight", "fc.bias"]


def torchvision_vgg(cfg: list) -> list[str]:
    keys, i = [], 0
    for v in cfg:
        if v == "M":
            i += 1
        else:
            keys += [f"features.{i}.weight", f"features.{i}.bias"]
            i += 2
    return keys + [f"classifier.{j}.{w}" for j in (0, 3, 6) for w in ("weight", "bias")]


def torchvision_densenet(blocks: list[int]) -> list[str]:
    keys = ["features.conv0.weight", *bn("features.norm0")]
    for b, n in enumerate(blocks, 1):
        for i in range(1, n + 1):
            p = f"features.denseblock{b}.denselayer{i}"
            keys += [*bn(f"{p}.norm1"), f"{p}.conv1.weight", *bn(f"{p}.norm2"), f"{p}.conv2.weight"]
        if b != len(blocks):
            keys += [*bn(f"features.transition{b}.norm"), f"features.transition{b}.conv.weight"]
    return keys + [*bn("features.norm5"), "classifier.weight", "classifier.bias"]


def torchvision_inception(name: str) -> list[str]:
    convs = ["branch1", "branch2.0", "branch2.1", "branch3.0", "branch3.1", "branch4.1"]
    return [k for c in convs for k in [f"{name}.{c}.conv.weight", *bn(f"{name}.{c}.bn")]]


VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
VGG11 = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]

# file, network, torchvision's state_dict keys, torchvision's num_params and GFLOPS ("_ops" in the
# weights' metadata of torchvision.models).
TORCHVISION = [
    ("resnet.net", "resnet18", torchvision_resnet(False, [2, 2, 2, 2]), 11_689_512, 1.814),
    ("resnet.net", "resnet50", torchvision_resnet(True, [3, 4, 6, 3]), 25_557_032, 4.089),
    ("resnet.net", "resnet101", torchvision_resnet(True, [3, 4, 23, 3]), 44_549_160, 7.801),
    ("alexnet.net", "alexnet", [f"{s}.{j}.{w}" for s, idx in (("features", (0, 3, 6, 8, 10)),
                                                               ("classifier", (1, 4, 6)))
                                 for j in idx for w in ("weight", "bias")], 61_100_840, 0.714),
    ("vgg.net", "vgg", torchvision_vgg(VGG16), 138_357_544, 15.47),
    ("vgg.net", "vgg11", torchvision_vgg(VGG11), 132_863_336, 7.609),
    ("densenet.net", "densenet121", torchvision_densenet([6, 12, 24, 16]), 7_978_856, 2.834),
]


@pytest.mark.parametrize("file,network,keys,params,gflops", TORCHVISION, ids=[t[1] for t in TORCHVISION])
def test_torchvision_names_and_figures(file, network, keys, params, gflops):
    net = load(EX / file, network)
    assert sorted(state_dict_keys(net.graph)) == sorted(keys)
    assert net.params == params
    assert round(net.macs / 1e9, 3) == pytest.approx(gflops, abs=1e-9)
    assert net.shape(net.graph.graph["outputs"][0]) == (1000,)


def test_torchvision_googlenet_inception_names():
    net = load(EX / "googlenet_inception.net")
    keys = state_dict_keys(net.graph)
    assert sorted(keys) == sorted(torchvision_inception("inception3a") + torchvision_inception("inception3b"))
    assert "inception3a.branch2.1.conv.weight" in keys
    assert net.shape("inception3a.0") == (256, 28, 28) and op_of(net, "inception3a.0") == "concat"
    assert net.shape("inception3b.0") == (480, 28, 28)
    # Weights of inception 3a (its 5x5 branch as in the paper), worked out by hand: 1x1, 3x3
    # reduce + 3x3, 5x5 reduce + 5x5, pool projection, each conv followed by a batch norm.
    conv_bn = lambda cin, cout, k: cin * cout * k * k + 2 * cout  # noqa: E731
    expect = (conv_bn(192, 64, 1) + conv_bn(192, 96, 1) + conv_bn(96, 128, 3) + conv_bn(192, 16, 1)
              + conv_bn(16, 32, 5) + conv_bn(192, 32, 1))
    assert net.cost.scope_cost("inception3a").params == expect == 164_064


def test_mobile_network_example_has_torchvisions_layout():
    # the example's MobileNetV3-Large against torchvision's own state_dict (the golden file)
    import json
    golden = json.loads((Path(__file__).parent / "golden" / "torchvision" / "mobilenet_v3_large.json").read_text())
    net = load(EX / "mobilenet_v3.net", "mobilenet_v3_large")
    ours = [(k, tuple(s)) for k, s, _ in state_entries(net.graph)]
    assert ours == [(k, tuple(s)) for k, s, _ in golden["state_dict"]]
    assert net.params == golden["num_params"] == 5_483_032
    assert round(net.macs / 1e9, 3) == golden["meta"]["gflops"] == 0.217
    for key in ("features.4.block.2.fc1", "features.4.block.3.0"):
        assert f"`{key}`" in LANGUAGE and f"{key}.weight" in {k for k, _, _ in golden["state_dict"]}


def test_reference_quotes_the_torchvision_names_it_reproduces():
    for key in ("layer1.0.conv1.weight", "features.0.weight", "inception3a.branch2.1.conv.weight",
                "features.denseblock1.denselayer1.norm1.weight"):
        assert f"`{key}`" in LANGUAGE
    dense = state_dict_keys(load(EX / "densenet.net", "densenet121").graph)
    assert "features.denseblock1.denselayer1.norm1.weight" in dense
    assert "features.transition3.conv.weight" in dense
    resnet = state_dict_keys(load(EX / "resnet.net", "resnet18").graph)
    assert "layer2.0.downsample.0.weight" in resnet and "layer2.0.downsample.1.running_var" in resnet


# ------------------------------------------------------------------ docs/cost.md

def test_cost_worked_example():
    net = load(EX / "cost_example.net")
    t = net.cost.totals()
    # By hand: 16 output channels, 3 input channels, 3x3 kernel, 32x32 positions.
    elems = 16 * 32 * 32
    assert t["params"] == 16 * 3 * 3 * 3 + 2 * 16 == 464
    assert t["buffers"] == 2 * 16 + 1 == 33
    assert t["macs"] == elems * 27 == 442_368
    assert t["flops"] == 884_736
    assert t["ew_ops"] == 2 * elems + elems == 49_152
    assert t["act_elems"] == 3 * 32 * 32 + 2 * elems == 35_840
    assert t["act_bytes_forward"] == 143_360 and t["act_bytes_training"] == 286_720
    assert t["peak_act_elems"] == 2 * elems == 32_768 and t["peak_act_bytes"] == 131_072
    assert t["param_bytes"] == 1_988
    for figure in ("442,368", "884,736", "49,152", "35,840", "143,360", "286,720", "32,768", "1,988"):
        assert figure in COST, figure
    summary = net.summary().splitlines()
    for line in fenced(COST, "text")[-1].splitlines():
        assert line in summary


def test_cost_worked_example_with_a_bias():
    net = netlang.loads((EX / "cost_example.net").read_text(encoding="utf-8")
                        .replace("bias=false", "bias=true"))
    conv = net.cost.scope_cost("block1.conv")
    assert (conv.params, conv.macs, conv.ew_ops) == (448, 442_368, 16_384)


def test_cost_example_against_torch():
    torch = pytest.importorskip("torch")
    from torch.utils.flop_counter import FlopCounterMode
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16),
                                torch.nn.ReLU(inplace=True)).eval()
    net = load(EX / "cost_example.net")
    assert sum(p.numel() for p in model.parameters()) == net.params
    assert sum(b.numel() for b in model.buffers()) == net.cost.buffers
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(torch.zeros(1, 3, 32, 32))
    conv_flops = sum(v for k, v in counter.get_flop_counts()["Global"].items() if "convolution" in str(k))
    assert conv_flops == net.cost.flops
    assert tuple(out.shape[1:]) == net.shape("block1.2")


# ------------------------------------------------------------------ docs/ir.md

def test_ir_pass_example():
    code = fenced(between(IR, "ir-pass-example"), "python")
    assert len(code) == 1
    scope: dict = {"__name__": "ir_example"}
    exec(compile(code[0], "docs/ir.md", "exec"), scope)
    net = load(EX / "resnet.net", "resnet18")
    G = net.graph
    before = {n: dict(d) for n, d in G.nodes(data=True)}
    bns = [n for n in G if G.nodes[n]["op"] == "batchnorm"]
    assert len(bns) == 20
    H = scope["fold_batchnorm"](G)
    verify(H)
    assert {n: d for n, d in G.nodes(data=True)} == before          # the pass is pure
    assert not [n for n in H if H.nodes[n]["op"] == "batchnorm"]
    conv = H.nodes["layer1.0.conv1"]
    assert conv["fused_from"] == ("layer1.0.conv1", "layer1.0.bn1")
    assert conv["loc"] == before["layer1.0.conv1"]["loc"] and conv["args"]["bias"] is True
    assert inputs_of(H, "layer1.0.3") == ["layer1.0.conv1"]
    assert inputs_of(H, "layer2.0.0") == ["layer2.0.conv2", "layer2.0.downsample.0"]
    cost = analyse(H)
    assert cost.macs == net.macs
    assert cost.params == net.params - sum(G.nodes[n]["shape"][0] for n in bns)


def test_ir_doc_states_the_graph_it_shows():
    G = load(EX / "resnet.net", "resnet18").graph
    assert inputs_of(G, "layer2.0.0") == ["layer2.0.bn2", "layer2.0.downsample.1"]
    node = G.nodes["layer1.0.conv1"]
    assert node["args"] == {"out": 64, "k": (3, 3), "stride": (1, 1), "pad": (1, 1), "bias": False,
                            "dilation": (1, 1), "groups": 1}
    assert (node["shape"], node["scope"], node["loc"].line, node["loc"].col) == ((64, 56, 56), "layer1.0", 5, 16)
    assert G.nodes["layer1.0.0"]["op"] == "add"
    assert G.graph["params"] == {"block": "basic_block", "layers": [2, 2, 2, 2], "classes": 1000}
    assert G.graph["scopes"]["layer2.0"]["call"] == "basic_block(128, stride=2)"
    assert G.graph["scopes"]["layer2"]["call"] == "stage(basic_block, 128, 2, 2)"
    assert G.graph["scopes"]["layer2"]["kind"] == "seq" and G.graph["scopes"]["layer2.0"]["kind"] == "block"
    for text in ("basic_block(128, stride=2)", "stage(basic_block, 128, 2, 2)", "layer2.0.downsample.1"):
        assert text in IR
    registry = IR.split("PASSES = {")[1].split("}")[0]
    assert sorted(PASSES) == sorted(re.findall(r'"([\w-]+)": \w+', registry))


def test_cost_in_place_rule():
    def act(body: str, node: str) -> int:
        net = netlang.loads(f"network t {{\n    input 4x8x8\n{body}\n}}\n")
        return next(layer.act_elems for layer in net.cost.layers if layer.name == node)

    assert act("    conv(4, 1)\n    relu", "1") == 0                        # sole reader: in place
    assert act("    relu", "0") == 4 * 8 * 8                                # the input tensor is kept
    assert act("    conv(4, 1)\n    add { relu\n          identity }", "2") == 4 * 8 * 8
    assert act("    conv(4, 1)\n    dropout", "1") == act("    conv(4, 1)\n    flatten", "1") == 0


def test_zoo_page_is_the_output_of_its_command(monkeypatch):
    from netlang.cli import main
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["zoo", "architectures", "--markdown"]) == 0
    assert (ROOT / "docs" / "zoo.md").read_text() == out.getvalue(), \
        "docs/zoo.md is stale: run `netlang zoo architectures --markdown > docs/zoo.md`"
    # Every network of every zoo file has its row, with the paper its file cites.
    # (the zoo's table; the sections after it compare some networks with published figures)
    table = out.getvalue().split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| Network")]
    names = [r.split(" | ")[0][2:] for r in rows]
    from netlang.elaborate import template_params
    expected = [n for p in sorted((ROOT / "architectures").glob("*.net")) for m in [load_module(p)]
                for n in m.networks if not template_params(m, n)]
    assert names == expected
    cites = re.compile(r"\(.*\b(19|20)\d\d\b[^|]*\) \|$")
    assert all(cites.search(r) for r in rows), [r for r in rows if not cites.search(r)]


def test_source_of_reads_the_cited_paper():
    from netlang.summary import source_of
    assert source_of("# A (B, C 2015), Table 1, with\n# names.\n#\n# more") == "A (B, C 2015)"
    assert source_of('# X (Y, "Z (W)\n# V", ICLR 2017) for CIFAR.\n') == 'X (Y, "Z (W) V", ICLR 2017)'
    assert source_of("network n {}") == ""


def test_dotted_labels_example():
    net = load(EX / "dotted.net")
    G = net.graph
    assert layer_names(net)[:6] == ["body.stem.0", "body.stem.1", "body.layer1.0", "body.layer1.1",
                                    "body.layer2.0", "body.layer2.1"]
    assert net.shape("body.stem.0") == (16, 32, 32) and net.shape("body.layer2.0") == (64, 8, 8)
    assert net.shape("fpn.inner_blocks.0.0") == (16, 16, 16) and net.shape("fpn.inner_blocks.1.0") == (16, 8, 8)
    assert inputs_of(G, "fpn.inner_blocks.0.0") == ["body.layer1.1"]
    assert op_of(net, "top_down") == "add" and inputs_of(G, "fpn.layer_blocks.0.0") == ["top_down"]
    assert inputs_of(G, "fpn.layer_blocks.1.0") == ["fpn.inner_blocks.1.0"]
    assert G.graph["outputs"] == ["fpn.layer_blocks.0.0", "fpn.layer_blocks.1.0"]
    assert net.shape("fpn.layer_blocks.0.0") == (16, 16, 16) and net.shape("fpn.layer_blocks.1.0") == (16, 8, 8)
    keys = [k for k, _, _ in state_entries(G)]
    assert keys[0] == "body.stem.0.weight" and keys[-1] == "fpn.layer_blocks.1.0.bias" and len(keys) == 14
    # the containers the paths run through are scopes of kind module
    assert {p: G.graph["scopes"][p]["kind"] for p in ("body", "fpn", "fpn.inner_blocks", "fpn.inner_blocks.0")} == \
        {"body": "module", "fpn": "module", "fpn.inner_blocks": "module", "fpn.inner_blocks.0": "module"}
