"""Differential tests: the PyTorch lowering against the reference interpreter (backends/reference.py)
on random weights and random batchnorm statistics (the init values, weight 1, bias 0, mean 0,
variance 1, would hide a wrong fold or a swapped buffer), for every network of the zoo and every
example of the docs. The random programs of tests/progen.py are in tests/test_fuzz_lowering.py."""
from __future__ import annotations

from pathlib import Path

import pytest

import netlang
from netlang.api import load_module
from netlang.errors import NetlangError
from netlang.ir import eval_outputs

torch = pytest.importorskip("torch")
from netlang.backends.pytorch import lower  # noqa: E402
from netlang.backends.reference import random_state, run, run_eval  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
DOCS = ROOT / "tests" / "data" / "doc_examples"

# fp32 through up to a few hundred layers: outputs agree to this fraction of their largest value
RTOL = 1e-4


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


def smallest_input(path, name):
    """The network at the smallest square input it takes among a few (the reference is slow on
    large maps; the code paths do not depend on the size)."""
    G = netlang.load(path, network=name).graph
    declared = tuple(G.nodes[G.graph["inputs"][0]]["shape"])
    if len(declared) != 3:
        return None
    for side in (32, 48, 64, 96, 128, 188, 224):
        if side >= min(declared[1:]):
            break
        try:
            netlang.load(path, network=name, input=(declared[0], side, side))
            return (declared[0], side, side)
        except NetlangError:
            continue
    return None


def entries(folder: Path, pattern: str):
    """(file, network) of every network of the files, templates left out (their instances are
    the networks: a template needs arguments it has no default for)."""
    from netlang.elaborate import template_params
    out = []
    for path in sorted(folder.glob(pattern)):
        module = load_module(path)
        for name in module.networks:
            if not template_params(module, name):
                out.append((path, name))
    return out


def compare(path, name, input=None, seed=0, batch=2, **params):
    net = netlang.load(path, network=name, input=input, **params)
    model = lower(net, init=False).eval()
    state = random_state(net.graph, seed)
    model.load_state_dict(state, strict=True)
    x = torch.randn(batch, *net.graph.nodes["input"]["shape"], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        got = model(x)
        real = run_eval(net.graph, state, x)      # (every output but the auxiliary ones)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(real)
    for g, w, o in zip(got, real, eval_outputs(net.graph)):
        assert tuple(g.shape) == tuple(w.shape) == (batch, *net.graph.nodes[o]["shape"])
        err = (g - w).abs().max().item()
        scale = max(w.abs().max().item(), 1e-3)
        assert err <= RTOL * scale, f"{name}: {o}: max |lowered - reference| = {err:.3g} (outputs up to {scale:.3g})"


ZOO = entries(ARCH, "*.net")


@pytest.mark.parametrize("path,name", ZOO, ids=[f"{p.name}:{n}" for p, n in ZOO])
def test_zoo_network_equals_the_reference(path, name):
    compare(path, name, smallest_input(path, name))


DOC_EXAMPLES = entries(DOCS, "*.net")


@pytest.mark.parametrize("path,name", DOC_EXAMPLES, ids=[f"{p.name}:{n}" for p, n in DOC_EXAMPLES])
def test_docs_example_equals_the_reference(path, name):
    compare(path, name)


def test_the_zoo_and_the_docs_are_all_here():
    assert len(ZOO) == 123 and len(DOC_EXAMPLES) >= 15


def test_the_comparison_fails_on_a_wrong_weight():
    # the check above can fail: a batchnorm's running mean swapped for its variance shows
    path = ARCH / "resnet.net"
    net = netlang.load(path, network="resnet18", input=(3, 32, 32))
    model = lower(net, init=False).eval()
    state = random_state(net.graph, 0)
    model.load_state_dict(state)
    swapped = dict(state)
    swapped["layer2.0.bn1.running_mean"], swapped["layer2.0.bn1.running_var"] = \
        state["layer2.0.bn1.running_var"], state["layer2.0.bn1.running_mean"].abs() + 0.1
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x), run(net.graph, swapped, x)[0], atol=1e-3)
