"""Max and average pooling on NHWC activations, as PyTorch defines them.

One launch computes a tile of output pixels (M = N*OH*OW) by a tile of channels; the window is a
static loop (its size, stride and padding are `tl.constexpr`). Padding never wins a max (it reads
as -inf). An average divides by the window's size clipped to the padded input
(count_include_pad=True, PyTorch's default) or to the real pixels (False). With ceil mode the
last window may start inside the padding only if PyTorch's rule allows it: `out_size` applies that
rule, and windows that run past the padded input are clipped as PyTorch clips them.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import Launch, output_pixels, row_stride


@triton.jit
def _pool2d_nhwc(x_ptr, y_ptr, N, H, W, OH, OW,
                 C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr,
                 KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                 PH: tl.constexpr, PW: tl.constexpr, IS_MAX: tl.constexpr, COUNT_PAD: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    h0 = oh * SH - PH
    w0 = ow * SW - PW
    if IS_MAX:
        acc = tl.full((BLOCK_M, BLOCK_C), float("-inf"), tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    real = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih = h0 + kh
            iw = w0 + kw
            inside = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            ptrs = x_ptr + (((n * H + ih) * W + iw) * X_RS)[:, None] + offs_c[None, :]
            m2 = inside[:, None] & mask_c[None, :]
            if IS_MAX:
                v = tl.load(ptrs, mask=m2, other=float("-inf")).to(tl.float32)
                acc = tl.maximum(acc, v)
            else:
                acc += tl.load(ptrs, mask=m2, other=0.0).to(tl.float32)
            real += inside.to(tl.float32)
    if not IS_MAX:
        if COUNT_PAD:
            # the window clipped to the padded input (PyTorch's divisor with count_include_pad)
            hs = tl.maximum(h0, -PH)
            ws = tl.maximum(w0, -PW)
            he = tl.minimum(h0 + KH, H + PH)
            we = tl.minimum(w0 + KW, W + PW)
            div = ((he - hs) * (we - ws)).to(tl.float32)
        else:
            div = real
        acc = acc / tl.where(mask_m, div, 1.0)[:, None]      # (rows past M are not stored)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=mask_m[:, None] & mask_c[None, :])


def out_size(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    """PyTorch's pooling output size: with ceil mode, a last window that starts in the right
    padding is dropped."""
    out = (size + 2 * p - k + ((s - 1) if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


KERNELS = (_pool2d_nhwc,)


def pool_launch(*, c: int, hw: tuple, kernel, stride, padding=(0, 0), ceil: bool = False, mode: str = "max",
                count_include_pad: bool = True, x_rs: int | None = None, y_rs: int | None = None) -> Launch:
    (h, w), (kh, kw), (sh, sw), (ph, pw) = hw, kernel, stride, padding
    oh, ow = out_size(h, kh, sh, ph, ceil), out_size(w, kw, sw, pw, ceil)
    block_m, block_c = 64, max(16, min(64, triton.next_power_of_2(c)))
    return Launch(_pool2d_nhwc, ((oh * ow, block_m), triton.cdiv(c, block_c)), ("x", "y", "N", h, w, oh, ow),
                  frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs or c, Y_RS=y_rs or c, KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw,
                       IS_MAX=mode == "max", COUNT_PAD=count_include_pad, BLOCK_M=block_m, BLOCK_C=block_c))


def pool2d(x: torch.Tensor, *, kernel, stride, padding=(0, 0), ceil: bool = False, mode: str = "max",
           count_include_pad: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """Pooling of the NHWC map `x` (common.py's layout), mode "max" or "avg", into `out` where
    given (an NHWC view), else into a new tensor."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    oh, ow = out_size(h, kh, sh, ph, ceil), out_size(w, kw, sw, pw, ceil)
    if out is None:
        out = torch.empty((n, oh, ow, c), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, oh, ow, c)
    pool_launch(c=c, hw=(h, w), kernel=kernel, stride=stride, padding=padding, ceil=ceil, mode=mode,
                count_include_pad=count_include_pad, x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"))(
        n, x=x, y=out)
    return out
