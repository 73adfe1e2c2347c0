"""Implicit-GEMM convolution on NHWC activations, with the fused node's epilogue.

One launch computes y[n, oh, ow, off + g*COUT_G + j] for a tile of output pixels (M = N*OH*OW)
and a tile of one group's output channels, summing over the window and the group's input
channels: K = KH*KW*CIN_G, walked as a static loop over the window and a loop over channel
blocks. Kernel size, stride, padding, dilation and the group widths are `tl.constexpr`, so each
layer gets its own specialisation with the window unrolled. Accumulation is fp32 with
`input_precision="ieee"` (no TF32); every load and store is masked; pixel offsets are int64.

The epilogue follows the fused IR's step order: bias (a folded batchnorm), scale, residual add,
activation, cast to the output's dtype, store into channels off.. of an output buffer whose row
is Y_C channels wide (a concat's buffer, for concat in place).

`tl.dot` needs every tile dimension >= 16 on a GPU, and the interpreter does not check it:
`launch_config` never returns a smaller block, and channel blocks are masked where a group has
fewer channels (ResNeXt's 4 per group).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

ACTIVATIONS = {None: 0, "relu": 1, "relu6": 2, "tanh": 3, "sigmoid": 4}
MIN_DOT = 16


@triton.jit
def output_pixels(pid, N, OH, OW, BLOCK_M: tl.constexpr):
    """A block of output pixels (M = N*OH*OW, int64): offsets, mask, and (n, oh, ow)."""
    offs_m = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rest = offs_m % (OH * OW)
    return offs_m, offs_m < N * OH * OW, offs_m // (OH * OW), rest // OW, rest % OW


@triton.jit
def _conv2d_nhwc(x_ptr, w_ptr, b_ptr, r_ptr, y_ptr,
                 N, H, W, OH, OW, scale,
                 C: tl.constexpr, Y_C: tl.constexpr, Y_OFF: tl.constexpr, R_C: tl.constexpr,
                 KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                 PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                 CIN_G: tl.constexpr, COUT_G: tl.constexpr,
                 HAS_BIAS: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_RES: tl.constexpr, ACT: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    g = tl.program_id(2)
    mask_n = offs_n < COUT_G
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih = oh * SH - PH + kh * DH
            iw = ow * SW - PW + kw * DW
            inside = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            row = ((n * H + ih) * W + iw) * C + g * CIN_G
            for c0 in range(0, CIN_G, BLOCK_K):
                offs_k = c0 + tl.arange(0, BLOCK_K)
                mask_k = offs_k < CIN_G
                a = tl.load(x_ptr + row[:, None] + offs_k[None, :], mask=inside[:, None] & mask_k[None, :], other=0.0)
                w_rows = ((g * KH + kh) * KW + kw) * CIN_G + offs_k
                b = tl.load(w_ptr + w_rows[:, None] * COUT_G + offs_n[None, :],
                            mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                acc += tl.dot(a, b, input_precision="ieee")
    chan = g * COUT_G + offs_n
    if HAS_BIAS:
        acc += tl.load(b_ptr + chan, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    if HAS_SCALE:
        acc = acc * scale
    mask = mask_m[:, None] & mask_n[None, :]
    if HAS_RES:
        acc += tl.load(r_ptr + offs_m[:, None] * R_C + chan[None, :], mask=mask, other=0.0).to(tl.float32)
    if ACT == 1:
        acc = tl.maximum(acc, 0.0)
    elif ACT == 2:
        acc = tl.minimum(tl.maximum(acc, 0.0), 6.0)
    elif ACT == 3:
        e = tl.exp(-2.0 * tl.abs(acc))
        t = (1.0 - e) / (1.0 + e)
        acc = tl.where(acc >= 0, t, -t)
    elif ACT == 4:
        acc = 1.0 / (1.0 + tl.exp(-acc))
    tl.store(y_ptr + offs_m[:, None] * Y_C + Y_OFF + chan[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


def pack_weight(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(Cout, Cin/groups, KH, KW), PyTorch's layout, as the kernel reads it: (groups, KH, KW,
    Cin/groups, Cout/groups), contiguous."""
    cout, cin_g, kh, kw = weight.shape
    return weight.reshape(groups, cout // groups, cin_g, kh, kw).permute(0, 3, 4, 2, 1).contiguous()


def launch_config(m: int, cout_g: int, cin_g: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K): every one >= 16, as tl.dot needs on a GPU."""
    block_m = 64
    block_n = max(MIN_DOT, min(64, triton.next_power_of_2(cout_g)))
    block_k = max(MIN_DOT, min(32, triton.next_power_of_2(cin_g)))
    assert min(block_m, block_n, block_k) >= MIN_DOT
    return block_m, block_n, block_k


def conv2d(x: torch.Tensor, w_packed: torch.Tensor, bias: torch.Tensor | None = None, *, kernel, stride=(1, 1),
           padding=(0, 0), dilation=(1, 1), groups: int = 1, scale: float | None = None,
           residual: torch.Tensor | None = None, act: str | None = None, out: torch.Tensor | None = None,
           out_offset: int = 0) -> torch.Tensor:
    """The fused convolution of NHWC `x` ((N, H, W, C), contiguous). Writes into channels
    out_offset.. of `out` ((N, OH, OW, Y_C)) where given, else into a new NHWC tensor."""
    n, h, w, c = x.shape
    g, kh, kw, cin_g, cout_g = w_packed.shape
    assert g == groups and cin_g * groups == c and (kh, kw) == tuple(kernel), "weights packed for another conv"
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cout = cout_g * groups
    if out is None:
        out = torch.empty((n, oh, ow, cout), device=x.device, dtype=x.dtype)
        out_offset = 0
    assert out.shape[:3] == (n, oh, ow) and out.is_contiguous() and out_offset + cout <= out.shape[3]
    if residual is not None:
        assert residual.shape == (n, oh, ow, cout) and residual.is_contiguous()
    bm, bn, bk = launch_config(n * oh * ow, cout_g, cin_g)
    grid = (triton.cdiv(n * oh * ow, bm), triton.cdiv(cout_g, bn), groups)
    _conv2d_nhwc[grid](
        x, w_packed, bias if bias is not None else x, residual if residual is not None else x, out,
        n, h, w, oh, ow, float(scale if scale is not None else 1.0),
        C=c, Y_C=out.shape[3], Y_OFF=out_offset, R_C=cout,
        KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw, CIN_G=cin_g, COUT_G=cout_g,
        HAS_BIAS=bias is not None, HAS_SCALE=scale is not None, HAS_RES=residual is not None,
        ACT=ACTIVATIONS[act], BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    return out
