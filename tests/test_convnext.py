"""ConvNeXt's layers (issue 12, item 4): layernorm, linear at each pixel of a map, layer_scale.

Each is held against an independent PyTorch computation with random weights: torch's own
F.layer_norm and F.linear on the permuted (channels-last) tensor, as torchvision's CNBlock and
LayerNorm2d compute them. Then the torch lowering (modules, standalone file, strict load), a
hand-written CNBlock in torchvision's form, the fused pipeline, and the Triton kernels through
the interpreter.

Tolerances: float64 against torch's float64 to 1e-12 of the largest output (the reference writes
the formulas out; torch has its own kernels); the fused module in float64 to 1e-9; the Triton
kernels in fp32 to 1e-5 of the largest output (a sum of C values in another order), 1e-4 after a
convolution or a GEMM.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

import netlang  # noqa: E402
from netlang.backends.pytorch import lower  # noqa: E402
from netlang.backends.reference import random_state, run  # noqa: E402
from netlang.backends.torchgen import generate  # noqa: E402
from netlang.ir import state_entries, verify  # noqa: E402
from netlang.passes import run_pipeline  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import lowering_check  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

BLOCK = """
block cnblock(dim, p=0.0) {
    add {
        block: (conv(dim, 7, pad=3, groups=dim) -> identity -> layernorm
                -> linear(4 * dim, pointwise=true) -> gelu -> linear(dim, pointwise=true) -> identity)
            -> layer_scale: layer_scale(1e-6) -> stochastic_depth: drop_path(p)
        identity
    }
}
"""


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    pass


def program(body: str, shape: str = "6x5x5", blocks: str = "") -> str:
    return f"{blocks}\nnetwork t {{\n    input {shape}\n    {body}\n}}\n"


def network(body: str, shape: str = "6x5x5", blocks: str = "") -> netlang.Network:
    net = netlang.loads(program(body, shape, blocks))
    verify(net.graph)
    return net


def close(got, want, rtol=1e-12):
    assert got.shape == want.shape, (got.shape, want.shape)
    scale = max(want.abs().max().item(), 1e-3)
    err = (got - want).abs().max().item()
    assert err <= rtol * scale, f"max |diff| {err:.3g} (outputs up to {scale:.3g})"


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def channels_last(fn, x):
    """fn on the NHWC permute of an NCHW x, permuted back: torchvision's LayerNorm2d and CNBlock."""
    return fn(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


# ---------------------------------------------------------------- the ops and the reference

def test_layernorm_is_f_layer_norm_over_the_channels_of_each_pixel():
    net = network("n: layernorm")
    assert state_entries(net.graph) == [("n.weight", (6,), False), ("n.bias", (6,), False)]
    assert net.graph.nodes["n"]["args"] == {"eps": 1e-6}     # ConvNeXt's eps, not nn.LayerNorm's 1e-5
    assert net.cost.totals()["params"] == 12 and net.cost.totals()["ew_ops"] == 5 * 6 * 25
    x = randn(2, 6, 5, 5) * 3 + 1
    w, b = randn(6, seed=1), randn(6, seed=2)
    (got,) = run(net.graph, {"n.weight": w, "n.bias": b}, x)
    close(got, channels_last(lambda t: F.layer_norm(t, (6,), w, b, 1e-6), x))
    # each pixel's channels have mean b-free 0 and variance 1 before the affine
    (plain,) = run(net.graph, {"n.weight": torch.ones(6, dtype=x.dtype), "n.bias": torch.zeros(6, dtype=x.dtype)}, x)
    assert plain.mean(1).abs().max() < 1e-12 and (plain.var(1, unbiased=False) - 1).abs().max() < 1e-5


def test_layernorm_on_a_vector_is_nn_layernorm_and_eps_is_an_argument():
    net = network("flatten\n    n: layernorm(eps=0.5)")
    x = randn(3, 6, 5, 5).flatten(1) * 0.1          # small variance: eps matters
    w, b = randn(150, seed=1), randn(150, seed=2)
    (got,) = run(net.graph, {"n.weight": w, "n.bias": b}, x.view(3, 6, 5, 5))
    close(got, F.layer_norm(x, (150,), w, b, 0.5))
    with pytest.raises(AssertionError):           # the eps is used: 1e-6 would give another result
        close(got, F.layer_norm(x, (150,), w, b, 1e-6))


def test_linear_on_a_map_is_nn_linear_at_each_pixel():
    net = network("fc: linear(9, pointwise=true)")
    assert net.shape("fc") == (9, 5, 5)
    assert state_entries(net.graph) == [("fc.weight", (9, 6), False), ("fc.bias", (9,), False)]
    assert net.macs == 6 * 9 * 25 and net.cost.totals()["params"] == 6 * 9 + 9   # MACs per pixel x pixels
    x = randn(2, 6, 5, 5)
    w, b = randn(9, 6, seed=1), randn(9, seed=2)
    (got,) = run(net.graph, {"fc.weight": w, "fc.bias": b}, x)
    close(got, channels_last(lambda t: F.linear(t, w, b), x))
    # and on a vector it is still the fully connected layer; a map needs pointwise=true (a
    # forgotten flatten stays an error), a vector refuses it
    vec = network("flatten\n    fc: linear(9, bias=false)")
    assert vec.shape("fc") == (9,) and vec.macs == 150 * 9
    with pytest.raises(netlang.NetlangError, match="linear needs a flat input") as info:
        network("fc: linear(9)")
    assert info.value.hint.startswith("add flatten before it, or write linear(..., pointwise=true)")
    with pytest.raises(netlang.NetlangError, match="pointwise=true. needs a CxHxW map"):
        network("flatten\n    fc: linear(9, pointwise=true)")


def test_layer_scale_is_a_parameter_named_by_the_layer():
    net = network("c: conv(6, 1)\n    g: layer_scale(0.25)")
    assert state_entries(net.graph) == [("g", (6, 1, 1), False), ("c.weight", (6, 6, 1, 1), False),
                                        ("c.bias", (6,), False)]       # own parameters first, as PyTorch
    vec = network("flatten\n    g: layer_scale")
    assert state_entries(vec.graph) == [("g", (150,), False)] and vec.graph.nodes["g"]["args"] == {"init": 1e-6}
    x = randn(2, 6, 5, 5)
    g = randn(6, 1, 1, seed=3)
    state = {"g": g, "c.weight": randn(6, 6, 1, 1, seed=4), "c.bias": randn(6, seed=5)}
    (got,) = run(net.graph, state, x)
    close(got, F.conv2d(x, state["c.weight"], state["c.bias"]) * g)


def test_block_keys_are_torchvisions_cnblock():
    net = network("features: cnblock(8) -> cnblock(8, p=0.1)", "8x6x6", BLOCK)
    keys = [(k, s) for k, s, _ in state_entries(net.graph)]
    block = [("layer_scale", (8, 1, 1)), ("block.0.weight", (8, 1, 7, 7)), ("block.0.bias", (8,)),
             ("block.2.weight", (8,)), ("block.2.bias", (8,)), ("block.3.weight", (32, 8)), ("block.3.bias", (32,)),
             ("block.5.weight", (8, 32)), ("block.5.bias", (8,))]
    assert keys == [(f"features.{i}.{k}", s) for i in (0, 1) for k, s in block]
    assert net.graph.nodes["features.1.stochastic_depth"]["args"] == {"p": 0.1}


# ---------------------------------------------------------------- torch lowering

class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.permute(*self.dims)


class CNBlock(nn.Module):
    """torchvision's CNBlock, written out (tests run without torchvision)."""

    def __init__(self, dim):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute([0, 2, 3, 1]),
                                   nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, 4 * dim), nn.GELU(),
                                   nn.Linear(4 * dim, dim), Permute([0, 3, 1, 2]))
        self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

    def forward(self, x):
        return self.layer_scale * self.block(x) + x


def randomise(module, seed=0):
    g = gen(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5 + (0.5 if p.dim() == 3 else 0))
    return module


def test_block_loads_a_torchvision_style_checkpoint_and_computes_the_same():
    net = network("features: cnblock(8) -> cnblock(8)", "8x6x6", BLOCK)
    model = lower(net).double().eval()
    ref = nn.Sequential()
    ref.add_module("features", nn.Sequential(CNBlock(8), CNBlock(8)))
    ref = randomise(ref.double()).eval()
    assert list(model.state_dict()) == list(ref.state_dict())
    model.load_state_dict(ref.state_dict(), strict=True)
    blk = model.features[0]
    assert isinstance(blk.layer_scale, nn.Parameter) and torch.equal(blk.layer_scale, ref.features[0].layer_scale)
    assert type(blk.block[2]).__name__ == "LayerNorm2d" and isinstance(blk.block[2], nn.LayerNorm)
    assert type(blk.block[3]).__name__ == "Linear2d" and isinstance(blk.block[3], nn.Linear)
    assert blk.block[2].eps == 1e-6 and blk.block[3].weight.shape == (32, 8)
    x = randn(2, 8, 6, 6)
    with torch.no_grad():
        close(model(x), ref(x), rtol=1e-12)
        (want,) = run(net.graph, model.state_dict(), x)
        close(model(x), want, rtol=1e-12)
    # a fresh block starts as torchvision's: layer scale 1e-6, layer norm weight 1 and bias 0
    fresh = lower(net).features[0]
    assert torch.equal(fresh.layer_scale, torch.full((8, 1, 1), 1e-6))
    assert torch.equal(fresh.block[2].weight, torch.ones(8)) and torch.equal(fresh.block[2].bias, torch.zeros(8))


def test_unlabelled_layers_and_a_sequence_holding_a_layer_scale(tmp_path):
    net = network("conv(6, 1)\n    layernorm\n    linear(4, pointwise=true)\n    layer_scale(0.5)\n"
                  "    s: conv(4, 1) -> layer_scale -> relu\n    flatten\n    layernorm\n    linear(3)")
    model = lower(net, init=False).double()
    assert isinstance(getattr(model, "1"), nn.Module) and type(getattr(model, "1")).__name__ == "LayerNorm2d"
    assert type(getattr(model, "2")).__name__ == "Linear2d"
    scale = getattr(model, "3")
    assert isinstance(scale, nn.Parameter) and torch.equal(scale, torch.full((4, 1, 1), 0.5, dtype=torch.float64))
    # a parameter cannot sit in an nn.Sequential: the scope `s` is a module with a forward
    assert not isinstance(model.s, nn.Sequential) and isinstance(getattr(model.s, "1"), nn.Parameter)
    assert type(getattr(model, "6")) is nn.LayerNorm and type(getattr(model, "7")) is nn.Linear
    assert [k for k in model.state_dict()] == [k for k, _, _ in state_entries(net.graph)]
    state = random_state(net.graph, 3, torch.float64)
    model.load_state_dict(state, strict=True)
    x = randn(2, 6, 5, 5)
    with torch.no_grad():
        (want,) = run(net.graph, state, x)
        close(model(x), want)
    # the standalone file is the same module
    src = generate(net)
    assert "class LayerNorm2d(nn.LayerNorm):" in src.text and "class Linear2d(nn.Linear):" in src.text
    path = tmp_path / "model.py"
    path.write_text(src.text)
    ns = runpy.run_path(str(path))
    alone = eval(src.entry, ns).double().eval()
    alone.load_state_dict(state, strict=True)
    with torch.no_grad():
        close(alone(x), want)


def test_no_helper_class_where_no_layer_needs_one():
    text = generate(network("flatten\n    linear(4)\n    layernorm")).text
    assert "Linear2d" not in text and "LayerNorm2d" not in text and "nn.LayerNorm(4, eps=1e-06)" in text


def test_drop_path_in_the_block_drops_whole_samples_in_training():
    net = network("b: cnblock(4, p=0.5)", "4x5x5", BLOCK)
    model = randomise(lower(net).double()).train()
    x = randn(64, 4, 5, 5)
    torch.manual_seed(0)
    with torch.no_grad():
        branch = model(x) - x
        kept = model.b.layer_scale * model.b.block(x) * 2          # survivors scaled by 1 / (1 - p)
    dropped = [bool((branch[i] == 0).all()) for i in range(64)]
    assert 10 < sum(dropped) < 54                                 # each sample on its own
    for i in range(64):
        if not dropped[i]:
            close(branch[i], kept[i], rtol=1e-12)
    assert torch.equal(model.eval()(x), model(x))                 # the identity at inference


# ---------------------------------------------------------------- fusion

FUSED_BLOCKS = BLOCK + """
block bn_block(dim) {
    add {
        conv(dim, 3, pad=1, groups=dim) -> layernorm -> linear(2 * dim, pointwise=true) -> batchnorm -> silu
            -> linear(dim, bias=false, pointwise=true) -> layer_scale(0.5)
        identity
    }
}
"""


def test_fused_pipeline_puts_the_activation_into_the_pointwise_linear():
    text = program("features: cnblock(8) -> bn_block(8)\n    head: global_avgpool -> layernorm -> flatten -> linear(3)",
                   "8x6x6", FUSED_BLOCKS)
    net = netlang.loads(text)
    H = run_pipeline(net.graph, ["fuse"], check=True)
    assert [s["op"] for s in H.nodes["features.0.block.3"]["epilogue"]] == ["gelu"]
    assert [s["op"] for s in H.nodes["features.1.3"]["epilogue"]] == ["batchnorm", "silu"]
    assert H.nodes["features.0.layer_scale"]["op"] == "layer_scale"       # state of its own: a node
    assert lowering_check.check_fused(text, "t") is None
    assert lowering_check.check(text, "t") is None


# ---------------------------------------------------------------- Triton, through the interpreter

def _nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


@pytest.mark.parametrize("c,block", [(6, 4096), (96, 4096), (40, 16)], ids=["narrow", "convnext", "looped"])
def test_triton_layernorm_kernel_is_f_layer_norm(c, block):
    pytest.importorskip("triton")
    from netlang.backends.triton.pointwise import layernorm_channels
    x = randn(2, c, 5, 3, dtype=torch.float32) * 2 + 0.5
    w, b = randn(c, seed=1, dtype=torch.float32), randn(c, seed=2, dtype=torch.float32)
    want = _nhwc(channels_last(lambda t: F.layer_norm(t, (c,), w, b, 1e-6), x))
    close(layernorm_channels(_nhwc(x), w, b, 1e-6, block=block), want, rtol=1e-5)
    # in place, and on a channel slice of a wider buffer (a row stride of its own)
    buf = torch.zeros(2, 5, 3, c + 7)
    view = buf[..., 3:3 + c]
    view.copy_(_nhwc(x))
    layernorm_channels(view, w, b, 1e-6, out=view, block=block)
    close(view, want, rtol=1e-5)
    assert (buf[..., :3] == 0).all() and (buf[..., 3 + c:] == 0).all()
    # a vector (N, F) is a 1x1 map
    v = x.flatten(1)[:, :c].contiguous()
    close(layernorm_channels(v, w, b, 1e-6, block=block), F.layer_norm(v, (c,), w, b, 1e-6), rtol=1e-5)


def test_triton_network_end_to_end_without_fallback():
    pytest.importorskip("triton")
    from netlang.backends.triton.codegen import generate as triton_generate
    text = program("features: cnblock(8) -> bn_block(8)\n    head: global_avgpool -> layernorm -> flatten -> linear(3)",
                   "8x6x6", FUSED_BLOCKS)
    rows = {r.node: r for r in triton_generate(netlang.loads(text)).plan}
    assert not [r for r in rows.values() if r.route == "fallback"]
    assert rows["features.0.block.2"].detail == "layernorm over channels"
    assert rows["features.0.block.3"].detail == "linear 8->32 epilogue: gelu"
    assert rows["features.0.layer_scale"].detail == "pointwise layer_scale"
    assert lowering_check.check_triton(text, "t") is None


def test_the_comparisons_can_fail():
    # a layer norm over the wrong axis, a linear with its weight transposed, a layer scale ignored:
    # each is caught by the checks above
    x = randn(2, 6, 5, 5)
    w, b = randn(6, seed=1), randn(6, seed=2)
    (got,) = run(network("n: layernorm").graph, {"n.weight": w, "n.bias": b}, x)
    with pytest.raises(AssertionError):
        close(got, F.layer_norm(x, (5,), None, None, 1e-6) * w.view(1, 6, 1, 1) + b.view(1, 6, 1, 1))
    sq = randn(6, 6, seed=3)
    (lin,) = run(network("fc: linear(6, bias=false, pointwise=true)").graph, {"fc.weight": sq}, x)
    with pytest.raises(AssertionError):
        close(lin, channels_last(lambda t: F.linear(t, sq.t()), x))
    net = network("b: cnblock(6)", "6x5x5", BLOCK)
    state = random_state(net.graph, 1, torch.float64)
    (full,) = run(net.graph, state, x)
    (unit,) = run(net.graph, dict(state, **{"b.layer_scale": torch.ones(6, 1, 1, dtype=torch.float64)}), x)
    with pytest.raises(AssertionError):
        close(full, unit, rtol=1e-5)


def test_diagram_folds_the_norm_into_the_depthwise_conv_and_the_gelu_into_the_linear():
    net = netlang.load(ROOT / "architectures" / "convnext.net", network="convnext_tiny")
    dot = net.to_dot(depth=None)
    conv = next(ln for ln in dot.splitlines() if '"n:features.1.0.block.0"' in ln)
    assert "conv 7x7, 96, g=96" in conv and ">ln<" in conv          # through the permute's stand-in
    linear = next(ln for ln in dot.splitlines() if '"n:features.1.0.block.3"' in ln)
    assert "linear 384" in linear and ">gelu<" in linear
    assert '"n:features.1.0.layer_scale"' in dot


def test_state_order_is_pytorchs_where_a_scope_holds_only_a_layer_scale():
    # (found by fuzzing, seeds 64, 77, 129: a scope whose only state is its layer scale is
    # registered, and so saved, before the layers after it; an int init gave an int tensor, seed 149)
    net = network("s: relu -> layer_scale(2)\n    c: conv(6, 1)\n    t: (flatten -> layer_scale(-1)) -> linear(2)")
    keys = [k for k, _, _ in state_entries(net.graph)]
    assert keys == ["s.1", "c.weight", "c.bias", "t.1", "t.2.weight", "t.2.bias"]
    model = lower(net)
    assert list(model.state_dict()) == keys
    scale = getattr(model.s, "1")
    assert scale.dtype == torch.float32 and torch.equal(scale, torch.full((6, 1, 1), 2.0))
    assert torch.equal(getattr(model.t, "1"), -torch.ones(150))
