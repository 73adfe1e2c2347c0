"""Autotuning of the convolution kernel, where it can run: on a GPU, unless NETLANG_AUTOTUNE=0.

A small set of tile configurations (BLOCK_M x BLOCK_N x BLOCK_K, warps, pipeline stages), pruned
per layer to those its widths can use (never below tl.dot's 16, never wider than the layer needs),
timed by Triton's autotuner on the first launch of each problem (key: batch, map sizes, the
layer's constants; Triton adds the dtypes) and cached on disk in Triton's cache directory
(`cache_results=True`), so a second process does not time them again. Elsewhere (Triton's
interpreter, NETLANG_AUTOTUNE=0) every launch uses the deterministic default of
conv.launch_config. The generated file carries these functions' source."""
from __future__ import annotations

import os

import torch
import triton

TUNE_KEY = ["N", "H", "W", "OH", "OW", "CIN_G", "COUT_G", "KH", "KW", "SH", "SW", "FLAT_K", "GEMM", "POOL"]


def tuning() -> bool:
    return (torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET", "0") != "1"
            and os.environ.get("NETLANG_AUTOTUNE", "1") != "0")


def conv_configs() -> list:
    shapes = ((64, 64, 32, 4, 3), (128, 64, 32, 4, 3), (64, 128, 32, 4, 3), (128, 128, 32, 8, 3),
              (128, 64, 64, 4, 3), (64, 64, 64, 4, 4), (64, 32, 32, 4, 4), (32, 64, 64, 4, 4),
              (64, 16, 64, 4, 4), (128, 16, 64, 4, 3))
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=s)
            for m, n, k, w, s in shapes]


def prune_conv(configs, named_args, **kwargs):
    """The configurations one layer can use: BLOCK_N no wider than its group's output channels
    need, BLOCK_K no wider than its K (flat or per tap), both at least 16; with a pooled
    epilogue, BLOCK_M the whole map."""
    cout = max(16, triton.next_power_of_2(kwargs["COUT_G"]))
    k = kwargs["KH"] * kwargs["KW"] * kwargs["CIN_G"] if kwargs["FLAT_K"] else kwargs["CIN_G"]
    kmax = max(16, triton.next_power_of_2(k))
    kept = [c for c in configs if c.kwargs["BLOCK_N"] <= cout and c.kwargs["BLOCK_K"] <= kmax]
    kept = kept or [min(configs, key=lambda c: (c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]))]
    if kwargs.get("POOL"):
        # a pooled epilogue's tile holds one sample's map: BLOCK_M is the layer's, not tuned
        m = max(16, triton.next_power_of_2(kwargs["OH"] * kwargs["OW"] if "OH" in kwargs else named_args["OH"] *
                                           named_args["OW"]))
        kept = [triton.Config(dict(c.kwargs, BLOCK_M=m), num_warps=c.num_warps, num_stages=c.num_stages)
                for c in kept]
    return kept


def tuned(kernel):
    """The kernel under Triton's autotuner with the configurations above, disk-cached."""
    return triton.autotune(conv_configs(), key=TUNE_KEY, prune_configs_by={"early_config_prune": prune_conv},
                           cache_results=True)(kernel)


def conv_grid(m: int, cout_g: int, groups: int):
    """The convolution's grid for whatever blocks the launch uses (the default or a tuned one)."""
    return lambda meta: (triton.cdiv(m, meta["BLOCK_M"]), triton.cdiv(cout_g, meta["BLOCK_N"]), groups)


FUNCTIONS = (tuning, conv_configs, prune_conv, tuned, conv_grid)
