"""The initializers' values: a given state_dict (numpy arrays or torch tensors) checked against
the IR key for key and shape for shape, or weights drawn with numpy (no torch needed)."""
from __future__ import annotations

import math

import numpy as np

from netlang.errors import NetlangValueError
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
    """Weights as the default initialisation draws them (docs/onnx.md): Kaiming-normal
    convolutions (fan_out, relu) with zero bias, PyTorch's uniform linear init, batchnorm and
    layernorm weight 1 and bias 0 with statistics 0 and 1, layer scales and PReLU slopes at their
    init. A network's `init` statements are the torch backend's: export its state_dict for them."""
    rng = np.random.default_rng(seed)
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
