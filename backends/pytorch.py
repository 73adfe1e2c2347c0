"""The PyTorch backend: a network is the Python source netlang.backends.torchgen writes, executed.

`lower(net)` generates the file for an analysed network, runs it as a module of its own and calls
the network's class (or the function the file gives for a network instance). So the module
netlang.compile returns is exactly the code `netlang compile -o model.py` writes: the two cannot
disagree. Before returning it checks its own output against the IR: the state_dict's keys, shapes
and order must be netlang.ir.state_entries's (torchvision's, for the zoo's torchvision networks).

Two things differ from running the file by hand, neither visible in the result: convolutions
skip PyTorch's default initialisation while the module is built (init_weights draws every one
again anyway; this makes the build cheaper than torchvision's), and the network's class is given
a __reduce_ex__ that rebuilds it from its source, so torch.save(model) loads in a process that
never saw the source.
"""
from __future__ import annotations

import hashlib
import linecache
import sys
import types

from netlang.ir import state_entries, verify
from netlang.optional import require

from .torchgen import generate

nn = require("torch", needs="the torch backend", extra="torch").nn

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_DEFERRED = {cls: type(cls.__name__, (cls,), {"reset_parameters": lambda self: None, "__module__": cls.__module__})
             for cls in _CONVS}
_REAL = {v: k for k, v in _DEFERRED.items()}


class _DeferredNN(types.ModuleType):
    """torch.nn, except that Conv2d and ConvTranspose2d leave their weights for init_weights."""

    def __init__(self):
        super().__init__("torch.nn")

    def __getattr__(self, name):
        cls = getattr(nn, name)
        return _DEFERRED.get(cls, cls)


class InternalError(AssertionError):
    """The generated module disagrees with the IR: a bug in netlang, never the user's fault."""


_LOADED: dict = {}      # the most recent generated modules, by name
_KEEP = 256


def load_source(text: str, tag: str) -> types.ModuleType:
    """Run generated source as a module of its own (registered, so pickling within the process
    finds its classes, and tracebacks show its lines); the last few hundred stay loaded."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:12]
    name = f"netlang_generated_{_safe(tag)}_{digest}"
    if name in _LOADED:
        _LOADED[name] = _LOADED.pop(name)
        return _LOADED[name]
    filename = f"<netlang {name}>"
    mod = types.ModuleType(name)
    mod.__file__ = filename
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    exec(compile(text, filename, "exec"), mod.__dict__)
    sys.modules[name] = mod
    _LOADED[name] = mod
    while len(_LOADED) > _KEEP:
        old = next(iter(_LOADED))
        _LOADED.pop(old)
        sys.modules.pop(old, None)
        linecache.cache.pop(f"<netlang {old}>", None)
    return mod


def _safe(tag: str) -> str:
    return "".join(c if c.isalnum() and c.isascii() else "_" for c in tag)[:40]


def build(text: str, entry: str, tag: str, init: bool = True, outputs: int = 1) -> nn.Module:
    """Call `entry` in the module of `text`: weights drawn as init_weights draws them (init) or
    left as they come (init=False: for loading a checkpoint)."""
    mod = load_source(text, tag)
    ns = mod.__dict__
    saved_nn, saved_init = ns["nn"], ns["init_weights"]
    ns["nn"] = _DeferredNN()
    if not init:
        ns["init_weights"] = lambda module, rules=(): None
    try:
        model = eval(entry, ns)
    finally:
        ns["nn"], ns["init_weights"] = saved_nn, saved_init
    for m in model.modules():
        real = _REAL.get(type(m))
        if real is not None:
            m.__class__ = real
    cls = type(model)
    if "__reduce_ex__" not in cls.__dict__:
        cls.__reduce_ex__ = _reduce
        cls.netlang_source = text
        cls.netlang_entry = entry
        cls.netlang_tag = tag
        cls.netlang_outputs = outputs
    return model


def _reduce(self, protocol):
    state = self.state_dict(keep_vars=False)
    cls = type(self)
    return _rebuild, (cls.netlang_source, cls.netlang_entry, cls.netlang_tag, state, self.training,
                      cls.netlang_outputs)


def _rebuild(text, entry, tag, state, training, outputs=1):
    model = build(text, entry, tag, init=False, outputs=outputs)
    model.load_state_dict(state, strict=True, assign=True)
    return model.train(training)


def lower(net, init: bool = True, fuse=False, layout: str = "auto") -> nn.Module:
    """The torch.nn.Module of an analysed netlang Network (netlang.load's result); with fuse, the
    network fused for inference (docs/fusion.md), which loads the unfused state_dict. fuse is
    True (the `fuse` pipeline) or the names of the passes to run."""
    G = net.graph
    verify(G, check_shapes=False)
    src = generate(net, fuse=fuse, layout=layout)
    model = build(src.text, src.entry, G.graph["name"], init, 1 if fuse else len(G.graph["outputs"]))
    check_against_ir(model, G)
    return model


def check_against_ir(model: nn.Module, G) -> None:
    """The state_dict the IR promises, key for key, shape for shape, in order."""
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    entries = state_entries(G)
    want = [(k, tuple(s)) for k, s, _ in entries]
    if got != want:
        for i, (a, b) in enumerate(zip(got, want)):
            if a != b:
                break
        else:
            i = min(len(got), len(want))
        raise InternalError(f"netlang internal error: the generated module of {G.graph['name']} disagrees with "
                            f"its IR at state_dict entry {i}: module has {got[i] if i < len(got) else 'nothing'}, "
                            f"IR has {want[i] if i < len(want) else 'nothing'}")
    params = {k for k, _ in model.named_parameters()}
    if params != {k for k, _, buffer in entries if not buffer}:
        raise InternalError(f"netlang internal error: parameters and buffers of {G.graph['name']} differ from its IR")


def generate_source(net, header: str | None = None, fuse=False) -> str:
    """The standalone file netlang compile -o writes."""
    return generate(net, header, fuse).text


__all__ = ["lower", "build", "generate_source", "check_against_ir", "InternalError", "load_source"]
