"""The Triton backend's convolution kernel against torch, on fresh random inputs. Without a GPU it
runs through Triton's interpreter (TRITON_INTERPRET=1, which conftest.py sets before anything
imports triton), so the shapes are tiny; the same tests run on CUDA where one is present.

Tolerance: fp32 accumulation with input_precision="ieee" against F.conv2d in fp32, so outputs
agree to 1e-4 of their largest value (a sum of up to a few hundred products)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")     # (without a GPU, conftest.py has set TRITON_INTERPRET=1)
import torch.nn.functional as F  # noqa: E402

from netlang.backends.triton.conv import MIN_DOT, conv2d, launch_config, pack_weight  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = 1e-4


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def close(got_nhwc, want_nchw):
    want = nhwc(want_nchw)
    scale = max(want.abs().max().item(), 1e-3)
    err = (got_nhwc - want).abs().max().item()
    assert err <= RTOL * scale, f"max |triton - torch| = {err:.3g} (outputs up to {scale:.3g})"


def case(n, c, h, w, cout, k, stride=1, pad=0, dilation=1, groups=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    wt = torch.randn(cout, c // groups, *k, generator=g) / (c // groups * k[0] * k[1]) ** 0.5
    b = torch.randn(cout, generator=g)
    return x, wt, b


CONVS = [
    # n, c, h, w, cout, kernel, stride, pad, dilation, groups
    (1, 3, 5, 7, 8, (1, 1), 1, 0, 1, 1),
    (2, 5, 7, 6, 20, (3, 3), 1, 1, 1, 1),
    (1, 8, 9, 9, 16, (3, 3), 2, 1, 1, 1),
    (1, 4, 8, 8, 6, (5, 5), 1, 2, 1, 1),
    (1, 3, 9, 9, 4, (7, 7), 2, 3, 1, 1),
    (1, 6, 6, 9, 6, (1, 7), 1, (0, 3), 1, 1),
    (1, 6, 9, 6, 6, (7, 1), 1, (3, 0), 1, 1),
    (1, 4, 9, 9, 4, (3, 3), 1, 2, 2, 1),
    (1, 8, 6, 6, 8, (3, 3), 1, 1, 1, 2),
    (1, 16, 6, 6, 16, (3, 3), 2, 1, 1, 4),
    (1, 64, 5, 5, 64, (3, 3), 1, 1, 1, 32),        # ResNeXt: 32 groups of 2 channels
    (1, 8, 6, 6, 8, (3, 3), 1, 1, 1, 8),           # depthwise
]


@pytest.mark.parametrize("n,c,h,w,cout,k,stride,pad,dilation,groups", CONVS)
def test_conv_matches_torch(n, c, h, w, cout, k, stride, pad, dilation, groups):
    x, wt, b = case(n, c, h, w, cout, k, stride, pad, dilation, groups)
    pad2 = pad if isinstance(pad, tuple) else (pad, pad)
    want = F.conv2d(x, wt, b, stride, pad2, dilation, groups)
    got = conv2d(nhwc(x).to(DEVICE), pack_weight(wt, groups).to(DEVICE), b.to(DEVICE), kernel=k,
                 stride=(stride, stride), padding=pad2, dilation=(dilation, dilation), groups=groups)
    close(got.cpu(), want)


@pytest.mark.parametrize("act", ["relu", "relu6", "tanh", "sigmoid", "hardswish", "silu", "gelu", "mish"])
def test_epilogue_scale_residual_activation(act):
    # Inception-ResNet's order: bias, scale, residual add, activation
    x, wt, b = case(2, 6, 5, 5, 6, (3, 3), seed=1)
    res = torch.randn(2, 6, 5, 5) * 3
    z = F.conv2d(x, wt, b, 1, 1) * 0.17 + res
    want = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "hardswish": F.hardswish,
            "silu": F.silu, "gelu": F.gelu, "mish": F.mish}[act](z)
    steps = [{"op": "scale", "args": {"s": 0.17}}, {"op": "add", "inputs": (1,)}, {"op": act}]
    got = conv2d(nhwc(x).to(DEVICE), pack_weight(wt, 1).to(DEVICE), b.to(DEVICE), kernel=(3, 3), padding=(1, 1),
                 steps=steps, residual=nhwc(res).to(DEVICE))
    close(got.cpu(), want)


def test_writes_into_a_channel_slice_of_a_concat_buffer():
    x, wt, b = case(1, 4, 6, 6, 5, (1, 1), seed=2)
    buf = torch.full((1, 6, 6, 12), 7.0, device=DEVICE)
    conv2d(nhwc(x).to(DEVICE), pack_weight(wt, 1).to(DEVICE), b.to(DEVICE), kernel=(1, 1), out=buf[..., 3:8])
    close(buf[..., 3:8].cpu(), F.conv2d(x, wt, b))
    assert torch.all(buf[..., :3] == 7.0) and torch.all(buf[..., 8:] == 7.0)     # nothing else written


def test_every_block_is_at_least_what_tl_dot_needs():
    for m in (1, 7, 64, 1000):
        for cout_g in (1, 4, 16, 100):
            for cin_g in (1, 2, 4, 36, 512):
                assert min(launch_config(m, cout_g, cin_g)) >= MIN_DOT


def test_the_comparison_fails_on_a_wrong_kernel():
    # the check can fail: weights packed for the wrong group count give another answer
    x, wt, b = case(1, 8, 6, 6, 8, (3, 3), groups=2, seed=3)
    want = F.conv2d(x, wt, b, 1, 1, 1, 2)
    wrong = pack_weight(wt.flip(0), 2)
    got = conv2d(nhwc(x).to(DEVICE), wrong.to(DEVICE), b.to(DEVICE), kernel=(3, 3), padding=(1, 1), groups=2)
    with pytest.raises(AssertionError):
        close(got.cpu(), want)


@pytest.mark.parametrize("act", [None, "relu", "relu6"])
def test_prologue_applies_to_real_pixels_only(act):
    # pre-activation: bn -> act -> conv; the zero padding is of the activated map, so it stays zero
    x, wt, b = case(2, 5, 6, 7, 8, (3, 3), seed=4)
    scale, shift = torch.rand(5) + 0.5, torch.randn(5)
    pre = x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
    pre = {None: pre, "relu": F.relu(pre), "relu6": F.relu6(pre)}[act]
    want = F.conv2d(pre, wt, b, 1, 1)
    got = conv2d(nhwc(x).to(DEVICE), pack_weight(wt, 1).to(DEVICE), b.to(DEVICE), kernel=(3, 3), padding=(1, 1),
                 prologue=(scale.to(DEVICE), shift.to(DEVICE), act))
    close(got.cpu(), want)


def test_reads_and_writes_channel_slices_and_takes_a_residual_slice():
    # DenseNet reads the first channels of a block buffer; Inception writes its slice of a concat
    x, wt, b = case(1, 6, 5, 5, 4, (3, 3), seed=5)
    src = torch.randn(1, 5, 5, 10)
    src[..., 2:8] = nhwc(x)
    res = torch.randn(1, 5, 5, 9)
    out = torch.full((1, 5, 5, 12), 3.0)
    steps = [{"op": "add", "inputs": (1,)}, {"op": "relu"}]
    conv2d(src[..., 2:8].to(DEVICE), pack_weight(wt, 1).to(DEVICE), b.to(DEVICE), kernel=(3, 3), padding=(1, 1),
           steps=steps, residual=res[..., 5:9].to(DEVICE), out=out[..., 4:8])
    close(out[..., 4:8].cpu(), F.relu(F.conv2d(x, wt, b, 1, 1) + res[..., 5:9].permute(0, 3, 1, 2)))
    assert torch.all(out[..., :4] == 3.0) and torch.all(out[..., 8:] == 3.0)


def test_a_linear_layer_is_a_1x1_conv_on_a_1x1_map():
    g = torch.Generator().manual_seed(6)
    x, wt, b = torch.randn(3, 40, generator=g), torch.randn(24, 40, generator=g) / 6, torch.randn(24, generator=g)
    got = conv2d(x.reshape(3, 1, 1, 40).to(DEVICE), pack_weight(wt, 1).to(DEVICE), b.to(DEVICE), kernel=(1, 1))
    want = F.linear(x, wt, b)
    assert (got.reshape(3, 24).cpu() - want).abs().max() <= RTOL * want.abs().max()


def test_a_merged_siblings_part_goes_to_its_second_destination():
    # Inception's 1x1 branch, merged with the reducers, stores its channels straight into the concat
    from netlang.backends.triton.conv import conv_launch
    x, wt, b = case(1, 6, 5, 5, 10, (1, 1), seed=7)
    own, cat = torch.full((1, 5, 5, 10), 5.0), torch.full((1, 5, 5, 12), 9.0)
    launch, _, _ = conv_launch(cin=6, cout=10, hw=(5, 5), ohw=(5, 5), y_rs=10, second=(2, 6, 12))
    xd, od, cd = nhwc(x).to(DEVICE), own.to(DEVICE), cat.to(DEVICE)
    launch(1, x=xd, w=pack_weight(wt, 1).to(DEVICE), b=b.to(DEVICE), ps=xd, pt=xd, r=xd, y=od, y2=cd[..., 3:7])
    want = nhwc(F.conv2d(x, wt, b))
    od, cd = od.cpu(), cd.cpu()
    assert (cd[..., 3:7] - want[..., 2:6]).abs().max() <= RTOL * want.abs().max()
    assert torch.all(od[..., 2:6] == 5.0) and torch.all(cd[..., :3] == 9.0) and torch.all(cd[..., 7:] == 9.0)
    assert (od[..., :2] - want[..., :2]).abs().max() <= RTOL * want.abs().max()
    assert (od[..., 6:] - want[..., 6:]).abs().max() <= RTOL * want.abs().max()
