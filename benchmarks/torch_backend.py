"""Speed of the torch backend against hand-written PyTorch: forward time and build time.

Prints, on this CPU, the ratio of netlang's compiled module to a reference module for

  * forward time in eval mode (under torch.inference_mode) of resnet50 and googlenet, batch 1 and
    8, 224x224;
  * build time: constructing the module and initialising its parameters, both from an analysed
    network (`netlang.backends.pytorch.lower`: generate the source, run it, build) and from the .net file
    (`netlang.compile`: parse, elaborate, analyse, lower), each timed once in a fresh process;
  * and the forward time of the module imported from the generated file (`netlang compile -o`)
    against the in-memory one (the same code, so the ratio is the noise floor).

The reference is torchvision's own model where `import torchvision` works; otherwise the modules
below, which reproduce torchvision's ResNet-50 and GoogLeNet code (Bottleneck with conv1/bn1/...
and downsample, in-place ReLU, `out += identity`; GoogLeNet of BasicConv2d and Inception). Both
sides are first given the same state_dict and must compute the same function.

    python benchmarks/torch_backend.py [--threads N] [--quick]

Method: torch.set_num_threads(N) (1 unless told); warm-up runs; then the two sides are timed
alternately, the order flipping every round, and the report gives medians, the ratio of the
medians (the verdict), the median and interquartile range of the per-round ratios (the spread),
and the ratio of median process CPU times (less disturbed by other processes on a shared
machine). A build is timed in a fresh Python process (after the imports, torch's first layer
constructions and netlang's parser have been warmed on both sides): building twice in one process
measures the memory allocator's state as much as the build (a second 100 MB model reuses or
fragments the first one's freed memory, depending on the order of the two builders), while a
model is built once in a process in practice.

Targets (issue 3): forward ratio <= 1.02, build ratio <= 1.0, and modules loaded from generated
source as fast as in-memory ones.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import netlang  # noqa: E402
from netlang.backends import pytorch as torch_backend  # noqa: E402
from netlang.api import load_module  # noqa: E402
from netlang.errors import NetlangError  # noqa: E402
from netlang.ir import state_entries  # noqa: E402

try:
    import torchvision
except ImportError:   # torchvision cannot be installed beside the project's torch
    torchvision = None

ARCH = ROOT / "architectures"
FORWARD_TARGET, BUILD_TARGET = 1.02, 1.0


# ====================================================================== hand-written references
# torchvision 0.29's models/resnet.py and models/googlenet.py, reduced to what ResNet-50 and
# GoogLeNet use; module attribute names are torchvision's, so netlang's state_dict loads as is.

def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.conv1(x)
        out = self.bn1(out)
        out = self.relu(out)
        out = self.conv2(out)
        out = self.bn2(out)
        out = self.relu(out)
        out = self.conv3(out)
        out = self.bn3(out)
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        out = self.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, block, layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks):
            layers.append(block(self.inplanes, planes))
        return nn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.relu(x)
        x = self.maxpool(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        x = self.layer4(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.fc(x)
        return x

    def forward(self, x):
        return self._forward_impl(x)


def resnet50() -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3])


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        x = self.conv(x)
        x = self.bn(x)
        return F.relu(x, inplace=True)


class Inception(nn.Module):
    # k5: the "5x5" branch's kernel, 3 in torchvision (its kept slip), 5 in the paper.
    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj, k5: int = 3):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=k5, padding=k5 // 2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def _forward(self, x):
        return [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]

    def forward(self, x):
        return torch.cat(self._forward(x), 1)


class InceptionAux(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7, paper: bool = False):
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)
        self.paper = paper

    def forward(self, x):
        # aux1: N x 512 x 14 x 14, aux2: N x 528 x 14 x 14 -> N x C x 4 x 4
        x = F.avg_pool2d(x, 5, 3) if self.paper else F.adaptive_avg_pool2d(x, (4, 4))
        x = self.conv(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.dropout(x)
        x = self.fc2(x)
        return x


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (transform_input=False, aux_logits=True); paper=True gives the
    paper's variant that architectures/googlenet.net's `googlenet` describes: 5x5 branch, last
    max pool 3x3/2, auxiliary pool 5x5/3, dropout 0.4."""

    def __init__(self, num_classes: int = 1000, paper: bool = False):
        super().__init__()
        k5 = 5 if paper else 3
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32, k5)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64, k5)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64, k5)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64, k5)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64, k5)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64, k5)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128, k5)
        self.maxpool4 = nn.MaxPool2d(3 if paper else 2, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128, k5)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128, k5)
        self.aux1 = InceptionAux(512, num_classes, paper=paper)
        self.aux2 = InceptionAux(528, num_classes, paper=paper)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.4 if paper else 0.2)
        self.fc = nn.Linear(1024, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _forward(self, x):
        x = self.conv1(x)
        x = self.maxpool1(x)
        x = self.conv2(x)
        x = self.conv3(x)
        x = self.maxpool2(x)
        x = self.inception3a(x)
        x = self.inception3b(x)
        x = self.maxpool3(x)
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.training else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)
        aux2 = self.aux2(x) if self.training else None
        x = self.inception4e(x)
        x = self.maxpool4(x)
        x = self.inception5a(x)
        x = self.inception5b(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        x = self.dropout(x)
        x = self.fc(x)
        return x, aux2, aux1

    def forward(self, x):
        x, aux2, aux1 = self._forward(x)
        return (x, aux2, aux1) if self.training else x


# ====================================================================== the pairs compared

def googlenet_network() -> tuple[str, bool]:
    """The network of googlenet.net with torchvision's state_dict layout, if the file has one
    (then the reference is torchvision's GoogLeNet); else the paper's `googlenet`."""
    golden = json.loads((ROOT / "tests/golden/torchvision/googlenet.json").read_text())
    theirs = {key: tuple(shape) for key, shape, _ in golden["state_dict"]}
    for name in load_module(ARCH / "googlenet.net").networks:
        try:
            net = netlang.load(ARCH / "googlenet.net", network=name)
        except NetlangError:
            continue
        if {key: shape for key, shape, _ in state_entries(net.graph)} == theirs:
            return name, True
    return "googlenet", False


def pairs() -> list[dict]:
    """name, netlang file and network, reference constructor, and what the reference is."""
    g_name, g_tv = googlenet_network()
    if torchvision is not None:
        tv = torchvision.models
        ref_resnet, what_resnet = (lambda: tv.resnet50(weights=None)), "torchvision.models.resnet50"
    else:
        ref_resnet, what_resnet = resnet50, "hand-written torchvision-style ResNet-50"
    if torchvision is not None and g_tv:
        ref_goog = lambda: torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)  # noqa: E731
        what_goog = "torchvision.models.googlenet"
    else:
        ref_goog = (lambda: GoogLeNet(paper=not g_tv))
        what_goog = "hand-written torchvision-style GoogLeNet" + ("" if g_tv else " (paper variant)")
    return [
        {"name": "resnet50", "file": ARCH / "resnet.net", "network": "resnet50", "ref": ref_resnet,
         "what": what_resnet},
        {"name": "googlenet", "file": ARCH / "googlenet.net", "network": g_name, "ref": ref_goog,
         "what": what_goog + ("" if g_tv else "; googlenet.net has no torchvision-layout network yet")},
    ]


# ====================================================================== timing

def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[1], q[2]


def interleaved(fa, fb, rounds: int, warmup: int) -> dict:
    """Time fa and fb alternately (a, b, then b, a, ...) after `warmup` runs of each.

    Wall-clock time decides; the process's CPU time is reported beside it because on a shared
    machine it is less disturbed by other processes (at one thread it leaves out the time spent
    waiting for a CPU)."""
    for _ in range(warmup):
        fa()
        fb()
    wall: dict = {0: [], 1: []}
    cpu: dict = {0: [], 1: []}
    for r in range(rounds):
        for which in ((0, 1) if r % 2 == 0 else (1, 0)):
            w, c = timed(fa if which == 0 else fb)
            wall[which].append(w)
            cpu[which].append(c)
    r25, r50, r75 = quartiles([a / b for a, b in zip(wall[0], wall[1])])
    med = statistics.median
    return {"a": med(wall[0]), "b": med(wall[1]), "ratio": med(wall[0]) / med(wall[1]), "r25": r25, "r50": r50,
            "r75": r75, "cpu_ratio": med(cpu[0]) / med(cpu[1]), "rounds": rounds}


def timed(f) -> tuple[float, float]:
    """Wall and CPU seconds of f(); a Fresh(...) measures itself in a subprocess."""
    if isinstance(f, Fresh):
        return f()
    t, c = time.perf_counter(), time.process_time()
    f()
    return time.perf_counter() - t, time.process_time() - c


class Fresh:
    """One build, timed in a new process running this file with --build-once."""

    def __init__(self, name: str, kind: str, threads: int):
        self.args = [sys.executable, __file__, "--build-once", name, kind, "--threads", str(threads)]

    def __call__(self) -> tuple[float, float]:
        out = subprocess.run(self.args, check=True, capture_output=True, text=True).stdout.split()
        return float(out[-2]), float(out[-1])


def build_once(name: str, kind: str) -> None:
    """Build `name` once as `kind` (reference, lower, compile) and print wall and CPU seconds."""
    p = {q["name"]: q for q in pairs()}[name]
    # What a process pays once, whichever model it builds first, is paid before timing, alike for
    # every kind: torch's first layer constructions and netlang's parser.
    nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3), nn.Linear(3, 3)
    net = netlang.load(p["file"], network=p["network"])
    f = {"reference": p["ref"], "lower": lambda: torch_backend.lower(net),
         "compile": lambda: netlang.compile(p["file"], network=p["network"])}[kind]
    print(*timed(f))


def row(label: str, m: dict, target: float, verdict: bool = True) -> bool:
    ok = m["ratio"] <= target
    said = ("PASS" if ok else "FAIL") if verdict else "(noise floor)"
    print(f"  {label:<28} {m['a'] * 1e3:10.2f} {m['b'] * 1e3:10.2f} {m['ratio']:7.3f}"
          f"  {m['r50']:6.3f} [{m['r25']:.3f}, {m['r75']:.3f}] {m['cpu_ratio']:7.3f} {m['rounds']:5d}   {said}")
    return ok


def header(a: str, b: str) -> None:
    print(f"  {'':<28} {a:>10} {b:>10} {'ratio':>7}  {'per-round ratio':^21} {'cpu':>7} {'rounds':>5}")
    print(f"  {'':<28} {'':>10} {'':>10} {'':>7}  {'median [IQR]':^21} {'ratio':>7}")


def same_function(ours: nn.Module, ref: nn.Module, side: int) -> float:
    """Give ref netlang's state_dict (strict) and check both compute the same in eval mode."""
    ref.load_state_dict(ours.state_dict(), strict=True)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a, b = ours(x), ref(x)
    diff = (a - b).abs().max().item()
    # Same layers, same weights, same order of operations: equal up to summation order in a few
    # kernels, far below this bound.
    tol = 1e-5 * max(1.0, b.abs().max().item())
    assert a.shape == b.shape and diff <= tol, f"outputs differ by {diff} (bound {tol})"
    return diff


def source_module(net, ours: nn.Module):
    """The module of the Python file `netlang compile -o` writes for net, loaded as a user would
    import it, with ours's state_dict; or None and why not."""
    from netlang.backends.torchgen import generate
    try:
        src = generate(net)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "netlang_generated.py"
            path.write_text(src.text)
            spec = importlib.util.spec_from_file_location("netlang_generated", path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        model = eval(src.entry, vars(mod))
        model.load_state_dict(ours.state_dict(), strict=True)
    except Exception as e:  # noqa: BLE001 - report why, and go on with the other measurements
        return None, f"the generated file could not be loaded: {type(e).__name__}: {e}"
    return model, f"{src.entry} of the generated file"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run, not a measurement)")
    ap.add_argument("--build-once", nargs=2, metavar=("NETWORK", "KIND"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.build_once:
        build_once(*args.build_once)
        return 0
    scale = 0.2 if args.quick else 1.0
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__ if torchvision else 'not importable'}; "
          f"torch.set_num_threads({torch.get_num_threads()}) on a machine of {torch.multiprocessing.cpu_count()} CPUs")
    ok = True
    for p in pairs():
        torch.manual_seed(0)
        ours = netlang.compile(p["file"], network=p["network"])
        ref = p["ref"]()
        diff = same_function(ours, ref, 224)
        print(f"\n{p['name']}: netlang {p['file'].name}:{p['network']} against {p['what']}")
        print(f"  same state_dict (strict), eval outputs agree: max |diff| = {diff:.2e}")

        print(f"  forward, eval, 3x224x224, ms (median); target ratio <= {FORWARD_TARGET}")
        header("netlang", "reference")
        for batch, rounds in ((1, 60), (8, 30)):
            x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
            with torch.inference_mode():
                m = interleaved(lambda: ours(x), lambda: ref(x), max(4, int(rounds * scale)), 3 if batch == 1 else 2)
            ok &= row(f"batch {batch}", m, FORWARD_TARGET)
        # The same measurement of two identical modules: how far apart equal code lands here.
        twin = copy.deepcopy(ref)
        x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            m = interleaved(lambda: ref(x), lambda: twin(x), max(4, int(60 * scale)), 3)
        row("batch 1, reference vs copy", m, FORWARD_TARGET, verdict=False)

        print(f"  build (construct + initialise, fresh process), ms (median); target ratio <= {BUILD_TARGET}")
        header("netlang", "reference")
        rounds = max(3, int(10 * scale))
        for kind, label in (("compile", "compile(.net file)"), ("lower", "lower(analysed graph)")):
            m = interleaved(Fresh(p["name"], kind, args.threads), Fresh(p["name"], "reference", args.threads),
                            rounds, 0)
            ok &= row(label, m, BUILD_TARGET)
        net = netlang.load(p["file"], network=p["network"])

        gen, what = source_module(net, ours)
        if gen is None:
            print(f"  generated source: {what}")
            continue
        diff = same_function(ours, gen, 224)
        print(f"  generated source ({what}): eval outputs agree with the in-memory module, max |diff| = {diff:.2e}")
        print(f"  forward, eval, 3x224x224, ms (median); target ratio <= {FORWARD_TARGET}")
        header("generated", "in-memory")
        for batch, rounds in ((1, 40), (8, 10)):
            x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
            with torch.inference_mode():
                m = interleaved(lambda: gen(x), lambda: ours(x), max(4, int(rounds * scale)), 2)
            ok &= row(f"batch {batch}", m, FORWARD_TARGET)
    print(f"\ntargets: forward ratio <= {FORWARD_TARGET}, build ratio <= {BUILD_TARGET}: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
