"""Checks shared by the zoo's tests: a network against torchvision's golden listing, against a
paper's figure, and through the torch backend. Only the forward check needs torch."""
import json
from pathlib import Path

import pytest

import netlang
from netlang.ir import state_entries, verify

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
GOLDEN = ROOT / "tests" / "golden" / "torchvision"


def load(file: str, network: str | None = None, **kw):
    """The analysed network, with the IR contract checked."""
    net = netlang.load(ARCH / file, network=network, **kw)
    verify(net.graph)
    return net


def golden(model: str) -> dict:
    return json.loads((GOLDEN / f"{model}.json").read_text())


def check_torchvision_state_dict(net, model: str) -> None:
    """Keys, shapes, registration order, the parameter/buffer split and the parameter count all
    equal torchvision's, so its checkpoints load with strict=True."""
    ref = golden(model)
    ours = [(key, tuple(shape)) for key, shape, _ in state_entries(net.graph)]
    theirs = [(key, tuple(shape)) for key, shape, _ in ref["state_dict"]]
    missing = sorted(set(dict(theirs)) - set(dict(ours)))
    unexpected = sorted(set(dict(ours)) - set(dict(theirs)))
    assert not missing and not unexpected, f"missing {missing[:8]}, unexpected {unexpected[:8]}"
    assert dict(ours) == dict(theirs)
    assert ours == theirs, "same keys and shapes, registered in another order"
    buffers = {key for key, _, is_buffer in state_entries(net.graph) if is_buffer}
    assert buffers == set(ref["buffers"])
    assert net.cost.params == ref["num_params"]


def check_torchvision_macs(net, model: str, rel: float = 1e-2) -> None:
    """torchvision's published "GFLOPS" are multiply-accumulates of convs and linears (two
    decimals), netlang's MAC convention."""
    published = golden(model)["meta"]["gflops"] * 1e9
    assert net.cost.macs == pytest.approx(published, rel=rel)


def check_figure(value: float, printed: float, unit: float, digits: int = 0) -> None:
    """A paper's figure `printed` (in `unit`s, given to `digits` decimals) is `value` rounded to
    that precision: 138M params is any count in [137.5M, 138.5M)."""
    assert round(value / unit, digits) == pytest.approx(printed), (value / unit, printed)


def check_forward(file: str, network: str | None = None, batch: int = 2, input=None, **params):
    """Compile to torch, run a batch in eval mode: every output has the shape the IR promises."""
    torch = pytest.importorskip("torch")
    net = load(file, network, input=input, **params)
    model = netlang.compile(ARCH / file, network=network, input=input, **params).eval()
    shape = tuple(net.graph.nodes[net.graph.graph["inputs"][0]]["shape"])
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(torch.randn(batch, *shape))
    main = net.graph.graph["outputs"][0]
    assert tuple(out.shape) == (batch, *net.graph.nodes[main]["shape"])
    assert torch.isfinite(out).all()
    return net, out
