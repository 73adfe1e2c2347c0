"""What the generated Triton module does besides launching kernels: declare the checkpoint's
state under its names, lay the activations out in one arena, and check its input. Plain torch;
the generated file carries these functions' source, so it imports only torch and triton."""
from __future__ import annotations

import math
import os

import torch
from torch import nn


def declare_state(module: nn.Module, entries) -> None:
    """The unfused network's state under its checkpoint names: (key, shape, kind) with kind
    "weight" (Kaiming-normal, fan_out, as torchvision initialises convolutions), "ones",
    "zeros", a number (a parameter filled with it: prelu's init), "mean", "var", "count"
    (batchnorm buffers). Parameters do not require
    grad: the module is for inference."""
    for key, shape, kind in entries:
        owner = module
        *path, name = key.split(".")
        for part in path:
            if part not in owner._modules:
                owner.add_module(part, nn.Module())
            owner = owner._modules[part]
        if kind == "count":
            owner.register_buffer(name, torch.tensor(0, dtype=torch.long))
        elif kind in ("mean", "var"):
            owner.register_buffer(name, torch.zeros(shape) if kind == "mean" else torch.ones(shape))
        else:
            t = torch.zeros(shape) if kind == "zeros" else torch.ones(shape)
            if isinstance(kind, float):
                t = torch.full(shape, kind)
            elif kind == "weight":
                fan_out = shape[0] * math.prod(shape[2:])
                t = torch.randn(shape) * math.sqrt(2.0 / fan_out)
            owner.register_parameter(name, nn.Parameter(t, requires_grad=False))


def arena_views(arena: torch.Tensor, n: int, views) -> list:
    """The NHWC views of every planned value, for a batch of n: each (offset, H, W, C of the
    buffer, first channel, channels) per sample; None asks for storage of its own, outside the
    arena (a crop, which is no channel slice)."""
    out = []
    for spec in views:
        if spec[0] is None:
            _, h, w, c = spec
            out.append(torch.empty((n, h, w, c), device=arena.device, dtype=arena.dtype))
            continue
        off, h, w, c, c0, width = spec
        buf = arena[off * n:(off + h * w * c) * n].view(n, h, w, c)
        out.append(buf if (c0, width) == (0, c) else buf[..., c0:c0 + width])
    return out


def check_input(x: torch.Tensor, shape: tuple, what: str) -> None:
    """The input's shape, and a device the kernels can run on."""
    if x.dim() != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        want = "N x " + " x ".join(map(str, shape))
        raise ValueError(f"{what} takes input of shape {want}, got {tuple(x.shape)}")
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET", "0") != "1":
        raise RuntimeError(f"{what} runs Triton kernels, which need a CUDA GPU: move the model and its input "
                           "there (.cuda()); without a GPU, set TRITON_INTERPRET=1 before importing triton to run "
                           "them, slowly, through Triton's interpreter on the CPU")


def graphed(module: nn.Module, x: torch.Tensor, run):
    """run(x) captured as one CUDA graph per input shape, dtype and device, and replayed after:
    one launch for the whole forward. A first run outside the capture compiles the kernels and
    allocates the arena; the graph reads its own copy of the input, and the output (or each of
    several) is copied out (the next replay overwrites the graph's)."""
    key = (tuple(x.shape), x.dtype, str(x.device))
    if key not in module.netlang_graphs:
        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run(static_x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = run(static_x)
        module.netlang_graphs[key] = (graph, static_x, static_y)
    graph, static_x, static_y = module.netlang_graphs[key]
    static_x.copy_(x)
    graph.replay()
    return tuple(y.clone() for y in static_y) if isinstance(static_y, tuple) else static_y.clone()


FUNCTIONS = (declare_state, arena_views, check_input, graphed)
