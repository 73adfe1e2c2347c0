"""Direct depthwise convolution on NHWC activations, with the fused node's prologue and epilogue.

Depthwise: groups == Cin, Cout = Cin * multiplier, output channel co reading input channel
co // multiplier (PyTorch's grouped layout). Each output is a sum of only KH*KW products, so a
GEMM tile would be almost all padding (conv.py runs a depthwise group as a 1-wide K against
tl.dot's 16); this kernel multiplies and adds on the CUDA cores instead (no tl.dot).

One program computes y[n, oh, ow, co] for a tile of BLOCK_M output pixels (M = N*OH*OW) by
BLOCK_C output channels. The window is unrolled with tl.static_range (kernel size, stride,
padding, dilation, widths and row strides are `tl.constexpr`, as in conv.py); each tap loads a
(BLOCK_M, BLOCK_C) tile of the input, contiguous in the channels, and one row of weights.
Accumulation is fp32; every load and store is masked; pixel offsets are int64.

The interface is conv.py's, so a planner can call either: `depthwise_launch` takes
`conv.conv_launch`'s keywords and returns the same (Launch, residual position, steps left over),
with the same tensor roles (x, w, b, ps, pt, r, y). Prologue: x*scale[c] + shift[c], then relu
or relu6, on every real pixel as it is read (kept in fp32); padding stays zero. Epilogue: the
bias, then common.epilogue's slots (steps, residual, steps), the cast and the store into a view
with row stride Y_RS (a whole buffer or a concat's channel slice).

Weights are prepacked once (`pack_weight_dw`): (KH, KW, Cout), so a tap's weights for a channel
block are contiguous.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .common import STEPS, Launch, apply_step, epilogue, epilogue_codes, output_pixels, run_conv

FAMILY = "depthwise_nhwc"


@triton.jit
def _depthwise_nhwc(x_ptr, w_ptr, b_ptr, ps_ptr, pt_ptr, r_ptr, y_ptr, N, H, W, OH, OW,
                    X_RS: tl.constexpr, Y_RS: tl.constexpr, R_RS: tl.constexpr,
                    KH: tl.constexpr, KW: tl.constexpr, SH: tl.constexpr, SW: tl.constexpr,
                    PH: tl.constexpr, PW: tl.constexpr, DH: tl.constexpr, DW: tl.constexpr,
                    C: tl.constexpr, MULT: tl.constexpr,
                    HAS_BIAS: tl.constexpr, PRO_AFFINE: tl.constexpr, PRO_ACT: tl.constexpr,
                    HAS_RES: tl.constexpr, E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr,
                    F0: tl.constexpr, F1: tl.constexpr, S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
                    T0: tl.constexpr, T1: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    COUT: tl.constexpr = C * MULT
    offs_m, mask_m, n, oh, ow = output_pixels(tl.program_id(0), N, OH, OW, BLOCK_M)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)      # output channels
    mask_c = offs_c < COUT
    cin = offs_c // MULT                                              # the input channel each reads
    if PRO_AFFINE:
        s = tl.load(ps_ptr + cin, mask=mask_c, other=0.0).to(tl.float32)
        t = tl.load(pt_ptr + cin, mask=mask_c, other=0.0).to(tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_C), dtype=tl.float32)
    for kh in tl.static_range(KH):
        for kw in tl.static_range(KW):
            ih = oh * SH - PH + kh * DH
            iw = ow * SW - PW + kw * DW
            inside = mask_m & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            m2 = inside[:, None] & mask_c[None, :]
            row = ((n * H + ih) * W + iw) * X_RS
            a = tl.load(x_ptr + row[:, None] + cin[None, :], mask=m2, other=0.0).to(tl.float32)
            if PRO_AFFINE:
                a = tl.where(m2, apply_step(a * s[None, :] + t[None, :], PRO_ACT, 1.0), 0.0)
            wt = tl.load(w_ptr + (kh * KW + kw) * COUT + offs_c, mask=mask_c, other=0.0).to(tl.float32)
            acc += a * wt[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_c, mask=mask_c, other=0.0).to(tl.float32)[None, :]
    mask = mask_m[:, None] & mask_c[None, :]
    acc = epilogue(acc, r_ptr, offs_m * R_RS, offs_c, mask, HAS_RES, E0, E1, E2, F0, F1, S0, S1, S2, T0, T1)
    tl.store(y_ptr + (offs_m * Y_RS)[:, None] + offs_c[None, :], acc.to(y_ptr.dtype.element_ty), mask=mask)


KERNELS = (_depthwise_nhwc,)


def is_depthwise(cin: int, cout: int, groups: int) -> bool:
    """Whether a convolution is depthwise (this kernel's case): one group per input channel."""
    return groups == cin and groups > 1 and cout % cin == 0


def pack_weight_dw(weight: torch.Tensor, dtype=None) -> torch.Tensor:
    """(Cout, 1, KH, KW), PyTorch's layout of a depthwise convolution, as the kernel reads it:
    (KH, KW, Cout), contiguous."""
    cout, one, kh, kw = weight.shape
    assert one == 1, f"a depthwise weight has one input channel per group, got {tuple(weight.shape)}"
    out = weight[:, 0].permute(1, 2, 0).contiguous()
    return out if dtype is None else out.to(dtype)


def launch_config_dw(cout: int) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_C), the deterministic default: 64 pixels by up to 64 channels (128
    contiguous bytes a pixel in fp16)."""
    return 64, max(8, min(64, triton.next_power_of_2(cout)))


def depthwise_launch(*, cin: int, cout: int, hw: tuple, ohw: tuple, kernel=(1, 1), stride=(1, 1), padding=(0, 0),
                     dilation=(1, 1), groups: int = 1, x_rs: int | None = None, y_rs: int | None = None,
                     r_rs: int | None = None, bias: bool = True, prologue=None, steps=(), blocks=None) -> tuple:
    """conv.conv_launch for a depthwise convolution (groups == cin, cout a multiple of cin): the
    launch, the residual input it takes (a position, or -1) and the epilogue steps it cannot
    take. prologue: None (no prologue), or the activation after the affine: "relu", "relu6", or
    "" for the affine alone. blocks: (BLOCK_M, BLOCK_C); of a longer tuple (conv's (M, N, K))
    the first two."""
    assert groups == cin and cout % cin == 0, \
        f"not depthwise: cin={cin}, cout={cout}, groups={groups} (needs groups == cin, cout a multiple of cin)"
    (h, w), (oh, ow) = hw, ohw
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    slots, res, rest = epilogue_codes(steps)
    bm, bc = tuple(blocks[:2]) if blocks else launch_config_dw(cout)
    consts = dict(X_RS=x_rs or cin, Y_RS=y_rs or cout, R_RS=(r_rs or cout) if res >= 0 else 0,
                  KH=kh, KW=kw, SH=sh, SW=sw, PH=ph, PW=pw, DH=dh, DW=dw, C=cin, MULT=cout // cin,
                  HAS_BIAS=bias, PRO_AFFINE=prologue is not None, PRO_ACT=STEPS.get(prologue or "", 0),
                  **slots, BLOCK_M=bm, BLOCK_C=bc)
    launch = Launch(_depthwise_nhwc, ((oh * ow, bm), triton.cdiv(cout, bc)),
                    ("x", "w", "b", "ps", "pt", "r", "y", "N", h, w, oh, ow),
                    frozenset({"x", "w", "b", "ps", "pt", "r", "y"}), consts)
    return launch, res, rest


def depthwise_conv2d(x: torch.Tensor, w_packed: torch.Tensor, bias: torch.Tensor | None = None, *, kernel,
                     stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int | None = None,
                     prologue: tuple | None = None, steps=(), residual: torch.Tensor | None = None,
                     out: torch.Tensor | None = None, blocks=None) -> torch.Tensor:
    """conv.conv2d for a depthwise convolution of the NHWC map `x` (a channel slice is fine),
    with weights from pack_weight_dw. groups: None or the channel count. prologue: (scale, shift,
    activation or None). steps, residual, out: as conv.conv2d."""
    c = x.shape[3]
    kh, kw, cout = w_packed.shape
    assert groups in (None, c), f"depthwise needs groups == channels ({c}), got {groups}"
    assert cout % c == 0 and (kh, kw) == tuple(kernel), "weights packed for another conv"
    return run_conv(depthwise_launch, x, w_packed, bias, cout=cout, kernel=kernel, stride=stride, padding=padding,
                    dilation=dilation, groups=c, prologue=prologue, steps=steps, residual=residual, out=out,
                    blocks=blocks)
