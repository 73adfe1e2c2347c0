"""A network's `init` statement: parsing, evaluation, errors, the torch backend's draws, and
torchvision's initialisation for the zoo networks that have torchvision's names.

The draws are checked against the distribution each scheme states, on layers large enough that
the sample statistics are within a few percent (each bound below is several standard errors).
"""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import netlang
from netlang.errors import NetlangError

ROOT = Path(__file__).resolve().parent.parent
ARCH = ROOT / "architectures"


def net_of(body: str, params: str = "") -> netlang.Network:
    return netlang.loads(f"network n{params} {{\n{body}\n}}\n", filename="init.net")


def model_of(body: str, seed: int = 0, params: str = ""):
    net = net_of(body, params)
    torch.manual_seed(seed)
    return _lower(net)


def _lower(net):
    from netlang.backends.pytorch import lower
    return lower(net)


def error_of(body: str) -> NetlangError:
    with pytest.raises(NetlangError) as e:
        net_of(body)
    return e.value


# ---------------------------------------------------------------------------- the statement

def test_rules_are_evaluated_in_order_and_stored():
    net = net_of("""
    let s = 0.01
    init linear = normal(0, s), linear.bias = zeros
    init conv = kaiming_normal(mode="fan_out", nonlinearity="relu"), "c.1" = trunc_normal(std=2 * s)
    input 3x8x8
    c: conv(4, 3) -> conv(4, 1)
    flatten
    fc: linear(10)""")
    assert net.graph.graph["init"] == [
        ("linear", "weight", "normal", {"mean": 0, "std": 0.01}),
        ("linear", "bias", "zeros", {}),
        ("conv", "weight", "kaiming_normal", {"a": 0.0, "mode": "fan_out", "nonlinearity": "relu"}),
        ("c.1", "weight", "trunc_normal", {"mean": 0.0, "std": 0.02, "a": -2.0, "b": 2.0}),
    ]


def test_init_is_no_keyword():
    # a parameter, a let, a block and a call may still be called init
    text = """
block init(c) {
    conv(c, 1)
}

network n(init=4) {
    input 3x8x8
    let width = init
    conv(width, 1)
    init conv = zeros
}

network m {
    input 3x8x8
    init(5)
}
"""
    n = netlang.loads(text, network="n", filename="init.net")
    assert n.graph.graph["init"] == [("conv", "weight", "zeros", {})] and n.graph.graph["params"]["init"] == 4
    m = netlang.loads(text, network="m", filename="init.net")
    assert "init" not in m.graph.graph and m.shape(m.graph.graph["outputs"][0]) == (5, 8, 8)


def test_a_network_without_init_has_no_rules():
    assert "init" not in net_of("input 3x8x8\nconv(4, 3)").graph.graph


def test_a_conditional_rule_applies_only_where_taken():
    body = """
    if wide {
        init conv = constant(0.5)
    }
    input 3x8x8
    c: conv(4, 3)"""
    assert "init" not in net_of(body, "(wide=false)").graph.graph
    torch.manual_seed(0)
    m = _lower(netlang.loads(f"network n(wide=true) {{\n{body}\n}}\n", filename="init.net"))
    assert torch.all(m.c.weight == 0.5)


@pytest.mark.parametrize("body,message,where", [
    ("init conv = gaussian(0.1)\ninput 3x8x8\nconv(4, 3)", "unknown init scheme 'gaussian'", (2, 13)),
    ("init conv = normal(0, -1)\ninput 3x8x8\nconv(4, 3)", "normal: std must be positive, got -1", (2, 13)),
    ("init conv = kaiming_normal(mode=\"out\")\ninput 3x8x8\nconv(4, 3)", "mode must be one of", (2, 13)),
    ("init conv = uniform(1, 0)\ninput 3x8x8\nconv(4, 3)", "a must be below b", (2, 13)),
    ("init conv = constant\ninput 3x8x8\nconv(4, 3)", "constant needs its 'value' argument", (2, 13)),
    ("init prelu.bias = zeros\ninput 3x8x8\nconv(4, 3)", "a prelu layer has no bias to initialise", (2, 6)),
    ("init head = zeros\ninput 3x8x8\nconv(4, 3)", "no layer is named head", (2, 6)),
    ("init b.bn3 = zeros\ninput 3x8x8\nconv(4, 3)", "no layer is named b.bn3", (2, 6)),
    ("init n.weight = ones\ninput 3x8x8\nn: batchnorm(affine=false)", "n is a batchnorm without a weight", (2, 6)),
    ("init b.s = default\ninput 3x8x8\nb: (s: layer_scale(0.1) -> c: conv(4, 1))", "default needs a layer with a fan", (2, 6)),
    ("init conv = 0.5\ninput 3x8x8\nconv(4, 3)", "an init rule's value is a scheme", (2, 13)),
    ("init conv = normal(0, 1, 2)\ninput 3x8x8\nconv(4, 3)", "normal takes 2 arguments", (2, 26)),
])
def test_bad_rules_are_located_errors(body, message, where):
    err = error_of(body)
    assert message in str(err)
    assert (err.loc.line, err.loc.col) == where


def test_an_unknown_scheme_lists_the_schemes():
    err = error_of("init conv = kaiming(1)\ninput 3x8x8\nconv(4, 3)")
    assert "did you mean 'kaiming_normal'?" in str(err.hint) and "trunc_normal" in str(err.hint)


def test_init_belongs_in_a_network():
    text = "block b {\n    init conv = zeros\n    conv(4, 1)\n}\n\nnetwork n {\n    input 3x8x8\n    b\n}\n"
    with pytest.raises(NetlangError, match="init belongs in a network"):
        netlang.loads(text, filename="init.net")


# ---------------------------------------------------------------------------- the draws

BIG = "input 256x4x4\nc: conv(512, 3, pad=1)\nflatten\nfc: linear(64)"    # 1.2 M and 0.5 M weights
FAN_IN, FAN_OUT = 256 * 9, 512 * 9


def std_of(t):
    return t.detach().double().std().item()


@pytest.mark.parametrize("scheme,std", [
    ("normal(0, 0.02)", 0.02),
    ("kaiming_normal", math.sqrt(2 / FAN_IN)),
    ("kaiming_normal(mode=\"fan_out\", nonlinearity=\"relu\")", math.sqrt(2 / FAN_OUT)),
    ("kaiming_normal(nonlinearity=\"linear\")", math.sqrt(1 / FAN_IN)),
    ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT))),
    ("xavier_normal(gain=3)", 3 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
])
def test_normal_schemes_draw_their_standard_deviation(scheme, std):
    m = model_of(f"init conv = {scheme}\n{BIG}")
    assert std_of(m.c.weight) == pytest.approx(std, rel=0.01)
    assert abs(m.c.weight.detach().double().mean().item()) < 5 * std / math.sqrt(m.c.weight.numel())


@pytest.mark.parametrize("scheme,bound", [
    ("uniform(-0.3, 0.3)", 0.3),
    ("kaiming_uniform", math.sqrt(6 / FAN_IN)),
    ("kaiming_uniform(mode=\"fan_out\", nonlinearity=\"sigmoid\")", math.sqrt(3 / FAN_OUT)),
    ("xavier_uniform", math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("fan_uniform", 1 / math.sqrt(FAN_IN)),
    ("fan_uniform(mode=\"fan_out\")", 1 / math.sqrt(FAN_OUT)),
    ("default", 1 / math.sqrt(FAN_IN)),          # PyTorch's own: kaiming_uniform(a=sqrt(5))
])
def test_uniform_schemes_fill_their_interval(scheme, bound):
    m = model_of(f"init conv = {scheme}\n{BIG}")
    w = m.c.weight.detach().double()
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.999 * bound                    # 1.2 M draws reach the edge
    assert std_of(w) == pytest.approx(bound / math.sqrt(3), rel=0.01)


def test_trunc_normal_stays_inside_its_absolute_bounds():
    m = model_of(f"init conv = trunc_normal(std=0.1, a=-0.1, b=0.15)\n{BIG}")
    w = m.c.weight.detach()
    assert w.min().item() >= -0.1 - 1e-7 and w.max().item() <= 0.15 + 1e-7       # (float32 rounding)
    assert w.min().item() < -0.099 and w.max().item() > 0.149


def test_biases_and_constants():
    m = model_of(f"init linear.bias = constant(0.25), conv.bias = default, linear = ones\n{BIG}")
    assert torch.all(m.fc.bias == 0.25) and torch.all(m.fc.weight == 1)
    b = m.c.bias.detach()
    bound = 1 / math.sqrt(FAN_IN)                 # PyTorch's own bias: U(+-1/sqrt(the weight's fan_in))
    assert b.abs().max().item() <= bound and b.abs().max().item() > 0.98 * bound      # 512 draws


def test_layernorm_rules_reach_layer_norms_of_maps_and_vectors():
    m = model_of("init layernorm = constant(2), layernorm.bias = constant(-1)\ninput 8x4x4\n"
                 "a: layernorm\nglobal_avgpool\nflatten\nb: layernorm")
    for ln in (m.a, m.b):
        assert torch.all(ln.weight == 2) and torch.all(ln.bias == -1)


def test_later_rules_win_and_name_rules_reach_only_weighted_layers_under_their_prefix():
    m = model_of("""
    init conv = constant(1), head = constant(2), head.bias = constant(3)
    init conv = constant(4), "head.c" = constant(5)
    input 8x4x4
    c: conv(8, 1)
    head: (c: conv(8, 1) -> bn: batchnorm -> d: conv(8, 1))""")
    assert torch.all(m.c.weight == 4)                       # the second conv rule replaces the first
    assert torch.all(m.head.c.weight == 5) and torch.all(m.head.d.weight == 4)
    assert torch.all(m.head.c.bias == 3) and torch.all(m.head.d.bias == 3)
    assert torch.all(m.head.bn.weight == 1) and torch.all(m.head.bn.bias == 0)   # no batchnorm under "head"


def test_the_generated_file_applies_the_rules(tmp_path):
    src = tmp_path / "n.net"
    src.write_text("network n {\n    init conv = normal(0, 0.05), linear = trunc_normal(std=0.01, a=-0.01, b=0.01)\n"
                   "    input 16x8x8\n    c: conv(64, 3)\n    flatten\n    fc: linear(100)\n}\n")
    out = tmp_path / "n.py"
    subprocess.run([sys.executable, "-m", "netlang", "compile", str(src), "-o", str(out)], check=True,
                   capture_output=True)
    assert "init_weights(self, [('conv', 'weight', 'normal', {'mean': 0, 'std': 0.05})" in out.read_text()
    ns: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), ns)
    torch.manual_seed(3)
    m = ns["N"]()
    assert std_of(m.c.weight) == pytest.approx(0.05, rel=0.03)         # 9,216 draws
    assert m.fc.weight.abs().max().item() <= 0.01


def test_the_reference_example():
    path = ROOT / "tests" / "data" / "doc_examples" / "init.net"
    rules = netlang.load(path).graph.graph["init"]
    assert [r[:3] for r in rules] == [("linear", "weight", "normal"), ("linear", "bias", "zeros"),
                                      ("conv", "weight", "trunc_normal"), ("features.0", "weight", "kaiming_uniform")]
    torch.manual_seed(0)
    m = netlang.compile(path, quiet_head=True)
    assert m.head.fc.weight.abs().max().item() < 0.004 and torch.all(m.head.fc.bias == 0)
    assert m.features[2].weight.abs().max().item() > 0.2         # std 0.1 (kaiming_uniform: bound 0.47 at 0)


# ---------------------------------------------------------------------------- torchvision's

def zoo(file: str, network: str, **kw):
    torch.manual_seed(0)
    return netlang.compile(ARCH / file, network=network, **kw)


def test_inception_v3_takes_truncated_normals_with_the_auxiliary_classifiers_own():
    m = zoo("inception_v3.net", "inception_v3")
    assert std_of(m.fc.weight) == pytest.approx(0.1, rel=0.01)
    assert std_of(m.AuxLogits.fc.weight) == pytest.approx(0.001, rel=0.01)
    assert std_of(m.Mixed_7c.branch3x3dbl_1.conv.weight) == pytest.approx(0.1, rel=0.01)
    # the same rules without the auxiliary classifier
    assert std_of(zoo("inception_v3.net", "inception_v3_no_aux").fc.weight) == pytest.approx(0.1, rel=0.01)


def test_googlenet_torchvision_takes_truncated_normals_and_the_paper_variant_keeps_the_default():
    tv = zoo("googlenet.net", "googlenet_torchvision")
    assert std_of(tv.fc.weight) == pytest.approx(0.01, rel=0.01)
    assert std_of(tv.inception4a.branch2[1].conv.weight) == pytest.approx(0.01, rel=0.02)
    paper = zoo("googlenet.net", "googlenet")
    conv = paper.inception4a.branch2[1].conv.weight
    fan_out = conv.shape[0] * 9
    assert std_of(conv) == pytest.approx(math.sqrt(2 / fan_out), rel=0.02)


def test_mobile_networks_take_their_classifiers_init():
    m2 = zoo("mobilenet.net", "mobilenet_v2")
    assert std_of(m2.classifier[1].weight) == pytest.approx(0.01, rel=0.01)
    assert torch.all(m2.classifier[1].bias == 0)
    v3 = zoo("mobilenet.net", "mobilenet_v3_small")
    assert std_of(v3.classifier[0].weight) == pytest.approx(0.01, rel=0.01)
    assert torch.all(v3.features[1].block[1].fc1.bias == 0)            # the conv default: zero bias
    eff = zoo("efficientnet.net", "efficientnet_b0")
    w = eff.classifier[1].weight.detach()
    assert w.abs().max().item() <= 1000 ** -0.5 and std_of(w) == pytest.approx(1000 ** -0.5 / math.sqrt(3), rel=0.01)
    mnas = zoo("mnasnet.net", "mnasnet1_0")
    w = mnas.classifier[1].weight.detach()
    # kaiming_uniform(fan_out, sigmoid): gain 1, bound sqrt(3 / 1000)
    assert w.abs().max().item() <= math.sqrt(3 / 1000) and std_of(w) == pytest.approx(math.sqrt(1 / 1000), rel=0.01)


def test_squeezenet_vgg_densenet_alexnet_take_torchvisions_init():
    sq = zoo("squeezenet.net", "squeezenet1_1")
    assert std_of(sq.classifier[1].weight) == pytest.approx(0.01, rel=0.03)
    w = sq.features[3].expand3x3.weight                  # kaiming_uniform: bound sqrt(6 / fan_in)
    assert w.abs().max().item() <= math.sqrt(6 / (16 * 9))
    assert std_of(w) == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.02)
    assert torch.all(sq.features[3].expand3x3.bias == 0)
    vgg = zoo("vgg.net", "vgg11")
    assert std_of(vgg.classifier[0].weight) == pytest.approx(0.01, rel=0.01) and torch.all(vgg.classifier[0].bias == 0)
    dn = zoo("densenet.net", "densenet121")
    w = dn.features.denseblock1.denselayer1.conv2.weight       # kaiming_normal, fan_in 128 * 9
    assert std_of(w) == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)
    assert torch.all(dn.classifier.bias == 0)
    alex = zoo("alexnet.net", "alexnet")
    w, b = alex.features[3].weight, alex.features[3].bias      # PyTorch's own: U(+-1/sqrt(64 * 25))
    assert w.abs().max().item() <= (64 * 25) ** -0.5 < 1.01 * w.abs().max().item()
    assert b.abs().max().item() <= (64 * 25) ** -0.5 and b.abs().max().item() > 0


def test_convnext_takes_truncated_normals_with_zero_biases():
    m = zoo("convnext.net", "convnext_tiny", input=(3, 32, 32))
    block = m.features[1][0].block
    for layer in (block[0], block[3], block[5]):               # depthwise conv, the two linears
        assert std_of(layer.weight) == pytest.approx(0.02, rel=0.05)    # (truncated at +-2: 100 sigma)
        assert torch.all(layer.bias == 0)


# ---------------------------------------------------------------------------- norms and blocks

BLOCK_RULES = """
block unit(c) {
    conv1: conv(c, 1) -> bn1: batchnorm -> relu -> conv2: conv(c, 1) -> bn2: batchnorm
    scale: layer_scale(0.5)
}

network n {
    init unit.bn2 = zeros, unit.bn2.bias = constant(0.25), unit.scale = constant(3)
    init "s.1.bn1" = constant(2)
    input 4x4x4
    a: unit(4)
    s: unit(4) * 2
    head: (bn: batchnorm -> c: conv(4, 1))
}
"""


def test_a_block_path_reaches_that_layer_in_every_call_and_a_name_reaches_a_batchnorm():
    net = netlang.loads(BLOCK_RULES, filename="init.net")
    assert [r[0] for r in net.graph.graph["init"]] == [
        "a.bn2", "s.0.bn2", "s.1.bn2", "a.bn2", "s.0.bn2", "s.1.bn2", "a.scale", "s.0.scale", "s.1.scale", "s.1.bn1"]
    torch.manual_seed(0)
    m = _lower(net)
    for u in (m.a, m.s[0], m.s[1]):
        assert torch.all(u.bn2.weight == 0) and torch.all(u.bn2.bias == 0.25)
        assert torch.all(u.scale == 3)
    assert torch.all(m.s[1].bn1.weight == 2) and torch.all(m.s[0].bn1.weight == 1)
    assert torch.all(m.a.bn1.weight == 1) and torch.all(m.a.bn1.bias == 0)


def test_a_block_rule_needs_a_call_of_the_block():
    with pytest.raises(NetlangError, match="block unit is never called") as e:
        netlang.loads(BLOCK_RULES.replace("a: unit(4)\n    s: unit(4) * 2\n", ""), filename="init.net")
    assert (e.value.loc.line, e.value.loc.col) == (8, 10)


def test_seresnet_takes_timms_zero_init_last():
    m = zoo("seresnet.net", "seresnet50", input=(3, 32, 32))
    bn3 = [mod.bn3 for stage in (m.layer1, m.layer2, m.layer3, m.layer4) for mod in stage]
    assert len(bn3) == 16 and all(torch.all(b.weight == 0) and torch.all(b.bias == 0) for b in bn3)
    block = m.layer2[1]
    assert torch.all(block.bn1.weight == 1) and torch.all(block.bn2.weight == 1)
    assert torch.all(m.layer2[0].downsample[1].weight == 1)
    w = block.conv2.weight                                   # Kaiming-normal, fan_out 128 * 9, relu gain
    assert std_of(w) == pytest.approx(math.sqrt(2 / (128 * 9)), rel=0.02)
    assert m.fc.weight.abs().max().item() <= 2048 ** -0.5     # the linear layer: PyTorch's own
    # every block starts as its shortcut: with the residual branch zero, a block's output is relu(shortcut)
    m.eval()
    x = torch.randn(1, 256, 8, 8)
    assert torch.equal(m.layer1[1](x), torch.relu(x))
