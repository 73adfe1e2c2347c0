"""split(n) { ... } and channel_shuffle(groups) against independent computations: torch.chunk and
torchvision's channel_shuffle formula (view, transpose, flatten), on random weights, through the
reference interpreter, the PyTorch module and its fused form; plus their naming, cost, state and
errors. The Triton backend's kernel is in tests/test_triton_resample.py."""
from __future__ import annotations

import pytest

import netlang
from netlang.errors import NetlangShapeError, NetlangValueError
from netlang.ir import inputs_of, state_entries, verify
from netlang.passes import run_pipeline

torch = pytest.importorskip("torch")
from netlang.backends.pytorch import lower  # noqa: E402
from netlang.backends.reference import evaluate, random_state, run  # noqa: E402
F = torch.nn.functional

UNIT = """
block unit(c) {
    split(2) {
        identity
        branch2: conv(c // 2, 1, bias=false) -> batchnorm -> relu
            -> conv(c // 2, 3, pad=1, groups=c // 2, bias=false) -> batchnorm
            -> conv(c // 2, 1, bias=false) -> batchnorm -> relu
    }
    channel_shuffle(2)
}
network n {
    input 8x6x5
    stem: conv(12, 3, pad=1)
    s1: unit(12)
    s2: unit(12)
}
"""


def shuffle_formula(x, g):
    """torchvision.models.shufflenetv2.channel_shuffle, written out."""
    b, c, h, w = x.shape
    return x.view(b, g, c // g, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


def by_hand(x, state, prefix):
    """One stride-1 unit: x.chunk, the right branch with F.conv2d/F.batch_norm, cat, shuffle."""
    F = torch.nn.functional
    x1, x2 = x.chunk(2, dim=1)
    y = x2
    for i, (conv, bn, relu) in enumerate(((0, 1, True), (3, 4, False), (5, 6, True))):
        w = state[f"{prefix}.branch2.{conv}.weight"]
        y = F.conv2d(y, w, padding=w.shape[-1] // 2, groups=y.shape[1] // w.shape[1])
        p = f"{prefix}.branch2.{bn}"
        y = F.batch_norm(y, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                         state[f"{p}.bias"], False, 0.0, 1e-5)
        y = F.relu(y) if relu else y
    return shuffle_formula(torch.cat([x1, y], 1), 2)


def test_the_unit_is_chunk_branch_cat_shuffle_in_every_lowering():
    net = netlang.loads(UNIT)
    verify(net.graph)
    state = random_state(net.graph, seed=3)
    x = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(1))
    stem = torch.nn.functional.conv2d(x, state["stem.weight"], state["stem.bias"], padding=1)
    want = by_hand(by_hand(stem, state, "s1"), state, "s2")
    (ref,) = run(net.graph, state, x)
    torch.testing.assert_close(ref, want, rtol=1e-5, atol=1e-5)
    model = lower(net, init=False).eval()
    model.load_state_dict(state, strict=True)
    fused = lower(netlang.loads(UNIT), init=False, fuse=True).eval()
    fused.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fused(x), want, rtol=1e-5, atol=1e-5)
    # the check can fail: without the shuffle (or with the halves swapped) the result differs
    assert not torch.allclose(torch.cat(list(want.chunk(2, 1))[::-1], 1), want, atol=1e-3)


def test_the_generated_source_reads_like_torchvision():
    src = type(lower(netlang.loads(UNIT), init=False)).netlang_source
    assert "part1, part2 = x.chunk(2, 1)" in src
    assert "torch.cat([part1, part2], 1)" in src and "channel_shuffle(x, 2)" in src
    # a labelled shuffle is a module without state
    net = netlang.loads("network n {\n    input 8x4x4\n    mix: channel_shuffle(4)\n}\n")
    m = lower(net, init=False)
    assert type(m.mix).__name__ == "ChannelShuffle" and not m.state_dict()
    x = torch.randn(2, 8, 4, 4)
    torch.testing.assert_close(m(x), shuffle_formula(x, 4), rtol=0, atol=0)


@pytest.mark.parametrize("c,g", [(8, 2), (12, 3), (6, 6), (5, 1)])
def test_the_generated_shuffle_is_torchs_and_trains_and_compiles(c, g):
    # the file's own channel_shuffle (torch 2.3's aten op had no derivative and no meta kernel)
    # against F.channel_shuffle, on a non-contiguous input too, with a gradient and no graph break
    net = netlang.loads(f"network n {{\n    input {c}x3x5\n    mix: channel_shuffle({g}) -> channel_shuffle({g})\n}}\n")
    m = lower(net, init=False)
    x = torch.randn(2, c, 5, 3).transpose(2, 3).requires_grad_(True)
    torch.testing.assert_close(m(x), F.channel_shuffle(F.channel_shuffle(x.detach(), g), g), rtol=0, atol=0)
    m(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    torch._dynamo.reset()
    out = torch.compile(m, backend="eager", fullgraph=True, dynamic=True)(x.detach())
    torch.testing.assert_close(out, m(x.detach()), rtol=0, atol=0)


@pytest.mark.parametrize("c,g", [(8, 2), (12, 3), (12, 4), (6, 6), (5, 1)])
def test_reference_shuffle_is_torchvisions_formula(c, g):
    x = torch.randn(3, c, 4, 2)
    got = evaluate("channel_shuffle", {"groups": g}, [x], {})
    assert torch.equal(got, shuffle_formula(x, g))
    # output channel j * g + i is input channel i * C/g + j
    for i in range(g):
        for j in range(c // g):
            assert torch.equal(got[:, j * g + i], x[:, i * (c // g) + j])


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_split_parts_are_torch_chunks(n):
    branches = "\n".join(f"               p{i}: scale({i + 2})" for i in range(n))
    net = netlang.loads(f"network n {{\n    input 12x3x3\n    split({n}) {{\n{branches.lstrip()} }}\n}}\n")
    verify(net.graph)
    G = net.graph
    x = torch.randn(2, 12, 3, 3)
    (got,) = run(G, {}, x)
    want = torch.cat([t * (i + 2) for i, t in enumerate(x.chunk(n, 1))], 1)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for i in range(n):
        part = G.nodes[f"0:part{i}"]
        assert part["op"] == "slice" and part["args"] == {"start": i * 12 // n, "stop": (i + 1) * 12 // n}
        assert inputs_of(G, f"p{i}") == [f"0:part{i}"]
    with torch.no_grad():
        torch.testing.assert_close(lower(net, init=False)(x), want, rtol=0, atol=0)


def test_split_costs_nothing_and_holds_no_state():
    net = netlang.loads(UNIT)
    rows = {layer.name: layer for layer in net.cost.layers}
    for name in ("s1.0:part0", "s1.0:part1"):
        assert rows[name].macs == rows[name].params == rows[name].ew_ops == rows[name].act_elems == 0
    shuffle = rows["s1.3"]
    assert shuffle.macs == shuffle.ew_ops == shuffle.params == 0 and shuffle.act_elems == 12 * 6 * 5
    assert not any(k.startswith(("s1.0", "s1.3", "s1.1")) for k, _, _ in state_entries(net.graph))
    # branch2's first conv reads 6 channels, not 12
    assert dict((k, s) for k, s, _ in state_entries(net.graph))["s1.branch2.0.weight"] == (6, 6, 1, 1)


def test_fusion_keeps_the_split_correct():
    net = netlang.loads(UNIT)
    H = run_pipeline(net.graph, ["fuse"], check=True)
    # the identity is dropped: the concat reads the first part's view directly and copies it
    assert inputs_of(H, "s1.0")[0] == "s1.0:part0" and "placement" not in H.nodes["s1.0:part0"]
    state = random_state(net.graph, seed=5)
    x = torch.randn(2, 8, 6, 5)
    torch.testing.assert_close(run(H, state, x)[0], run(net.graph, state, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text,cls,message", [
    ("conv(30, 1)\n    split(4) { identity\n identity\n identity\n identity }", NetlangShapeError,
     "split(4): 30 channels are not divisible into 4 equal parts"),
    ("split(2) { identity\n identity\n identity }", NetlangValueError,
     "split(2) has 3 branches, it needs one per part"),
    ("split(2) { identity }", NetlangValueError, "split(2) has 1 branch, it needs one per part"),
    ("conv(30, 1) -> channel_shuffle(4)", NetlangShapeError,
     "channel_shuffle(4): 30 channels are not divisible by groups=4"),
    ("flatten\n    split(2) { identity\n identity }", NetlangShapeError, "split needs a CxHxW feature map"),
    ("flatten -> channel_shuffle(2)", NetlangShapeError, "channel_shuffle needs a CxHxW feature map"),
    ("a: conv(8, 1)\n    split(2) { identity\n @a }", NetlangValueError, "split(2): branch 2 does not read its part"),
    ("split(2) { identity\n maxpool(2) }", NetlangShapeError, "split(2): branch 1 gives 4x8x8 but branch 2 gives"),
])
def test_errors_are_located_and_state_the_form(text, cls, message):
    src = f"network n {{\n    input 8x8x8\n    {text}\n}}\n"
    with pytest.raises(cls) as info:
        netlang.loads(src, filename="e.net")
    assert message in info.value.message
    assert info.value.loc is not None and info.value.loc.file == "e.net"
    assert "^" in info.value.format()


def test_diagrams_and_summaries_name_the_parts_and_the_shuffle():
    from netlang import render
    net = netlang.loads(UNIT)
    dot = render.to_dot(net, depth=None)
    for label in ("<b>channels 0:6</b>", "<b>channels 6:12</b>", "<b>channel_shuffle 2</b>", 'label="concat"'):
        assert label in dot, label
    assert '"n:s1.0:part1" -> "n:s1.branch2.0"' in dot
    table = net.summary()
    assert "channels 6:12" in table and "channel_shuffle 2" in table


@pytest.mark.parametrize("groups", [1, 6])
def test_a_shuffle_that_keeps_the_order_is_still_a_new_tensor(groups):
    # with 1 group, or as many as channels, unflatten-transpose-flatten is a view of its input; the
    # writer counts a shuffle's output as fresh and writes the next activation in place, which
    # overwrote the input (a wrong eval output, or autograd's "a view of a leaf ... in-place")
    import lowering_check
    text = ("network n {\n    input 6x5x5\n    conv(6, 1) -> add {\n        identity\n"
            f"        channel_shuffle({groups}) -> hardswish\n    }}\n    channel_shuffle({groups}) -> relu\n}}\n")
    assert lowering_check.check(text, seed=1) is None
    assert lowering_check.check_fused(text, "n") is None


def test_layers_and_blocks_named_like_the_files_helpers_keep_their_names():
    # a label `channel_shuffle:` once shadowed the file's channel_shuffle helper ('Tensor' object
    # is not callable), and a block named LayerNorm2d would have replaced that helper class
    import lowering_check
    text = ("block LayerNorm2d(c) {\n    conv(c, 1) -> layernorm\n}\n"
            "network n {\n    input 4x6x6\n    channel_shuffle: relu -> channel_shuffle(2)\n"
            "    ChannelShuffle: LayerNorm2d(4) -> Linear2d: linear(4, pointwise=true) -> channel_shuffle(2)\n}\n")
    assert lowering_check.check(text, seed=2) is None
