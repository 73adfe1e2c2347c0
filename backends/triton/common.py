"""What every Triton kernel family shares: the activation layout, the epilogue's step codes, and
the launch record that both the Python wrappers (tests, benchmarks) and the generated file use.

Layout. Activations are NHWC with the channels innermost and a row stride: a map is a view
(N, H, W, C) with strides (H*W*rs, W*rs, rs, 1), where rs >= C is the width of the buffer it lives
in. A whole buffer has rs == C; a channel slice of a concat's buffer (concat in place) has rs ==
the concat's width and a data pointer at its first channel. Pixel p = (n*H + h)*W + w is at
p*rs. A vector (N, F) is the map (N, 1, 1, F). `row_stride` checks a tensor has this form.

Epilogue steps. A fused node's element-wise steps are a short program the kernel runs on its fp32
tile: up to PRE steps, then at most one residual add, then up to POST steps, each a code of
STEPS with one constexpr float S: the parameter of the ops that have one (STEP_PARAM: scale's
factor, leaky_relu's slope, elu's alpha, softplus's threshold). gelu has a code per form (exact,
tanh). softplus(beta, threshold) with beta != 1 is three slots, scale(beta), softplus(threshold)
at beta 1, scale(1/beta): softplus(x; b, t) = softplus(b*x; 1, t)/b, in PyTorch's form
(`b*x > t ? x : log1p(exp(b*x))/b`) exactly, up to rounding. `epilogue_codes` encodes a step list
into those constexpr slots, and says where the list must be split into further launches
(docs/triton.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import triton
import triton.language as tl

from netlang import ops

# the element-wise step codes a kernel's epilogue (and the pointwise kernel) understands
STEPS = {"relu": 1, "relu6": 2, "tanh": 3, "sigmoid": 4, "scale": 5, "hardswish": 6, "hardsigmoid": 7, "silu": 8,
         "gelu": 9, "leaky_relu": 11, "elu": 12, "mish": 13, "softplus": 14}
GELU_TANH = 10                # gelu(approximate="tanh")
STEP_PARAM = {"scale": "s", "leaky_relu": "slope", "elu": "alpha", "softplus": "threshold"}   # the S of a step
PRE, POST = 3, 2              # slots before and after the residual add
MIN_DOT = 16                  # tl.dot's smallest tile dimension on a GPU (the interpreter does not check)


@triton.jit
def output_pixels(pid, N, OH, OW, BLOCK_M: tl.constexpr):
    """A block of output pixels (M = N*OH*OW, int64): offsets, mask, and (n, oh, ow)."""
    offs_m = pid.to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    rest = offs_m % (OH * OW)
    return offs_m, offs_m < N * OH * OW, offs_m // (OH * OW), rest // OW, rest % OW


@triton.jit
def apply_step(x, CODE: tl.constexpr, S: tl.constexpr):
    """One element-wise step (a code of STEPS; 0 does nothing) on an fp32 tile."""
    if CODE == 1:
        x = tl.maximum(x, 0.0)
    elif CODE == 2:
        x = tl.minimum(tl.maximum(x, 0.0), 6.0)
    elif CODE == 3:
        e = tl.exp(-2.0 * tl.abs(x))
        t = (1.0 - e) / (1.0 + e)
        x = tl.where(x >= 0, t, -t)
    elif CODE == 4:
        x = 1.0 / (1.0 + tl.exp(-x))
    elif CODE == 5:
        x = x * S
    elif CODE == 6:
        x = x * tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
    elif CODE == 7:
        x = tl.minimum(tl.maximum(x + 3.0, 0.0), 6.0) / 6.0
    elif CODE == 8:
        x = x / (1.0 + tl.exp(-x))
    elif CODE == 9:
        x = 0.5 * x * (1.0 + tl.math.erf(x * 0.7071067811865476))
    elif CODE == 10:
        u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
        e = tl.exp(-2.0 * tl.abs(u))
        t = (1.0 - e) / (1.0 + e)
        x = 0.5 * x * (1.0 + tl.where(u >= 0, t, -t))
    elif CODE == 11:
        x = tl.where(x > 0, x, x * S)
    elif CODE == 12:
        x = tl.where(x > 0, x, S * (tl.exp(tl.minimum(x, 0.0)) - 1.0))
    elif CODE == 13:
        sp = tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x)))     # softplus, >= 0
        e = tl.exp(-2.0 * sp)
        x = x * (1.0 - e) / (1.0 + e)
    elif CODE == 14:
        x = tl.where(x > S, x, tl.maximum(x, 0.0) + tl.log(1.0 + tl.exp(-tl.abs(x))))
    return x


@triton.jit
def epilogue(acc, r_ptr, r_rows, cols, mask, HAS_RES: tl.constexpr,
             E0: tl.constexpr, E1: tl.constexpr, E2: tl.constexpr, F0: tl.constexpr, F1: tl.constexpr,
             S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr, T0: tl.constexpr, T1: tl.constexpr):
    """The steps E0..E2, the residual r[r_rows, cols] (if any), the steps F0, F1."""
    acc = apply_step(acc, E0, S0)
    acc = apply_step(acc, E1, S1)
    acc = apply_step(acc, E2, S2)
    if HAS_RES:
        acc += tl.load(r_ptr + r_rows[:, None] + cols[None, :], mask=mask, other=0.0).to(tl.float32)
    acc = apply_step(acc, F0, T0)
    acc = apply_step(acc, F1, T1)
    return acc


def epilogue_codes(steps) -> tuple[dict, int, list]:
    """The constexpr slots for the leading part of `steps` (dicts with "op", "args", and for an
    add its "inputs"), the residual input it consumes (an index into the node's inputs, or -1),
    and the steps left over, which the caller runs as further launches on the output."""
    slots = {"HAS_RES": False, **{k: 0 for k in ("E0", "E1", "E2", "F0", "F1")},
             **{k: 1.0 for k in ("S0", "S1", "S2", "T0", "T1")}}
    steps, i, res = [u for st in steps for u in _one_slot_each(st)], 0, -1

    def fill(prefix, scale, count):
        nonlocal i
        for k in range(count):
            if i == len(steps) or steps[i]["op"] not in STEPS:
                return
            slots[f"{prefix}{k}"], slots[f"{scale}{k}"] = step_code(steps[i])
            i += 1

    fill("E", "S", PRE)
    if i < len(steps) and steps[i]["op"] == "add":
        first, *rest = steps[i]["inputs"]
        slots["HAS_RES"], res = True, first
        if rest:                 # (an add of several residuals: one per launch)
            return slots, res, [dict(steps[i], inputs=tuple(rest))] + steps[i + 1:]
        i += 1
    fill("F", "T", POST)         # (without a residual, the F slots simply follow the E slots)
    return slots, res, steps[i:]


def step_code(st: dict) -> tuple[int, float]:
    """The (code, S) of one slot's step; a parameter left out takes the op's default."""
    a, op = st.get("args", {}), st["op"]
    if op == "gelu" and a.get("approximate") == "tanh":
        return GELU_TANH, 1.0
    if op not in STEP_PARAM:
        return STEPS[op], 1.0
    name = STEP_PARAM[op]
    default = ops.OPS[op].param_index[name].default
    return STEPS[op], float(a[name] if name in a else 1.0 if default is ops.REQUIRED else default)


def _one_slot_each(st: dict) -> list:
    """A step as the steps of one slot each: softplus with beta != 1 is scale, softplus, scale
    (see the module docstring); every other step is itself."""
    a = st.get("args", {})
    if st["op"] != "softplus" or float(a.get("beta", 1.0)) == 1.0:
        return [st]
    beta = float(a["beta"])
    return [dict(st, op="scale", args={"s": beta}), dict(st, args=dict(a, beta=1.0)),
            dict(st, op="scale", args={"s": 1.0 / beta})]


def row_stride(t: torch.Tensor, what: str = "tensor") -> int:
    """The row stride of an NHWC map (or (N, F) vector) in netlang's layout; an error otherwise."""
    if t.dim() == 2:
        ok = t.stride(1) == 1
        return t.stride(0) if ok else _bad(t, what)
    n, h, w, c = t.shape
    # (the stride of a size-1 dimension is arbitrary: read the pixel stride where a pixel steps)
    rs = t.stride(2) if w > 1 else t.stride(1) if h > 1 else t.stride(0) if n > 1 else c
    if t.stride(3) != 1 or rs < c or (w > 1 and h > 1 and t.stride(1) != w * rs) \
            or (n > 1 and t.stride(0) != h * w * rs):
        _bad(t, what)
    return rs


def _bad(t, what):
    raise ValueError(f"{what}: expected an NHWC map with unit channel stride and packed pixels, got shape "
                     f"{tuple(t.shape)} strides {t.stride()}")


@dataclass
class Launch:
    """One kernel launch, as data: the kernel, its grid (each entry an int, or (per_sample,
    block) meaning cdiv(N * per_sample, block)), its arguments in order (tensor roles, which the
    caller binds, and runtime scalars, where the string "N" is the batch size) and constexprs."""
    kernel: object
    grid: tuple
    args: tuple                  # ("x", "w", ...) roles and scalars; "N" for the batch
    roles: frozenset = field(default_factory=frozenset)
    consts: dict = field(default_factory=dict)

    def grid_for(self, n: int) -> tuple:
        return tuple(g if isinstance(g, int) else triton.cdiv(n * g[0], g[1]) for g in self.grid)

    def __call__(self, n: int, **tensors):
        args = [tensors[a] if a in self.roles else (n if a == "N" else a) for a in self.args]
        self.kernel[self.grid_for(n)](*args, **self.consts)

    def source(self, tensors: dict) -> str:
        """The launch as a line of Python, with the tensor roles bound to expressions."""
        grid = ", ".join(str(g) if isinstance(g, int) else f"cdiv(N * {g[0]}, {g[1]})" for g in self.grid)
        args = [tensors[a] if a in self.roles else ("N" if a == "N" else repr(a)) for a in self.args]
        args += [f"{k}={v!r}" for k, v in self.consts.items()]
        return f"{self.kernel.__name__}[({grid},)]({', '.join(args)})"


def out_hw(h, w, kernel, stride, padding, dilation) -> tuple[int, int]:
    """A convolution's output height and width, as PyTorch's."""
    return tuple((size + 2 * p - d * (k - 1) - 1) // s + 1
                 for size, k, s, p, d in zip((h, w), kernel, stride, padding, dilation))


def run_conv(make_launch, x: torch.Tensor, w_packed: torch.Tensor, bias, *, cout: int, kernel, stride, padding,
             dilation, groups: int, prologue, steps, residual, out, blocks) -> torch.Tensor:
    """One eager convolution launch of `make_launch` (conv_launch, depthwise_launch) on the NHWC
    map `x`: conv.conv2d's contract."""
    n, h, w, c = x.shape
    oh, ow = out_hw(h, w, kernel, stride, padding, dilation)
    if out is None:
        out = torch.empty((n, oh, ow, cout), device=x.device, dtype=x.dtype)
    assert tuple(out.shape) == (n, oh, ow, cout), f"out is {tuple(out.shape)}, the conv gives {(n, oh, ow, cout)}"
    steps = [dict(st, args=st.get("args", {})) for st in steps]
    launch, res, rest = make_launch(
        cin=c, cout=cout, hw=(h, w), ohw=(oh, ow), kernel=kernel, stride=stride, padding=padding,
        dilation=dilation, groups=groups, x_rs=row_stride(x, "x"), y_rs=row_stride(out, "out"),
        r_rs=row_stride(residual, "residual") if residual is not None else None, bias=bias is not None,
        prologue=(prologue[2] or "") if prologue else None, steps=steps, blocks=blocks)
    assert not rest, f"steps the kernel cannot take in one launch: {rest}"
    assert (res >= 0) == (residual is not None), "a residual given without an add step, or the reverse"
    ps, pt = (prologue[0], prologue[1]) if prologue else (x, x)
    launch(n, x=x, w=w_packed, b=bias if bias is not None else x, ps=ps, pt=pt,
           r=residual if residual is not None else x, y=out, y2=out)
    return out
