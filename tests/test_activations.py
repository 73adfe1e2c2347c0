"""The activations (hardswish, hardsigmoid, silu, gelu, leaky_relu, elu, prelu, mish, softplus,
log_softmax) through every layer of the tool, each against PyTorch's own function and module:
the reference interpreter, the torch lowering (modules for labelled layers, calls for unlabelled
ones; in memory and as the standalone file), the fused pipeline, the Triton kernels (through the
interpreter without a GPU, on tiny shapes), the names and state_dict keys PyTorch's Sequential
gives, and the hint for a name the language lacks.

Tolerances: float64 against torch's float64 to 1e-12 of the largest output (the reference writes
each formula by hand, torch has its own kernels); the Triton kernels in fp32 to 1e-5 of it (exp,
log and erf in another order than torch's), 1e-4 after a convolution (its sum's order).
"""
from __future__ import annotations

import runpy

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import netlang  # noqa: E402
from netlang.backends.pytorch import lower  # noqa: E402
from netlang.backends.reference import run  # noqa: E402
from netlang.backends.torchgen import generate  # noqa: E402
from netlang.ir import state_entries, verify  # noqa: E402
from netlang.passes import run_pipeline  # noqa: E402

# (netlang spelling, torch function, torch module): each with its arguments spelt both ways
CASES = [
    ("hardswish", F.hardswish, nn.Hardswish()),
    ("hardsigmoid", F.hardsigmoid, nn.Hardsigmoid()),
    ("silu", F.silu, nn.SiLU()),
    ("gelu", F.gelu, nn.GELU()),
    ('gelu(approximate="tanh")', lambda x: F.gelu(x, approximate="tanh"), nn.GELU(approximate="tanh")),
    ("leaky_relu", F.leaky_relu, nn.LeakyReLU()),
    ("leaky_relu(0.2)", lambda x: F.leaky_relu(x, 0.2), nn.LeakyReLU(0.2)),
    ("leaky_relu(slope=-0.5)", lambda x: F.leaky_relu(x, -0.5), nn.LeakyReLU(-0.5)),
    ("elu", F.elu, nn.ELU()),
    ("elu(alpha=0.5)", lambda x: F.elu(x, 0.5), nn.ELU(0.5)),
    ("mish", F.mish, nn.Mish()),
    ("softplus", F.softplus, nn.Softplus()),
    ("softplus(beta=2, threshold=1.5)", lambda x: F.softplus(x, 2, 1.5), nn.Softplus(2, 1.5)),
    ("softplus(beta=-1.0)", lambda x: F.softplus(x, -1.0), nn.Softplus(-1.0)),
    ("log_softmax", lambda x: F.log_softmax(x, 1), nn.LogSoftmax(dim=1)),
]
IDS = [c[0] for c in CASES]


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    pass


def inputs(dtype=torch.float64, seed=0):
    """A batch that crosses every kink: zero, both signs, +-3 (hardswish), the softplus thresholds,
    and values large enough for exp to matter."""
    x = torch.randn(2, 6, 5, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype) * 4
    x[0, 0, 0] = torch.tensor([0.0, -3.0, 3.0, 0.75, 1.5], dtype=dtype)
    x[0, 1, 0] = torch.tensor([-30.0, 30.0, 25.0, -0.75, 1e-3], dtype=dtype)
    return x


def close(got, want, rtol=1e-12):
    assert got.shape == want.shape
    scale = max(want.abs().max().item(), 1e-3)
    err = (got - want).abs().max().item()
    assert err <= rtol * scale, f"max |diff| {err:.3g} (outputs up to {scale:.3g})"


def program(body: str, shape: str = "6x5x5") -> str:
    return f"network t {{\n    input {shape}\n    {body}\n}}\n"


def network(body: str, shape: str = "6x5x5") -> netlang.Network:
    net = netlang.loads(program(body, shape))
    verify(net.graph)
    return net


# ---------------------------------------------------------------- the oracle and the lowering

@pytest.mark.parametrize("spelling,fn,module", CASES, ids=IDS)
def test_reference_interpreter_is_torchs_function(spelling, fn, module):
    x = inputs()
    (got,) = run(network(f"l: {spelling}").graph, {}, x)
    close(got, fn(x))


@pytest.mark.parametrize("spelling,fn,module", CASES, ids=IDS)
def test_labelled_layer_is_torchs_module_and_unlabelled_is_its_function(spelling, fn, module):
    x = inputs()
    labelled = lower(network(f"l: {spelling}"), init=False).double()
    assert type(labelled.l) is type(module) and repr(labelled.l).replace("inplace=True", "") == \
        repr(module).replace("inplace=True", "")
    close(labelled(x), module(x))
    # unlabelled after a conv: a call in forward, in place where PyTorch allows it
    net = network(f"c: conv(6, 1)\n    {spelling}")
    model = lower(net).double().eval()          # (init=False would leave the conv's weights uninitialised)
    with torch.no_grad():
        close(model(x), fn(model.c(x)))
    assert not [m for n, m in model.named_modules() if n and n != "c"], "an unlabelled activation is a call"


@pytest.mark.parametrize("spelling,fn,module", CASES, ids=IDS)
def test_the_standalone_file_computes_the_same(spelling, fn, module, tmp_path):
    net = network(f"c: conv(6, 1)\n    {spelling}\n    a: {spelling}")
    src = generate(net)
    path = tmp_path / "model.py"
    path.write_text(src.text)
    ns = runpy.run_path(str(path))
    model = eval(src.entry, ns).double().eval()
    x = inputs()
    with torch.no_grad():
        close(model(x), module(fn(model.c(x))))


def test_in_place_where_pytorch_allows_it_and_gradients_hold():
    net = network("c: conv(6, 1)\n    hardswish\n    silu\n    sigmoid\n    mish\n    leaky_relu(-0.5)\n"
                  "    elu\n    hardsigmoid")
    text = generate(net).text
    assert "F.hardswish(x, inplace=True)" in text and "F.silu(x, inplace=True)" in text
    assert "F.mish(x)" in text               # (after a sigmoid, which keeps its output for backward)
    assert "F.leaky_relu(x, -0.5)" in text and "F.elu(x)" in text    # never in place
    model = lower(net).double().train()         # (initialised: init=False leaves the weights as they come)
    x = inputs().requires_grad_(True)
    model(x).square().sum().backward()
    got = x.grad.clone()
    x.grad = None
    v = F.conv2d(x, model.c.weight, model.c.bias)
    v = F.hardsigmoid(F.elu(F.leaky_relu(F.mish(torch.sigmoid(F.silu(F.hardswish(v)))), -0.5)))
    v.square().sum().backward()
    close(got, x.grad, rtol=1e-10)
    # the cost model counts the same in-place layers: no activation memory for hardswish and silu
    acts = {layer.name: layer.act_elems for layer in net.cost.layers}
    assert acts["1"] == acts["2"] == 0 and acts["3"] == acts["5"] == 6 * 25


def test_silu_costs_less_than_its_stand_in():
    # the complaint: mul { identity ; sigmoid } overstates element-wise work and memory
    silu = network("c: conv(6, 1)\n    silu").cost.totals()
    stand_in = network("c: conv(6, 1)\n    mul { identity\n          sigmoid }").cost.totals()
    assert silu["ew_ops"] - 6 * 25 == stand_in["ew_ops"] - 2 * 6 * 25
    assert silu["act_elems"] < stand_in["act_elems"]


# ---------------------------------------------------------------- prelu: the one with state

@pytest.mark.parametrize("per_channel", [False, True])
def test_prelu_is_nn_prelu(per_channel):
    net = network(f"l: prelu(per_channel={'true' if per_channel else 'false'}, init=0.1)")
    assert state_entries(net.graph) == [("l.weight", (6 if per_channel else 1,), False)]
    assert net.cost.totals()["params"] == (6 if per_channel else 1)
    model = lower(net).double()
    ref = nn.PReLU(6 if per_channel else 1, init=0.1).double()
    assert repr(model.l) == repr(ref) and torch.equal(model.l.weight, ref.weight)
    w = torch.linspace(-0.5, 1.5, 6 if per_channel else 1, dtype=torch.float64)
    model.load_state_dict({"l.weight": w}, strict=True)
    x = inputs()
    close(model(x), F.prelu(x, w))
    (got,) = run(net.graph, {"l.weight": w}, x)
    close(got, F.prelu(x, w))


def test_unlabelled_prelu_is_a_numbered_module_and_a_vector_prelu_has_one_slope_per_feature():
    model = lower(network("conv(6, 1)\n    prelu\n    flatten\n    linear(4)\n    prelu(per_channel=true)"))
    assert isinstance(getattr(model, "1"), nn.PReLU) and getattr(model, "1").weight.shape == (1,)
    assert getattr(model, "4").weight.shape == (4,)


def test_torchvision_style_numbering_and_keys_are_pytorchs_sequential():
    # torchvision's Conv2dNormActivation(..., activation_layer=nn.Hardswish) in a features Sequential
    net = network("features: conv(8, 3, stride=2, pad=1, bias=false) -> batchnorm -> hardswish\n"
                  "        -> conv(8, 1) -> prelu(per_channel=true) -> conv(8, 1) -> prelu -> silu\n"
                  "    classifier: global_avgpool -> flatten -> linear(4) -> hardswish -> linear(3)")
    seq = nn.Sequential(nn.Conv2d(6, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.Hardswish(inplace=True),
                        nn.Conv2d(8, 8, 1), nn.PReLU(8), nn.Conv2d(8, 8, 1), nn.PReLU(), nn.SiLU(inplace=True))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4), nn.Hardswish(), nn.Linear(4, 3))
    reference = nn.Sequential()
    reference.add_module("features", seq)
    reference.add_module("classifier", head)
    model = lower(net)
    want = [(k, tuple(v.shape)) for k, v in reference.state_dict().items()]
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == want
    assert [(k, s) for k, s, _ in state_entries(net.graph)] == want
    assert isinstance(model.features[2], nn.Hardswish) and isinstance(model.features[4], nn.PReLU)
    assert "features.4.weight" in dict(want) and "features.6.weight" in dict(want)
    torch.manual_seed(0)
    for p in reference.parameters():
        p.data.uniform_(-0.5, 0.5)
    model.load_state_dict(reference.state_dict(), strict=True)
    x = inputs(torch.float32)
    reference.eval(), model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- fusion

FUSED_BODY = ("c: conv(8, 3, pad=1, bias=false)\n    bn: batchnorm\n    hardswish\n"
              "    d: conv(8, 1)\n    p: prelu(per_channel=true)\n    e: conv(8, 1)\n    softplus(beta=2)\n"
              "    f: conv(8, 1)\n    gelu(approximate=\"tanh\")\n    g: conv(8, 1)\n    log_softmax")


def test_conv_bn_hardswish_is_one_epilogue_and_prelu_log_softmax_stay_apart():
    from netlang.summary import fusion_kind
    net = network(FUSED_BODY)
    H = run_pipeline(net.graph, ["fuse"], check=True)
    assert [s["op"] for s in H.nodes["c"]["epilogue"]] == ["batchnorm", "hardswish"]
    assert H.nodes["c"]["fused_from"] == ("c", "bn", "2") and fusion_kind(H.nodes["c"]) == "conv+bn+hardswish"
    assert [(s["op"], s["args"]) for s in H.nodes["e"]["epilogue"]] == [("softplus", {"beta": 2.0, "threshold": 20.0})]
    assert [(s["op"], s["args"]) for s in H.nodes["f"]["epilogue"]] == [("gelu", {"approximate": "tanh"})]
    assert H.nodes["p"]["op"] == "prelu" and "epilogue" not in H.nodes["d"]       # prelu has state
    assert H.nodes["10"]["op"] == "log_softmax" and "epilogue" not in H.nodes["g"]    # not element-wise
    # the fused graph's reference run and the fused module both equal the unfused reference
    import lowering_check
    assert lowering_check.check_fused(program(FUSED_BODY), "t") is None
    assert "F.hardswish(" in generate(net, fuse=True).text


# ---------------------------------------------------------------- Triton, through the interpreter

def _nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("spelling,fn,module", [c for c in CASES if c[0] != "log_softmax"],
                         ids=[i for i in IDS if i != "log_softmax"])
def test_triton_step_is_torchs_function(spelling, fn, module):
    pytest.importorskip("triton")
    from netlang.backends.triton.pointwise import pointwise
    net = network(f"l: {spelling}")
    args = net.graph.nodes["l"]["args"]
    op = net.graph.nodes["l"]["op"]
    x = inputs(torch.float32)
    got = pointwise(_nhwc(x), steps=[{"op": op, "args": args}])
    close(got, _nhwc(fn(x)), rtol=1e-5)


def test_triton_prelu_and_log_softmax_kernels():
    pytest.importorskip("triton")
    from netlang.backends.triton.pointwise import pointwise, softmax_channels
    x = inputs(torch.float32)
    for w in (torch.tensor([0.3]), torch.linspace(-1, 1, 6)):
        close(pointwise(_nhwc(x), prelu=w), _nhwc(F.prelu(x, w)), rtol=1e-6)
    close(softmax_channels(_nhwc(x), log=True), _nhwc(F.log_softmax(x, 1)), rtol=1e-5)
    wide = inputs(torch.float32).reshape(2, 150, 1, 1).repeat(1, 30, 1, 1)     # 4500 channels: the looped form
    close(softmax_channels(_nhwc(wide), log=True), _nhwc(F.log_softmax(wide, 1)), rtol=1e-5)


def test_triton_network_end_to_end_without_fallback():
    pytest.importorskip("triton")
    import lowering_check
    from netlang.backends.triton.codegen import generate as triton_generate
    net = network(FUSED_BODY)
    rows = {r.node: r for r in triton_generate(net).plan}
    assert "epilogue: hardswish" in rows["c"].detail and "epilogue: softplus" in rows["e"].detail
    assert rows["p"].detail == "pointwise prelu" and rows["10"].detail == "log_softmax over channels"
    assert not [r for r in rows.values() if r.route == "fallback"]
    assert lowering_check.check_triton(program(FUSED_BODY), "t") is None


def test_the_comparison_can_fail():
    # gelu's two forms differ by more than every tolerance above, in each backend
    x = inputs()
    exact, approx = F.gelu(x), F.gelu(x, approximate="tanh")
    (ref,) = run(network("l: gelu").graph, {}, x)
    (ref_tanh,) = run(network('l: gelu(approximate="tanh")').graph, {}, x)
    with pytest.raises(AssertionError):
        close(ref, approx, rtol=1e-5)
    with pytest.raises(AssertionError):
        close(ref_tanh, exact, rtol=1e-5)
    pytest.importorskip("triton")
    from netlang.backends.triton.pointwise import pointwise
    got = pointwise(_nhwc(x.float()), steps=[{"op": "gelu", "args": {"approximate": "tanh"}}])
    with pytest.raises(AssertionError):
        close(got, _nhwc(exact.float()), rtol=1e-5)
    # and a softplus whose threshold is ignored would be caught
    got = pointwise(_nhwc(x.float()), steps=[{"op": "softplus", "args": {"beta": 2.0, "threshold": 1.5}}])
    with pytest.raises(AssertionError):
        close(got, _nhwc(F.softplus(x.float(), 2.0)), rtol=1e-5)


# ---------------------------------------------------------------- the hint for a name the language lacks

@pytest.mark.parametrize("name,hint", [
    ("swish", "'swish' is silu in netlang; the activations are relu, relu6, tanh, sigmoid, hardswish"),
    ("gelu2", "did you mean 'gelu'? the activations are relu, relu6"),
    ("selu", "did you mean 'elu'? the activations are"),
    ("hard_swish", "'hard_swish' is hardswish in netlang"),
    ("gelu_new", "'gelu_new' is gelu(approximate=\"tanh\") in netlang"),
])
def test_an_unknown_activation_lists_the_activations(name, hint):
    for body in (f"conv(4, 1) -> {name}", f"x: {name}(2)", f"seq: conv(4, 1) -> {name}"):
        with pytest.raises(netlang.NetlangError) as info:
            network(body)
        err = info.value
        assert err.kind == "name error" and f"unknown name '{name}'" in str(err)
        assert err.hint.startswith(hint), err.hint
        assert "log_softmax" in err.hint and "did you mean 'relu'?" not in err.hint


def test_other_unknown_names_keep_their_hints():
    for body, hint in (("batchnrom", "did you mean 'batchnorm'?"), ("conv2d(4, 1)", "did you mean 'conv'?"),
                       ("conv(chanels, 1)", "did you mean 'channels'?")):
        with pytest.raises(netlang.NetlangError) as info:
            netlang.loads(f"network t(channels=4) {{\n    input 3x8x8\n    {body}\n}}\n")
        assert info.value.hint == hint
    with pytest.raises(netlang.NetlangError) as info:     # a value, not a layer: no list
        network("let a = swish")
    assert info.value.hint is None or "activations" not in info.value.hint
