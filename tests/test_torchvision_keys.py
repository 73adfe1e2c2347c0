"""The zoo's module names and tensor shapes are torchvision's, checked against golden state_dict
listings made from torchvision 0.29.1 (tests/golden/torchvision), without torch or torchvision."""
import json
from pathlib import Path

import pytest

import netlang
from netlang.ir import state_entries, verify

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "torchvision"

CASES = [
    ("resnet.net", "resnet18", "resnet18"),
    ("resnet.net", "resnet34", "resnet34"),
    ("resnet.net", "resnet50", "resnet50"),
    ("resnet.net", "resnet101", "resnet101"),
    ("resnet.net", "resnet152", "resnet152"),
    ("vgg.net", "vgg16", "vgg16"),
    ("convnext.net", "convnext_tiny", "convnext_tiny"),
]


def golden(model: str) -> dict:
    return json.loads((GOLDEN / f"{model}.json").read_text())


@pytest.mark.parametrize("file,network,model", CASES, ids=[c[1] for c in CASES])
def test_state_dict_keys_and_shapes_match_torchvision(file, network, model):
    net = netlang.load(ROOT / "architectures" / file, network=network)
    verify(net.graph)
    ref = golden(model)
    ours = {key: shape for key, shape, _ in state_entries(net.graph)}
    theirs = {key: tuple(shape) for key, shape, _ in ref["state_dict"]}
    assert set(ours) - set(theirs) == set() and set(theirs) - set(ours) == set()
    assert ours == theirs
    # Parameter and buffer split, and the counts, as torchvision has them.
    buffers = {key for key, _, is_buffer in state_entries(net.graph) if is_buffer}
    assert buffers == set(ref["buffers"])
    assert net.cost.params == ref["num_params"]
    # Registration order: torchvision defines these modules in forward order (ConvNeXt's layer
    # scale, a parameter of the block itself, comes before the block's submodules).
    assert [k for k, _, _ in state_entries(net.graph)] == [k for k, _, _ in ref["state_dict"]]


@pytest.mark.parametrize("file,network,model", CASES, ids=[c[1] for c in CASES])
def test_macs_match_torchvisions_published_gflops(file, network, model):
    # torchvision's "GFLOPS" are conv and linear multiply-accumulates, netlang's MAC convention.
    net = netlang.load(ROOT / "architectures" / file, network=network)
    published = golden(model)["meta"]["gflops"] * 1e9
    assert net.cost.macs == pytest.approx(published, rel=1e-3)


def test_convnext_tiny_is_torchvisions_to_the_rounding_of_its_published_figures():
    net = netlang.load(ROOT / "architectures" / "convnext.net", network="convnext_tiny")
    meta = golden("convnext_tiny")["meta"]
    assert net.cost.params == meta["num_params"] == 28_589_128
    assert net.cost.macs == 4_455_531_264 and round(net.cost.macs / 1e9, 3) == meta["gflops"] == 4.456
