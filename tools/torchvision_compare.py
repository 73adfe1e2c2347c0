"""Load torchvision's weights into netlang's networks and print the largest output difference.

For every torchvision model that a network of architectures/ reproduces (one named like the
model, or `<model>_torchvision`, whose state_dict has torchvision's keys and shapes), the script
builds torchvision's model without downloading anything (`weights=None`; random initialisation,
and random batch-norm statistics so that eval-mode batch norm is not the identity), loads its
state_dict into the netlang module with strict=True, runs both in eval mode on the same random
input and prints the largest absolute difference of the outputs.

It needs torch, torchvision, lark and networkx, and imports netlang from this checkout. torchvision
cannot be installed beside the project's torch, so run it with the Python of a separate
environment:

    python3 -m venv /path/to/venv-with-torchvision
    /path/to/venv-with-torchvision/bin/pip install torch torchvision 'lark[interegular]' networkx
    /path/to/venv-with-torchvision/bin/python tools/torchvision_compare.py [--only NAME ...]

Exit status 1 if any network's outputs differ by more than the stated tolerance.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import netlang  # noqa: E402
from netlang.api import load_module  # noqa: E402
from netlang.errors import NetlangError  # noqa: E402
from netlang.ir import state_entries  # noqa: E402

try:
    from torchvision import models
except ImportError:
    sys.exit("torchvision is not importable here: run this with the Python of an environment that has it")

# torchvision model -> constructor keyword arguments (besides weights=None).
MODELS = {
    "resnet18": {}, "resnet34": {}, "resnet50": {}, "resnet101": {}, "resnet152": {},
    "resnext50_32x4d": {}, "resnext101_32x8d": {}, "wide_resnet50_2": {},
    "vgg11": {}, "vgg13": {}, "vgg16": {}, "vgg19": {},
    "vgg11_bn": {}, "vgg13_bn": {}, "vgg16_bn": {}, "vgg19_bn": {},
    "alexnet": {},
    "googlenet": {"aux_logits": True, "init_weights": True},
    "inception_v3": {"aux_logits": True, "init_weights": True},
    "densenet121": {}, "densenet169": {}, "densenet201": {},
    "squeezenet1_0": {}, "squeezenet1_1": {},
}

# |netlang - torchvision| <= RTOL * max |torchvision|: the same float32 kernels on the same
# weights, so only summation order may differ (e.g. avgpool(7) against an adaptive pool).
RTOL = 1e-5


def layout(module: nn.Module) -> dict:
    return {key: tuple(t.shape) for key, t in module.state_dict().items()}


def find_network(model: str, theirs: dict) -> tuple[Path, str] | str:
    """The architecture file and network that reproduce `model`'s state_dict layout, or why none."""
    seen = []
    for path in sorted((ROOT / "architectures").glob("*.net")):
        try:
            names = load_module(path).networks
        except NetlangError:
            continue
        for name in names:
            if name not in (model, f"{model}_torchvision"):
                continue
            net = netlang.load(path, network=name)
            if {key: tuple(shape) for key, shape, _ in state_entries(net.graph)} == theirs:
                return path, name
            seen.append(f"{path.name}:{name}")
    if seen:
        return f"layout differs from torchvision's: {', '.join(seen)}"
    return "no netlang network"


def randomise_batchnorm(module: nn.Module, g: torch.Generator) -> None:
    # A fresh model's batch norm is the identity in eval mode (mean 0, var 1, weight 1, bias 0),
    # which would hide a wrong epsilon or a missing layer; give it statistics worth checking.
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                if m.affine:
                    m.weight.copy_(1 + 0.25 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))


def compare(model: str, kwargs: dict, batch: int) -> tuple[bool | None, str]:
    torch.manual_seed(0)
    theirs = getattr(models, model)(weights=None, **kwargs)
    randomise_batchnorm(theirs, torch.Generator().manual_seed(1))
    found = find_network(model, layout(theirs))
    if isinstance(found, str):
        return None, found
    path, name = found
    ours = netlang.compile(path, network=name)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    theirs.eval()
    x = torch.randn((batch,) + tuple(ours.input_shape), generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a, b = ours(x), theirs(x)
    if a.shape != b.shape:
        return False, f"{path.name}:{name}: output shapes differ: {tuple(a.shape)} against {tuple(b.shape)}"
    diff = (a - b).abs().max().item()
    scale = b.abs().max().item()
    ok = diff <= RTOL * scale
    return ok, (f"{path.name + ':' + name:<36} input {tuple(x.shape)}  max |diff| = {diff:.3e}  "
                f"(max |output| {scale:.3e}, relative {diff / scale:.1e})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(MODELS), help="compare only these models")
    ap.add_argument("--batch", type=int, default=2)
    args = ap.parse_args(argv)
    import torchvision
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}; strict state_dict load, eval mode, "
          f"float32; tolerance max |diff| <= {RTOL:g} * max |output|")
    failed = compared = 0
    for model in args.only or MODELS:
        t = time.perf_counter()
        ok, text = compare(model, MODELS[model], args.batch)
        if ok is None:
            print(f"  {model:<18} skipped: {text}")
            continue
        compared += 1
        failed += not ok
        print(f"  {model:<18} {'ok  ' if ok else 'FAIL'} {text}  [{time.perf_counter() - t:.1f} s]")
    print(f"{compared} compared, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
