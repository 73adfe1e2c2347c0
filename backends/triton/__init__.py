"""The Triton backend: a network becomes Triton kernels generated from its fused IR (docs/triton.md).

`generate(net)` (codegen.py) writes one Python file: the kernels each layer needs, specialised on
its constants, the launch sequence over an arena laid out by the memory plan, and the loading of
the unfused checkpoint (batchnorms folded, weights packed). `lower(net)` runs that file as a
module and returns the network's inference module, so the file `netlang compile --backend triton
-o` writes and the module `netlang.compile(..., backend="triton")` returns are one code.

Autotuning (tune.py) runs on a GPU; `cuda_graph=True` replays the whole forward as one CUDA
graph per input shape (runtime.graphed).

Kernel families: conv.py (implicit-GEMM convolution and linear layers, with prologue and
epilogue), depthwise.py, pool.py, pointwise.py (element-wise ops, unfolded batchnorms, LRN,
softmax), resample.py (transposed convolution, upsampling, adaptive and global pooling, window
copies for crops and concats).
"""
from __future__ import annotations

from netlang.optional import require

require("torch", "triton", needs="the Triton backend", extra="triton")
from .codegen import Generated, explain, generate  # noqa: E402


def available() -> str | None:
    """None where the kernels can run; otherwise why not, and the way round it."""
    import os

    import torch
    if torch.cuda.is_available() or os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return ("no CUDA GPU here: the Triton backend's kernels need one; set TRITON_INTERPRET=1 before "
            "importing triton to run them (slowly) through Triton's interpreter on the CPU")


def lower(net, init: bool = True, dtype=None, device=None, cuda_graph: bool = False):
    """The inference module of an analysed Network (netlang.load's result). init: weights as the
    torch backend initialises them (else as the file's own rule: load a checkpoint). dtype:
    torch.float16 / bfloat16 store activations and weights in that type (fp32 accumulation)."""
    import torch

    from netlang.backends.pytorch import lower as lower_torch

    if cuda_graph and not (device is not None and torch.device(device).type == "cuda"):
        raise ValueError("cuda_graph=True captures the forward on a GPU: give device='cuda'"
                         + ("" if torch.cuda.is_available() else " (and there is no CUDA GPU here)"))
    gen = generate(net)
    model = _build(gen.text, gen.entry, f"{net.name}_triton")
    if init:
        model.load_state_dict(lower_torch(net, init=True).state_dict(), strict=True)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    model.netlang_cuda_graph = cuda_graph
    return model


def _build(text: str, entry: str, tag: str):
    """The module `entry` builds in the generated file `text`; pickling it keeps the file, so
    torch.save(model) loads in a process that never saw the source."""
    from netlang.backends.pytorch import load_source
    model = eval(entry, load_source(text, tag).__dict__)
    cls = type(model)
    if "__reduce_ex__" not in cls.__dict__:
        cls.__reduce_ex__ = _reduce
        cls.netlang_source, cls.netlang_entry, cls.netlang_tag = text, entry, tag
    return model


def _reduce(self, protocol):
    cls = type(self)
    return _rebuild, (cls.netlang_source, cls.netlang_entry, cls.netlang_tag, self.state_dict(),
                      self.netlang_cuda_graph)


def _rebuild(text, entry, tag, state, cuda_graph):
    model = _build(text, entry, tag)
    model.load_state_dict(state, strict=True, assign=True)
    model.prepack()                   # (assign=True replaced the tensors: pack from them, on their device)
    model.netlang_cuda_graph = cuda_graph
    return model


__all__ = ["Generated", "available", "explain", "generate", "lower"]
