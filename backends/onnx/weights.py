"""The initializers' values: a given state_dict (numpy arrays or torch tensors) checked against
the IR key for key and shape for shape, or weights drawn with numpy (no torch needed)."""
from __future__ import annotations

import math

import numpy as np

from netlang.errors import NetlangValueError
from netlang.init import KINDS, NAMED_KINDS
from netlang.ir import inputs_of

_SKIPPED = "num_batches_tracked"     # a training counter: nothing at inference reads it


def as_array(value) -> np.ndarray:
    """A numpy array of a numpy array, a torch tensor (duck-typed: torch is never imported here)
    or anything numpy takes."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float32)


def given(entries: list, state: dict, network: str) -> dict:
    """The state_dict's float32 arrays under its keys, strictly: every entry the IR has (a
    num_batches_tracked may be left out), no other, each of its shape."""
    want = {k: tuple(s) for k, s, _ in entries}
    unexpected = sorted(set(state) - set(want))
    missing = [k for k in want if k not in state and not k.endswith(_SKIPPED)]
    if unexpected or missing:
        parts = ([f"missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")] if missing else []) + \
                ([f"unexpected {', '.join(unexpected[:5])}" + (" ..." if len(unexpected) > 5 else "")]
                 if unexpected else [])
        raise NetlangValueError(f"the state_dict does not fit {network}: {'; '.join(parts)}", None,
                                hint="its keys are the network's layer names (netlang.ir.state_entries)")
    out = {}
    for key, shape in want.items():
        if key.endswith(_SKIPPED):
            continue
        arr = as_array(state[key])
        if tuple(arr.shape) != shape:
            raise NetlangValueError(f"state_dict entry {key} of {network}: expected shape {shape}, got "
                                    f"{tuple(arr.shape)}", None)
        out[key] = arr
    return out


def drawn(G, entries: list, seed: int = 0) -> dict:
    """Weights as the torch backend's init_weights draws them (docs/onnx.md), with numpy: the
    default initialisation (Kaiming-normal convolutions, fan_out, relu, with zero bias; PyTorch's
    uniform linear init; batchnorm and layernorm weight 1 and bias 0 with statistics 0 and 1;
    layer scales and PReLU slopes at their init), then the network's `init` rules in order. The
    same distributions, not the same numbers: torch's generator is not numpy's."""
    rng = np.random.default_rng(seed)
    out = _default(G, entries, rng)
    apply_rules(G, G.graph.get("init", ()), {k: tuple(s) for k, s, _ in entries}, out, rng)
    return out


def _default(G, entries: list, rng) -> dict:
    out = {}
    for key, shape, _ in entries:
        node, _, suffix = key.rpartition(".")
        if key in G:
            node, suffix = key, ""
        if suffix == _SKIPPED:
            continue
        op, a = G.nodes[node]["op"], G.nodes[node]["args"]
        if op == "layer_scale" or op == "prelu":
            out[key] = np.full(shape, a["init"], np.float32)
        elif suffix in ("running_var", "weight") and op in ("batchnorm", "layernorm"):
            out[key] = np.ones(shape, np.float32)
        elif op in ("conv", "conv_t") and suffix == "weight":
            fan_out = shape[0] * math.prod(shape[2:])      # dim 0, as torch.nn.init counts it
            out[key] = rng.normal(0, math.sqrt(2 / fan_out), shape).astype(np.float32)
        elif op == "linear":
            bound = 1 / math.sqrt(_linear_fan_in(G, node))
            out[key] = rng.uniform(-bound, bound, shape).astype(np.float32)
        else:
            out[key] = np.zeros(shape, np.float32)
    return out


def _linear_fan_in(G, node: str) -> int:
    return G.nodes[inputs_of(G, node)[0]]["shape"][0]


# ====================================================================== init rules (netlang/init.py)

def apply_rules(G, rules, shapes: dict, out: dict, rng) -> None:
    """Each rule (target, entry, scheme, arguments) over the entries it reaches, as init_weights
    reaches them (backends/torchgen/helpers.py): a layer kind, every layer of that op; a name, the
    layer of that name and the convolutions and linear layers under it; a layer scale's own key."""
    order = list(G)
    for target, entry, scheme, a in rules:
        if target in shapes and target not in KINDS:
            found = [(None, target)]
        else:
            found = [(n, f"{n}.{entry}") for n in order
                     if (G.nodes[n]["op"] == target if target in KINDS
                         else n == target or (G.nodes[n]["op"] in NAMED_KINDS and n.startswith(target + ".")))]
        for node, key in found:
            if key not in shapes:
                continue            # (a layer without a bias, as getattr(m, "bias") is None)
            op = G.nodes[node]["op"] if node is not None else "layer_scale"
            if scheme == "default" and op not in NAMED_KINDS:
                _reset(G, node, shapes, out)
            elif scheme in ("zeros", "ones", "constant"):
                out[key] = np.full(shapes[key], {"zeros": 0.0, "ones": 1.0}.get(scheme, a.get("value")), np.float32)
            elif scheme in ("default", "fan_uniform"):
                w = shapes[f"{node}.weight"]
                fan = w[1 if a.get("mode", "fan_in") == "fan_in" else 0] * math.prod(w[2:])
                out[key] = rng.uniform(-fan ** -0.5, fan ** -0.5, shapes[key]).astype(np.float32)
            else:
                out[key] = _scheme(scheme, a, shapes[key], key, rng)


def _reset(G, node: str, shapes: dict, out: dict) -> None:
    """A batchnorm's, layernorm's or PReLU's reset_parameters: every entry of the layer again."""
    for suffix in ("weight", "bias", "running_mean", "running_var"):
        key = f"{node}.{suffix}"
        if key in shapes:
            value = G.nodes[node]["args"]["init"] if G.nodes[node]["op"] == "prelu" else \
                1.0 if suffix in ("weight", "running_var") else 0.0
            out[key] = np.full(shapes[key], value, np.float32)


def _fans(shape: tuple, key: str) -> tuple[int, int]:
    if len(shape) < 2:
        raise NetlangValueError(f"init: {key} has {len(shape)} dimension(s); fan in and fan out need two or more",
                                None, hint="give a bias a value scheme: zeros, constant(…), normal(…), uniform(…)")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _gain(nonlinearity: str, a: float) -> float:
    return {"tanh": 5 / 3, "relu": math.sqrt(2), "selu": 3 / 4,
            "leaky_relu": math.sqrt(2 / (1 + a * a))}.get(nonlinearity, 1.0)


def _scheme(scheme: str, a: dict, shape: tuple, key: str, rng) -> np.ndarray:
    """torch.nn.init's scheme of that name, with its arguments, drawn with numpy."""
    if scheme == "normal":
        return rng.normal(a["mean"], a["std"], shape).astype(np.float32)
    if scheme == "uniform":
        return rng.uniform(a["a"], a["b"], shape).astype(np.float32)
    if scheme == "trunc_normal":
        x = rng.normal(a["mean"], a["std"], shape)
        for _ in range(100):            # redrawn outside [a, b] (as often as it takes, almost surely)
            bad = (x < a["a"]) | (x > a["b"])
            if not bad.any():
                break
            x[bad] = rng.normal(a["mean"], a["std"], int(bad.sum()))
        return np.clip(x, a["a"], a["b"]).astype(np.float32)
    fan_in, fan_out = _fans(shape, key)
    if scheme in ("kaiming_normal", "kaiming_uniform"):
        std = _gain(a["nonlinearity"], a["a"]) / math.sqrt(fan_in if a["mode"] == "fan_in" else fan_out)
        if scheme == "kaiming_normal":
            return rng.normal(0, std, shape).astype(np.float32)
        return rng.uniform(-math.sqrt(3) * std, math.sqrt(3) * std, shape).astype(np.float32)
    std = a["gain"] * math.sqrt(2 / (fan_in + fan_out))
    if scheme == "xavier_normal":
        return rng.normal(0, std, shape).astype(np.float32)
    if scheme == "xavier_uniform":
        return rng.uniform(-math.sqrt(3) * std, math.sqrt(3) * std, shape).astype(np.float32)
    raise AssertionError(f"netlang internal error: init scheme {scheme} has no numpy drawing")
