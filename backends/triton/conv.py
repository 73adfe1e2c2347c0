"""Implicit-GEMM convolution on NHWC activations, with the fused node's prologue and epilogue.

One program computes y[n, oh, ow, g*COUT_G + j] for a tile of output pixels (M = N*OH*OW) and a
tile of one group's output channels, summing over K = KH*KW*CIN_G. Kernel size, stride, padding,
dilation, group widths and row strides are `tl.constexpr`, so each layer gets its own
specialisation with the window unrolled. Three ways to walk K:

- GEMM (1x1, stride 1, no padding): pixel p's row is x[p*X_RS:], a plain matrix product;
- the window unrolled statically, channels in blocks of BLOCK_K (the general case);
- FLAT_K (a group narrower than tl.dot's 16, ResNeXt's 4 channels per group): K is walked as
  one flat index over (kh, kw, c), so a 3x3 window of 4 channels is 36 of a 64-wide block
  instead of nine 16-wide blocks a quarter used.

Accumulation is fp32 with `input_precision="ieee"` (no TF32); every load and store is masked;
pixel offsets are int64 (an activation may pass 2^31 elements at large batch).

Prologue (pre-activation networks): x*scale[c] + shift[c], then relu or relu6, on every real
pixel as it is read; padding stays zero. Epilogue (common.epilogue): the bias (a folded
batchnorm), the element-wise steps, a residual, more steps, the cast and the store into a view
with row stride Y_RS: a whole buffer, a concat's channel slice, or a merged sibling's part.

Weights are prepacked once (`pack_weight`): (groups, KH, KW, CIN_G, COUT_G), so a K row is
contiguous in the output channels a tile reads.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import MIN_DOT, STEPS, Launch, apply_step, epilogue, epilogue_codes, output_pixels, run_conv

FAMILY = "conv2d_nhwc"
POOL_MAX = 128            # the largest map a pooled epilogue holds in one tile (ResNet's 7x7, Inception's 8x8)


@triton.jit
def _conv2d_nhwc(x_ptr, w_ptr, b_ptr, ps_ptr, pt_ptr, r_ptr, y_ptr, y2_ptr, N, H, W, OH, OW,
                 X_RS: tl.constexpr, Y_RS: tl.constexpr, R_RS: tl.constexpr, Y2_RS: tl.constexpr,
                 Y2_LO: tl.constexpr, Y2_HI: tl.constexpr,
                 KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                 PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                 CIN_G: tl.constexpr, COUT_G: tl.constexpr, GEMM: tl.constexpr, FLAT_K: tl.constexpr,
                 HAS_BIAS: tl.constexpr, PRO_AFFINE: tl.constexpr, PRO_ACT: tl.constexpr,
                 HAS_RES: tl.constexpr, E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr,
                 F0: tl.constexpr, F1: tl.constexpr, S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
                 T0: tl.constexpr, T1: tl.constexpr, EP_LO: tl.constexpr, EP_HI: tl.constexpr,
                 POOL: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    if POOL:
        # one sample's whole output map per program (BLOCK_M >= OH*OW): the epilogue ends in its mean
        r = tl.arange(0, BLOCK_M)
        n = tl.program_id(0).to(tl.int64) + tl.zeros((BLOCK_M,), dtype=tl.int64)     # (a row vector, as below)
        offs_m = n * (OH * OW) + r
        mask_m = r < OH * OW
        oh = r // OW
        ow = r % OW
    else:
        offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    g = tl.program_id(2)
    mask_n = offs_n < COUT_G
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if FLAT_K:
        KTOT: tl.constexpr = KH * KW * CIN_G
        for k0 in tl.static_range(0, KTOT, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            mask_k = offs_k < KTOT
            tap = offs_k // CIN_G
            c = offs_k % CIN_G
            ih = (oh * SH - PH)[:, None] + ((tap // KW) * DH)[None, :]
            iw = (ow * SW - PW)[:, None] + ((tap % KW) * DW)[None, :]
            inside = mask_m[:, None] & mask_k[None, :] & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            chan = g * CIN_G + c
            a = tl.load(x_ptr + ((n[:, None] * H + ih) * W + iw) * X_RS + chan[None, :], mask=inside, other=0.0)
            if PRO_AFFINE:
                s = tl.load(ps_ptr + chan, mask=mask_k, other=0.0).to(tl.float32)
                t = tl.load(pt_ptr + chan, mask=mask_k, other=0.0).to(tl.float32)
                a = tl.where(inside, apply_step(a.to(tl.float32) * s[None, :] + t[None, :], PRO_ACT, 1.0),
                             0.0).to(a.dtype)
            b = tl.load(w_ptr + (g * KTOT + offs_k)[:, None] * COUT_G + offs_n[None, :],
                        mask=mask_k[:, None] & mask_n[None, :], other=0.0)
            acc += tl.dot(a, b, input_precision="ieee")
    else:
        # pointer tiles built once per tap and advanced by BLOCK_K channels (the loop does no
        # integer arithmetic on 2-D tiles: cheap on a GPU, and much cheaper in the interpreter)
        offs_kb = tl.arange(0, BLOCK_K)
        w_tile = offs_kb[:, None] * COUT_G + offs_n[None, :]
        for kh in tl.static_range(KH):
            for kw in tl.static_range(KW):
                if GEMM:
                    inside = mask_m
                    row = offs_m * X_RS + g * CIN_G
                else:
                    ih = oh * SH - PH + kh * DH
                    iw = ow * SW - PW + kw * DW
                    inside = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
                    row = ((n * H + ih) * W + iw) * X_RS + g * CIN_G
                a_ptrs = x_ptr + row[:, None] + offs_kb[None, :]
                b_ptrs = w_ptr + ((g * KH + kh) * KW + kw) * CIN_G * COUT_G + w_tile
                for c0 in range(0, CIN_G, BLOCK_K):
                    mask_k = offs_kb < CIN_G - c0
                    m2 = inside[:, None] & mask_k[None, :]
                    a = tl.load(a_ptrs, mask=m2, other=0.0)
                    if PRO_AFFINE:
                        chan = g * CIN_G + c0 + offs_kb
                        s = tl.load(ps_ptr + chan, mask=mask_k, other=0.0).to(tl.float32)
                        t = tl.load(pt_ptr + chan, mask=mask_k, other=0.0).to(tl.float32)
                        a = tl.where(m2, apply_step(a.to(tl.float32) * s[None, :] + t[None, :], PRO_ACT, 1.0),
                                     0.0).to(a.dtype)
                    b = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                    acc += tl.dot(a, b, input_precision="ieee")
                    a_ptrs += BLOCK_K
                    b_ptrs += BLOCK_K * COUT_G
    chan = g * COUT_G + offs_n
    if HAS_BIAS:
        acc += tl.load(b_ptr + chan, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    mask = mask_m[:, None] & mask_n[None, :]
    if EP_HI >= 0:
        # merged siblings whose steps differ: the steps apply to channels EP_LO..EP_HI only
        stepped = epilogue(acc, r_ptr, offs_m * R_RS, chan, mask, HAS_RES, E0, E1, E2, F0, F1, S0, S1, S2, T0, T1)
        acc = tl.where(((chan >= EP_LO) & (chan < EP_HI))[None, :], stepped, acc)
    else:
        acc = epilogue(acc, r_ptr, offs_m * R_RS, chan, mask, HAS_RES, E0, E1, E2, F0, F1, S0, S1, S2, T0, T1)
    if POOL:
        mean = tl.sum(tl.where(mask, acc, 0.0), axis=0) / (OH * OW * 1.0)
        tl.store(y_ptr + tl.program_id(0).to(tl.int64) * Y_RS + chan, mean.to(y_ptr.dtype.element_ty), mask=mask_n)
    elif Y2_HI > 0:
        # a merged sibling's part goes to a second destination (its slice of a concat's buffer)
        part = (chan >= Y2_LO) & (chan < Y2_HI)
        tl.store(y_ptr + (offs_m * Y_RS)[:, None] + chan[None, :], acc.to(y_ptr.dtype.element_ty),
                 mask=mask & ~part[None, :])
        tl.store(y2_ptr + (offs_m * Y2_RS)[:, None] + (chan - Y2_LO)[None, :], acc.to(y2_ptr.dtype.element_ty),
                 mask=mask & part[None, :])
    else:
        tl.store(y_ptr + (offs_m * Y_RS)[:, None] + chan[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


KERNELS = (_conv2d_nhwc,)


def pack_weight(weight: torch.Tensor, groups: int, dtype=None) -> torch.Tensor:
    """(Cout, Cin/groups, KH, KW), PyTorch's layout (a linear's (out, in) is 1x1), as the kernel
    reads it: (groups, KH, KW, Cin/groups, Cout/groups), contiguous."""
    if weight.dim() == 2:
        weight = weight[:, :, None, None]
    cout, cin_g, kh, kw = weight.shape
    out = weight.reshape(groups, cout // groups, cin_g, kh, kw).permute(0, 3, 4, 2, 1).contiguous()
    return out if dtype is None else out.to(dtype)


def launch_config(m: int, cout_g: int, cin_g: int, k_flat: int | None = None) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, BLOCK_K), the deterministic default: every one >= 16, as tl.dot needs
    on a GPU (the interpreter does not check it). k_flat: K when it is walked flat."""
    block_m = 64
    block_n = max(MIN_DOT, min(64, triton.next_power_of_2(cout_g)))
    k = k_flat if k_flat is not None else cin_g
    block_k = max(MIN_DOT, min(64, triton.next_power_of_2(k)))
    assert min(block_m, block_n, block_k) >= MIN_DOT
    return block_m, block_n, block_k


def conv_launch(*, cin: int, cout: int, hw: tuple, ohw: tuple, kernel=(1, 1), stride=(1, 1), padding=(0, 0),
                dilation=(1, 1), groups: int = 1, x_rs: int | None = None, y_rs: int | None = None,
                r_rs: int | None = None, bias: bool = True, prologue=None, steps=(), blocks=None,
                step_channels: tuple | None = None, pool: bool = False, second: tuple | None = None) -> tuple:
    """The launch of one fused convolution (a linear layer is a 1x1 one on a 1x1 map), and the
    epilogue steps it cannot take (run them after it). prologue: None, or the activation after
    the affine ("relu", "relu6" or ""). steps: the epilogue after the bias, as the fused IR
    gives it (adds refer to input positions: the residual taken is returned as its position).
    prologue "" is the affine alone. step_channels: (lo, hi), the steps apply to those output
    channels only (merged siblings of which some have an activation and the rest none). pool:
    the epilogue ends in a global average pool, the output (N, 1, 1, Cout); one program holds a
    sample's whole map, so at most POOL_MAX pixels. second: (lo, hi, row stride): output channels
    lo..hi go to the tensor bound to "y2" instead (a merged sibling's part, into its concat)."""
    (h, w), (oh, ow) = hw, ohw
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    cin_g, cout_g = cin // groups, cout // groups
    gemm = (kh, kw, sh, sw, ph, pw) == (1, 1, 1, 1, 0, 0)
    flat = cin_g < MIN_DOT and kh * kw > 1
    slots, res, rest = epilogue_codes(steps)
    bm, bn, bk = blocks or launch_config(0, cout_g, cin_g, kh * kw * cin_g if flat else None)
    if pool:
        assert oh * ow <= POOL_MAX and not rest, "a pooled epilogue needs a small map and every step in one launch"
        bm = max(MIN_DOT, triton.next_power_of_2(oh * ow))
    consts = dict(X_RS=x_rs or cin, Y_RS=y_rs or cout, R_RS=(r_rs or cout) if res >= 0 else 0,
                  Y2_RS=second[2] if second else 0, Y2_LO=second[0] if second else 0,
                  Y2_HI=second[1] if second else 0,
                  KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw, CIN_G=cin_g, COUT_G=cout_g,
                  GEMM=gemm, FLAT_K=flat, HAS_BIAS=bias, PRO_AFFINE=prologue is not None,
                  PRO_ACT=STEPS.get(prologue or "", 0), **slots,
                  EP_LO=step_channels[0] if step_channels else 0, EP_HI=step_channels[1] if step_channels else -1,
                  POOL=pool, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk)
    launch = Launch(_conv2d_nhwc, ((bm if pool else oh * ow, bm), triton.cdiv(cout_g, bn), groups),
                    ("x", "w", "b", "ps", "pt", "r", "y", "y2", "N", h, w, oh, ow),
                    frozenset({"x", "w", "b", "ps", "pt", "r", "y", "y2"}), consts)
    return launch, res, rest


def conv2d(x: torch.Tensor, w_packed: torch.Tensor, bias: torch.Tensor | None = None, *, kernel, stride=(1, 1),
           padding=(0, 0), dilation=(1, 1), groups: int = 1, prologue: tuple | None = None, steps=(),
           residual: torch.Tensor | None = None, out: torch.Tensor | None = None, blocks=None) -> torch.Tensor:
    """The fused convolution of the NHWC map `x` (common.py's layout: a channel slice is fine).
    prologue: (scale, shift, activation or None) applied to x as it is read. steps: epilogue
    steps after the bias ({"op": "relu"}, {"op": "scale", "args": {"s": 0.17}}, {"op": "add",
    "inputs": (1,)} for `residual`). Writes into `out` (an NHWC view, e.g. a concat's channel
    slice) where given, else into a new tensor."""
    g, kh, kw, cin_g, cout_g = w_packed.shape
    assert g == groups and cin_g * groups == x.shape[3] and (kh, kw) == tuple(kernel), "weights packed for another conv"
    return run_conv(conv_launch, x, w_packed, bias, cout=cout_g * groups, kernel=kernel, stride=stride,
                    padding=padding, dilation=dilation, groups=groups, prologue=prologue, steps=steps,
                    residual=residual, out=out, blocks=blocks)
