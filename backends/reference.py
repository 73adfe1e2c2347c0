"""The reference interpreter: the oracle every lowering and every pass is tested against.

It evaluates the IR node by node, in topological order, with functional torch ops and the weights
of a state_dict (keys are the IR's names, as netlang.ir.state_entries lists them). No modules, no
in-place operations, no fusion, no generated code: each op is a few lines that can be checked by
eye against docs/language.md. Inference semantics (batchnorm with running statistics; dropout,
drop_path and mean(drop=p) are the identity and the plain mean); with training=True batchnorm uses
the batch's statistics, and a random op that would act is an error, since its draws cannot be
matched.
"""
from __future__ import annotations

import math

import networkx as nx
import torch
import torch.nn.functional as F

from netlang.ir import eval_outputs, inputs_of, state_entries, topo_order


def _pair_pad(a: dict) -> tuple:
    """A pool's padding: "same" (stride 1, odd kernel) is k // 2 on each side."""
    return (a["k"][0] // 2, a["k"][1] // 2) if a["pad"] == "same" else tuple(a["pad"])


def _conv(x, a, w, b):
    if a["pad"] == "same":
        # Total padding d * (k - 1) per axis, the odd pixel at the bottom and right (PyTorch's rule).
        th, tw = (a["dilation"][i] * (a["k"][i] - 1) for i in range(2))
        x = F.pad(x, (tw // 2, tw - tw // 2, th // 2, th - th // 2))
        pad = (0, 0)
    else:
        pad = tuple(a["pad"])
    return F.conv2d(x, w, b, tuple(a["stride"]), pad, tuple(a["dilation"]), a["groups"])


def _batchnorm(x, a, p, training):
    c = x.shape[1]
    if training and not a.get("frozen"):        # a frozen batchnorm keeps its statistics in training too
        dims = [0] + list(range(2, x.dim()))
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
    else:
        mean, var = p["running_mean"], p["running_var"]
    view = (1, c) + (1,) * (x.dim() - 2)
    y = (x - mean.view(view)) / torch.sqrt(var.view(view) + a["eps"])
    if a["affine"]:
        y = y * p["weight"].view(view) + p["bias"].view(view)
    return y


def _crop(x, h: int, w: int):
    top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return x[:, :, top:top + h, left:left + w]


def _no_randomness(name: str, p: float, training: bool) -> None:
    if training and p > 0:
        raise NotImplementedError(f"{name}: the reference cannot match random draws in training")


def evaluate(op: str, a: dict, xs: list, p: dict, training: bool = False):
    """One node: op with canonical args `a` on input tensors `xs`, with its state tensors `p`."""
    x = xs[0] if xs else None
    if op == "conv":
        return _conv(x, a, p["weight"], p.get("bias"))
    if op == "conv_t":
        return F.conv_transpose2d(x, p["weight"], p.get("bias"), tuple(a["stride"]), tuple(a["pad"]),
                                  tuple(a["output_pad"]), a["groups"], tuple(a["dilation"]))
    if op == "linear":
        if x.dim() == 4:          # at each pixel, over its channels
            return torch.einsum("nchw,oc->nohw", x, p["weight"]) + (
                p["bias"].view(1, -1, 1, 1) if "bias" in p else 0)
        return F.linear(x, p["weight"], p.get("bias"))
    if op == "layernorm":
        view = (1, -1) + (1,) * (x.dim() - 2)
        mean = x.mean(1, keepdim=True)
        var = ((x - mean) ** 2).mean(1, keepdim=True)
        return (x - mean) / torch.sqrt(var + a["eps"]) * p["weight"].view(view) + p["bias"].view(view)
    if op == "layer_scale":
        return x * p[""]
    if op == "batchnorm":
        return _batchnorm(x, a, p, training)
    if op == "lrn":
        return F.local_response_norm(x, a["size"], a["alpha"], a["beta"], a["k"])
    if op == "relu":
        return torch.clamp(x, min=0)
    if op == "relu6":
        return torch.clamp(x, 0, 6)
    if op == "tanh":
        return torch.tanh(x)
    if op == "sigmoid":
        return torch.sigmoid(x)
    if op == "hardswish":
        return x * torch.clamp(x + 3, 0, 6) / 6
    if op == "hardsigmoid":
        return torch.clamp(x + 3, 0, 6) / 6
    if op == "silu":
        return x * torch.sigmoid(x)
    if op == "gelu":
        if a["approximate"] == "tanh":
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    if op == "leaky_relu":
        return torch.where(x > 0, x, a["slope"] * x)
    if op == "elu":
        return torch.where(x > 0, x, a["alpha"] * torch.expm1(x))
    if op == "prelu":
        # one slope, or one per channel (dim 1, of a map or of a vector)
        w = p["weight"].view((1, -1) + (1,) * (x.dim() - 2))
        return torch.where(x > 0, x, w * x)
    if op == "mish":
        return x * torch.tanh(torch.log1p(torch.exp(x)))
    if op == "softplus":
        bx = a["beta"] * x       # (the branch not taken is clamped, so it cannot overflow)
        return torch.where(bx > a["threshold"], x, torch.log1p(torch.exp(bx.clamp(max=a["threshold"]))) / a["beta"])
    if op == "softmax":
        return torch.softmax(x, 1)
    if op == "log_softmax":
        return x - torch.logsumexp(x, 1, keepdim=True)
    if op == "identity":
        return x
    if op == "scale":
        return x * a["s"]
    if op in ("dropout", "drop_path"):
        _no_randomness(op, a["p"], training)
        return x
    if op == "flatten":
        return x.reshape(x.shape[0], -1)
    if op == "maxpool":
        return F.max_pool2d(x, tuple(a["k"]), tuple(a["stride"]), _pair_pad(a), ceil_mode=a["ceil"])
    if op == "avgpool":
        return F.avg_pool2d(x, tuple(a["k"]), tuple(a["stride"]), _pair_pad(a), ceil_mode=a["ceil"],
                            count_include_pad=a["count_include_pad"])
    if op == "global_avgpool":
        return x.mean((2, 3), keepdim=True)
    if op == "adaptive_avgpool":
        return F.adaptive_avg_pool2d(x, tuple(a["out"]))
    if op == "upsample":
        factor = tuple(float(f) for f in a["factor"])
        if a["mode"] == "bilinear":
            return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        return F.interpolate(x, scale_factor=factor, mode="nearest")
    if op == "center_crop":
        return _crop(x, a["h"], a["w"])
    if op == "channel_shuffle":
        # channel c' = j * groups + i holds channel i * C/groups + j (ShuffleNet's formula)
        n, c, h, w = x.shape
        return x.reshape(n, a["groups"], c // a["groups"], h, w).transpose(1, 2).reshape(n, c, h, w)
    if op == "slice":
        return x[:, a["start"]:a["stop"]]
    if op == "concat":
        if a["crop"] and x.dim() == 4:
            h, w = min(t.shape[2] for t in xs), min(t.shape[3] for t in xs)
            xs = [_crop(t, h, w) for t in xs]
        return torch.cat(xs, 1)
    if op == "add":
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out
    if op == "mul":
        out = xs[0]
        for t in xs[1:]:
            out = out * t
        return out
    if op == "mean":
        _no_randomness("mean(drop)", a["drop"], training)
        out = xs[0]
        for t in xs[1:]:
            out = out + t
        return out / len(xs)
    raise KeyError(f"the reference interpreter has no rule for op {op!r}")


def run_eval(G: nx.MultiDiGraph, state: dict, x) -> tuple:
    """The outputs G returns at inference (every output but the auxiliary ones, main first)."""
    return eval_part(G, run(G, state, x))


def eval_part(G: nx.MultiDiGraph, values) -> tuple:
    """Of run's values (one per output), those of the outputs G returns at inference."""
    by_name = dict(zip(G.graph["outputs"], values))
    return tuple(by_name[o] for o in eval_outputs(G))


def run(G: nx.MultiDiGraph, state: dict, x, training: bool = False) -> tuple:
    """Every output of G (main first, in declared order) for the batch x, with weights `state`."""
    per_node: dict = {}
    for key, t in state.items():
        node, _, suffix = key.rpartition(".")
        per_node.setdefault(node, {})[suffix] = t
        per_node.setdefault(key, {})[""] = t      # (a layer whose parameter is named by the layer)
    values = {}
    for n in topo_order(G):
        data = G.nodes[n]
        if data["op"] == "input":
            values[n] = x
            continue
        ins = [values[s] for s in inputs_of(G, n)]
        if any(k in data for k in ("prologue", "epilogue", "siblings")):
            values[n] = _fused(data, ins, per_node, training)
        else:
            values[n] = evaluate(data["op"], data["args"], ins, per_node.get(n, {}), training)
    return tuple(values[o] for o in G.graph["outputs"])


def _fused(data: dict, ins: list, per_node: dict, training: bool):
    """A node the fusion passes made: its steps one after another, each as the node it stands
    for would compute it (a folded batchnorm is a batchnorm here: folding is the backends' job)."""
    def steps(t, seq):
        for st in seq:
            if st["op"] == "add":
                for i in st["inputs"]:
                    t = t + ins[i]
            else:
                t = evaluate(st["op"], st["args"], [t], per_node.get(st["node"], {}), training)
        return t
    x = steps(ins[0], data.get("prologue", ()))
    if "siblings" in data:
        return torch.cat([steps(evaluate(data["op"], s["args"], [x], per_node.get(s["node"], {}), training),
                                s["epilogue"]) for s in data["siblings"]], 1)
    own = {k: v for k, v in per_node.get(data["fused_from"][0], {}).items()}
    return steps(evaluate(data["op"], data["args"], [x], own, training), data.get("epilogue", ()))


def random_state(G: nx.MultiDiGraph, seed: int = 0, dtype=torch.float32) -> dict:
    """Random weights for every state entry of G, batchnorm statistics included (the init values,
    weight 1, bias 0, mean 0, variance 1, would hide a wrong fold or a swapped buffer). Weights are
    scaled by 1/sqrt(fan-in) so activations stay near unit size through deep networks."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape, buffer in state_entries(G):
        suffix = key.rpartition(".")[2]
        if key in G and G.nodes[key]["op"] == "layer_scale":
            out[key] = torch.rand(shape, generator=g, dtype=dtype) + 0.5
        elif suffix == "num_batches_tracked":
            out[key] = torch.tensor(0, dtype=torch.long)
        elif suffix == "running_var":
            out[key] = torch.rand(shape, generator=g, dtype=dtype) * 1.5 + 0.5
        elif suffix == "running_mean":
            out[key] = torch.randn(shape, generator=g, dtype=dtype) * 0.2
        elif len(shape) == 1:
            # batchnorm weight/bias, or a bias
            if suffix == "weight":
                out[key] = torch.rand(shape, generator=g, dtype=dtype) + 0.5
            else:
                out[key] = torch.randn(shape, generator=g, dtype=dtype) * 0.2
        else:
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=g, dtype=dtype) / math.sqrt(fan_in)
    return out


__all__ = ["evaluate", "run", "random_state"]
