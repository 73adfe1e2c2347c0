"""The graph builder: ONNX nodes, constants and value names for one network.

Every IR node becomes the ONNX node named as the IR node (the module name, as Netron shows it);
the helper nodes and constants a lowering needs besides are named under it (`layer1.0.add/sum0`),
so nothing collides with a module name. The initializers are the state_dict's tensors under its
keys and nothing else: constants a lowering makes (shapes, axes, scales) are Constant nodes.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, state: dict):
        self.state = state              # state_dict key -> float32 numpy array
        self.nodes: list = []
        self.used: list = []            # the initializers, in the order the graph reads them
        self._taken: set = set(state)
        self.node: str = ""             # the IR node being lowered: helpers are named under it
        self.out_shape: tuple = ()      # and its output shape (no batch)

    def fresh(self, hint: str) -> str:
        """A value or node name under the current IR node, free in the graph."""
        base = f"{self.node}/{hint}"
        name, i = base, 1
        while name in self._taken:
            name, i = f"{base}{i}", i + 1
        self._taken.add(name)
        return name

    def value_name(self, node: str) -> str:
        """The value an IR node computes is named by the node (unless that name is a state_dict
        key: a layer_scale's parameter is keyed by the layer's own name)."""
        name = node if node not in self._taken else f"{node}:out"
        self._taken.add(name)
        return name

    def param(self, key: str) -> str:
        if key not in self.used:
            self.used.append(key)
        return key

    def const(self, hint: str, value, dtype=np.float32) -> str:
        arr = np.asarray(value, dtype=dtype)
        out = self.fresh(hint)
        self.nodes.append(helper.make_node("Constant", [], [out], name=out,
                                           value=numpy_helper.from_array(arr, out)))
        return out

    def ints(self, hint: str, values) -> str:
        return self.const(hint, list(values), np.int64)

    def op(self, op_type: str, inputs: list, out: str | None = None, name: str | None = None, **attrs) -> str:
        """One ONNX node; its output is `out` (the IR node's value) or a fresh helper value."""
        out = out or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name or out, **attrs))
        return out

    def initializers(self) -> list:
        return [numpy_helper.from_array(np.ascontiguousarray(self.state[k]), k) for k in self.used]


def tensor_type(shape: tuple, batch) -> "onnx.TypeProto":  # noqa: F821
    """A float32 value of the batch dimension (a name: symbolic; an int: fixed) and `shape`."""
    return helper.make_tensor_type_proto(TensorProto.FLOAT, (batch,) + tuple(shape))


def value_info(name: str, shape: tuple, batch):
    return helper.make_value_info(name, tensor_type(shape, batch))
