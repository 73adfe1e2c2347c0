"""Resampling on NHWC activations: transposed convolution, upsampling, adaptive and global
average pooling, and the window copy behind center_crop and concat inputs. Each computes what
PyTorch computes; inputs and outputs are common.py's views (a channel slice of a wider buffer
is fine: the row strides X_RS, Y_RS are `tl.constexpr`), every load and store is masked, pixel
offsets are int64 and sums are fp32, cast to the output's dtype on store.

Transposed convolution (F.conv_transpose2d), in gather form: output row oh takes weight tap kh
from input row (oh + PH - kh*DH) / SH where that division is exact and the row exists (the same
in w). Which taps those are depends only on the phase oh mod SH, so the output is cut into
blocks of SH x SW pixels: block row qh holds output rows qh*SH + rh, rh < SH, and its input rows
are qh + u, where a phase rh uses the offset u with the tap kh = (rh + PH - SH*u) / DH (exact,
0 <= kh < KH). A program computes a tile of block cells (n, qh, qw) by a tile of columns (rh,
rw, co) of one group: for each offset (uh, uw), the cells' input rows (one tile of x shared by
every column) times each column's own weight tap, a GEMM over the group's input channels with
tl.dot (every tile dim >= 16, input_precision="ieee"; a column without that tap reads zeros),
then the bias and a store that interleaves the phases. The offsets number about
ceil(KH*DH/SH) per dimension (FCN-32s' 64x64 kernel at stride 32: 2), one more where PH is not a
multiple of SH; up to 49 pairs are unrolled (tl.static_range), beyond that a runtime loop. At
stride 1 this is the plain convolution over the flipped window; at kernel == stride (U-Net's
2x2/2) one GEMM whose columns are the SH*SW*COUT_G outputs of an input pixel. Weights are
prepacked once (`pack_weight_t`): (groups, KH, KW, CIN_G, COUT_G), as conv.py's.

Upsampling (F.interpolate with scale_factor, nearest or bilinear with align_corners=False): the
output size is floor(size * f); the source coordinate uses the scale 1/f in fp32 as PyTorch's
CPU kernels do, nearest min(floor(dst * 1/f), size - 1), bilinear max((dst + 0.5) * 1/f - 0.5,
0) with the upper neighbour clamped to the last row. Like PyTorch on the CPU, an output as large
as the input is a copy, and a nearest output twice the input takes dst // 2, whatever f is.

Adaptive average pooling (F.adaptive_avg_pool2d): window i spans [floor(i*H/OH),
ceil((i+1)*H/OH)); the largest window size is a constexpr bound of a runtime loop, windows are
masked to their own size and divided by it. Global average pooling (x.mean((2, 3))): one
program per sample and channel tile loops over the H*W pixels in blocks of BLOCK_P.

Window copy: out[n, i, j, c] = x[n, top + i, left + j, c] for out's (OH, OW, C), both views with
row strides: center_crop (the offsets ((H - h) // 2, (W - w) // 2)) and an input copied into a
concat's channel slice.

Channel shuffle (ShuffleNet's, F.channel_shuffle): y[n, i, j, c] = x[n, i, j, (c % G) * (C / G) +
c // G], a gather along each pixel's channels, both views with row strides.

Tolerance against torch in fp32: the transposed convolution to 1e-4 of its largest output (as
conv.py); bilinear upsampling and the averages to 1e-6 of the largest input value (the order of
an fp32 sum differs from torch's); nearest upsampling, the window copy and the channel shuffle exactly.
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from .common import MIN_DOT, Launch, output_pixels, row_stride

STATIC_TAPS = 49          # up to this many taps are unrolled (tl.static_range), beyond it a runtime loop


# ------------------------------------------------------------------ transposed convolution

@triton.jit
def _conv_t_tap(acc, x_ptr, w_ptr, pix, qh, qw, mask_q, th0, tw0, w_base, mask_c, ks, uh, uw, H, W,
                X_RS: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                DH: tl.constexpr, DW: tl.constexpr, CIN_G: tl.constexpr, COUT_G: tl.constexpr,
                BLOCK_K: tl.constexpr):
    """acc += the tap (uh, uw): each row's input pixel (qh + uh, qw + uw) (pix: its offset, in
    pixels, at u = 0, group channel base included) times each column's weight tap kh = (rh + PH -
    SH*uh) / DH (th0 = rh + PH), likewise kw, where that division is exact and kh < KH. The
    index math is int64 (ks: arange(BLOCK_K) as int64), which the interpreter runs fastest."""
    ih = qh + uh
    iw = qw + uw
    inside = mask_q & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    row = pix + (uh * W + uw) * X_RS
    th = th0 - SH * uh
    tw = tw0 - SW * uw
    ok = mask_c & (th >= 0) & (th < KH * DH) & (tw >= 0) & (tw < KW * DW)
    if DH > 1:
        ok = ok & (th % DH == 0)
    if DW > 1:
        ok = ok & (tw % DW == 0)
    w_col = ((th // DH) * KW + tw // DW) * (CIN_G * COUT_G) + w_base
    for c0 in range(0, CIN_G, BLOCK_K):
        offs_k = ks + c0
        mask_k = offs_k < CIN_G
        a = tl.load(x_ptr + row[:, None] + offs_k[None, :], mask=inside[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(w_ptr + (offs_k * COUT_G)[:, None] + w_col[None, :], mask=mask_k[:, None] & ok[None, :],
                    other=0.0)
        acc += tl.dot(a, b, input_precision="ieee")
    return acc


@triton.jit
def _conv_transpose2d_nhwc(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W, OH, OW, QH, QW,
                           X_RS: tl.constexpr, Y_RS: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
                           SH: tl.constexpr, SW: tl.constexpr, PH: tl.constexpr, PW: tl.constexpr,
                           DH: tl.constexpr, DW: tl.constexpr, CIN_G: tl.constexpr, COUT_G: tl.constexpr,
                           UH0: tl.constexpr, UH1: tl.constexpr, UW0: tl.constexpr, UW1: tl.constexpr,
                           STATIC: tl.constexpr, HAS_BIAS: tl.constexpr,
                           BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # rows: BLOCK_M cells (n, qh, qw) of the grid of SH x SW output blocks; columns: BLOCK_N of
    # (rh, rw, co), output pixel (qh*SH + rh, qw*SW + rw), channel g*COUT_G + co
    offs_q, mask_q, n, qh, qw = output_pixels(tl.program_id(0), N, QH, QW, BLOCK_M)
    cols = (tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
    mask_c = cols < SH * SW * COUT_G
    g = tl.program_id(2).to(tl.int64)
    ks = tl.arange(0, BLOCK_K).to(tl.int64)
    co = cols % COUT_G
    rh = cols // COUT_G // SW
    rw = cols // COUT_G % SW
    pix = ((n * H + qh) * W + qw) * X_RS + g * CIN_G
    w_base = g * (KH * KW * CIN_G * COUT_G) + co
    th0 = rh + PH
    tw0 = rw + PW
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if STATIC:
        for uh in tl.static_range(UH0, UH1):
            for uw in tl.static_range(UW0, UW1):
                acc = _conv_t_tap(acc, x_ptr, w_ptr, pix, qh, qw, mask_q, th0, tw0, w_base, mask_c, ks, uh, uw, H, W,
                                  X_RS, KH, KW, SH, SW, DH, DW, CIN_G, COUT_G, BLOCK_K)
    else:
        for uh in range(UH0, UH1):
            for uw in range(UW0, UW1):
                acc = _conv_t_tap(acc, x_ptr, w_ptr, pix, qh, qw, mask_q, th0, tw0, w_base, mask_c, ks, uh, uw, H, W,
                                  X_RS, KH, KW, SH, SW, DH, DW, CIN_G, COUT_G, BLOCK_K)
    chan = g * COUT_G + co
    if HAS_BIAS:
        acc += tl.load(b_ptr + chan, mask=mask_c, other=0.0).to(tl.float32)[None, :]
    oh = (qh * SH)[:, None] + rh[None, :]
    ow = (qw * SW)[:, None] + rw[None, :]
    mask = mask_q[:, None] & mask_c[None, :] & (oh < OH) & (ow < OW)
    tl.store(y_ptr + ((n[:, None] * OH + oh) * OW + ow) * Y_RS + chan[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=mask)


def pack_weight_t(weight: torch.Tensor, groups: int = 1, dtype=None) -> torch.Tensor:
    """(Cin, Cout/groups, KH, KW), PyTorch's layout of a transposed convolution's weight, as the
    kernel reads it: (groups, KH, KW, Cin/groups, Cout/groups), contiguous (conv.py's layout)."""
    cin, cout_g, kh, kw = weight.shape
    assert cin % groups == 0, f"{cin} input channels do not split into {groups} groups"
    out = weight.reshape(groups, cin // groups, cout_g, kh, kw).permute(0, 3, 4, 1, 2).contiguous()
    return out if dtype is None else out.to(dtype)


def out_hw_t(h, w, kernel, stride=(1, 1), padding=(0, 0), output_padding=(0, 0), dilation=(1, 1)) -> tuple:
    """A transposed convolution's output size: (size-1)*s - 2p + d*(k-1) + output_padding + 1."""
    return tuple((size - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for size, k, s, p, op, d in zip((h, w), kernel, stride, padding, output_padding, dilation))


def tap_offsets(size: int, out: int, k: int, s: int, p: int, d: int) -> tuple[int, int]:
    """The offsets u (input row = block row + u) some weight tap uses, as a range [lo, hi): u =
    (r + p - kh*d) / s for a phase r < s and a tap kh < k, clipped to the rows an input has for
    some of the cdiv(out, s) block rows."""
    lo, hi = -(((k - 1) * d - p) // s), (s - 1 + p) // s + 1
    return max(lo, 1 - triton.cdiv(out, s)), min(hi, size)


def conv_t_blocks(m: int, cols: int, cin_g: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K) for m block cells per sample and cols = SH*SW*COUT_G columns:
    every one >= 16 (tl.dot); a small grid of cells (a large stride on a small map) takes fewer
    rows and more columns, keeping a tile of 64*64."""
    bm = max(MIN_DOT, min(64, triton.next_power_of_2(m)))
    bn = max(MIN_DOT, min(64 * 64 // bm, triton.next_power_of_2(cols)))
    return bm, bn, max(MIN_DOT, min(32, triton.next_power_of_2(cin_g)))


def conv_transpose_launch(*, cin: int, cout: int, hw: tuple, kernel, stride=(1, 1), padding=(0, 0),
                          output_padding=(0, 0), dilation=(1, 1), groups: int = 1, x_rs: int | None = None,
                          y_rs: int | None = None, bias: bool = True, blocks=None, unroll: bool | None = None
                          ) -> Launch:
    """The launch of one transposed convolution. unroll: the taps unrolled (True), looped at
    runtime (False), or unrolled when there are at most STATIC_TAPS of them (None)."""
    (h, w), (kh, kw), (sh, sw), (ph, pw), (dh, dw) = hw, kernel, stride, padding, dilation
    assert cin % groups == 0 and cout % groups == 0, f"channels {cin} -> {cout} do not split into {groups} groups"
    oh, ow = out_hw_t(h, w, kernel, stride, padding, output_padding, dilation)
    assert oh >= 1 and ow >= 1, f"a transposed convolution of {h}x{w} with padding {padding} has no output"
    cin_g, cout_g = cin // groups, cout // groups
    (uh0, uh1), (uw0, uw1) = tap_offsets(h, oh, kh, sh, ph, dh), tap_offsets(w, ow, kw, sw, pw, dw)
    if unroll is None:
        unroll = max(uh1 - uh0, 0) * max(uw1 - uw0, 0) <= STATIC_TAPS
    qh, qw = triton.cdiv(oh, sh), triton.cdiv(ow, sw)
    bm, bn, bk = blocks or conv_t_blocks(qh * qw, sh * sw * cout_g, cin_g)
    assert min(bm, bn, bk) >= MIN_DOT
    consts = dict(X_RS=x_rs or cin, Y_RS=y_rs or cout, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw,
                  CIN_G=cin_g, COUT_G=cout_g, UH0=uh0, UH1=uh1, UW0=uw0, UW1=uw1, STATIC=bool(unroll),
                  HAS_BIAS=bias, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    return Launch(_conv_transpose2d_nhwc, ((qh * qw, bm), triton.cdiv(sh * sw * cout_g, bn), groups),
                  ("x", "w", "b", "y", "N", h, w, oh, ow, qh, qw), frozenset({"x", "w", "b", "y"}), consts)


def conv_transpose2d(x: torch.Tensor, w_packed: torch.Tensor, bias: torch.Tensor | None = None, *, stride=(1, 1),
                     padding=(0, 0), output_padding=(0, 0), dilation=(1, 1), groups: int = 1,
                     out: torch.Tensor | None = None, blocks=None, unroll: bool | None = None) -> torch.Tensor:
    """F.conv_transpose2d of the NHWC map `x` (common.py's layout) with weights from
    `pack_weight_t`, into `out` where given (an NHWC view), else into a new tensor."""
    n, h, w, c = x.shape
    g, kh, kw, cin_g, cout_g = w_packed.shape
    assert g == groups and cin_g * groups == c, "weights packed for another transposed conv"
    oh, ow = out_hw_t(h, w, (kh, kw), stride, padding, output_padding, dilation)
    cout = cout_g * groups
    if out is None:
        out = torch.empty((n, oh, ow, cout), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, oh, ow, cout), f"out is {tuple(out.shape)}, the conv_t gives {(n, oh, ow, cout)}"
    launch = conv_transpose_launch(cin=c, cout=cout, hw=(h, w), kernel=(kh, kw), stride=stride, padding=padding,
                                   output_padding=output_padding, dilation=dilation, groups=groups,
                                   x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"), bias=bias is not None,
                                   blocks=blocks, unroll=unroll)
    launch(n, x=x, w=w_packed, b=bias if bias is not None else x, y=out)
    return out


# ------------------------------------------------------------------ upsampling

@triton.jit
def _upsample2d_nhwc(x_ptr, y_ptr, N, H, W, OH, OW, C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr,
                     RH: tl.constexpr, RW: tl.constexpr, BILINEAR: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = mask_m[:, None] & (offs_c < C)[None, :]
    rh = tl.full((BLOCK_M,), RH, tl.float32)          # the scales 1/f, as fp32 (PyTorch's opmath)
    rw = tl.full((BLOCK_M,), RW, tl.float32)
    if BILINEAR:
        sh = tl.maximum((oh.to(tl.float32) + 0.5) * rh - 0.5, 0.0)
        sw = tl.maximum((ow.to(tl.float32) + 0.5) * rw - 0.5, 0.0)
        h0 = tl.minimum(sh.to(tl.int64), H - 1)       # (sh >= 0: the cast is a floor)
        w0 = tl.minimum(sw.to(tl.int64), W - 1)
        lh = tl.minimum(tl.maximum(sh - h0.to(tl.float32), 0.0), 1.0)
        lw = tl.minimum(tl.maximum(sw - w0.to(tl.float32), 0.0), 1.0)
        h1 = tl.where(h0 < H - 1, h0 + 1, h0)
        w1 = tl.where(w0 < W - 1, w0 + 1, w0)
        base = n * H
        c = offs_c[None, :]
        x00 = tl.load(x_ptr + (((base + h0) * W + w0) * X_RS)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        x01 = tl.load(x_ptr + (((base + h0) * W + w1) * X_RS)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        x10 = tl.load(x_ptr + (((base + h1) * W + w0) * X_RS)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        x11 = tl.load(x_ptr + (((base + h1) * W + w1) * X_RS)[:, None] + c, mask=mask, other=0.0).to(tl.float32)
        lw2 = lw[:, None]
        top = x00 * (1.0 - lw2) + x01 * lw2
        bot = x10 * (1.0 - lw2) + x11 * lw2
        lh2 = lh[:, None]
        v = top * (1.0 - lh2) + bot * lh2
    else:
        ih = tl.minimum(tl.floor(oh.to(tl.float32) * rh).to(tl.int64), H - 1)
        iw = tl.minimum(tl.floor(ow.to(tl.float32) * rw).to(tl.int64), W - 1)
        v = tl.load(x_ptr + (((n * H + ih) * W + iw) * X_RS)[:, None] + offs_c[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def upsample_hw(h: int, w: int, factor) -> tuple[int, int]:
    """The output size of upsampling by `factor` (a pair): floor(size * f), as F.interpolate."""
    return tuple(int(math.floor(size * float(f))) for size, f in zip((h, w), factor))


def _source_scale(size: int, out: int, f: float, nearest: bool) -> float:
    """The scale PyTorch's CPU kernel maps an output index with (before its fp32 rounding)."""
    if out == size:
        return 1.0                    # a copy
    if nearest and out == 2 * size:
        return 0.5                    # dst >> 1
    return 1.0 / float(f)


def upsample_launch(*, c: int, hw: tuple, factor, mode: str = "nearest", x_rs: int | None = None,
                    y_rs: int | None = None) -> Launch:
    assert mode in ("nearest", "bilinear"), f"upsample mode {mode!r}: nearest or bilinear"
    (h, w), (fh, fw) = hw, factor
    oh, ow = upsample_hw(h, w, factor)
    assert oh >= 1 and ow >= 1, f"upsampling {h}x{w} by {factor} leaves no output"
    nearest = mode == "nearest"
    block_m, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_upsample2d_nhwc, ((oh * ow, block_m), triton.cdiv(c, block_c)), ("x", "y", "N", h, w, oh, ow),
                  frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs or c, Y_RS=y_rs or c, RH=_source_scale(h, oh, fh, nearest),
                       RW=_source_scale(w, ow, fw, nearest), BILINEAR=not nearest, BLOCK_M=block_m, BLOCK_C=block_c))


def upsample2d(x: torch.Tensor, factor, mode: str = "nearest", out: torch.Tensor | None = None) -> torch.Tensor:
    """F.interpolate(x, scale_factor=factor, mode=mode) (bilinear: align_corners=False) of the
    NHWC map `x`; factor: a number or an (fh, fw) pair."""
    factor = tuple(factor) if isinstance(factor, (tuple, list)) else (factor, factor)
    n, h, w, c = x.shape
    oh, ow = upsample_hw(h, w, factor)
    if out is None:
        out = torch.empty((n, oh, ow, c), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, oh, ow, c), f"out is {tuple(out.shape)}, upsampling gives {(n, oh, ow, c)}"
    upsample_launch(c=c, hw=(h, w), factor=factor, mode=mode, x_rs=row_stride(x, "x"),
                    y_rs=row_stride(out, "out"))(n, x=x, y=out)
    return out


# ------------------------------------------------------------------ adaptive and global average pooling

@triton.jit
def _adaptive_avgpool2d_nhwc(x_ptr, y_ptr, N, H, W, OH, OW, C: tl.constexpr, X_RS: tl.constexpr,
                             Y_RS: tl.constexpr, KMAX_H: tl.constexpr, KMAX_W: tl.constexpr,
                             BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    hs = (oh * H) // OH                                # the window [hs, he) x [ws, we)
    he = ((oh + 1) * H + OH - 1) // OH
    ws = (ow * W) // OW
    we = ((ow + 1) * W + OW - 1) // OW
    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for kh in range(0, KMAX_H):
        for kw in range(0, KMAX_W):
            ih = hs + kh
            iw = ws + kw
            inside = mask_m & (ih < he) & (iw < we)
            acc += tl.load(x_ptr + (((n * H + ih) * W + iw) * X_RS)[:, None] + offs_c[None, :],
                           mask=inside[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
    div = tl.where(mask_m, ((he - hs) * (we - ws)).to(tl.float32), 1.0)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], (acc / div[:, None]).to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_c[None, :])


@triton.jit
def _global_avgpool_nhwc(x_ptr, y_ptr, N, H, W, C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    n = tl.program_id(0).to(tl.int64)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    hw = H * W
    acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for p0 in range(0, hw, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        acc += tl.load(x_ptr + ((n * hw + p) * X_RS)[:, None] + offs_c[None, :],
                       mask=(p < hw)[:, None] & mask_c[None, :], other=0.0).to(tl.float32)
    mean = tl.sum(acc, axis=0) / (hw * 1.0)       # (not hw.to: a 1x1 map makes H, W constexpr 1)
    tl.store(y_ptr + n * Y_RS + offs_c, mean.to(y_ptr.dtype.element_ty), mask=mask_c)


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows along one dimension: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


def adaptive_launch(*, c: int, hw: tuple, out_hw: tuple, x_rs: int | None = None, y_rs: int | None = None) -> Launch:
    (h, w), (oh, ow) = hw, out_hw
    kmax_h = max(e - s for s, e in adaptive_windows(h, oh))
    kmax_w = max(e - s for s, e in adaptive_windows(w, ow))
    block_m, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_adaptive_avgpool2d_nhwc, ((oh * ow, block_m), triton.cdiv(c, block_c)),
                  ("x", "y", "N", h, w, oh, ow), frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs or c, Y_RS=y_rs or c, KMAX_H=kmax_h, KMAX_W=kmax_w,
                       BLOCK_M=block_m, BLOCK_C=block_c))


def adaptive_avgpool2d(x: torch.Tensor, out_hw, out: torch.Tensor | None = None) -> torch.Tensor:
    """F.adaptive_avg_pool2d(x, out_hw) of the NHWC map `x`; out_hw: an int or an (OH, OW) pair."""
    out_hw = tuple(out_hw) if isinstance(out_hw, (tuple, list)) else (out_hw, out_hw)
    n, h, w, c = x.shape
    if out is None:
        out = torch.empty((n, *out_hw, c), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, *out_hw, c), f"out is {tuple(out.shape)}, the pool gives {(n, *out_hw, c)}"
    adaptive_launch(c=c, hw=(h, w), out_hw=out_hw, x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"))(
        n, x=x, y=out)
    return out


def global_pool_launch(*, c: int, hw: tuple, x_rs: int | None = None, y_rs: int | None = None) -> Launch:
    h, w = hw
    block_p, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_global_avgpool_nhwc, ((1, 1), triton.cdiv(c, block_c)), ("x", "y", "N", h, w),
                  frozenset({"x", "y"}), dict(C=c, X_RS=x_rs or c, Y_RS=y_rs or c, BLOCK_P=block_p, BLOCK_C=block_c))


def global_avgpool(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """x.mean((2, 3), keepdim=True) of the NHWC map `x`: (N, 1, 1, C)."""
    n, h, w, c = x.shape
    if out is None:
        out = torch.empty((n, 1, 1, c), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, 1, 1, c), f"out is {tuple(out.shape)}, the pool gives {(n, 1, 1, c)}"
    global_pool_launch(c=c, hw=(h, w), x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"))(n, x=x, y=out)
    return out


# ------------------------------------------------------------------ window copy

@triton.jit
def _copy_window_nhwc(x_ptr, y_ptr, N, H, W, OH, OW, TOP, LEFT, C: tl.constexpr, X_RS: tl.constexpr,
                      Y_RS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = mask_m[:, None] & (offs_c < C)[None, :]
    src = ((n * H + TOP + oh) * W + LEFT + ow) * X_RS
    v = tl.load(x_ptr + src[:, None] + offs_c[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def copy_launch(*, c: int, hw: tuple, ohw: tuple, top: int = 0, left: int = 0, x_rs: int | None = None,
                y_rs: int | None = None) -> Launch:
    (h, w), (oh, ow) = hw, ohw
    assert 0 <= top and top + oh <= h and 0 <= left and left + ow <= w, \
        f"a {oh}x{ow} window at ({top}, {left}) does not fit in {h}x{w}"
    block_m, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_copy_window_nhwc, ((oh * ow, block_m), triton.cdiv(c, block_c)),
                  ("x", "y", "N", h, w, oh, ow, top, left), frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs or c, Y_RS=y_rs or c, BLOCK_M=block_m, BLOCK_C=block_c))


def copy_window(x: torch.Tensor, out: torch.Tensor, top: int = 0, left: int = 0) -> torch.Tensor:
    """out[n, i, j, c] = x[n, top + i, left + j, c] for out's (OH, OW, C); both NHWC views."""
    n, h, w, c = x.shape
    assert out.shape[0] == n and out.shape[3] == c, f"out is {tuple(out.shape)}, x is {tuple(x.shape)}"
    copy_launch(c=c, hw=(h, w), ohw=tuple(out.shape[1:3]), top=top, left=left, x_rs=row_stride(x, "x"),
                y_rs=row_stride(out, "out"))(n, x=x, y=out)
    return out


def crop_offsets(hw: tuple, out_hw: tuple) -> tuple[int, int]:
    """center_crop's window: ((H - h) // 2, (W - w) // 2)."""
    return (hw[0] - out_hw[0]) // 2, (hw[1] - out_hw[1]) // 2


def center_crop(x: torch.Tensor, h: int, w: int | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """The centre h x w window of the NHWC map `x`, copied into `out` where given, else a new tensor."""
    w = h if w is None else w
    if out is None:
        out = torch.empty((x.shape[0], h, w, x.shape[3]), device=x.device, dtype=x.dtype)
    top, left = crop_offsets(tuple(x.shape[1:3]), (h, w))
    return copy_window(x, out, top, left)


# ------------------------------------------------------------------ channel shuffle

@triton.jit
def _channel_shuffle_nhwc(x_ptr, y_ptr, N, H, W, C: tl.constexpr, GROUPS: tl.constexpr, X_RS: tl.constexpr,
                          Y_RS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    # channel j of y is channel (j % GROUPS) * (C / GROUPS) + j // GROUPS of x: the channels as a
    # GROUPS x C/GROUPS grid, transposed (ShuffleNet's shuffle), a gather along each pixel's row
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, H, W, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = mask_m[:, None] & (offs_c < C)[None, :]
    src_c = (offs_c % GROUPS) * (C // GROUPS) + offs_c // GROUPS
    v = tl.load(x_ptr + (offs_m * X_RS)[:, None] + src_c[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def shuffle_launch(*, c: int, hw: tuple, groups: int, x_rs: int | None = None, y_rs: int | None = None) -> Launch:
    assert c % groups == 0, f"{c} channels are not divisible by groups={groups}"
    h, w = hw
    block_m, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_channel_shuffle_nhwc, ((h * w, block_m), triton.cdiv(c, block_c)), ("x", "y", "N", h, w),
                  frozenset({"x", "y"}), dict(C=c, GROUPS=groups, X_RS=x_rs or c, Y_RS=y_rs or c, BLOCK_M=block_m,
                                              BLOCK_C=block_c))


def channel_shuffle(x: torch.Tensor, groups: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """ShuffleNet's channel shuffle of the NHWC map `x` (a channel slice is fine), into `out` (an
    NHWC view, not overlapping x) where given, else into a new tensor."""
    n, h, w, c = x.shape
    if out is None:
        out = torch.empty((n, h, w, c), device=x.device, dtype=x.dtype)
    shuffle_launch(c=c, hw=(h, w), groups=groups, x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"))(n, x=x, y=out)
    return out


KERNELS = (_conv_t_tap, _conv_transpose2d_nhwc, _upsample2d_nhwc, _adaptive_avgpool2d_nhwc, _global_avgpool_nhwc,
           _copy_window_nhwc, _channel_shuffle_nhwc)
