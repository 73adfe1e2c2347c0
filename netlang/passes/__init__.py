"""Passes: each maps a graph to a graph, registered by name, one file each.

A pipeline runs them in order and, when asked, verifies the IR after each one. `fuse` names the
inference pipeline: every fusion pass, then the memory plan (docs/fusion.md).
"""
from __future__ import annotations

from typing import Callable

import networkx as nx

from ..errors import NetlangValueError
from ..ir import verify
from .concat_in_place import concat_in_place
from .drop_identities import drop_identities
from .fold_bn import fold_bn
from .fuse_activation import fuse_activation
from .fuse_residual import fuse_residual
from .memory_plan import memory_plan
from .merge_siblings import merge_siblings
from .prologue_bn import prologue_bn
from .shapes import infer_shapes

PASSES: dict[str, Callable[[nx.MultiDiGraph], nx.MultiDiGraph]] = {
    "infer-shapes": infer_shapes,
    "drop-identities": drop_identities,
    "fold-bn": fold_bn,
    "fuse-activation": fuse_activation,
    "merge-siblings": merge_siblings,
    "fuse-residual": fuse_residual,
    "prologue-bn": prologue_bn,
    "concat-in-place": concat_in_place,
    "memory-plan": memory_plan,
}

# Named pipelines: a name that stands for several passes.
PIPELINES: dict[str, tuple[str, ...]] = {
    "fuse": ("drop-identities", "fold-bn", "fuse-activation", "merge-siblings", "fuse-residual", "prologue-bn",
             "concat-in-place", "memory-plan"),
}


def expand(names) -> list[str]:
    """Pass names with pipelines spelled out, checked against the registry."""
    out = []
    for name in names:
        if name in PIPELINES:
            out += PIPELINES[name]
        elif name in PASSES:
            out.append(name)
        else:
            raise NetlangValueError(f"unknown pass '{name}'", None,
                                    hint="passes: " + ", ".join(sorted(PASSES)) + "; pipelines: "
                                         + ", ".join(sorted(PIPELINES)))
    return out


def run_pipeline(G: nx.MultiDiGraph, names, check: bool = False) -> nx.MultiDiGraph:
    names = expand(names)
    for name in names:
        G = PASSES[name](G)
        G.graph["passes"] = tuple(G.graph.get("passes", ())) + (name,)
        if check:
            verify(G)
    return G
