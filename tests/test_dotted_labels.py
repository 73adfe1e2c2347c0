"""Dotted labels (a layer under an arbitrary module path) and frozen batchnorms, through every
lowering: the torch module and its generated source, the fused module and the Triton backend,
each against the reference interpreter on random weights and random batchnorm statistics."""
from __future__ import annotations

from pathlib import Path

import pytest

import netlang
from netlang.errors import NetlangError
from netlang.ir import state_entries

from lowering_check import check, check_fused, check_triton

PROGRAM = (Path(__file__).parent / "data" / "dotted_frozen.net").read_text()


def test_the_torch_module_and_the_fused_module_equal_the_reference():
    assert check(PROGRAM) is None
    assert check_fused(PROGRAM) is None


def test_the_triton_backend_equals_the_reference():
    pytest.importorskip("triton")
    assert check_triton(PROGRAM) is None


def test_a_container_holds_its_layers_together_in_the_state_dict():
    # torch walks the module tree: fpn.out.0.0, placed after `pre`, comes with the rest of fpn
    G = netlang.loads(PROGRAM, filename="dotted_frozen.net").graph
    keys = [k for k, _, _ in state_entries(G)]
    fpn = [i for i, k in enumerate(keys) if k.startswith("fpn.")]
    assert fpn == list(range(fpn[0], fpn[0] + len(fpn))) and keys.index("pre.weight") > fpn[-1]
    # a frozen batchnorm: four buffers, no num_batches_tracked
    assert [(k, buf) for k, _, buf in state_entries(G) if k.startswith("pre.")] == [
        ("pre.weight", True), ("pre.bias", True), ("pre.running_mean", True), ("pre.running_var", True)]
    # the dotted label inside a block, in a merge branch
    assert "body.layer1.0.a.conv.weight" in keys and "body.layer1.1.a.bn.running_var" in keys


def test_the_generated_source_holds_the_containers_as_module_dicts():
    torch = pytest.importorskip("torch")
    from netlang.backends.pytorch import lower
    net = netlang.loads(PROGRAM, filename="dotted_frozen.net")
    model = lower(net)
    src = type(model).netlang_source
    assert "self.fpn = nn.ModuleDict()" in src and "self.fpn.inner['0']['0'] = nn.Conv2d(8, 8, 1)" in src
    assert "self.pre = FrozenBatchNorm2d(8)" in src
    assert type(model.fpn.inner["1"]["0"]) is torch.nn.Conv2d
    # in training too, a frozen batchnorm normalises with its statistics and keeps them
    model.train()
    before = model.pre.running_mean.clone()
    model(torch.randn(2, 4, 16, 16))
    assert torch.equal(model.pre.running_mean, before)


@pytest.mark.parametrize("body,message", [
    ("input 3x8x8\nbatchnorm(frozen=true, affine=false)", "it cannot be affine=false"),
    ("input 12\nbatchnorm(frozen=true)", "needs a CxHxW feature map"),
    ("input 3x8x8\nc: conv(4, 1)\nc.keys: conv(4, 1)", "would place a layer inside 'c', which is a conv"),
])
def test_mistakes_are_located_errors(body, message):
    with pytest.raises(NetlangError, match=message) as e:
        netlang.loads("network n {\n" + body + "\n}\n", filename="e.net")
    assert e.value.loc is not None and e.value.loc.line >= 2
