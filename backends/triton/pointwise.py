"""Per-pixel kernels on NHWC activations: element-wise steps, local response normalisation and a
softmax (or log-softmax) over the channels.

- `_pointwise_nhwc`: a tile of 64 pixels (M = N*H*W) by up to 64 channels; v = x in fp32, then
  an affine x*scale[c] + shift[c] (a batchnorm at inference that was not folded into a conv,
  prepacked as two vectors) or, with PRELU, a per-channel slope: v if v > 0 else scale[c]*v (a
  prelu, its one shared slope prepacked as a vector of C), the step slots E0..E2
  (common.apply_step), one residual r combined
  as v + r or v * r (RES_MUL), where r is a map like x or, with R_BCAST, a per-sample channel
  vector (N, 1, 1, C) broadcast over the pixels (a squeeze-and-excitation gate, row n*R_RS), then
  the slots F0, F1. It lowers standalone element-wise nodes (common.STEPS), prelu, an unfolded
  batchnorm, add and mul of two maps, and n-ary add/mean as a chain of launches (each launch
  takes one residual; `pointwise_launch` returns the steps left over, which run in place on the
  output; a mean is the last add followed by a scale of 1/n). Every element is read and written
  by one program, so the output may be the input (in place) or a residual.
- `_lrn_nhwc`: F.local_response_norm(x, size, alpha, beta, k) over the channels: the mean of x^2
  over the channels c - size//2 .. c + (size-1)//2 (zeros outside, divisor always `size`), as a
  static loop over the `size` offsets with masked loads; y = x / (k + alpha*mean)^beta, the power
  as exp(beta*log(.)). Programs read channels their neighbours write: never in place.
- `_softmax_nhwc`: torch.softmax over the channels of each pixel (dim 1 of NCHW), max-subtracted.
  Up to 4096 channels it is one block of next_power_of_2(C) channels (and as many pixels as keep
  a tile at 4096 elements); beyond that, two passes over 4096-channel chunks: an online max and
  sum of exponentials, then the normalised outputs. With LOG, torch.log_softmax: x - max -
  log(sum). Each row is read completely before it is written, so it may run in place.
- `_layernorm_nhwc`: a layer normalisation over the channels of each pixel (torchvision's
  LayerNorm2d, and nn.LayerNorm on a vector): mean, then the variance of x - mean (two passes,
  as torch computes it, not E[x²] - mean²), then (x - mean)·rstd·weight[c] + bias[c]. Blocks as
  the softmax's: one block of next_power_of_2(C) channels up to 4096, beyond that three passes
  over 4096-channel chunks. Each row is read completely before it is written, so it may run in
  place.

Every input and the output is a view in common.py's layout (a channel slice of a wider buffer is
fine: row strides are constexprs); a vector (N, F) is the map (N, 1, 1, F). Math is fp32, cast
on store; loads and stores are masked; pixel offsets are int64. Tolerance (tests): against torch
in fp32, 1e-5 of the largest output (exp/log-based steps; exact for relu, scale, add, mul).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import Launch, apply_step, epilogue_codes, output_pixels, row_stride

BLOCK_PIXELS = 64
SOFTMAX_BLOCK = 4096          # channels in one softmax block; wider rows are looped


@triton.jit
def _pointwise_nhwc(x_ptr, s_ptr, t_ptr, r_ptr, y_ptr, N, H, W,
                    C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr, R_RS: tl.constexpr,
                    HAS_AFFINE: tl.constexpr, PRELU: tl.constexpr, HAS_RES: tl.constexpr, RES_MUL: tl.constexpr,
                    R_BCAST: tl.constexpr,
                    E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, F0: tl.constexpr, F1: tl.constexpr,
                    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, T0: tl.constexpr, T1: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, ph, pw = output_pixels(tl.program_id(0), N, H, W, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    mask = mask_m[:, None] & mask_c[None, :]
    v = tl.load(x_ptr + (offs_m * X_RS)[:, None] + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
    if HAS_AFFINE:
        s = tl.load(s_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
        t = tl.load(t_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
        v = v * s[None, :] + t[None, :]
    if PRELU:
        a = tl.load(s_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
        v = tl.where(v > 0, v, v * a[None, :])
    v = apply_step(v, E0, S0)
    v = apply_step(v, E1, S1)
    v = apply_step(v, E2, S2)
    if HAS_RES:
        if R_BCAST:
            r_rows = n * R_RS               # the sample's gate row, the same for all its pixels
        else:
            r_rows = offs_m * R_RS
        r = tl.load(r_ptr + r_rows[:, None] + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
        if RES_MUL:
            v = v * r
        else:
            v = v + r
    v = apply_step(v, F0, T0)
    v = apply_step(v, F1, T1)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _lrn_nhwc(x_ptr, y_ptr, N, H, W,
              C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr, SIZE: tl.constexpr,
              ALPHA: tl.constexpr, BETA: tl.constexpr, K: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, ph, pw = output_pixels(tl.program_id(0), N, H, W, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    mask = mask_m[:, None] & mask_c[None, :]
    row = (offs_m * X_RS)[:, None]
    sq = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(SIZE):
        cc = offs_c + (j - SIZE // 2)       # the window: size//2 channels before, (size-1)//2 after
        ok = mask_m[:, None] & ((cc >= 0) & (cc < C))[None, :]
        a = tl.load(x_ptr + row + cc[None, :], mask=ok, other=0.0).to(tl.float32)
        sq += a * a
    v = tl.load(x_ptr + row + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
    base = tl.where(mask, K + ALPHA * (sq / SIZE), 1.0)
    v = v / tl.exp(BETA * tl.log(base))
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _softmax_nhwc(x_ptr, y_ptr, N, H, W,
                  C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr, LOOP: tl.constexpr,
                  LOG: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, ph, pw = output_pixels(tl.program_id(0), N, H, W, BLOCK_M)
    offs_c = tl.arange(0, BLOCK_C)
    x_rows = (offs_m * X_RS)[:, None]
    y_rows = (offs_m * Y_RS)[:, None]
    if not LOOP:
        mask = mask_m[:, None] & (offs_c < C)[None, :]
        v = tl.load(x_ptr + x_rows + offs_c[None, :], mask=mask, other=float("-inf")).to(tl.float32)
        v = tl.where(mask_m[:, None], v, 0.0)          # (rows past M: finite, never stored)
        d = v - tl.max(v, axis=1)[:, None]
        e = tl.exp(d)
        if LOG:
            v = d - tl.log(tl.sum(e, axis=1))[:, None]
        else:
            v = e / tl.sum(e, axis=1)[:, None]
        tl.store(y_ptr + y_rows + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        m = tl.full((BLOCK_M,), float("-inf"), tl.float32)
        total = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = mask_m[:, None] & (cc < C)[None, :]
            v = tl.load(x_ptr + x_rows + cc[None, :], mask=mask, other=float("-inf")).to(tl.float32)
            v = tl.where(mask_m[:, None], v, 0.0)
            m_new = tl.maximum(m, tl.max(v, axis=1))
            total = total * tl.exp(m - m_new) + tl.sum(tl.exp(v - m_new[:, None]), axis=1)
            m = m_new
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = mask_m[:, None] & (cc < C)[None, :]
            v = tl.load(x_ptr + x_rows + cc[None, :], mask=mask, other=0.0).to(tl.float32)
            if LOG:
                v = v - m[:, None] - tl.log(total)[:, None]
            else:
                v = tl.exp(v - m[:, None]) / total[:, None]
            tl.store(y_ptr + y_rows + cc[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _layernorm_nhwc(x_ptr, w_ptr, b_ptr, y_ptr, N, H, W,
                    C: tl.constexpr, X_RS: tl.constexpr, Y_RS: tl.constexpr, EPS: tl.constexpr, LOOP: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    offs_m, mask_m, n, ph, pw = output_pixels(tl.program_id(0), N, H, W, BLOCK_M)
    offs_c = tl.arange(0, BLOCK_C)
    x_rows = (offs_m * X_RS)[:, None]
    y_rows = (offs_m * Y_RS)[:, None]
    if not LOOP:
        mask_c = offs_c < C
        mask = mask_m[:, None] & mask_c[None, :]
        v = tl.load(x_ptr + x_rows + offs_c[None, :], mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(v, axis=1) / C
        d = tl.where(mask, v - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(d * d, axis=1) / C + EPS)
        g = tl.load(w_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
        b = tl.load(b_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)
        v = d * rstd[:, None] * g[None, :] + b[None, :]
        tl.store(y_ptr + y_rows + offs_c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        total = tl.zeros((BLOCK_M,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = mask_m[:, None] & (cc < C)[None, :]
            total += tl.sum(tl.load(x_ptr + x_rows + cc[None, :], mask=mask, other=0.0).to(tl.float32), axis=1)
        mean = total / C
        sq = tl.zeros((BLOCK_M,), tl.float32)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask = mask_m[:, None] & (cc < C)[None, :]
            v = tl.load(x_ptr + x_rows + cc[None, :], mask=mask, other=0.0).to(tl.float32)
            d = tl.where(mask, v - mean[:, None], 0.0)
            sq += tl.sum(d * d, axis=1)
        rstd = 1.0 / tl.sqrt(sq / C + EPS)
        for c0 in range(0, C, BLOCK_C):
            cc = c0 + offs_c
            mask_c = cc < C
            mask = mask_m[:, None] & mask_c[None, :]
            v = tl.load(x_ptr + x_rows + cc[None, :], mask=mask, other=0.0).to(tl.float32)
            g = tl.load(w_ptr + cc, mask=mask_c, other=0.0).to(tl.float32)
            b = tl.load(b_ptr + cc, mask=mask_c, other=0.0).to(tl.float32)
            v = (v - mean[:, None]) * rstd[:, None] * g[None, :] + b[None, :]
            tl.store(y_ptr + y_rows + cc[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


KERNELS = (_pointwise_nhwc, _lrn_nhwc, _softmax_nhwc, _layernorm_nhwc)


def _channel_block(c: int) -> int:
    return max(16, min(64, triton.next_power_of_2(c)))


def pointwise_launch(*, c: int, hw: tuple, x_rs: int, y_rs: int, r_rs: int | None = None, affine: bool = False,
                     steps=(), mul: bool = False, bcast: bool = False, prelu: bool = False) -> tuple:
    """The launch of one pointwise kernel over a (N, H, W, c) map, the residual input it takes
    (the position an "add" step of `steps` names, or -1) and the steps it cannot take (run them
    as further launches in place on the output: an add of several inputs takes one per launch).
    affine: a scale/shift pair first. prelu: instead, a per-channel slope (bound to "s") first.
    mul: the residual multiplies instead of adding (a mul node or a gate); bcast: the residual
    is a per-sample channel vector (N, 1, 1, c), row stride r_rs."""
    h, w = hw
    steps = list(steps)
    slots, res, rest = epilogue_codes(steps)
    if steps and len(rest) == len(steps) and rest[0] is steps[0]:
        raise ValueError(f"{steps[0]['op']!r} is not a step the pointwise kernel takes (common.STEPS, add)")
    bm, bc = BLOCK_PIXELS, _channel_block(c)
    assert not (affine and prelu), "an affine and a prelu slope share the scale vector"
    consts = dict(C=c, X_RS=x_rs, Y_RS=y_rs, R_RS=(r_rs or c) if res >= 0 else 0, HAS_AFFINE=bool(affine),
                  PRELU=bool(prelu), **slots, RES_MUL=bool(mul) and res >= 0, R_BCAST=bool(bcast) and res >= 0,
                  BLOCK_M=bm, BLOCK_C=bc)
    launch = Launch(_pointwise_nhwc, ((h * w, bm), triton.cdiv(c, bc)), ("x", "s", "t", "r", "y", "N", h, w),
                    frozenset({"x", "s", "t", "r", "y"}), consts)
    return launch, res, rest


def lrn_launch(*, c: int, hw: tuple, size: int, alpha: float, beta: float, k: float, x_rs: int, y_rs: int) -> Launch:
    """The launch of a local response normalisation of a (N, H, W, c) map (into another buffer)."""
    h, w = hw
    bm, bc = BLOCK_PIXELS, _channel_block(c)
    return Launch(_lrn_nhwc, ((h * w, bm), triton.cdiv(c, bc)), ("x", "y", "N", h, w), frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs, Y_RS=y_rs, SIZE=int(size), ALPHA=float(alpha), BETA=float(beta),
                       K=float(k), BLOCK_M=bm, BLOCK_C=bc))


def softmax_launch(*, c: int, hw: tuple, x_rs: int, y_rs: int, log: bool = False) -> Launch:
    """The launch of a softmax (with log, a log-softmax) over the channels of each pixel of a
    (N, H, W, c) map."""
    h, w = hw
    loop = c > SOFTMAX_BLOCK
    bc = SOFTMAX_BLOCK if loop else triton.next_power_of_2(c)
    bm = max(1, min(BLOCK_PIXELS, SOFTMAX_BLOCK // bc))
    return Launch(_softmax_nhwc, ((h * w, bm),), ("x", "y", "N", h, w), frozenset({"x", "y"}),
                  dict(C=c, X_RS=x_rs, Y_RS=y_rs, LOOP=loop, LOG=bool(log), BLOCK_M=bm, BLOCK_C=bc))


def layernorm_launch(*, c: int, hw: tuple, eps: float, x_rs: int, y_rs: int, block: int = SOFTMAX_BLOCK) -> Launch:
    """The launch of a layer normalisation over the channels of each pixel of a (N, H, W, c) map;
    `block` (tests) lowers the width beyond which the rows are looped."""
    h, w = hw
    loop = c > block
    bc = block if loop else triton.next_power_of_2(c)
    bm = max(1, min(BLOCK_PIXELS, SOFTMAX_BLOCK // bc))
    return Launch(_layernorm_nhwc, ((h * w, bm),), ("x", "w", "b", "y", "N", h, w), frozenset({"x", "w", "b", "y"}),
                  dict(C=c, X_RS=x_rs, Y_RS=y_rs, EPS=float(eps), LOOP=loop, BLOCK_M=bm, BLOCK_C=bc))


def _map_shape(t: torch.Tensor) -> tuple:
    """(N, H, W, C) of an NHWC map, or of a vector (N, F) as the map (N, 1, 1, F)."""
    return (t.shape[0], 1, 1, t.shape[1]) if t.dim() == 2 else tuple(t.shape)


def _output(x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        out = torch.empty(x.shape, device=x.device, dtype=x.dtype)
    assert _map_shape(out) == _map_shape(x), f"out is {tuple(out.shape)}, the input {tuple(x.shape)}"
    return out


def _span(t: torch.Tensor) -> tuple[int, int]:
    """The bytes [first, past the last) a view with non-negative strides spans."""
    last = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size()


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def pointwise(x: torch.Tensor, out: torch.Tensor | None = None, *, affine: tuple | None = None, steps=(),
              residual: torch.Tensor | None = None, mul: bool = False,
              prelu: torch.Tensor | None = None) -> torch.Tensor:
    """The pointwise kernel on the NHWC map (or (N, F) vector) `x`, into `out` where given (an
    NHWC view: a channel slice, or x itself), else into a new tensor. affine: (scale, shift),
    vectors of C, applied first. prelu: instead, the slopes of a prelu, a vector of C (or of 1,
    shared), applied first. steps: as conv.conv2d's ({"op": "relu"}, {"op": "scale", "args":
    {"s": 0.5}}, {"op": "add", "inputs": (1,)} where `residual` enters); a residual with no add
    step is combined first (x + r, or x * r with mul, then the steps). A residual of shape
    (N, 1, 1, C) or (N, C) on a larger map is a per-sample gate, broadcast over the pixels."""
    n, h, w, c = _map_shape(x)
    out = _output(x, out)
    steps = [dict(st, args=st.get("args", {})) for st in steps]
    if residual is not None and not any(st["op"] == "add" for st in steps):
        steps.insert(0, {"op": "add", "inputs": (1,), "args": {}})
    bcast = False
    if residual is not None:
        rshape = _map_shape(residual)
        bcast = rshape != (n, h, w, c)
        assert rshape in ((n, h, w, c), (n, 1, 1, c)), f"residual {tuple(residual.shape)} for a map {(n, h, w, c)}"
    launch, res, rest = pointwise_launch(
        c=c, hw=(h, w), x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"),
        r_rs=row_stride(residual, "residual") if residual is not None else None, affine=affine is not None,
        steps=steps, mul=mul, bcast=bcast, prelu=prelu is not None)
    assert not rest, f"steps the kernel cannot take in one launch: {rest}"
    assert (res >= 0) == (residual is not None), "a residual given without an add step, or the reverse"
    s, t = affine if affine is not None else (x, x)
    if prelu is not None:
        s = prelu.expand(c).contiguous()
    launch(n, x=x, s=s, t=t, r=residual if residual is not None else x, y=out)
    return out


def lrn(x: torch.Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0,
        out: torch.Tensor | None = None) -> torch.Tensor:
    """F.local_response_norm over the channels of the NHWC map `x`, into `out` where given (an
    NHWC view that does not overlap x), else into a new tensor."""
    n, h, w, c = _map_shape(x)
    out = _output(x, out)
    assert not _overlap(x, out), "lrn reads neighbouring channels that other programs write: not in place"
    lrn_launch(c=c, hw=(h, w), size=size, alpha=alpha, beta=beta, k=k, x_rs=row_stride(x, "x"),
               y_rs=row_stride(out, "out"))(n, x=x, y=out)
    return out


def softmax_channels(x: torch.Tensor, out: torch.Tensor | None = None, log: bool = False) -> torch.Tensor:
    """torch.softmax (with log, torch.log_softmax) over the channels of the NHWC map (or (N, F)
    vector) `x`, into `out` where given (an NHWC view, x itself included), else into a new tensor."""
    n, h, w, c = _map_shape(x)
    out = _output(x, out)
    softmax_launch(c=c, hw=(h, w), x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"), log=log)(n, x=x, y=out)
    return out


def layernorm_channels(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-6,
                       out: torch.Tensor | None = None, block: int = SOFTMAX_BLOCK) -> torch.Tensor:
    """F.layer_norm over the channels of each pixel of the NHWC map (or (N, F) vector) `x`, with
    weight and bias vectors of C, into `out` where given (an NHWC view, x itself included), else
    into a new tensor."""
    n, h, w, c = _map_shape(x)
    out = _output(x, out)
    layernorm_launch(c=c, hw=(h, w), eps=eps, x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"),
                     block=block)(n, x=x, w=weight, b=bias, y=out)
    return out
