"""The Python API: load and analyse a network."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

from .elaborate import Loader, Module, elaborate, template_params
from .errors import NetlangNameError, SourceLoc, did_you_mean
from .passes import run_pipeline
from .passes.cost import CostReport, analyse


@dataclass
class Network:
    """An analysed network: its IR (graph), its costs, and the module it came from."""
    graph: nx.MultiDiGraph
    cost: CostReport
    module: Module
    # the network parameters given when it was loaded (-p NAME=VALUE), as values or source text
    overrides: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.graph.graph["name"]

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def macs(self) -> int:
        return self.cost.macs

    def shape(self, node: str) -> tuple:
        return self.graph.nodes[node]["shape"]

    def __repr__(self) -> str:
        # One line: the graph and the cost report would print tens of kilobytes.
        from .summary import describe_network
        return f"<Network {describe_network(self.cost)}>"

    def summary(self, depth: int | None = None):
        """The per-layer table (a str that prints as `netlang summary` does; HTML in a notebook)."""
        from .summary import table
        return table(self.cost, self.graph, depth)

    def to_dot(self, **opts) -> str:
        """Graphviz DOT text of the diagram; opts: depth, expand, color, rankdir (docs/render.md)."""
        from .render import to_dot
        return to_dot(self, **opts)

    def render(self, path: str | Path, **opts) -> Path:
        """Draw the network into `path` (.svg, .png, .pdf or .dot); opts as for to_dot()."""
        from .render import render
        return render(self, path, **opts)

    def graphviz(self, **opts):
        """The diagram as a `graphviz.Source` (the graphviz package, `netlang[render]`): it
        displays in a notebook and renders, pipes and saves as that package does; opts as for
        to_dot(), whose text it holds."""
        from .render import source
        return source(self, **opts)

    def _repr_svg_(self):
        # A notebook shows an analysed network as its diagram (None, with a warning, without dot).
        from .render import repr_svg
        return repr_svg(self)


def choose_network(module: Module, name: str | None, params: dict | None = None) -> str:
    """The network `name` of `module`; without a name, its only network, else the one named like
    the file (`resnext.net`: resnext) when `params` leave none of its parameters undefined."""
    if name is not None:
        if name not in module.networks and not _imported_network(module, name):
            raise NetlangNameError(f"no network '{name}' in {module.path}", None,
                                   hint=_networks_hint(module, name))
        return name
    if len(module.networks) == 1:
        return module.networks[0]
    if not module.networks:
        # The whole file is at fault: point at its start, as compilers do for an empty unit.
        raise NetlangNameError(f"{module.path} declares no network", SourceLoc(module.path, 1, 1),
                               hint="a network starts with `network NAME { input CxHxW ... }`")
    stem = Path(module.path).stem
    if stem in module.networks and not template_params(module, stem, params or {}):
        return stem
    raise NetlangNameError(f"{module.path} declares {len(module.networks)} networks; choose one with --network",
                           None, hint="networks here: " + ", ".join(module.networks))


def _networks_hint(module: Module, name: str) -> str:
    listing = "networks here: " + (", ".join(module.networks) or "none")
    close = did_you_mean(name, module.networks)
    return f"{close} {listing}" if close else listing


def _imported_network(module: Module, name: str) -> bool:
    from .elaborate import NetworkValue
    try:
        return isinstance(module.env.lookup(name), NetworkValue)
    except KeyError:
        return False


def load_module(path: str | Path | None = None, text: str | None = None, filename: str = "<string>") -> Module:
    loader = Loader()
    return loader.load_text(text, filename) if text is not None else loader.load_file(path)


def analyse_module(module: Module, network: str | None = None, input=None, passes=(), dtype: str = "float32",
                   params: dict | None = None) -> Network:
    name = choose_network(module, network, params)
    G = elaborate(module, name, params or {}, input)
    G = run_pipeline(G, passes)
    return Network(G, analyse(G, dtype), module, dict(params or {}))


def load(path: str | Path, network: str | None = None, input=None, passes=(), dtype: str = "float32",
         **params) -> Network:
    """Parse, elaborate and analyse `network` of the .net file at `path`.

    input: a (C, H, W) tuple replacing the network's `input`; params: the network's parameters,
    as values or as netlang source text (`layers="[3, 4, 6, 3]"`).
    """
    return analyse_module(load_module(path), network, input, passes, dtype, params)


def loads(text: str, network: str | None = None, input=None, filename: str = "<string>", passes=(),
          dtype: str = "float32", **params) -> Network:
    """Like load(), from source text."""
    return analyse_module(load_module(text=text, filename=filename), network, input, passes, dtype, params)


BACKENDS = ("torch", "triton", "onnx")


def compile(path: str | Path, backend: str = "torch", network: str | None = None, input=None, fuse: bool = False,
            dtype=None, device=None, cuda_graph: bool = False, **params):
    """Compile `network` of the .net file at `path` to an executable model.

    backend="torch" returns a torch.nn.Module whose state_dict keys are the IR's names. torch is
    imported here, not when netlang is imported. fuse=True gives the network fused for inference
    (docs/fusion.md): it loads the unfused state_dict and folds it as it loads.

    backend="triton" returns the network as Triton kernels (docs/triton.md): an inference module
    that loads the same unfused state_dict and prepacks it; dtype (torch.float16, bfloat16) and
    device place it, cuda_graph=True captures its forward once per input shape.

    backend="onnx" returns an onnx.ModelProto of the network at inference, with random weights
    (docs/onnx.md; lower(net, "onnx", state=...) exports a state_dict); torch is not needed.
    """
    if backend not in BACKENDS:
        from .errors import NetlangValueError
        raise NetlangValueError(f"unknown backend {backend!r}", None, hint="backends: " + ", ".join(BACKENDS))
    net = load(path, network=network, input=input, **params)
    if backend == "triton":
        return lower(net, backend, dtype=dtype, device=device, cuda_graph=cuda_graph)
    if backend == "onnx":
        return lower(net, backend)
    return lower(net, backend, fuse=fuse)


def lower(net: Network, backend: str = "torch", init: bool = True, fuse: bool = False, **options):
    """Lower an analysed Network with `backend` (torch: the generated source, executed; triton:
    the generated kernels, options dtype, device, cuda_graph; onnx: an onnx.ModelProto, options
    state (a state_dict of numpy arrays or torch tensors), batch, seed: docs/onnx.md)."""
    if backend == "onnx":
        from netlang.backends.onnx import lower as lower_onnx
        return lower_onnx(net, init=init, **options)
    if backend == "triton":
        from netlang.backends.triton import lower as lower_triton
        return lower_triton(net, init=init, **options)
    from netlang.backends.pytorch import lower as lower_torch
    return lower_torch(net, init=init, fuse=fuse)
