"""Weight preparation for the Triton backend, from the unfused state_dict: batchnorms folded into
the convolution before them, prologue batchnorms as scale and shift, linear layers after a
flatten re-ordered for NHWC. Plain torch; the generated file carries these functions' source.
Folding is computed in fp32 whatever the storage dtype, then cast once."""
from __future__ import annotations

import torch


def bn_affine(s: dict, bn: str, eps: float):
    """A batchnorm at inference as (scale, shift) per channel, fp32."""
    scale = 1 / torch.sqrt(s[bn + ".running_var"].float() + eps)
    if bn + ".weight" in s:
        scale = scale * s[bn + ".weight"].float()
    shift = -s[bn + ".running_mean"].float() * scale
    if bn + ".bias" in s:
        shift = shift + s[bn + ".bias"].float()
    return scale, shift


def folded(s: dict, layer: str, bias: bool, bn: str | None, eps: float, cout: int):
    """A convolution or linear layer's (weight, bias) in fp32, the batchnorm after it (if any)
    folded in; the bias is zeros where the layer has none and no batchnorm follows."""
    w = s[layer + ".weight"].float()
    b = s[layer + ".bias"].float() if bias else torch.zeros(cout, device=w.device)
    if bn is not None:
        scale, shift = bn_affine(s, bn, eps)
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b = b * scale + shift
    return w, b


def nhwc_columns(w: torch.Tensor, c: int, h: int, width: int) -> torch.Tensor:
    """A linear layer's weight that reads a flattened CxHxW map, re-ordered to read the same map
    flattened from NHWC (h, w, c order)."""
    return w.reshape(w.shape[0], c, h, width).permute(0, 2, 3, 1).reshape(w.shape[0], -1)


FUNCTIONS = (bn_affine, folded, nhwc_columns)
