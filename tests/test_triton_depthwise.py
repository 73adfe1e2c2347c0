"""The Triton backend's depthwise convolution kernel against F.conv2d(groups=C), on fresh random
inputs, through Triton's interpreter without a GPU (see test_triton_conv.py); the same tests run
on CUDA where one is present.

Tolerance: fp32 accumulation of at most 49 products against F.conv2d in fp32: 1e-5 of the
largest output. fp16 storage: the inputs are rounded to fp16 for the reference too, so what is
left is the output's rounding, 2^-11 of its magnitude: 2e-3 of the largest output."""
from __future__ import annotations

import inspect

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")     # (without a GPU, conftest.py has set TRITON_INTERPRET=1)
import torch.nn.functional as F  # noqa: E402

from netlang.backends.triton import common  # noqa: E402
from netlang.backends.triton.conv import conv_launch  # noqa: E402
from netlang.backends.triton.depthwise import (KERNELS, depthwise_conv2d, depthwise_launch,  # noqa: E402
                                       is_depthwise, pack_weight_dw)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = 1e-5


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def close(got_nhwc, want_nchw, rtol=RTOL):
    want = nhwc(want_nchw).float()
    scale = max(want.abs().max().item(), 1e-3)
    err = (got_nhwc.float() - want).abs().max().item()
    assert err <= rtol * scale, f"max |triton - torch| = {err:.3g} (outputs up to {scale:.3g})"


def case(n, c, h, w, mult, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    wt = torch.randn(c * mult, 1, k, k, generator=g) / k
    b = torch.randn(c * mult, generator=g)
    return x, wt, b


def run(x, wt, b, k, stride=1, pad=0, dilation=1, **kw):
    return depthwise_conv2d(nhwc(x).to(DEVICE), pack_weight_dw(wt).to(DEVICE), None if b is None else b.to(DEVICE),
                            kernel=(k, k), stride=(stride, stride), padding=(pad, pad),
                            dilation=(dilation, dilation), **kw)


DWS = [
    # n, c, h, w, multiplier, k, stride, pad, dilation
    (2, 8, 7, 6, 1, 3, 1, 1, 1),       # MobileNet's 3x3/1
    (1, 12, 9, 9, 1, 3, 2, 1, 1),      # ... and 3x3/2
    (1, 6, 8, 9, 1, 5, 1, 2, 1),       # EfficientNet's 5x5
    (1, 5, 9, 8, 1, 5, 2, 2, 1),
    (1, 4, 9, 9, 1, 7, 1, 3, 1),       # ConvNeXt's 7x7
    (1, 6, 7, 7, 1, 3, 1, 2, 2),       # dilation 2 (DeepLab)
    (1, 5, 6, 7, 2, 3, 1, 1, 1),       # multiplier 2
    (1, 3, 9, 9, 2, 5, 2, 0, 1),       # multiplier 2, no padding, stride 2
    (1, 40, 5, 5, 2, 3, 1, 1, 1),      # 80 output channels: two channel blocks, the second partial
]


@pytest.mark.parametrize("n,c,h,w,mult,k,stride,pad,dilation", DWS)
def test_depthwise_matches_torch(n, c, h, w, mult, k, stride, pad, dilation):
    x, wt, b = case(n, c, h, w, mult, k, seed=c * k + mult)
    want = F.conv2d(x, wt, b, stride, pad, dilation, groups=c)
    close(run(x, wt, b, k, stride, pad, dilation).cpu(), want)


def test_without_bias():
    x, wt, _ = case(1, 6, 6, 6, 1, 3, seed=4)
    close(run(x, wt, None, 3, pad=1).cpu(), F.conv2d(x, wt, None, 1, 1, groups=6))


@pytest.mark.parametrize("act", [None, "relu", "relu6"])
def test_prologue_affine_activation_and_zero_padding(act):
    # pre-activation: bn -> act -> conv, the padding of the *activated* map (zero, not act(shift))
    x, wt, b = case(1, 6, 7, 7, 2, 3, seed=5)
    s, t = torch.rand(6) + 0.5, torch.randn(6) + 2.0           # shifts > 0: a padded zero would differ
    z = x * s[:, None, None] + t[:, None, None]
    z = {None: z, "relu": F.relu(z), "relu6": F.relu6(z)}[act]
    want = F.conv2d(z, wt, b, 1, 1, groups=6)
    got = run(x, wt, b, 3, pad=1, prologue=(s.to(DEVICE), t.to(DEVICE), act))
    close(got.cpu(), want)


def test_epilogue_residual_then_relu():
    # MobileNetV2-like: bias, scale, residual add, relu in the kernel's slots
    x, wt, b = case(2, 8, 6, 6, 1, 3, seed=6)
    res = torch.randn(2, 8, 6, 6) * 2
    want = F.relu(F.conv2d(x, wt, b, 1, 1, groups=8) * 0.5 + res)
    steps = [{"op": "scale", "args": {"s": 0.5}}, {"op": "add", "inputs": (1,)}, {"op": "relu"}]
    got = run(x, wt, b, 3, pad=1, steps=steps, residual=nhwc(res).to(DEVICE))
    close(got.cpu(), want)


def test_reads_and_writes_channel_slices():
    # input: channels 2..9 of a 16-wide buffer; output: channels 5..20 of a 24-wide concat buffer,
    # residual: channels 1..16 of a 20-wide one
    x, wt, b = case(1, 8, 6, 7, 2, 3, seed=7)
    xin = torch.randn(1, 6, 7, 16)
    xin[..., 2:10] = nhwc(x)
    rbuf = torch.randn(1, 6, 7, 20)
    buf = torch.full((1, 6, 7, 24), 7.0, device=DEVICE)
    depthwise_conv2d(xin.to(DEVICE)[..., 2:10], pack_weight_dw(wt).to(DEVICE), b.to(DEVICE), kernel=(3, 3),
                     padding=(1, 1), steps=[{"op": "add", "inputs": (1,)}, {"op": "relu"}],
                     residual=rbuf.to(DEVICE)[..., 1:17], out=buf[..., 5:21])
    want = F.relu(F.conv2d(x, wt, b, 1, 1, groups=8) + rbuf[..., 1:17].permute(0, 3, 1, 2))
    close(buf[..., 5:21].cpu(), want)
    assert torch.all(buf[..., :5] == 7.0) and torch.all(buf[..., 21:] == 7.0)     # nothing else written


def test_fp16_storage():
    x, wt, b = case(2, 16, 6, 6, 1, 5, seed=8)
    x16, w16, b16 = x.half(), wt.half(), b.half()
    want = F.conv2d(x16.float(), w16.float(), b16.float(), 1, 2, groups=16)
    got = depthwise_conv2d(nhwc(x16).to(DEVICE), pack_weight_dw(w16).to(DEVICE), b16.to(DEVICE), kernel=(5, 5),
                           padding=(2, 2), steps=[{"op": "relu"}])
    assert got.dtype == torch.float16
    close(got.cpu(), F.relu(want), rtol=2e-3)


def test_the_comparison_fails_on_a_wrong_kernel():
    # the check can fail: channels' weights swapped give another answer
    x, wt, b = case(1, 8, 6, 6, 1, 3, seed=9)
    want = F.conv2d(x, wt, b, 1, 1, groups=8)
    got = run(x, wt.flip(0), b, 3, pad=1)
    with pytest.raises(AssertionError):
        close(got.cpu(), want)


def test_launch_has_conv_launch_interface():
    # a planner calls either with the same keywords, and binds the same tensor roles
    # (conv's extra keywords are for what only it does: a band of channels and a second destination for
    # merged siblings, a pooled epilogue)
    extra = set(inspect.signature(conv_launch).parameters) - set(inspect.signature(depthwise_launch).parameters)
    assert set(inspect.signature(depthwise_launch).parameters) <= set(inspect.signature(conv_launch).parameters)
    assert extra == {"step_channels", "pool", "second"}
    kw = dict(cin=32, cout=64, hw=(14, 14), ohw=(7, 7), kernel=(3, 3), stride=(2, 2), padding=(1, 1), groups=32,
              steps=[{"op": "relu", "args": {}}, {"op": "add", "inputs": (2,), "args": {}},
                     {"op": "relu", "args": {}}, {"op": "sigmoid", "args": {}}, {"op": "tanh", "args": {}}])
    dw, c = depthwise_launch(**kw), conv_launch(**kw)
    assert dw[1:] == c[1:] and dw[1] == 2 and [s["op"] for s in dw[2]] == ["tanh"]
    assert set(dw[0].args) <= set(c[0].args) and dw[0].roles <= c[0].roles      # (conv alone has "y2")
    assert dw[0].grid == ((49, 64), 1) and dw[0].consts["MULT"] == 2
    assert "cdiv(N * 49, 64)" in dw[0].source({r: r for r in dw[0].roles})
    assert is_depthwise(32, 64, 32) and not is_depthwise(32, 64, 1) and not is_depthwise(32, 32, 8)
    with pytest.raises(AssertionError):
        depthwise_launch(**dict(kw, groups=8))


def test_kernel_is_self_contained():
    # the code generator copies the kernel's source: it may name only triton, tl and common's jit helpers
    for k in KERNELS:
        assert inspect.getsource(k.fn).lstrip().startswith("@triton.jit")
        names = inspect.getclosurevars(k.fn)
        helpers = {name for name, v in vars(common).items() if isinstance(v, type(k))}
        assert set(names.globals) - {"tl", "triton"} <= helpers, set(names.globals)
        assert not names.nonlocals
