"""Passes: each maps a graph to a graph (or reads one), registered by name.

A pipeline runs them in order and, when asked, verifies the IR after each one.
"""
from __future__ import annotations

from typing import Callable

import networkx as nx

from ..errors import NetlangValueError
from ..ir import verify
from .shapes import infer_shapes

PASSES: dict[str, Callable[[nx.MultiDiGraph], nx.MultiDiGraph]] = {
    "infer-shapes": infer_shapes,
}


def run_pipeline(G: nx.MultiDiGraph, names, check: bool = False) -> nx.MultiDiGraph:
    for name in names:
        try:
            fn = PASSES[name]
        except KeyError:
            raise NetlangValueError(f"unknown pass '{name}'", None,
                                    hint="passes: " + ", ".join(sorted(PASSES))) from None
        G = fn(G)
        if check:
            verify(G)
    return G
