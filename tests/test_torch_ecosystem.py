"""Compiled modules in the PyTorch ecosystem: torch.compile, checkpoints, torch.distributed, training.

- Every network of every .net file under architectures/ (found at collection, so a new zoo file is
  covered without editing this file) compiles with torch.compile(fullgraph=True) in eval mode,
  gives the eager module's output and is not recompiled on a second call. In training mode, so
  do the smallest networks that between them hold every feature of the zoo that a network using
  every op of the registry (also traced in both modes) does not have.
- state_dict and whole-module checkpoints round-trip through torch.save / torch.load and deepcopy.
- Two processes train a compiled DistributedDataParallel netlang network (gloo): the replicas stay
  identical and the loss falls.
- A small network learns a separable problem, eagerly and under torch.compile, with the same losses.

backend="eager" is used throughout: it runs Dynamo's tracing (where graph breaks and guards come
from) but no code generation, so it needs no C compiler and keeps CI fast.

This file also runs as a script: `python tests/test_torch_ecosystem.py ddp-worker RANK WORLD
INIT_FILE OUT_DIR` is one replica of the distributed test.
"""
from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import torch._dynamo  # noqa: E402
from torch._dynamo.testing import CompileCounterWithBackend  # noqa: E402

import netlang  # noqa: E402
from netlang.backends.pytorch import lower  # noqa: E402
from netlang import ops  # noqa: E402
from netlang.api import load_module  # noqa: E402
from netlang.errors import NetlangError  # noqa: E402
from netlang.ir import topo_order  # noqa: E402
from netlang.passes.cost import shares_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
BATCH = 2
# backend="eager" runs the very ATen kernels the eager module runs, in the same order, so the
# outputs agree to the last bit in practice; the tolerance only allows for a kernel choosing
# another summation order, and is far below any change of meaning.
TOL = dict(rtol=1e-5, atol=1e-6)


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    pass


# ---------------------------------------------------------------------------- the zoo

# Input sizes chosen per network: Dynamo's tracing time does not depend on the input size, the
# eager reference runs do, so each network gets about the smallest input it accepts.
SIZES = {
    # A fixed 7x7/1 average pool before `fc` (and 5x5/3 pools in the auxiliary heads, sized for
    # 14x14): the main path must still be 7x7 after five ceil-mode halvings, which only inputs
    # of 223 and up give.
    "googlenet": (3, 224, 224),
    # The Inception modules keep any size and channel count (stride 1, "same" padding); 32
    # channels instead of 256 only makes the reference runs cheaper.
    "inception_naive": (32, 14, 14),
    "inception_bottleneck": (32, 14, 14),
    # U-Net keeps its declared 1x64x64: already small, and the skip concatenation needs sizes
    # divisible by the pooling.
    "unet_tiny": (1, 64, 64),
    # Valid convolutions: U-Net takes 16n + 124 pixels; 188 is the smallest (out 4x4).
    "unet": (1, 188, 188),
}
# Everything else: the declared channels at 32x32, the smallest size that survives the five
# halvings of ResNet, VGG (its classifier reads whatever the features give: 512x1x1 here;
# vgg16's adaptive pool makes it 512x7x7 at any size), FractalNet, SqueezeNet and torchvision's
# GoogLeNet (adaptive pools); then larger sizes, then the declared input, for networks not listed
# here that need more.
FALLBACK_SIDES = (32, 64, 128)


def small_input(path: Path, name: str, declared: tuple) -> tuple:
    if name in SIZES:
        return SIZES[name]
    c, h, w = declared
    for side in FALLBACK_SIDES:
        if side < min(h, w):
            try:
                netlang.load(path, network=name, input=(c, side, side))
                return (c, side, side)
            except NetlangError:
                continue
    return declared


def features(G) -> set:
    """What tracing a network in training mode can meet: its ops, in-place activations, the flags
    and modes that pick another code path in the lowering (ceil, crop, bias, affine, "same"
    padding, upsampling mode...), dropping joins and auxiliary outputs. Channel counts and sizes are not features:
    they do not change the code Dynamo traces."""
    found = set()
    shares = shares_input(G, topo_order(G))
    for n, data in G.nodes(data=True):
        op, args = data["op"], data["args"]
        found.add(op)
        if ops.OPS[op].inplace:
            found.add(f"{op} {'in place' if shares[n] else 'out of place'}")
        for key, value in args.items():
            if isinstance(value, (bool, str)):
                found.add(f"{op}.{key}={value}")
        if op == "mean" and args.get("drop"):
            found.add("mean.drop")
        if op == "batchnorm":
            found.add(f"batchnorm.{len(data['shape'])}d")
    if any(G.graph["output_aux"]):
        found.add("auxiliary outputs")
    if len(G.graph["outputs"]) - sum(G.graph["output_aux"]) > 1:
        found.add("several inference outputs")
    return found


def signature(G) -> tuple:
    """Everything of the IR that the lowering reads, and nothing else (not the network's name or
    location): two networks with the same signature lower to the same module, as a generic
    network with its default arguments and the instance that spells them out do."""
    nodes = tuple((n, d["op"], repr(sorted(d["args"].items())), tuple(d["shape"]))
                  for n, d in sorted(G.nodes(data=True)))
    edges = tuple(sorted((u, v, k) for u, v, k in G.edges(keys=True)))       # k: the argument position
    return nodes, edges, tuple(G.graph["inputs"]), tuple(G.graph["outputs"]), repr(G.graph.get("scopes"))


def zoo() -> list[dict]:
    """Every network of every .net file under architectures/ (shared block files declare none);
    a network with the same signature as an earlier one is folded into that one's entry."""
    found, by_signature = [], {}
    from netlang.elaborate import template_params
    for path in sorted(ARCH.rglob("*.net")):
        module = load_module(path)
        for name in module.networks:
            if template_params(module, name):
                continue                # a template: its instances are the networks
            G = netlang.load(path, network=name).graph
            sig = signature(G)
            if sig in by_signature:
                by_signature[sig]["aliases"].append(name)
                continue
            declared = tuple(G.nodes[G.graph["inputs"][0]]["shape"])
            entry = {"path": path, "name": name, "aliases": [], "nodes": G.number_of_nodes(),
                     "features": features(G), "input": small_input(path, name, declared)}
            by_signature[sig] = entry
            found.append(entry)
    return found


def training_cover(entries: list[dict]) -> list[dict]:
    """The smallest networks that between them have every feature of the zoo that ALL_OPS (traced
    in both modes below) does not have."""
    chosen, covered = [], features(netlang.loads(ALL_OPS).graph)
    for entry in sorted(entries, key=lambda e: (e["nodes"], e["name"])):
        if entry["features"] - covered:
            chosen.append(entry)
            covered |= entry["features"]
    return chosen


def zoo_id(entry: dict) -> str:
    return "+".join([f"{entry['path'].relative_to(ARCH)}:{entry['name']}"] + entry["aliases"])




def as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def build_zoo(entry: dict):
    torch.manual_seed(0)
    model = netlang.compile(entry["path"], network=entry["name"], input=entry["input"])
    return model, torch.randn(BATCH, *entry["input"])


def check_compiles_in_eval(model, x) -> None:
    """No graph break (fullgraph raises on one), the eager module's output, one compilation."""
    model.eval()
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
        again = compiled(x)
    torch._dynamo.reset()
    # eval returns the inference outputs: the main one alone, or a tuple (a backbone's maps)
    assert isinstance(got, torch.Tensor) or (isinstance(got, tuple) and len(got) > 1), type(got)
    torch.testing.assert_close(got, expected, **TOL)
    torch.testing.assert_close(again, expected, **TOL)
    assert counter.frame_count == 1, f"{counter.frame_count} compilations: a recompilation or a graph break"
    return got


def outputs_of(model) -> int:
    """How many outputs the network declares (the generated classes do not say; the IR does)."""
    return model.netlang_outputs


def check_compiles_in_training(model, x) -> None:
    """As check_compiles_in_eval, in training: dropout, drop_path and mean(drop=p) draw random
    numbers and batchnorm updates its running statistics, so under the same seed the compiled
    module must draw the same numbers and leave the same statistics as an eager copy; auxiliary
    outputs come as a tuple."""
    model.train()
    reference = copy.deepcopy(model)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    torch.manual_seed(1)
    expected = reference(x)
    torch.manual_seed(1)
    got = compiled(x)
    if outputs_of(model) > 1:
        assert isinstance(got, tuple) and len(got) == outputs_of(model), "auxiliary outputs come as a tuple"
    else:
        assert isinstance(got, torch.Tensor)
    for g, e in zip(as_tuple(got), as_tuple(expected), strict=True):
        torch.testing.assert_close(g, e, **TOL)
    buffers = dict(reference.named_buffers())
    for key, value in model.named_buffers():
        torch.testing.assert_close(value, buffers[key], **TOL, msg=f"buffer {key}")
    compiled(x)
    torch._dynamo.reset()
    assert counter.frame_count == 1, f"{counter.frame_count} compilations in training"


# Every op of the registry, in both modes, with the flags that change the lowered code: the
# ops few zoo networks use (drop_path, scale, upsample, center_crop, mul...) included.
ALL_OPS = """
network all_ops(classes=5) {
    input 3x16x16
    conv1: conv(8, 3, pad=1)
    bn1: batchnorm
    relu
    hardswish
    h: hardsigmoid
    silu
    gelu(approximate="tanh")
    leaky_relu(0.1)
    elu
    prelu(per_channel=true)
    mish
    softplus(beta=2)
    log_softmax
    lrn(3)
    add { relu
          identity }
    add { conv(8, 3, pad="same", dilation=2, groups=2, bias=false) -> relu6 -> drop_path(0.2)
          scale(0.5) }
    mul { identity
          global_avgpool -> sigmoid }
    mean(drop=0.3) { tanh
                     identity }
    ln: layernorm -> linear(8, pointwise=true) -> ls: layer_scale(0.5)
    concat(crop=true) { center_crop(14)
                        conv(4, 3) }
    split(2) { identity
               conv(6, 1) -> relu }
    shuffle: channel_shuffle(2) -> channel_shuffle(3)
    maxpool(3, stride=2, pad=1, ceil=true)
    avgpool(3, stride=2, pad=1, ceil=true, count_include_pad=false)
    upsample(2, mode="bilinear")
    upsample(1)
    conv_t(4, 2, stride=2, output_pad=1)
    conv_t(4, 1, bias=false)
    batchnorm(frozen=true)
    avgpool(1)
    adaptive_avgpool(3)
    softmax
    dropout(0.2)
    flatten
    linear(16)
    linear(16, bias=false)
    batchnorm
    relu
    layernorm
    layer_scale
    fc: linear(classes)
}
"""


# A replica of the distributed test runs this file as a script and needs no zoo.
ZOO = zoo() if __name__ != "__main__" else []
TRAINING_ZOO = training_cover(ZOO)


@pytest.mark.parametrize("entry", ZOO, ids=zoo_id)
def test_zoo_network_in_eval(entry):
    model, x = build_zoo(entry)
    got = check_compiles_in_eval(model, x)
    # ... and the outputs have the shapes the IR gives at this input.
    G = netlang.load(entry["path"], network=entry["name"], input=entry["input"]).graph
    infer = [o for o, aux in zip(G.graph["outputs"], G.graph["output_aux"]) if not aux]
    assert [tuple(t.shape) for t in as_tuple(got)] == [(x.shape[0], *G.nodes[o]["shape"]) for o in infer]


# Training mode is traced for the networks of training_cover() only: every op, flag, dropping
# join and auxiliary head of the zoo, each in the smallest network that has it. A deeper
# network repeats the same lines of generated code (resnet152 is resnet50's lines, more of
# them), and tracing all of them again in training mode would add minutes for nothing Dynamo
# has not already seen. A new zoo file with a new feature joins the cover.



@pytest.mark.parametrize("entry", TRAINING_ZOO, ids=zoo_id)
def test_torch_compile_fullgraph_matches_eager_in_training(entry):
    check_compiles_in_training(*build_zoo(entry))


@pytest.mark.parametrize("mode", ["eval", "training"])
def test_every_op_compiles_fullgraph(mode):
    net = netlang.loads(ALL_OPS)
    used = {data["op"] for _, data in net.graph.nodes(data=True)}
    # (and split, whose parts are the IR's slices)
    assert used == set(ops.LANGUAGE) | {"slice"}, f"add {sorted(set(ops.LANGUAGE) - used)} to ALL_OPS"
    assert {"relu in place", "relu out of place", "mean.drop", "concat.crop=True"} <= features(net.graph)
    torch.manual_seed(0)
    model = lower(net)
    x = torch.randn(BATCH, 3, 16, 16)
    (check_compiles_in_eval if mode == "eval" else check_compiles_in_training)(model, x)


def test_zoo_folding_and_training_cover():
    ids = {e["name"]: e for e in ZOO}
    # a generic network with its defaults is folded into one test with the instance spelling
    # them out; networks that differ only where the stride sits are not
    assert "resnet50" in ids["resnet"]["aliases"] and "vgg_d" in ids["vgg"]["aliases"]
    assert "resnet50_v1" in ids and not ids["resnet50_v1"]["aliases"]
    training = {e["name"] for e in TRAINING_ZOO}
    traced = features(netlang.loads(ALL_OPS).graph).union(*(e["features"] for e in TRAINING_ZOO))
    assert set().union(*(e["features"] for e in ZOO)) <= traced
    assert training & {"googlenet", "googlenet_torchvision", "inception_v3"}   # auxiliary outputs
    assert len(training) <= 8
    assert not training & {"resnet101", "resnet152", "resnet101_v1", "resnet152_v1", "densenet201", "deconvnet"}


def test_a_new_batch_size_compiles_once_more_then_never():
    # A data loader's last batch is smaller: the second size makes Dynamo mark the batch
    # dimension dynamic; nothing in the generated code (crops, drop_path's per-sample mask, the
    # dropping join) may pin it again.
    torch.manual_seed(0)
    model = lower(netlang.loads(ALL_OPS)).train()
    reference = copy.deepcopy(model)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("eager")
    compiled = torch.compile(model, backend=counter, fullgraph=True)
    for batch in (2, 3, 5, 8):
        x = torch.randn(batch, 3, 16, 16)
        torch.manual_seed(batch)
        expected = reference(x)
        torch.manual_seed(batch)
        torch.testing.assert_close(compiled(x), expected, **TOL)
    torch._dynamo.reset()
    assert counter.frame_count == 2


# ---------------------------------------------------------------------------- checkpoints

# An auxiliary head, and every op that draws random numbers in training, in a few layers.
TINY_AUX = """
network tiny_aux(classes=3) {
    input 3x16x16
    conv1: conv(8, 3, pad=1)
    bn1: batchnorm
    act: relu
    @act -> aux: global_avgpool -> flatten -> linear(classes)
    @act -> mean(drop=0.5) { conv(8, 3, pad=1) -> relu
                             identity }
    add { conv(8, 3, pad=1, bias=false) -> batchnorm -> drop_path(0.2)
          identity }
    up: conv_t(4, 2, stride=2)
    pool: maxpool(2)
    flatten
    dropout(0.5)
    fc: linear(classes)
    output fc, aux aux
}
"""
# name -> (build, input size): batchnorm buffers and digit-named children (resnet18), auxiliary
# outputs and random training ops (tiny_aux), a skip concatenation and a transposed convolution
# (unet_tiny).
CHECKPOINT_NETS = {
    "resnet18": (lambda: netlang.compile(ARCH / "resnet.net", network="resnet18", input=(3, 32, 32)), (3, 32, 32)),
    "tiny_aux": (lambda: lower(netlang.loads(TINY_AUX)), (3, 16, 16)),
    "unet_tiny": (lambda: netlang.compile(ARCH / "unet_tiny.net", input=(1, 32, 32)), (1, 32, 32)),
}


def trained_a_little(name: str):
    """A module whose running statistics have moved, so the buffers in a checkpoint matter."""
    build, size = CHECKPOINT_NETS[name]
    torch.manual_seed(0)
    model = build().train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(BATCH, *size) * 3 + 1)
    return model.eval(), torch.randn(BATCH, *size)


@pytest.mark.parametrize("name", CHECKPOINT_NETS)
def test_state_dict_round_trips_through_torch_save(tmp_path, name):
    model, x = trained_a_little(name)
    with torch.no_grad():
        expected = model(x)
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    state = torch.load(tmp_path / "weights.pt", weights_only=True)

    torch.manual_seed(1)
    fresh = CHECKPOINT_NETS[name][0]().eval()
    with torch.no_grad():
        assert not torch.equal(fresh(x), expected), "another seed must give another module"
        result = fresh.load_state_dict(state, strict=True)
        assert not result.missing_keys and not result.unexpected_keys
        loaded = fresh.state_dict()
        for key, value in model.state_dict().items():
            assert torch.equal(loaded[key], value), key
        assert torch.equal(fresh(x), expected)
        fresh.train()
        torch.manual_seed(2)
        a = fresh(x)
        model.train()
        torch.manual_seed(2)
        b = model(x)
    for u, v in zip(as_tuple(a), as_tuple(b), strict=True):
        assert torch.equal(u, v)


def check_rebuilt(copy_, original, x) -> None:
    """copy_ is a working, independent copy of original, with its own generated forward."""
    assert type(copy_).__name__ == type(original).__name__ and copy_ is not original
    assert type(copy_).netlang_source == type(original).netlang_source
    assert [k for k, _ in copy_.named_modules()] == [k for k, _ in original.named_modules()]
    assert [(k, p.requires_grad) for k, p in copy_.named_parameters()] == \
           [(k, p.requires_grad) for k, p in original.named_parameters()]
    with torch.no_grad():
        copy_.eval(), original.eval()
        assert torch.equal(copy_(x), original(x))
        copy_.train(), original.train()
        torch.manual_seed(3)
        a = copy_(x)
        torch.manual_seed(3)
        b = original(x)
        for u, v in zip(as_tuple(a), as_tuple(b), strict=True):
            assert torch.equal(u, v)
        # independent storage: changing the copy leaves the original alone
        first = next(copy_.parameters())
        before = next(original.parameters()).clone()
        first.add_(1.0)
        assert torch.equal(next(original.parameters()), before)


@pytest.mark.parametrize("name", CHECKPOINT_NETS)
def test_whole_module_round_trips_through_torch_save_and_deepcopy(tmp_path, name):
    model, x = trained_a_little(name)
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    check_rebuilt(loaded, model, x)
    check_rebuilt(copy.deepcopy(model), model, x)


# ---------------------------------------------------------------------------- torch.distributed

# A small residual network: batchnorm (whose buffers DDP broadcasts), a projection shortcut and
# an identity one, a classifier.
TINY_RESNET = """
block res(c, stride=1) {
    add {
        conv1: conv(c, 3, stride=stride, pad=1, bias=false) -> bn1: batchnorm -> relu
            -> conv2: conv(c, 3, pad=1, bias=false) -> bn2: batchnorm
        downsample: ((conv(c, 1, stride=stride, bias=false) -> batchnorm)
                     if stride != 1 or in.channels != c else identity)
    }
    relu
}

network tiny_resnet(classes=4) {
    input 3x8x8
    conv1: conv(8, 3, pad=1, bias=false)
    bn1: batchnorm
    relu
    layer1: res(8)
    layer2: res(16, stride=2)
    avgpool: global_avgpool
    flatten
    fc: linear(classes)
}
"""
WORLD = 2
DDP_STEPS = 15
DDP_TIMEOUT_S = 200


def separable_data(n: int, noise_seed: int = 1, classes: int = 4, size: int = 8):
    """Class k is a fixed random 3 x size x size pattern (the same for every call) plus noise
    drawn from noise_seed: separable, but only by looking at the whole image."""
    patterns = torch.randn(classes, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = torch.arange(n) % classes
    x = patterns[y] + 0.5 * torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(noise_seed))
    return x, y


def flat_parameters(module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def ddp_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    import datetime

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=100))
    # Each replica starts from its own weights: DDP must broadcast rank 0's.
    torch.manual_seed(100 + rank)
    model = lower(netlang.loads(TINY_RESNET))
    own_start = flat_parameters(model)
    ddp = DistributedDataParallel(model)
    start = flat_parameters(model)
    # Not fullgraph: DDP's own forward (its logger) breaks the graph; the netlang module inside
    # traces as one graph, as the zoo tests show.
    compiled = torch.compile(ddp, backend="eager")
    x, y = separable_data(64)
    x, y = x[rank::world], y[rank::world]              # each rank its own shard
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(DDP_STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(compiled(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    end = flat_parameters(model)
    gathered = [torch.empty_like(end) for _ in range(world)]
    dist.all_gather(gathered, end)
    mismatch = [r for r in range(world) if not torch.equal(gathered[r], end)]
    torch.save({"own_start": own_start, "start": start, "end": end, "losses": losses, "mismatch": mismatch},
               Path(out_dir) / f"rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def run_replicas(tmp_path: Path) -> list[dict]:
    # One thread per replica (two replicas on two cores); gloo on the loopback interface, so it
    # never has to resolve the machine's host name.
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    init_file = tmp_path / "rendezvous"
    logs = [tmp_path / f"rank{r}.log" for r in range(WORLD)]
    procs = []
    for rank in range(WORLD):
        with open(logs[rank], "w") as log:
            procs.append(subprocess.Popen(
                [sys.executable, __file__, "ddp-worker", str(rank), str(WORLD), str(init_file), str(tmp_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT))
    deadline = time.monotonic() + DDP_TIMEOUT_S
    timed_out = False
    try:
        # a replica that fails leaves the other waiting in a collective: stop at the first failure
        while any(p.poll() is None for p in procs) and not any(p.poll() for p in procs):
            if time.monotonic() > deadline:
                timed_out = True
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()

    def report() -> str:
        return "\n".join(f"--- rank {r} (exit {p.returncode})\n{logs[r].read_text()[-3000:]}"
                         for r, p in enumerate(procs))

    codes = [p.returncode for p in procs]
    why = f"timed out after {DDP_TIMEOUT_S} s and were killed" if timed_out else "failed (the rest were killed)"
    assert codes == [0] * WORLD, f"replicas {why}:\n{report()}"
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_ddp_compiled_training_keeps_replicas_identical(tmp_path):
    results = run_replicas(tmp_path)
    r0, r1 = results
    # the replicas really started apart, and DDP made them one
    assert not torch.equal(r0["own_start"], r1["own_start"])
    assert torch.equal(r0["start"], r0["own_start"]) and torch.equal(r1["start"], r0["own_start"])
    # after training: bitwise identical, as each rank saw (all_gather) and as saved here
    assert r0["mismatch"] == [] and r1["mismatch"] == []
    assert torch.equal(r0["end"], r1["end"])
    assert not torch.equal(r0["end"], r0["start"])
    for r, res in enumerate(results):
        losses = res["losses"]
        assert len(losses) == DDP_STEPS
        # on its own shard each replica's loss falls to under a quarter (it reaches about 0.07)
        assert losses[-1] < 0.25 * losses[0], f"rank {r}: {losses}"


# ---------------------------------------------------------------------------- training

TINY_CNN = """
network tiny_cnn(classes=4) {
    input 3x8x8
    conv(16, 3, pad=1) -> batchnorm -> relu -> maxpool(2)
    conv(32, 3, pad=1) -> batchnorm -> relu
    global_avgpool
    flatten
    dropout(0.1)
    fc: linear(classes)
}
"""


def train(model, x, y, steps: int) -> list[float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    torch.manual_seed(7)            # dropout's draws
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_small_network_learns_a_separable_problem_eager_and_compiled():
    torch.manual_seed(0)
    model = lower(netlang.loads(TINY_CNN)).train()
    twin = copy.deepcopy(model)
    x, y = separable_data(128)
    x_test, y_test = separable_data(128, noise_seed=2)     # held out: the same patterns, new noise

    # every parameter is reached by the gradient: the module tree holds what forward uses
    probe = copy.deepcopy(model)
    F.cross_entropy(probe(x), y).backward()
    for key, p in probe.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, key

    steps = 40
    losses = train(model, x, y, steps)
    assert losses[-1] < 0.1 * losses[0], losses
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
    assert accuracy >= 0.95, accuracy

    torch._dynamo.reset()
    compiled_losses = train(torch.compile(twin, backend="eager", fullgraph=True), x, y, steps)
    torch._dynamo.reset()
    # float32 over 40 steps of momentum SGD: the same kernels, so the trajectories agree closely
    assert compiled_losses == pytest.approx(losses, rel=1e-4, abs=1e-6)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "ddp-worker":
        ddp_worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5])
    else:
        sys.exit(f"usage: {sys.argv[0]} ddp-worker RANK WORLD INIT_FILE OUT_DIR")
