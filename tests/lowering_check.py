"""One random program through the PyTorch lowering and the reference interpreter: shared by
tests/test_fuzz_lowering.py (a few thousand programs in CI) and tools/fuzz_lowering.py (the long
run).

For each program: generate the source, run it, build the module (which checks its state_dict
against the IR), load random weights and batchnorm statistics, and compare with the reference
interpreter in eval (every output, training-only heads included via train mode where nothing
random acts) and check that a backward pass in training goes through (an in-place write that
autograd needed shows there). A failure is returned as a short description, never raised.

Then the generated constructor is called with another value of one of the network's parameters
(an int one more, a bool flipped, a list of ints each one more or one shorter), where the program
is still valid with it: the module it builds must equal compiling the program with that value
(state_dict entries, and eval outputs against the reference) -- a class fixed for this network
must not take the parameter at all.
"""
from __future__ import annotations

import inspect
import random
import traceback

import torch

import netlang
from netlang.backends.pytorch import lower
from netlang.backends.reference import eval_part, random_state, run, run_eval
from netlang.errors import NetlangError
from netlang.ir import state_entries

RTOL = 1e-6


def _tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _close(got, want) -> bool:
    if tuple(got.shape) != tuple(want.shape):
        return False
    scale = max(want.abs().max().item() if want.numel() else 0.0, 1e-3)
    return bool((got - want).abs().max().item() <= RTOL * scale) if want.numel() else True


def _random_acts(G) -> bool:
    """Does anything random act in training (dropout, drop_path, a dropping mean)?"""
    for _, d in G.nodes(data=True):
        a = d["args"]
        if d["op"] in ("dropout", "drop_path") and a["p"] > 0 or d["op"] == "mean" and a["drop"] > 0:
            return True
    return False


class _Hang(Exception):
    pass


def check(text: str, network: str = "n", seed: int = 0, timeout: int = 0) -> tuple[str, str] | None:
    """None if the lowering agrees with the reference; else (kind, detail): kind is "crash" (an
    exception from netlang or the generated code), "mismatch" (different numbers or shapes) or
    "hang" (more than `timeout` seconds, where given; main thread only)."""
    if timeout:
        import signal

        def alarm(signum, frame):
            raise _Hang()
        old = signal.signal(signal.SIGALRM, alarm)
        signal.alarm(timeout)
        try:
            return check(text, network, seed)
        except _Hang:
            return "hang", f"more than {timeout} s"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
    net = _program(text, network)
    if net is None:
        return None                     # not a valid program: the generator's miss, not ours
    G = net.graph
    try:
        # in float64: batchnorm over a near-constant batch in training turns float32 rounding
        # into visible differences that are no one's bug
        model = lower(net, init=False).double()
        state, x = _random_inputs(G, seed, torch.float64)
        model.load_state_dict(state, strict=True)
        n_out = len(G.graph["outputs"])
        with torch.no_grad():
            got = model.eval()(x)
            real = run_eval(G, state, x)
        if len(real) == 1 and not isinstance(got, torch.Tensor):
            return "mismatch", f"eval returned {type(got).__name__}, not the main output"
        for i, (g, w) in enumerate(zip(_tuple(got), real)):
            if not _close(g, w):
                return "mismatch", f"eval: output {i} {tuple(g.shape)} vs reference {tuple(w.shape)}, " \
                                   f"max |diff| {(g - w).abs().max().item() if g.shape == w.shape else 'n/a'}"
        if len(_tuple(got)) != len(real):
            return "mismatch", f"eval returned {len(_tuple(got))} outputs, the network has {len(real)} at inference"
        model.train()
        if not _random_acts(G):
            trained = {k: v.clone() for k, v in state.items()}
            with torch.no_grad():
                got = _tuple(model(x))
                want = run(G, trained, x, training=True)
            if len(got) != n_out:
                return "mismatch", f"training returned {len(got)} outputs, the network declares {n_out}"
            for i, (g, w) in enumerate(zip(got, want)):
                if not _close(g, w):
                    return "mismatch", f"training: output {i} differs"
            model.load_state_dict(state)
        xg = x.clone().requires_grad_(True)
        out = _tuple(model(xg))
        sum(o.float().square().mean() for o in out).backward()
        if xg.grad is None or not torch.isfinite(xg.grad).all():
            return "mismatch", "backward gave no finite gradient"
        return _other_arguments(text, network, net, model, seed)
    except Exception as err:  # noqa: BLE001 - every failure is reported, with where it happened
        tb = traceback.extract_tb(err.__traceback__)
        where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
        return "crash", f"{type(err).__name__} at {where}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def _entries(model) -> list:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _variants(value) -> list:
    """(Python value, netlang source) of other values of a parameter's type."""
    if isinstance(value, bool):
        return [(not value, "false" if value else "true")]
    if isinstance(value, int):
        return [(value + 1, str(value + 1))]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        out = [([v + 1 for v in value], repr([v + 1 for v in value]))]
        if len(value) > 1:
            out.append((value[:-1], repr(value[:-1])))
        return out
    return []


def _other_arguments(text: str, network: str, net, model, seed: int):
    cls = type(model)
    if cls.netlang_entry != f"{cls.__name__}()":
        return None
    accepted = list(inspect.signature(cls.__init__).parameters)[1:]
    params = net.graph.graph["params"]
    choices = [(name, v) for name in accepted if name in params for v in _variants(params[name])]
    if not choices:
        return None
    name, (value, source) = random.Random(seed).choice(choices)
    return with_argument(text, network, cls, name, value, source, seed)


def with_argument(text: str, network: str, cls, name: str, value, source: str, seed: int = 0):
    """The generated network class `cls` called with `name=value` against compiling `text` with
    `name=source`: None where they agree, where the class does not take `name` (fixed for its
    network) or where the program is not valid with that value."""
    try:
        other = netlang.loads(text, network=network, filename="prog.net", **{name: source})
    except NetlangError:
        return None                     # not valid with that value
    G = other.graph
    if name not in inspect.signature(cls.__init__).parameters:
        return None                     # fixed for the network the class was written for
    built = cls(**{name: value}).double()
    if _entries(built) != [(k, tuple(s)) for k, s, _ in state_entries(G)]:
        return "mismatch", f"{cls.__name__}({name}={value!r}): state_dict differs from compiling with {name}={source}"
    state = random_state(G, seed + 1, dtype=torch.float64)
    built.load_state_dict(state, strict=True)
    x = torch.randn(2, *G.nodes[G.graph["inputs"][0]]["shape"], generator=torch.Generator().manual_seed(seed),
                    dtype=torch.float64)
    with torch.no_grad():
        a, real = built.eval()(x), run_eval(G, state, x)
    if len(_tuple(a)) != len(real) or not all(_close(g, w) for g, w in zip(_tuple(a), real)):
        return "mismatch", f"{cls.__name__}({name}={value!r}): eval differs from compiling with {name}={source}"
    return None


def _program(text: str, network: str):
    """The program's network, or None where the generator wrote one the language rejects."""
    try:
        return netlang.loads(text, network=network, filename="prog.net")
    except NetlangError:
        return None


def _random_inputs(G, seed: int, dtype) -> tuple:
    """Random weights and batchnorm statistics, and a random batch of two, all from `seed`."""
    x = torch.randn(2, *G.nodes[G.graph["inputs"][0]]["shape"], generator=torch.Generator().manual_seed(seed),
                    dtype=dtype)
    return random_state(G, seed, dtype=dtype), x


def check_fused(text: str, network: str = "n", seed: int = 0) -> tuple[str, str] | None:
    """The fuse pipeline on one random program: verify() after every pass, the fused graph's
    reference run equal to the unfused one, and the fused module equal to the reference, in
    float64 (to 1e-9 of the largest output). None where all agree; else (kind, detail)."""
    from netlang.ir import verify
    from netlang.passes import PIPELINES, run_pipeline
    net = _program(text, network)
    if net is None:
        return None
    G = net.graph
    try:
        H = G
        for name in PIPELINES["fuse"]:
            H = run_pipeline(H, [name])
            verify(H)
        state, x = _random_inputs(G, seed, torch.float64)
        with torch.no_grad():
            want = run(G, state, x)
            if not all(torch.allclose(a, b, rtol=1e-9, atol=1e-9) for a, b in zip(run(H, state, x), want)):
                return "mismatch", "the fused graph computes another function (reference on both)"
            model = lower(net, init=False, fuse=True).double()
            model.load_state_dict(state, strict=True)
            got = _tuple(model(x))
        real = eval_part(G, want)
        if len(got) != len(real):
            return "mismatch", f"the fused module returns {len(got)} outputs, the network has {len(real)}"
        for g, w in zip(got, real):
            scale = max(w.abs().max().item(), 1e-3)
            if tuple(g.shape) != tuple(w.shape) or (g - w).abs().max().item() > 1e-9 * scale:
                return "mismatch", "the fused module differs from the reference"
        return None
    except Exception as err:  # noqa: BLE001 - every failure is reported, with where it happened
        tb = traceback.extract_tb(err.__traceback__)
        where = f"{tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else "?"
        return "crash", f"{type(err).__name__} at {where}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def check_triton(text: str, network: str = "n", seed: int = 0, rtol: float = 1e-4) -> tuple[str, str] | None:
    """The Triton backend on one program against the reference interpreter, in fp32 with random
    weights and batchnorm statistics: outputs equal to `rtol` of the largest output (the kernels
    sum in another order than torch's). None where they agree; else (kind, detail)."""
    from netlang.backends.triton import lower as lower_triton
    net = _program(text, network)
    if net is None:
        return None
    G = net.graph
    try:
        state, x = _random_inputs(G, seed, torch.float32)
        with torch.no_grad():
            real = run_eval(G, state, x)
            model = lower_triton(net, init=False)
            model.load_state_dict(state, strict=True)
            got = _tuple(model(x))
        if len(got) != len(real):
            return "mismatch", f"{len(got)} outputs, the network has {len(real)} at inference"
        for got, want in zip(got, real):
            scale = max(want.abs().max().item(), 1e-3)
            if tuple(got.shape) != tuple(want.shape):
                return "mismatch", f"shape {tuple(got.shape)}, the reference gives {tuple(want.shape)}"
            err = (got - want).abs().max().item()
            if not err <= rtol * scale:
                return "mismatch", f"max |triton - reference| = {err:.3g}, outputs up to {scale:.3g}"
        return None
    except Exception as err:  # noqa: BLE001 - every failure is reported, with where it happened
        import traceback
        return "crash", "".join(traceback.format_exception(err))[-3000:]
