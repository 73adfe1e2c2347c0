"""The one PyTorch code generator: a netlang network as a Python file a person keeps.

`generate(net)` writes the source; netlang.backends.pytorch executes that same source for
`netlang.compile`, so the in-memory module and the file cannot disagree. It needs no torch.

It translates the program, not the elaborated graph: each block definition becomes one nn.Module
class whose constructor takes the width of its input (`in_channels`) and the block's parameters
with the .net defaults; `for` loops stay loops, `if` on parameters stays `if`, `x * n` is a loop;
the network's own parameters are its class's constructor arguments, and a network instance
(`network resnet18 = resnet(...)`) is a function that calls that class.

Alongside the translation it evaluates the program for the network being compiled (the values
and shapes netlang.elaborate computes), to decide what source cannot leave open: what a name
holds (a block is a class, but a layer, a def or a pipeline given as an argument is expanded where
it is placed), and sizes that follow the input's height and width (written as constants, with a
comment). A construct that cannot be written generally is resolved for this network: a
conditional keeps its taken branch, a loop unrolls, a parameter becomes a constant and leaves the
constructor (the class's docstring lists them). Calls of one block whose source comes out the same
share its class; calls whose resolved source differs get one class each (`Fractal`, `Fractal2`).

Inside a class:
  * a body whose items form a chain and include numbered modules is an nn.Sequential subclass
    (numbered as nn.Sequential numbers children); any other body gets an explicit forward;
  * a labelled sequence is an nn.Sequential where it is a chain, otherwise a plain nn.Module that
    holds its layers, with its dataflow written in the owner's forward;
  * a layer with parameters, a labelled layer and a block call are modules named as in the IR, so
    state_dict keys are netlang.ir.state_entries's; an unlabelled layer without parameters is a
    call in forward (`F.relu(out, inplace=True)`);
  * activations run in place, and sums accumulate in place, only on fresh values nothing else
    reads.

Everything from the .net file that reaches the source passes through repr(), an identifier check
or a comment made safe, so no label, string or file name can inject code.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from netlang.errors import paused_gc

from .assemble import Gen, render_file
from .names import MODULE_ATTRIBUTES, check_module_names, comment


@dataclass(frozen=True)
class Source:
    """A generated file: its text, and the expression in it that builds the network."""
    text: str
    entry: str
    cls: str


def generate(net, header: str | None = None, fuse=False, layout: str = "auto") -> Source:
    """The network of an analysed `netlang.Network` as a standalone PyTorch file; with fuse, the
    file also holds the network fused for inference (fused.py), and its entry builds that. fuse
    is True (the `fuse` pipeline) or the names of the passes to run; layout picks the fused
    module's memory layout (fused.py; "auto" unless a benchmark compares them)."""
    done = [p for p in net.graph.graph.get("passes", ()) if p != "infer-shapes"]
    if done:
        from netlang.errors import NetlangValueError
        raise NetlangValueError(f"{net.name}'s IR already went through {', '.join(done)}", None,
                                hint="lower the network as loaded, and give the passes to the lowering: "
                                     "netlang.compile(..., fuse=True), or fuse=[...] for some of them")
    src = _generate(net, header)
    if not fuse:
        return src
    from netlang.passes import run_pipeline

    from .fused import fused_source
    G = net.graph
    H = run_pipeline(G, ["fuse"] if fuse is True else list(fuse))
    more, entry = fused_source(H, src.cls, src.entry, G.graph["name"], G.nodes[G.graph["inputs"][0]]["shape"],
                               src.text, layout)
    return Source(src.text.rstrip("\n") + "\n\n" + more, entry, f"{src.cls}Fused")


def _generate(net, header: str | None = None) -> Source:
    G = net.graph
    check_module_names(G)
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    from . import writer
    try:
        with paused_gc():   # thousands of short-lived records and no garbage worth a collection
            gen = Gen(net.module, G.graph["name"], getattr(net, "overrides", {}) or {}, G)
            draft = gen.run()
            text, entry = render_file(gen, draft, header if header is not None else default_header(net))
    finally:
        sys.setrecursionlimit(old)
        writer.GTIME_BLOCKS.clear()
    return Source(text, entry, draft.cls)


def default_header(net) -> str:
    G = net.graph
    params = ", ".join(f"{k}={v!r}" for k, v in G.graph.get("params", {}).items())
    shape = "x".join(map(str, G.nodes[G.graph["inputs"][0]]["shape"]))
    from pathlib import Path
    src = Path(str(G.graph.get("file") or "<text>")).name
    out = [f"# {comment(net.name)}: a PyTorch model generated by netlang from {comment(src)}, input {shape}."]
    if params:
        out.append(f"# Network parameters: {comment(params)}")
    out.append("# Its state_dict keys are the .net file's layer names; change that file and compile again.")
    outs = G.graph["outputs"]
    if len(outs) > 1:
        out.append(f"# forward returns {comment(outs[0])} in eval, ({comment(', '.join(outs))}) in training.")
    return "\n".join(out)


__all__ = ["Source", "generate", "MODULE_ATTRIBUTES", "check_module_names", "default_header"]
