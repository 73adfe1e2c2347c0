"""The Triton backend's per-pixel kernels (element-wise steps, LRN, channel softmax) against torch,
through Triton's interpreter without a GPU (see test_triton_conv.py), so the shapes are tiny.

Tolerance: fp32 math against torch in fp32, 1e-5 of the largest output (tanh, sigmoid, LRN's
power and softmax go through exp/log); fp16 storage: 2e-3 of it (one rounding on store)."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")     # (without a GPU, conftest.py has set TRITON_INTERPRET=1)
import torch.nn.functional as F  # noqa: E402

from netlang.backends.triton.pointwise import lrn, pointwise, pointwise_launch, softmax_channels  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
RTOL = 1e-5
ACTS = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "hardswish": F.hardswish,
        "hardsigmoid": F.hardsigmoid, "silu": F.silu, "gelu": F.gelu, "leaky_relu": F.leaky_relu, "elu": F.elu,
        "mish": F.mish, "softplus": F.softplus}


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous()


def close(got_nhwc, want_nhwc, rtol=RTOL):
    got, want = got_nhwc.cpu().float(), want_nhwc.cpu().float()
    assert got.shape == want.shape, f"shape {tuple(got.shape)}, want {tuple(want.shape)}"
    scale = max(want.abs().max().item(), 1e-3)
    err = (got - want).abs().max().item()
    assert err <= rtol * scale, f"max |triton - torch| = {err:.3g} (outputs up to {scale:.3g})"


def rand(*shape, seed=0, s=4.0):
    return (torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * s).to(DEVICE)


def step(op, s=None):
    return {"op": op, "args": {} if s is None else {"s": s}}


def reference(v, steps):
    for st in steps:
        v = v * st["args"]["s"] if st["op"] == "scale" else ACTS[st["op"]](v)
    return v


@pytest.mark.parametrize("op", ["relu", "relu6", "tanh", "sigmoid", "scale", "hardswish", "hardsigmoid", "silu",
                                "gelu", "leaky_relu", "elu", "mish", "softplus"])
def test_each_step_alone(op):
    x = rand(2, 3, 5, 7, seed=1)                      # 30 pixels, 7 channels: partial tiles both ways
    steps = [step(op, -0.3 if op == "scale" else None)]
    close(pointwise(x, steps=steps), reference(x, steps))


def test_five_steps_in_order():
    x = rand(1, 3, 3, 20, seed=2)
    steps = [step("scale", 0.5), step("relu6"), step("scale", -2.0), step("tanh"), step("sigmoid")]
    close(pointwise(x, steps=steps), reference(x, steps))


def test_steps_apply_in_order():
    x = rand(1, 2, 2, 16, seed=3)
    a = pointwise(x, steps=[step("scale", -1.0), step("relu")])
    b = pointwise(x, steps=[step("relu"), step("scale", -1.0)])
    close(a, F.relu(-x))
    close(b, -F.relu(x))
    assert not torch.allclose(a, b)


def test_affine_then_relu_is_an_inference_batchnorm():
    # DenseNet's final norm5 -> relu: a batchnorm nothing was folded into
    x = rand(2, 20, 3, 3, seed=4)
    mean, var, gamma, beta = rand(20, seed=5), rand(20, seed=6).abs() + 0.1, rand(20, seed=7), rand(20, seed=8)
    want = F.relu(F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5))
    scale = gamma / torch.sqrt(var + 1e-5)
    got = pointwise(nhwc(x), affine=(scale, beta - mean * scale), steps=[step("relu")])
    close(got, nhwc(want))


@pytest.mark.parametrize("mul", [False, True])
def test_add_or_mul_of_two_maps_then_relu(mul):
    a, b = rand(2, 3, 4, 9, seed=9), rand(2, 3, 4, 9, seed=10)
    got = pointwise(a, residual=b, mul=mul, steps=[{"op": "add", "inputs": (1,)}, step("relu")])
    close(got, F.relu(a * b if mul else a + b))


def test_a_residual_without_an_add_step_comes_first():
    a, b = rand(1, 2, 3, 5, seed=11), rand(1, 2, 3, 5, seed=12)
    close(pointwise(a, residual=b, steps=[step("scale", 0.5), step("tanh")]), torch.tanh((a + b) * 0.5))


def test_steps_before_and_after_the_residual():
    a, b = rand(1, 2, 3, 5, seed=13), rand(1, 2, 3, 5, seed=14)
    steps = [step("scale", 0.17), {"op": "add", "inputs": (1,)}, step("relu")]      # Inception-ResNet's order
    close(pointwise(a, residual=b, steps=steps), F.relu(a * 0.17 + b))


@pytest.mark.parametrize("vector", [False, True])
def test_a_broadcast_gate_multiplies_each_sample_by_its_own_channels(vector):
    # squeeze-and-excitation: x * sigmoid(gate), the gate (N, 1, 1, C) or (N, C)
    x, g = rand(3, 4, 5, 70, seed=15), torch.sigmoid(rand(3, 1, 1, 70, seed=16))
    got = pointwise(x, residual=g[:, 0, 0] if vector else g, mul=True)
    close(got, x * g)


def test_mean_of_three_maps_is_a_chain_of_launches():
    maps = [rand(2, 3, 3, 6, seed=s) for s in (17, 18, 19)]
    out = torch.empty_like(maps[0])
    steps = [{"op": "add", "inputs": (1, 2), "args": {}}, step("scale", 1 / 3)]
    x, launches = maps[0], 0
    while steps:
        launch, res, steps = pointwise_launch(c=6, hw=(3, 3), x_rs=6, y_rs=6, r_rs=6, steps=steps)
        launch(2, x=x, s=x, t=x, r=maps[res], y=out)
        x, launches = out, launches + 1                # later launches run in place on the output
    assert launches == 2
    close(out, sum(maps) / 3)


def test_leftover_steps_are_refused_by_the_wrapper():
    x = rand(1, 1, 2, 4, seed=20)
    launch, res, rest = pointwise_launch(c=4, hw=(1, 2), x_rs=4, y_rs=4, steps=[step("relu")] * 6)
    assert res == -1 and len(rest) == 1
    assert "_pointwise_nhwc[(cdiv(N * 2, 64), 1,)](x, s, t, r, y, N, 1, 2" in launch.source(
        {k: k for k in "xstry"})
    with pytest.raises(AssertionError, match="cannot take"):
        pointwise(x, steps=[step("relu")] * 6)
    with pytest.raises(ValueError, match="not a step"):        # (no progress: a caller's loop would not end)
        pointwise_launch(c=4, hw=(1, 2), x_rs=4, y_rs=4, steps=[step("batchnorm")])


def test_in_place():
    x, r = rand(2, 3, 3, 10, seed=21), rand(2, 3, 3, 10, seed=22)
    want = F.relu6(x * 2.0 + r)
    got = pointwise(x, out=x, steps=[step("scale", 2.0), {"op": "add", "inputs": (1,)}, step("relu6")], residual=r)
    assert got is x
    close(x, want)


def test_channel_slices_in_and_out():
    src = rand(2, 3, 3, 30, seed=23)
    gate = rand(2, 1, 1, 40, seed=24)
    buf = torch.full((2, 3, 3, 25), 7.0, device=DEVICE)
    x, r = src[..., 4:21], src[..., 12:29]                 # 17 channels each, row stride 30
    pointwise(x, out=buf[..., 5:22], residual=r, steps=[{"op": "add", "inputs": (1,)}, step("sigmoid")])
    close(buf[..., 5:22], torch.sigmoid(x + r))
    assert torch.all(buf[..., :5] == 7.0) and torch.all(buf[..., 22:] == 7.0)     # nothing else written
    pointwise(x, out=buf[..., 5:22], residual=gate[..., 3:20], mul=True)          # a gate that is a slice too
    close(buf[..., 5:22], x * gate[..., 3:20])


def test_a_vector_is_a_one_pixel_map():
    v, r = rand(3, 100, seed=25), rand(3, 100, seed=26)
    close(pointwise(v, residual=r, steps=[step("relu")]), F.relu(v + r))


def test_fp16_storage():
    x, r = rand(2, 3, 3, 12, seed=27).half(), rand(2, 3, 3, 12, seed=28).half()
    got = pointwise(x, residual=r, steps=[{"op": "add", "inputs": (1,)}, step("tanh")])
    assert got.dtype == torch.float16
    close(got, torch.tanh(x.float() + r.float()), rtol=2e-3)


@pytest.mark.parametrize("size,alpha,beta,k", [(3, 0.3, 0.75, 1.0), (4, 0.5, 0.6, 2.0), (5, 1e-1, 0.75, 2.0)])
def test_lrn_matches_torch(size, alpha, beta, k):
    # 67 channels: odd, and two channel tiles, so windows cross a tile's edge
    x = rand(1, 67, 2, 3, seed=size, s=2.0)
    want = F.local_response_norm(x, size, alpha, beta, k)
    close(lrn(nhwc(x), size, alpha, beta, k), nhwc(want))


def test_lrn_into_a_slice_and_not_in_place():
    x = rand(1, 9, 2, 2, seed=29)
    buf = torch.zeros(1, 2, 2, 12, device=DEVICE)
    lrn(nhwc(x), 5, 1e-2, 0.75, 2.0, out=buf[..., 2:11])
    close(buf[..., 2:11], nhwc(F.local_response_norm(x, 5, 1e-2, 0.75, 2.0)))
    y = nhwc(x)
    with pytest.raises(AssertionError, match="not in place"):
        lrn(y, 5, out=y)


@pytest.mark.parametrize("n,c,h,w", [(2, 10, 3, 3), (1, 1000, 2, 3), (1, 5000, 1, 1)])
def test_softmax_over_channels(n, c, h, w):
    x = rand(n, c, h, w, seed=c)
    x[:, -1] += 30.0                                   # the row's max in its last chunk when it is looped
    close(softmax_channels(nhwc(x)), nhwc(torch.softmax(x, dim=1)))


def test_softmax_in_place_on_a_slice_of_a_vector():
    buf = rand(3, 40, seed=30) + 50.0                    # large values: the max must be subtracted
    want = torch.softmax(buf[:, 5:30], dim=1)
    softmax_channels(buf[:, 5:30], out=buf[:, 5:30])
    close(buf[:, 5:30], want)


def test_the_comparison_fails_on_a_wrong_kernel():
    # the check can fail: relu6 is not relu where values pass 6, and LRN's window size matters
    x = rand(1, 2, 2, 8, seed=31, s=10.0)
    with pytest.raises(AssertionError):
        close(pointwise(x, steps=[step("relu6")]), F.relu(x))
    y = rand(1, 7, 2, 2, seed=32)
    with pytest.raises(AssertionError):
        close(lrn(nhwc(y), 3, 0.5, 0.75, 1.0), nhwc(F.local_response_norm(y, 5, 0.5, 0.75, 1.0)))
