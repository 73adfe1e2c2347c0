"""The Triton backend's resampling kernels (backends/triton/resample.py) against torch, on fresh
random inputs, through Triton's interpreter without a GPU (see test_triton_conv.py): transposed
convolution, nearest and bilinear upsampling, adaptive and global average pooling, the window
copy, the channel shuffle. Tolerances are resample.py's: the transposed convolution to 1e-4 of its largest output
(fp16 storage: 1e-3); bilinear upsampling and the averages to 1e-6 of the largest input value;
nearest upsampling, the window copy and the channel shuffle exactly."""
from __future__ import annotations

import ast
import inspect

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")     # (without a GPU, conftest.py has set TRITON_INTERPRET=1)
import torch.nn.functional as F  # noqa: E402

from netlang.backends.triton import common, resample  # noqa: E402
from netlang.backends.triton.resample import (adaptive_avgpool2d, center_crop, channel_shuffle,  # noqa: E402
                                      conv_t_blocks, conv_transpose2d, conv_transpose_launch, copy_window,
                                      global_avgpool, pack_weight_t, upsample2d)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def nhwc(t, dtype=None):
    """NCHW -> a fresh NHWC tensor with the canonical strides (a permuted .contiguous() keeps odd
    strides on size-1 dimensions, which row_stride cannot read)."""
    n, c, h, w = t.shape
    return torch.empty((n, h, w, c), device=DEVICE, dtype=dtype or t.dtype).copy_(t.permute(0, 2, 3, 1))


def nchw(t):
    return t.cpu().float().permute(0, 3, 1, 2)


def close(got_nhwc, want_nchw, rtol=1e-4, scale=None):
    """|got - want| <= rtol * scale, scale by default the largest |want|."""
    got = nchw(got_nhwc)
    assert got.shape == want_nchw.shape, f"shape {tuple(got.shape)}, torch gives {tuple(want_nchw.shape)}"
    scale = max(want_nchw.abs().max().item() if scale is None else scale, 1e-3)
    err = (got - want_nchw).abs().max().item()
    assert err <= rtol * scale, f"max |triton - torch| = {err:.3g} (scale {scale:.3g})"


def gen(seed):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ transposed convolution

def pair(v):
    return v if isinstance(v, tuple) else (v, v)


def conv_t_case(n, cin, h, w, cout, k, groups=1, seed=0):
    g = gen(seed)
    k = pair(k)
    x = torch.randn(n, cin, h, w, generator=g)
    wt = torch.randn(cin, cout // groups, *k, generator=g) / (cin // groups * k[0] * k[1]) ** 0.5
    b = torch.randn(cout, generator=g)
    return x, wt, b


CONV_TS = [
    # n, cin, h, w, cout, kernel, stride, pad, output_pad, dilation, groups
    (1, 3, 4, 5, 5, 4, 2, 1, 0, 1, 1),             # 4/2 pad 1, odd sizes
    (2, 5, 3, 3, 7, 4, 2, 0, 0, 1, 1),             # FCN's upscore2 / upscore_pool4: 4/2
    (2, 4, 3, 5, 6, 2, 2, 0, 0, 1, 1),             # U-Net's up-convolution: 2/2
    (1, 3, 2, 2, 4, 16, 8, 0, 0, 1, 1),            # FCN-8s' upscore8: 16/8
    (1, 2, 2, 1, 3, 32, 16, 0, 0, 1, 1),           # FCN-16s' upscore16: 32/16
    (1, 2, 1, 1, 3, 64, 32, 0, 0, 1, 1),           # FCN-32s' upscore: 64/32
    (1, 6, 5, 4, 5, 3, 1, 1, 0, 1, 1),             # DeconvNet's deconvK_J: 3/1 pad 1
    (2, 6, 1, 1, 5, 7, 1, 0, 0, 1, 1),             # DeconvNet's fc6_deconv: 7x7 on a 1x1 map
    (1, 3, 3, 4, 4, 3, 2, 1, 1, 1, 1),             # output_padding
    (1, 3, 4, 3, 4, (3, 4), (2, 3), (1, 0), (1, 2), 1, 1),
    (1, 3, 4, 4, 2, 3, 3, 1, 2, 2, 1),             # dilation 2, stride 3
    (1, 3, 4, 4, 2, 3, 2, 0, 1, 2, 1),             # dilation 2, stride 2: half the phases get no tap
    (1, 20, 3, 3, 6, 3, 2, 1, 1, 1, 2),            # groups; 10 input channels a group (K < 16)
    (1, 4, 3, 3, 4, 4, 2, 1, 0, 1, 4),             # depthwise
    (1, 40, 2, 3, 18, 2, 2, 0, 0, 1, 1),           # more than one K block (BLOCK_K 32)
]


def run_conv_t(x, wt, b, stride, pad, opad, dil, groups, **kw):
    return conv_transpose2d(nhwc(x), pack_weight_t(wt, groups).to(DEVICE), None if b is None else b.to(DEVICE),
                            stride=pair(stride), padding=pair(pad), output_padding=pair(opad), dilation=pair(dil),
                            groups=groups, **kw)


@pytest.mark.parametrize("n,cin,h,w,cout,k,stride,pad,opad,dil,groups", CONV_TS)
def test_conv_transpose_matches_torch(n, cin, h, w, cout, k, stride, pad, opad, dil, groups):
    x, wt, b = conv_t_case(n, cin, h, w, cout, k, groups, seed=h * w + cin)
    want = F.conv_transpose2d(x, wt, b, pair(stride), pair(pad), pair(opad), groups, pair(dil))
    close(run_conv_t(x, wt, b, stride, pad, opad, dil, groups), want)


def test_conv_transpose_without_bias_and_with_the_taps_looped_at_runtime():
    x, wt, _ = conv_t_case(2, 3, 3, 4, 5, 4, seed=1)
    want = F.conv_transpose2d(x, wt, None, 2, 1)
    close(run_conv_t(x, wt, None, 2, 1, 0, 1, 1, unroll=False), want)


def test_large_windows_loop_at_runtime_and_small_phases_unroll():
    # a phase of FCN-32s' 64x64/32 kernel has 2x2 taps: unrolled; a 9x9/1 kernel's 81 are looped
    big = conv_transpose_launch(cin=21, cout=21, hw=(16, 16), kernel=(64, 64), stride=(32, 32)).consts
    assert big["STATIC"] and (big["UH1"] - big["UH0"], big["UW1"] - big["UW0"]) == (2, 2)
    assert not conv_transpose_launch(cin=4, cout=4, hw=(8, 8), kernel=(9, 9)).consts["STATIC"]


def test_conv_transpose_reads_and_writes_channel_slices():
    x, wt, b = conv_t_case(2, 4, 3, 3, 5, 4, seed=2)
    src = torch.randn(2, 3, 3, 10, generator=gen(3)).to(DEVICE)
    src[..., 2:6] = nhwc(x)
    buf = torch.full((2, 6, 6, 12), 7.0, device=DEVICE)
    conv_transpose2d(src[..., 2:6], pack_weight_t(wt).to(DEVICE), b.to(DEVICE), stride=(2, 2), padding=(1, 1),
                     out=buf[..., 4:9])
    close(buf[..., 4:9], F.conv_transpose2d(x, wt, b, 2, 1))
    assert torch.all(buf[..., :4] == 7.0) and torch.all(buf[..., 9:] == 7.0)     # nothing else written


def test_conv_transpose_in_fp16():
    x, wt, b = conv_t_case(1, 6, 4, 4, 8, 4, seed=4)
    x, wt, b = x.half(), wt.half(), b.half()
    want = F.conv_transpose2d(x.float(), wt.float(), b.float(), 2, 1)
    got = conv_transpose2d(nhwc(x), pack_weight_t(wt).to(DEVICE), b.to(DEVICE), stride=(2, 2), padding=(1, 1))
    assert got.dtype == torch.float16
    close(got, want, rtol=1e-3)


def test_the_conv_transpose_comparison_fails_on_a_wrong_kernel():
    # the check can fail: the weight flipped in space (a convolution's orientation) differs
    x, wt, b = conv_t_case(1, 3, 4, 4, 4, 4, seed=5)
    want = F.conv_transpose2d(x, wt, b, 2, 1)
    with pytest.raises(AssertionError):
        close(run_conv_t(x, wt.flip(2, 3), b, 2, 1, 0, 1, 1), want)


def test_every_conv_transpose_block_is_at_least_what_tl_dot_needs():
    for m in (1, 4, 64, 1000):
        for cols in (1, 4, 16, 3072):
            for cin_g in (1, 10, 512):
                assert min(conv_t_blocks(m, cols, cin_g)) >= common.MIN_DOT


# ------------------------------------------------------------------ upsampling

UPSAMPLES = [
    # h, w, factor
    (5, 7, (2, 2)),
    (4, 3, (3, 2)),
    (5, 7, (1.5, 1.5)),
    (5, 4, (2.5, 1.7)),
    (5, 5, (1.1, 1.1)),      # the output as large as the input: PyTorch copies
    (3, 5, (2.2, 1.0)),      # nearest: twice the input takes dst // 2 (PyTorch's CPU kernel)
]


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("h,w,factor", UPSAMPLES)
def test_upsample_matches_torch(mode, h, w, factor):
    x = torch.randn(2, 20, h, w, generator=gen(h * w))
    kw = {"align_corners": False} if mode == "bilinear" else {}
    want = F.interpolate(x, scale_factor=factor, mode=mode, **kw)
    close(upsample2d(nhwc(x), factor, mode), want, rtol=0.0 if mode == "nearest" else 1e-6,
          scale=x.abs().max().item())


def test_upsample_reads_and_writes_channel_slices():
    x = torch.randn(1, 5, 3, 4, generator=gen(6))
    src = torch.randn(1, 3, 4, 9, generator=gen(7)).to(DEVICE)
    src[..., 1:6] = nhwc(x)
    buf = torch.full((1, 6, 8, 11), 7.0, device=DEVICE)
    upsample2d(src[..., 1:6], 2, "bilinear", out=buf[..., 3:8])
    close(buf[..., 3:8], F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False), rtol=1e-6,
          scale=x.abs().max().item())
    assert torch.all(buf[..., :3] == 7.0) and torch.all(buf[..., 8:] == 7.0)


def test_the_upsample_comparison_fails_on_the_wrong_mode():
    x = torch.randn(1, 4, 3, 3, generator=gen(8))
    with pytest.raises(AssertionError):
        close(upsample2d(nhwc(x), 2, "nearest"), F.interpolate(x, scale_factor=2, mode="bilinear"), rtol=1e-6)


# ------------------------------------------------------------------ adaptive and global average pooling

@pytest.mark.parametrize("h,w,out", [(7, 5, (1, 1)), (6, 6, (2, 3)), (5, 9, (3, 3)), (7, 7, (2, 2)), (5, 5, (7, 6)),
                                     (1, 1, (1, 1))])
def test_adaptive_avgpool_matches_torch(h, w, out):
    x = torch.randn(2, 20, h, w, generator=gen(h * w))
    close(adaptive_avgpool2d(nhwc(x), out), F.adaptive_avg_pool2d(x, out), rtol=1e-6, scale=x.abs().max().item())


@pytest.mark.parametrize("h,w", [(7, 7), (56, 56), (3, 5), (1, 1)])
def test_global_avgpool_matches_torch(h, w):
    x = torch.randn(2, 20, h, w, generator=gen(h * w))
    close(global_avgpool(nhwc(x)), x.mean((2, 3), keepdim=True), rtol=1e-6, scale=x.abs().max().item())


def test_pools_read_and_write_channel_slices():
    x = torch.randn(2, 6, 5, 7, generator=gen(9))
    src = torch.randn(2, 5, 7, 10, generator=gen(10)).to(DEVICE)
    src[..., 3:9] = nhwc(x)
    buf = torch.full((2, 1, 1, 16), 7.0, device=DEVICE)
    global_avgpool(src[..., 3:9], out=buf[..., 2:8])
    close(buf[..., 2:8], x.mean((2, 3), keepdim=True), rtol=1e-6, scale=x.abs().max().item())
    abuf = torch.full((2, 2, 3, 9), 7.0, device=DEVICE)
    adaptive_avgpool2d(src[..., 3:9], (2, 3), out=abuf[..., 1:7])
    close(abuf[..., 1:7], F.adaptive_avg_pool2d(x, (2, 3)), rtol=1e-6, scale=x.abs().max().item())
    assert torch.all(buf[..., :2] == 7.0) and torch.all(buf[..., 8:] == 7.0)
    assert torch.all(abuf[..., :1] == 7.0) and torch.all(abuf[..., 7:] == 7.0)


def test_the_pool_comparison_fails_on_a_wrong_window():
    x = torch.randn(1, 4, 6, 6, generator=gen(11))
    with pytest.raises(AssertionError):
        close(adaptive_avgpool2d(nhwc(x), (2, 2)), F.adaptive_avg_pool2d(x, (3, 3))[..., :2, :2], rtol=1e-6,
              scale=x.abs().max().item())


# ------------------------------------------------------------------ window copy

@pytest.mark.parametrize("h,w,th,tw", [(7, 9, 4, 5), (6, 6, 6, 6), (8, 5, 3, 1)])
def test_center_crop_matches_torch(h, w, th, tw):
    x = torch.randn(2, 20, h, w, generator=gen(h * w + th))
    top, left = (h - th) // 2, (w - tw) // 2
    close(center_crop(nhwc(x), th, tw), x[:, :, top:top + th, left:left + tw], rtol=0.0)


def test_copy_window_into_a_concat_slice_with_a_sliced_source():
    x = torch.randn(2, 5, 7, 6, generator=gen(12))
    src = torch.randn(2, 7, 6, 8, generator=gen(13)).to(DEVICE)
    src[..., 2:7] = nhwc(x)
    buf = torch.full((2, 4, 3, 12), 7.0, device=DEVICE)
    copy_window(src[..., 2:7], buf[..., 6:11], top=2, left=1)
    close(buf[..., 6:11], x[:, :, 2:6, 1:4], rtol=0.0)
    assert torch.all(buf[..., :6] == 7.0) and torch.all(buf[..., 11:] == 7.0)
    with pytest.raises(AssertionError):                        # a window that does not fit
        copy_window(src[..., 2:7], buf[..., 6:11], top=4, left=0)


def test_the_copy_comparison_fails_on_a_wrong_offset():
    x = torch.randn(1, 4, 6, 6, generator=gen(14))
    out = torch.empty((1, 3, 3, 4), device=DEVICE)
    with pytest.raises(AssertionError):
        close(copy_window(nhwc(x), out, top=1, left=2), x[:, :, 1:4, 1:4], rtol=0.0)


# ------------------------------------------------------------------ channel shuffle

def shuffle_formula(x, g):
    """torchvision.models.shufflenetv2.channel_shuffle, written out (NCHW)."""
    b, c, h, w = x.shape
    return x.view(b, g, c // g, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


@pytest.mark.parametrize("c,g,h,w", [(8, 2, 5, 3), (116, 2, 4, 4), (12, 3, 9, 8), (96, 4, 1, 1), (7, 1, 3, 2),
                                     (130, 5, 2, 3)])
def test_channel_shuffle_matches_torchvisions_formula(c, g, h, w):
    x = torch.randn(2, c, h, w, generator=gen(c * g + h))
    close(channel_shuffle(nhwc(x), g), shuffle_formula(x, g), rtol=0.0)


def test_channel_shuffle_reads_and_writes_channel_slices():
    x = torch.randn(2, 12, 5, 4, generator=gen(21))
    src = torch.randn(2, 5, 4, 20, generator=gen(22)).to(DEVICE)
    src[..., 3:15] = nhwc(x)
    buf = torch.full((2, 5, 4, 16), 7.0, device=DEVICE)
    channel_shuffle(src[..., 3:15], 3, out=buf[..., 4:16])
    close(buf[..., 4:16], shuffle_formula(x, 3), rtol=0.0)
    assert torch.all(buf[..., :4] == 7.0)


def test_the_shuffle_comparison_fails_on_the_wrong_groups():
    x = torch.randn(1, 12, 3, 3, generator=gen(23))
    with pytest.raises(AssertionError):
        close(channel_shuffle(nhwc(x), 3), shuffle_formula(x, 4), rtol=0.0)


# ------------------------------------------------------------------ the kernels as source text

def test_kernels_are_self_contained():
    # the generator copies each kernel's source into a standalone file: every global it names
    # must be triton, tl, or a jit helper that file also holds (listed earlier in KERNELS, or common's)
    helpers = {"output_pixels", "apply_step", "epilogue"}
    for i, kernel in enumerate(resample.KERNELS):
        assert isinstance(kernel, type(common.output_pixels)), f"KERNELS[{i}] is not a jit function"
        tree = ast.parse(inspect.getsource(kernel.fn))
        fn = tree.body[0]
        local = {a.arg for a in fn.args.args} | {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)
                                                 and isinstance(n.ctx, ast.Store)}
        used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        earlier = {k.fn.__name__ for k in resample.KERNELS[:i]}
        stray = used - local - earlier - helpers - {"tl", "triton", "range", "float", "int"}
        assert not stray, f"{kernel.fn.__name__} refers to {sorted(stray)}"


def test_launches_are_data_the_generator_can_write_out():
    # every scalar argument is an int, a float or "N", and the launch renders as a line of Python
    launches = [
        resample.conv_transpose_launch(cin=21, cout=21, hw=(16, 16), kernel=(64, 64), stride=(32, 32), bias=False),
        resample.upsample_launch(c=8, hw=(5, 7), factor=(1.5, 2), mode="bilinear", x_rs=16),
        resample.adaptive_launch(c=8, hw=(7, 7), out_hw=(3, 3), y_rs=24),
        resample.global_pool_launch(c=2048, hw=(7, 7)),
        resample.copy_launch(c=8, hw=(9, 9), ohw=(5, 5), top=2, left=2, y_rs=32),
        resample.shuffle_launch(c=116, hw=(7, 7), groups=2, x_rs=232),
    ]
    for launch in launches:
        assert all(a in launch.roles or a == "N" or type(a) in (int, float) for a in launch.args), launch.args
        assert all(type(v) in (int, float, bool) for v in launch.consts.values()), launch.consts
        line = launch.source({r: r for r in launch.roles})
        assert line.startswith(launch.kernel.__name__ + "[(") and "N" in line
        compile(line, "<launch>", "eval")
