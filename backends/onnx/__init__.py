"""The ONNX backend: a network as an onnx.ModelProto, built from the IR with the `onnx` package
alone (torch is never imported; docs/onnx.md).

    lower(net, state=None, init=True, batch="N", seed=0) -> onnx.ModelProto
    save(model, path)

The graph computes the network at inference (netlang.backends.reference.run_eval): dropout and
drop_path are identities, auxiliary outputs are left out, every other output is a graph output.
Node names are the IR's (module names); initializers are the state_dict's tensors under its keys.
"""
from __future__ import annotations

from netlang.errors import NetlangValueError

OPSET = 18          # LayerNormalization needs 17; 18 has Mish and the axes-as-input reductions
PRODUCER = "netlang"


def require_onnx():
    try:
        import onnx
    except ImportError:
        raise NetlangValueError("the ONNX backend needs the onnx package", None,
                                hint="install netlang[onnx] (pip install 'netlang[onnx]')") from None
    return onnx


def lower(net, state: dict | None = None, init: bool = True, batch="N", seed: int = 0):
    """The ONNX model of an analysed Network. state: a state_dict (numpy arrays or torch
    tensors; a torch module's state_dict() as it is) whose values become the initializers;
    without one, weights are drawn with numpy from `seed` (init=True) or zeros (init=False).
    batch: the batch dimension's name (symbolic) or an int (fixed)."""
    require_onnx()
    from .build import build
    return build(net, state, init, batch, seed)


def save(model, path) -> None:
    from .writer import save as write
    write(model, path)


__all__ = ["lower", "save", "OPSET", "require_onnx"]
