"""The Triton backend on a GPU: its convolution per layer against cuDNN and torch.compile, and end to end.

    python benchmarks/triton_gpu.py [--only NET ...] [--batch 1 32] [--dtype fp16 bf16] [--repeats 15]
                                    [--budget 570] [--jobs N] [--part all|layers|e2e] [--json PATH]
    python benchmarks/triton_gpu.py --dry-run      # the whole logic, tiny, on the CPU (Triton's interpreter)

Per layer. Every distinct convolution (cin, cout, kernel, stride, padding, dilation, groups,
input H, W) of resnet50, resnext50_32x4d, inception_v3, densenet121 and vgg16, read from the
fused IR (a merged node of sibling 1x1 convs counts as one conv of the merged width), at each
batch and dtype, three ways on the same input, weights and batchnorm statistics:

  netlang   backends/triton/conv.py's kernel (depthwise.py's for a depthwise conv): the
            batchnorm folded into the weights and a bias, relu as the epilogue step, NHWC
  cuDNN     torch.nn.Conv2d -> BatchNorm2d (eval) -> ReLU, eager, channels_last,
            torch.backends.cudnn.benchmark = True
  compile   torch.compile(mode="max-autotune-no-cudagraphs") of those same three modules

Every side is captured in a CUDA graph of K back-to-back calls (K chosen so a replay of the
slowest side takes about a millisecond), so the times are device times without Python's launch overhead: the
CUDA graphs max-autotune would add, applied to all three alike. Each round replays every side
once, in an order that rotates from round to round, timed with CUDA events; the report gives each
side's median per-call time and its spread (half the interquartile range, in % of the median),
and the median of the per-round ratios (the speed-up of netlang over the baseline: > 1 is
netlang faster). TFLOP/s is 2*MACs / time; % of peak is against the device's dense fp16/bf16
tensor-core peak (PEAKS, keyed on torch.cuda.get_device_name(); 'n/a' elsewhere). netlang's
output is checked against cuDNN's on every layer.

Targets (issue 11): per layer, netlang >= 1.0x cuDNN on 1x1 and memory-bound layers (arithmetic
intensity, FLOPs per byte of input + weights + output, below the device's peak FLOP/s over its
bandwidth), >= 0.8x on 3x3 layers; other kernels (7x7, 5x5, 1x7, ...) have none.

End to end (`end_to_end`): each network's forward, NCHW input, as a user calls it: netlang's
Triton backend (netlang.compile(backend="triton", dtype=, device=); where building it raises,
'the triton backend is not available yet' and the error), netlang's torch backend eager
(channels_last), the same under
torch.compile(mode="max-autotune") (its own CUDA graphs), and netlang's fused torch module
(fuse=True); the eager sides again replayed from a CUDA graph ("+graph"). Same weights
(netlang.backends.reference.random_state), checked to agree; peak memory per side.

Budget. torch.compile's max-autotune takes seconds per layer and minutes per network, too long
for the whole sweep in ten minutes, so the run is ordered and has a deadline (--budget seconds,
0 for none): (1) every layer config netlang vs cuDNN, (2) the layers again with compile, fp16
first, networks interleaved, while the budget allows (leaving E2E_RESERVE_S for (3)), (3) end
to end, its compile side while the budget allows. What the budget left out is reported as
'skip'. Inductor caches what it compiled and tuned on disk, so a second run of the same command
compiles far faster and covers more; --budget 0 covers everything (an hour or more). Before (1)
a pool of processes (--jobs) runs netlang's kernels once for every layer config, and the Triton
backend once for every network, dtype and batch, which compiles them into Triton's on-disk cache
in parallel; the main process then finds them there.

--dry-run runs all of it on the CPU through Triton's interpreter: the 2 smallest distinct convs
of each network (by MACs) at 8x8 and batch 1, fp32, torch.compile with backend="eager", one
repeat, time.perf_counter instead of CUDA events and graphs; end to end at input 3x32x32
(networks that do not fit it are skipped with a note). Dynamo takes 5-20 s to trace one of
these networks on this CPU and Triton's interpreter minutes to run one, so a dry run runs the
compile and Triton sides on lenet5 only (1x32x32), which it adds. Its times mean nothing; it
checks that the logic runs (tests/test_triton_benchmark.py, about 30 s).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (torch alone does not import triton: TRITON_INTERPRET can still be set)

ARCH = ROOT / "architectures"
# (label, file, network). resnext.net's `resnext` has the same 23 distinct convs as this one.
NETWORKS = [("resnet50", "resnet.net", "resnet50"), ("resnext50_32x4d", "resnet.net", "resnext50_32x4d"),
            ("inception_v3", "inception_v3.net", "inception_v3"), ("densenet121", "densenet.net", "densenet121"),
            ("vgg16", "vgg.net", "vgg16")]
SHORT = {"resnet50": "R50", "resnext50_32x4d": "RX50", "inception_v3": "IV3", "densenet121": "D121", "vgg16": "V16"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TOL = {"fp16": 1e-2, "bf16": 5e-2, "fp32": 1e-4}         # |netlang - reference| / max |reference|

# dense (no sparsity) fp16/bf16 tensor-core TFLOP/s and memory bandwidth TB/s, by the first
# match (lower case) in torch.cuda.get_device_name()
PEAKS = [("h200 nvl", 835.0, 4.8), ("h200", 989.4, 4.8), ("h100 nvl", 835.0, 3.9), ("h100 pcie", 756.0, 2.0),
         ("h100", 989.4, 3.35), ("a100 80gb", 312.0, 1.94), ("a100-sxm4-80gb", 312.0, 2.04), ("a100", 312.0, 1.555)]
NOMINAL_RIDGE = 300.0          # FLOP/byte, for an unknown device (about an H100's)

LAYER_TARGET_MS = 1.0          # one CUDA-graph replay lasts about this long
MAX_K = 50                     # calls captured in one graph
E2E_TARGET_MS = 20.0
E2E_RESERVE_S = 150.0          # kept for the end-to-end part when the layers' compile pass runs
GUESS_LAYER_COMPILE_S = 20.0   # the first guesses, replaced by the mean of measured ones
GUESS_E2E_COMPILE_S = 180.0
DRY_HW = 8
DRY_INPUT = (3, 32, 32)
DRY_E2E_EXTRA = [("lenet5", "lenet.net", "lenet5")]     # a dry run's one network with every side


# ---------------------------------------------------------------------------------------- layers

def conv_layers(only=None, dry: bool = False) -> list[dict]:
    """The distinct convolutions of the networks, interleaved network by network, each with where
    it occurs. A dry run keeps each network's two smallest, at DRY_HW x DRY_HW."""
    import netlang
    per_net = []
    for label, file, network in NETWORKS:
        if only and label not in only:
            continue
        G = netlang.load(ARCH / file, network=network, passes=["fuse"]).graph
        seen: dict = {}
        for node, d in G.nodes(data=True):
            if d["op"] != "conv":
                continue
            a = d["args"]
            src = next(u for u, _, pos in G.in_edges(node, data="pos") if pos == 0)
            cin, h, w = G.nodes[src]["shape"]
            pad = a["pad"] if isinstance(a["pad"], str) else tuple(a["pad"])
            key = (cin, a["out"], tuple(a["k"]), tuple(a["stride"]), pad, tuple(a["dilation"]), a["groups"], h, w)
            if key not in seen:
                merged = len(d.get("siblings") or ())
                seen[key] = {"key": key, "name": node + (f" ({merged} merged)" if merged else ""), "net": label,
                             "out_shape": tuple(d["shape"]), "where": {}}
            seen[key]["where"][label] = seen[key]["where"].get(label, 0) + 1
        layers = list(seen.values())
        if dry:
            layers = sorted(layers, key=lambda L: macs(dry_key(L["key"]), 1))[:2]
            for L in layers:
                L["key"] = dry_key(L["key"])
        per_net.append(layers)
    out: dict = {}
    for i in range(max((len(p) for p in per_net), default=0)):      # round-robin over networks
        for layers in per_net:
            if i < len(layers):
                L = layers[i]
                if L["key"] in out:
                    for k, v in L["where"].items():
                        out[L["key"]]["where"][k] = out[L["key"]]["where"].get(k, 0) + v
                else:
                    out[L["key"]] = L
    return list(out.values())


def dry_key(key):
    return key[:7] + (DRY_HW, DRY_HW)


def pads_of(key):
    """Explicit (ph, pw) for a key's padding; None where "same" would need asymmetric padding."""
    cin, cout, k, s, pad, d, g, h, w = key
    if pad != "same":
        return pad
    total = [di * (ki - 1) for ki, di in zip(k, d)]
    return None if any(t % 2 for t in total) or s != (1, 1) else tuple(t // 2 for t in total)


def out_hw_of(key):
    cin, cout, k, s, pad, d, g, h, w = key
    p = pads_of(key) or (0, 0)
    return tuple((size + 2 * pi - di * (ki - 1) - 1) // si + 1 for size, ki, si, pi, di in zip((h, w), k, s, p, d))


def macs(key, batch: int) -> int:
    cin, cout, k, s, pad, d, g, h, w = key
    oh, ow = out_hw_of(key)
    return batch * oh * ow * cout * (cin // g) * k[0] * k[1]


def traffic_bytes(key, batch: int, elem: int) -> int:
    cin, cout, k, s, pad, d, g, h, w = key
    oh, ow = out_hw_of(key)
    return elem * (batch * h * w * cin + batch * oh * ow * cout + cout * (cin // g) * k[0] * k[1] + cout)


def device_peak(dev_name: str | None):
    """(dense fp16/bf16 TFLOP/s, TB/s) of the device, or (None, None)."""
    if dev_name:
        low = dev_name.lower()
        for tag, tflops, tbs in PEAKS:
            if tag in low:
                return tflops, tbs
    return None, None


def layer_class(key, batch, elem, ridge) -> tuple[str, float | None]:
    """(class, target speed-up over cuDNN or None): 1x1 and memory-bound layers 1.0, 3x3 0.8."""
    k = key[2]
    kind = f"{k[0]}x{k[1]}"
    if key[6] > 1:
        kind += "/g" if key[6] < key[0] else "/dw"
    mem = 2 * macs(key, batch) / traffic_bytes(key, batch, elem) < ridge
    cls = kind + (" mem" if mem else "")
    if k == (1, 1) or mem:
        return cls, 1.0
    if k == (3, 3):
        return cls, 0.8
    return cls, None


def make_case(key, dtype, batch: int, device: str, seed: int = 0) -> dict:
    """One layer's sides on one input: the eager conv -> bn -> relu modules (fp32 master values,
    then `dtype`), and netlang's kernel call with the batchnorm folded in."""
    from torch import nn

    from netlang.backends.triton.conv import conv2d, pack_weight
    from netlang.backends.triton.depthwise import depthwise_conv2d, is_depthwise, pack_weight_dw
    cin, cout, k, s, _, d, g, h, w = key
    pads = pads_of(key)
    oh, ow = out_hw_of(key)
    gen = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, s, pads, d, g, bias=False)
    bn = nn.BatchNorm2d(cout)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / math.sqrt(cin // g * k[0] * k[1]))
        bn.weight.copy_(torch.rand(cout, generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(cout, generator=gen) * 0.2)
        bn.running_mean.copy_(torch.randn(cout, generator=gen) * 0.2)
        bn.running_var.copy_(torch.rand(cout, generator=gen) * 1.5 + 0.5)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w_fold = conv.weight * scale[:, None, None, None]
        b_fold = (bn.bias - bn.running_mean * scale).to(device, dtype)
    eager = nn.Sequential(conv, bn, nn.ReLU(inplace=True)).eval().to(device, dtype)
    eager = eager.to(memory_format=torch.channels_last)
    xgen = torch.Generator(device=device).manual_seed(seed + 1)
    x = torch.randn(batch, cin, h, w, generator=xgen, device=device).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    x_nhwc = x.permute(0, 2, 3, 1)                       # the same memory, as netlang's NHWC map
    assert x_nhwc.is_contiguous()
    out = torch.empty(batch, oh, ow, cout, device=device, dtype=dtype)
    opts = dict(kernel=k, stride=s, padding=pads, dilation=d, groups=g, steps=[{"op": "relu"}], out=out)
    if is_depthwise(cin, cout, g):
        wp = pack_weight_dw(w_fold, dtype).to(device)
        netlang = lambda: depthwise_conv2d(x_nhwc, wp, b_fold, **opts)  # noqa: E731
    else:
        wp = pack_weight(w_fold, g, dtype).to(device)
        netlang = lambda: conv2d(x_nhwc, wp, b_fold, **opts)  # noqa: E731
    return {"eager": eager, "x": x, "out": out, "netlang": netlang}


def _warm_task(task, device):
    """A pool worker's task: run netlang's kernel for a layer config, or netlang's Triton backend
    for a network at a dtype and batch, once, which compiles their kernels into Triton's on-disk
    cache (same shapes, dtypes and alignments as the main process's). (error or None)."""
    if device == "cpu":
        torch.set_num_threads(1)
    try:
        with torch.no_grad():
            if task[0] == "layer":
                _, key, dt, batch = task
                make_case(key, DTYPES[dt], batch, device)["netlang"]()
            else:
                _, label, file, network, inp, dt, batch = task
                m, _ = build_triton(file, network, inp, DTYPES[dt], device, None)
                import netlang
                shape = netlang.load(ARCH / file, network=network, input=inp).graph.nodes["input"]["shape"]
                m(torch.randn(batch, *shape, device=device, dtype=DTYPES[dt]))
        sync(device == "cuda")
        return None
    except Exception as err:  # noqa: BLE001 - reported by the parent
        return f"{task[0]} {task[1:]}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:240]


def warm_kernels(tasks, jobs: int, device: str) -> str:
    """Run `tasks` (see _warm_task) in `jobs` processes, the longest (whole networks) first. Only
    a speed-up: the main process compiles whatever is missing as it goes."""
    if jobs <= 0 or not tasks:
        return "kernels: no warm-up pool (compiled on first use)"
    t0 = time.perf_counter()
    try:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(jobs, len(tasks))) as pool:
            errors = [e for e in pool.starmap(_warm_task, [(t, device) for t in tasks], chunksize=1) if e]
    except Exception as err:  # noqa: BLE001
        return f"kernels: the warm-up pool failed ({type(err).__name__}: {err}); compiled on first use"
    kinds = {k: sum(t[0] == k for t in tasks) for k in ("e2e", "layer")}
    msg = (f"kernels: {len(tasks) - len(errors)}/{len(tasks)} warm-up runs ({kinds['layer']} layer configs, "
           f"{kinds['e2e']} networks) in {jobs} processes, {time.perf_counter() - t0:.1f} s")
    return msg + "".join(f"\n  warm-up error: {e}" for e in dict.fromkeys(errors[:5]))


def warm_tasks(args, configs) -> list:
    """The warm-up runs: netlang's Triton backend on each network, dtype and batch the end-to-end
    part will run (where it is asked for), then every layer config. A dry run: lenet5 and the
    smallest layer config only (the interpreter compiles nothing; this runs the pool's code)."""
    layer = [("layer", L["key"], dt, b) for L, dt, b in configs if pads_of(L["key"]) is not None]
    e2e = []
    if args.part in ("all", "e2e"):
        nets = DRY_E2E_EXTRA if args.dry_run else [n for n in NETWORKS if not args.only or n[0] in args.only]
        e2e = [("e2e", *n, None, dt, b) for n in nets for dt in args.dtype for b in args.batch]
    if args.dry_run:
        return e2e + sorted(layer, key=lambda t: macs(t[1], t[3]))[:1]
    return e2e + layer


# -------------------------------------------------------------------------------------- timing

def sync(gpu: bool):
    if gpu:
        torch.cuda.synchronize()


def estimate(fn, gpu: bool) -> float:
    """Seconds per call, roughly (eager calls; launch overhead included)."""
    fn()
    sync(gpu)
    t = time.perf_counter()
    for _ in range(3):
        fn()
    sync(gpu)
    return (time.perf_counter() - t) / 3


def graphed(fn, k: int):
    """A CUDA graph of k back-to-back calls of fn, as a callable replaying it."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(k):
            fn()
    torch.cuda.synchronize()
    return g.replay


def looped(fn, k: int):
    def run():
        for _ in range(k):
            fn()
    return run


def calls_per_replay(fns, gpu: bool, target_ms: float, most: int) -> int:
    """K, the calls one timed run makes: about target_ms of the slowest side on a GPU, 1 on the CPU."""
    if not gpu:
        return 1
    est = max(estimate(fn, gpu) for fn in fns)        # (the slowest side's replay lasts about target_ms)
    return max(1, min(most, math.ceil(target_ms * 1e-3 / max(est, 1e-7))))


def runner(fn, k: int, gpu: bool, graph: bool, name: str, notes: dict):
    """k calls of fn: replayed from a CUDA graph where `graph` (and it captures), else looped."""
    if gpu and graph:
        try:
            return graphed(fn, k)
        except Exception as err:  # noqa: BLE001
            notes[name] = f"no CUDA graph ({type(err).__name__})"
            torch.cuda.synchronize()
            return None
    return looped(fn, k)


def rounds(runners: dict, repeats: int, gpu: bool, k: int) -> dict:
    """{side: [seconds per call, one per round]}: each round runs every side once, the order
    rotating from round to round; CUDA events around each run on a GPU, perf_counter elsewhere."""
    if gpu:                            # once each before timing (a dry run's first calls were the check)
        for run in runners.values():
            run()
        sync(gpu)
    names = list(runners)
    times = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        if gpu:
            marks = []
            for n in order:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                runners[n]()
                b.record()
                marks.append((n, a, b))
            torch.cuda.synchronize()
            for n, a, b in marks:
                times[n].append(a.elapsed_time(b) * 1e-3 / k)
        else:
            for n in order:
                t = time.perf_counter()
                runners[n]()
                times[n].append((time.perf_counter() - t) / k)
    return times


def timed(fns: dict, repeats: int, gpu: bool, notes: dict) -> dict:
    """The per-layer rounds: every side a CUDA graph of K calls on a GPU (a side that does not
    capture is looped instead, and says so)."""
    k = calls_per_replay(fns.values(), gpu, LAYER_TARGET_MS, MAX_K)
    runners = {}
    for name, fn in fns.items():
        runners[name] = runner(fn, k, gpu, True, name, notes) or looped(fn, k)
    return rounds(runners, repeats, gpu, k)


def stats(ts: list) -> tuple[float, float]:
    """(median, half the interquartile range as % of the median)."""
    med = statistics.median(ts)
    if len(ts) < 2:
        return med, 0.0
    q = statistics.quantiles(ts, n=4, method="inclusive")
    return med, 100 * (q[2] - q[0]) / 2 / med if med else 0.0


def ratio(base: list, ours: list) -> float:
    """The median per-round speed-up of ours over base (> 1: ours faster)."""
    return statistics.median(b / o for b, o in zip(base, ours))


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    want = want.float()
    return (got.float() - want).abs().max().item() / max(want.abs().max().item(), 1e-6)


class Clock:
    """The run's deadline (budget 0: none) and running means of compile times."""

    def __init__(self, budget: float):
        self.start = time.perf_counter()
        self.budget = budget
        self.compiles: dict = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return math.inf if self.budget <= 0 else self.budget - self.elapsed()

    def record(self, kind: str, seconds: float):
        self.compiles.setdefault(kind, []).append(seconds)

    def guess(self, kind: str, default: float) -> float:
        seen = self.compiles.get(kind)
        return statistics.mean(seen) if seen else default

    def allows(self, kind: str, default: float, reserve: float = 0.0) -> bool:
        return self.left() - reserve > 1.2 * self.guess(kind, default) + 10


def progress(msg: str):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- per layer

def measure_layer(L, dt: str, batch: int, ctx: dict, with_compile: bool) -> dict:
    """One config's row: netlang and cuDNN (and compile) in the same interleaved rounds."""
    gpu, device, dry = ctx["gpu"], ctx["device"], ctx["dry"]
    key = L["key"]
    row = {"layer": L["name"], "net": L["net"], "where": dict(L["where"]), "key": key, "dtype": dt, "batch": batch,
           "macs": macs(key, batch), "notes": {}}
    elem = DTYPES[dt].itemsize
    row["class"], row["target"] = layer_class(key, batch, elem, ctx["ridge"])
    if pads_of(key) is None:
        row["notes"]["netlang"] = "asymmetric 'same' padding: not run"
        return row
    case = make_case(key, DTYPES[dt], batch, device)
    eager, x = case["eager"], case["x"]
    fns = {"netlang": case["netlang"], "cudnn": lambda: eager(x)}
    if with_compile:
        try:
            torch._dynamo.reset()
            t0 = time.perf_counter()
            opts = {"backend": "eager"} if dry else {"mode": "max-autotune-no-cudagraphs"}
            compiled = torch.compile(eager, dynamic=False, fullgraph=True, **opts)
            compiled(x)
            sync(gpu)
            row["compile_s"] = time.perf_counter() - t0
            ctx["clock"].record("layer", row["compile_s"])
            fns["compile"] = lambda: compiled(x)
        except Exception as err:  # noqa: BLE001
            row["notes"]["compile"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:120]}"
    case["netlang"]()
    want = eager(x)
    row["err"] = rel_err(case["out"], want.permute(0, 2, 3, 1))
    row["ok"] = row["err"] <= TOL[dt]
    times = timed(fns, ctx["repeats"], gpu, row["notes"])
    row["t"] = {k: stats(v) for k, v in times.items()}
    row["x"] = {k: ratio(times[k], times["netlang"]) for k in times if k != "netlang"}
    t_net = row["t"]["netlang"][0]
    row["tflops"] = 2 * row["macs"] / t_net / 1e12
    row["peak_pct"] = 100 * row["tflops"] / ctx["peak"] if ctx["peak"] and dt in ("fp16", "bf16") else None
    return row


def guarded(L, dt, b, ctx, with_compile):
    """measure_layer, or a row saying why it failed (the run goes on)."""
    try:
        return measure_layer(L, dt, b, ctx, with_compile)
    except Exception as err:  # noqa: BLE001
        msg = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        progress(f"  {L['net']}:{L['name']} {dt} b{b} {msg}")
        elem = DTYPES[dt].itemsize
        cls, target = layer_class(L["key"], b, elem, ctx["ridge"])
        return {"layer": L["name"], "net": L["net"], "where": dict(L["where"]), "key": L["key"], "dtype": dt,
                "batch": b, "macs": macs(L["key"], b), "class": cls, "target": target,
                "notes": {"netlang": msg, "cudnn": msg, "compile": msg}}


def layer_configs(layers, dtypes, batches):
    return [(L, dt, b) for L in layers for dt in dtypes for b in batches]


def run_layers(args, ctx, layers) -> tuple[list, dict]:
    configs = layer_configs(layers, args.dtype, args.batch)
    nets = sorted({n for L in layers for n in L["where"]}, key=[n[0] for n in NETWORKS].index)
    progress(f"per layer: {len(layers)} distinct convs of {', '.join(nets)}; {len(configs)} configs")
    notes = []
    rows = {}
    t0 = time.perf_counter()
    for i, (L, dt, b) in enumerate(configs):
        rows[(L["key"], dt, b)] = guarded(L, dt, b, ctx, with_compile=False)
        if i % 50 == 0 or i == len(configs) - 1:
            progress(f"  netlang vs cuDNN {i + 1}/{len(configs)}, {ctx['clock'].elapsed():.0f} s")
    notes.append(f"netlang vs cuDNN: {len(configs)} configs in {time.perf_counter() - t0:.1f} s")
    # the compile pass: fp16 (the first dtype) first, layers interleaved by network, as the budget allows
    order = [(L, dt, b) for dt in args.dtype for L in layers for b in args.batch]
    reserve = 0.0 if args.part == "layers" or args.dry_run else E2E_RESERVE_S
    done = 0
    for L, dt, b in order:
        if not args.dry_run and not ctx["clock"].allows("layer", GUESS_LAYER_COMPILE_S, reserve):
            break
        rows[(L["key"], dt, b)] = guarded(L, dt, b, ctx, with_compile=True)
        done += 1
        if done % 10 == 0:
            progress(f"  with torch.compile {done}/{len(order)}, {ctx['clock'].elapsed():.0f} s")
    notes.append(f"torch.compile: {done}/{len(order)} configs within the budget"
                 + (f" (mean compile {ctx['clock'].guess('layer', 0):.1f} s)" if done else ""))
    return [rows[(L["key"], dt, b)] for L, dt, b in configs], {"layers": len(layers), "notes": notes}


def fmt(v, spec=".1f", none="n/a"):
    return none if v is None else format(v, spec)


def table(headers: list, rows: list, left=1) -> str:
    """Aligned text: the first `left` columns (or those whose indices `left` holds; negative
    counts from the end) left-aligned, the rest right-aligned."""
    cols = [headers] + rows
    n = len(headers)
    lefts = set(range(left)) if isinstance(left, int) else {i % n for i in left}
    widths = [max(len(str(r[i])) for r in cols) for i in range(n)]
    line = lambda r: "  ".join(str(v).ljust(w) if i in lefts else str(v).rjust(w)  # noqa: E731
                               for i, (v, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def where_of(where: dict) -> str:
    return " ".join(f"{SHORT.get(k, k)}x{v}" for k, v in where.items())


def shape_of(key) -> list:
    cin, cout, k, s, pad, d, g, h, w = key
    pad = pad if isinstance(pad, str) else f"{pad[0]},{pad[1]}"
    return [f"{cin}>{cout}", f"{k[0]}x{k[1]}", f"{s[0]},{s[1]}", pad, f"{d[0]},{d[1]}", g, f"{h}x{w}"]


def time_cell(row, side, unit=1e6):
    t = row.get("t", {}).get(side)
    if t is None:
        note = row["notes"].get(side, "")
        return ["failed" if note.startswith("failed") else "skip", ""]
    return [f"{t[0] * unit:.1f}", f"{t[1]:.0f}%"]


def print_layers(rows, ctx):
    headers = ["layer", "in", "cin>cout", "k", "s", "p", "d", "g", "HxW", "class",
               "netlang us", "+-", "cuDNN us", "+-", "compile us", "+-",
               "TFLOP/s", "%peak", "x cuDNN", "x compile", "target", "check"]
    for dt in dict.fromkeys(r["dtype"] for r in rows):
        for b in dict.fromkeys(r["batch"] for r in rows):
            sel = [r for r in rows if r["dtype"] == dt and r["batch"] == b]
            out = []
            for r in sel:
                cells = [f"{SHORT.get(r['net'], r['net'])}:{r['layer']}", where_of(r["where"]), *shape_of(r["key"]),
                         r["class"]]
                cells += time_cell(r, "netlang") + time_cell(r, "cudnn") + time_cell(r, "compile")
                x = r.get("x", {})
                verdict = "-" if r["target"] is None or "cudnn" not in x else \
                    (f"{r['target']:.1f} " + ("PASS" if x["cudnn"] >= r["target"] else "FAIL"))
                cells += [fmt(r.get("tflops"), ".2f"), fmt(r.get("peak_pct"), ".1f"),
                          fmt(x.get("cudnn"), ".2f"), fmt(x.get("compile"), ".2f", "skip"), verdict,
                          "-" if "err" not in r else ("ok" if r["ok"] else f"BAD {r['err']:.1e}")]
                out.append(cells)
            print(f"\nper layer, {dt}, batch {b} (time per call; +- half the IQR; x = speed-up of netlang, "
                  f"median of per-round ratios)")
            print(table(headers, out, left=2))


def summarize_layers(rows) -> dict:
    """PASS/FAIL counts of the targets and geometric-mean speed-ups, per dtype and batch and in all."""
    groups: dict = {}
    for r in rows:
        if "x" not in r:
            continue
        for g in ((r["dtype"], r["batch"]), ("all", "")):
            s = groups.setdefault(g, {"1x1/mem pass": 0, "1x1/mem fail": 0, "3x3 pass": 0, "3x3 fail": 0,
                                      "no target": 0, "check failures": 0, "logs": {}})
            s["check failures"] += not r["ok"]
            for base, v in r["x"].items():
                s["logs"].setdefault(base, []).append(math.log(v))
            if r["target"] is None:
                s["no target"] += 1
            else:
                slot = "1x1/mem" if r["target"] == 1.0 else "3x3"
                s[f"{slot} {'pass' if r['x']['cudnn'] >= r['target'] else 'fail'}"] += 1
    out = {}
    for (dt, b), s in groups.items():
        logs = s.pop("logs")
        s.update({f"geomean x {base}": math.exp(statistics.mean(v)) for base, v in logs.items()})
        s.update({f"n {base}": len(v) for base, v in logs.items()})
        out[f"{dt} b{b}" if b != "" else "all"] = s
    return out


def print_layer_summary(summary):
    print("\ntargets (issue 11), netlang against cuDNN per layer config: >= 1.0x on 1x1 and memory-bound layers, "
          ">= 0.8x on 3x3 layers")
    headers = ["configs", "1x1/mem PASS", "FAIL", "3x3 PASS", "FAIL", "no target", "geomean x cuDNN",
               "geomean x compile", "(of)", "check failures"]
    rows = [[k, s["1x1/mem pass"], s["1x1/mem fail"], s["3x3 pass"], s["3x3 fail"], s["no target"],
             fmt(s.get("geomean x cudnn"), ".3f"), fmt(s.get("geomean x compile"), ".3f", "skip"),
             s.get("n compile", 0), s["check failures"]] for k, s in summary.items()]
    print(table(headers, rows))


def check_failures(summary) -> int:
    return summary.get("all", {}).get("check failures", 0)


# ---------------------------------------------------------------------------------- end to end

def main_output(y):
    return y[0] if isinstance(y, (tuple, list)) else (y.logits if hasattr(y, "logits") else y)


def module_mib(m) -> float:
    return sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers())) / 2 ** 20


def forward_memory(fn, gpu: bool):
    """MiB a warm forward needs beyond what was allocated before its first call: what stays
    allocated from the first calls (a CUDA-graph pool) plus the transient peak of one more."""
    if not gpu:
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    kept = torch.cuda.memory_allocated() - before
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    return (max(kept, 0) + torch.cuda.max_memory_allocated() - base) / 2 ** 20


def build_triton(file, network, inp, dtype, device, state):
    """netlang's Triton backend for one network, placed on device in dtype (passed to
    netlang.compile where it takes them, else by .to()) and loaded with `state`: (module, note)."""
    import inspect

    import netlang
    params = inspect.signature(netlang.compile).parameters
    kw = {k: v for k, v in (("dtype", dtype), ("device", device)) if k in params}
    m = netlang.compile(ARCH / file, backend="triton", network=network, input=inp, **kw)
    if len(kw) < 2:
        m = m.to(device, dtype)
    if state is None:
        return m, None
    try:
        m.load_state_dict(state, strict=True)
        return m, None
    except Exception as err:  # noqa: BLE001
        return m, f"its own weights ({type(err).__name__} loading the state)"


def end_to_end(args) -> list:
    """Whole networks: netlang's Triton backend (where it exists) against netlang's torch module
    eager, under torch.compile max-autotune, and fused; one row per network, batch, dtype and
    side. Reads args.only, args.batch, args.dtype, args.repeats, args.dry_run, and args.clock
    (a Clock; none: no budget). A dry run adds lenet5, the one network the interpreter runs
    the Triton side of in seconds, and runs the Triton and compile sides only on it."""
    clock = getattr(args, "clock", None) or Clock(0)
    nets = [n for n in NETWORKS if not args.only or n[0] in args.only] + (DRY_E2E_EXTRA if args.dry_run else [])
    rows, said = [], set()
    for label, file, network in nets:
        try:
            rows += network_rows(args, label, file, network, said, clock)
        except Exception as err:  # noqa: BLE001
            print(f"end-to-end: {label} failed: {type(err).__name__}: {str(err).splitlines()[0][:160]}")
            if not args.dry_run:
                torch.cuda.empty_cache()
    print_e2e(rows, args.dry_run)
    return rows


@torch.no_grad()
def network_rows(args, label, file, network, said, clock) -> list:
    """end_to_end's rows for one network (under no_grad: inference)."""
    import netlang
    from netlang.backends.pytorch import lower
    from netlang.backends.reference import random_state
    dry = args.dry_run
    gpu = not dry
    device = "cuda" if gpu else "cpu"
    dtypes, batches = (["fp32"], [1]) if dry else (args.dtype, args.batch)
    rows = []
    inp = DRY_INPUT if dry and (label, file, network) not in DRY_E2E_EXTRA else None
    full = not dry or (label, file, network) in DRY_E2E_EXTRA
    try:
        net = netlang.load(ARCH / file, network=network, input=inp)
        state = random_state(net.graph, 0)
        eager0 = lower(net, init=False).eval()
        eager0.load_state_dict(state, strict=True)
        fused0 = lower(net, init=False, fuse=True)
        fused0.load_state_dict(state, strict=True)
    except Exception as err:  # noqa: BLE001
        print(f"end-to-end: {label} skipped at input {net_input(inp)}: {type(err).__name__}: "
              f"{str(err).splitlines()[0][:160]}")
        return rows
    shape = net.graph.nodes["input"]["shape"]
    progress(f"end to end: {label}, {clock.elapsed():.0f} s")
    clone = copy.deepcopy if len(dtypes) > 1 else (lambda m: m)    # (Module.to works in place)
    for dt in dtypes:
        dtype = DTYPES[dt]
        eager = clone(eager0).to(device, dtype)
        if gpu:
            eager = eager.to(memory_format=torch.channels_last)
        fused = clone(fused0).to(device, dtype)
        sides = {"torch eager": eager, "torch fused": fused}
        first, dnotes = {}, {}
        if full:
            t0 = time.perf_counter()
            try:
                sides["netlang triton"], tnote = build_triton(file, network, inp, dtype, device, state)
                first["build netlang triton"] = time.perf_counter() - t0
                if tnote:
                    dnotes["netlang triton"] = tnote
            except Exception as err:  # noqa: BLE001
                msg = f"end-to-end: the triton backend is not available yet ({type(err).__name__}: {err})"
                if msg not in said:
                    print(msg)
                    said.add(msg)
                dnotes["netlang triton"] = "not available"
        else:
            dnotes["netlang triton"] = "skip (dry run: lenet5 only; minutes in the interpreter)"
        for b in batches:
            gen = torch.Generator().manual_seed(b)
            x = torch.randn(b, *shape, generator=gen).to(device, dtype)
            if gpu:
                x = x.contiguous(memory_format=torch.channels_last)
            fns = {k: (lambda m=m: m(x)) for k, m in sides.items()}
            rnotes = dict(dnotes)
            if not full:
                rnotes["torch compile"] = "skip (dry run: lenet5 only)"
            elif dry or clock.allows("e2e", GUESS_E2E_COMPILE_S):
                try:
                    torch._dynamo.reset()
                    t0 = time.perf_counter()
                    opts = {"backend": "eager"} if dry else {"mode": "max-autotune"}
                    compiled = torch.compile(eager, dynamic=False, **opts)
                    for _ in range(1 if dry else 3):      # (cudagraph trees record on the later calls)
                        compiled(x)
                    sync(gpu)
                    first["torch compile"] = time.perf_counter() - t0
                    clock.record("e2e", first["torch compile"])
                    fns["torch compile"] = lambda: compiled(x)
                except Exception as err:  # noqa: BLE001
                    rnotes["torch compile"] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:100]}"
            else:
                rnotes["torch compile"] = "skip (budget)"
            outs = {}
            for k, fn in list(fns.items()):
                t0 = time.perf_counter()
                try:
                    outs[k] = main_output(fn()).detach().float().clone()
                    sync(gpu)
                except Exception as err:  # noqa: BLE001
                    rnotes[k] = f"failed: {type(err).__name__}: {str(err).splitlines()[0][:100]}"
                    del fns[k]
                    continue
                first.setdefault(k, time.perf_counter() - t0)
            mem = {k: forward_memory(fn, gpu) for k, fn in fns.items()}
            if gpu:               # the eager sides replayed from a CUDA graph as well
                for k in [k for k in fns if k != "torch compile"]:
                    fns[k + "+graph"] = fns[k]
            times = timed_e2e(fns, args.repeats, gpu, rnotes)
            ref = outs.get("torch eager")
            for k in fns:
                base = k.split("+")[0]
                if k not in times:
                    rows.append({"network": label, "batch": b, "dtype": dt, "side": k, "note": rnotes.get(k)})
                    continue
                med, spread = stats(times[k])
                rows.append({"network": label, "batch": b, "dtype": dt, "side": k, "ms": med * 1e3,
                             "spread_pct": spread, "x_eager": ratio(times["torch eager"], times[k])
                             if "torch eager" in times else None,
                             "x_compile": ratio(times["torch compile"], times[k]) if "torch compile" in times
                             else None, "err": rel_err(outs[base], ref) if ref is not None else None,
                             "mem_mib": mem.get(k),
                             "weights_mib": module_mib(sides.get(base, eager)),
                             "first_s": None if k != base else first.get(k),
                             "build_s": first.get("build " + k), "note": rnotes.get(k)})
            for k, v in rnotes.items():
                if k not in fns:
                    rows.append({"network": label, "batch": b, "dtype": dt, "side": k, "note": v})
        del eager, fused, sides, fns
        if gpu:
            torch.cuda.empty_cache()
    return rows


def net_input(inp):
    return "x".join(map(str, inp)) if inp else "(the network's)"


def timed_e2e(fns: dict, repeats: int, gpu: bool, notes: dict) -> dict:
    """The end-to-end rounds: sides named '+graph' replay a CUDA graph of K forwards, the others
    are called as a user calls them."""
    k = calls_per_replay([v for n, v in fns.items() if not n.endswith("+graph")], gpu, E2E_TARGET_MS, 20)
    runners = {n: runner(fn, k, gpu, n.endswith("+graph"), n, notes) for n, fn in fns.items()}
    return rounds({n: r for n, r in runners.items() if r is not None}, repeats, gpu, k)


def print_e2e(rows, dry):
    if not rows:
        print("\nend to end: nothing ran")
        return
    headers = ["network", "batch", "dtype", "side", "ms", "+-", "x eager", "x compile", "fwd MiB", "weights MiB",
               "build s", "first call s", "check", "note"]
    out = []
    for r in rows:
        if "ms" not in r:
            out.append([r["network"], r["batch"], r["dtype"], r["side"]] + ["-"] * 9 + [r["note"] or ""])
            continue
        err = r["err"]
        check = "-" if err is None else (("ok " if err <= TOL[r["dtype"]] * 5 else "BAD ") + f"{err:.0e}")
        out.append([r["network"], r["batch"], r["dtype"], r["side"], f"{r['ms']:.3f}", f"{r['spread_pct']:.0f}%",
                    fmt(r["x_eager"], ".2f"), fmt(r["x_compile"], ".2f", "skip"), fmt(r["mem_mib"], ".1f"),
                    fmt(r["weights_mib"], ".1f"), fmt(r["build_s"], ".2f", "-"), fmt(r["first_s"], ".2f", "-"),
                    check, r["note"] or ""])
    print("\nend to end (forward time; x = speed-up over the side named, median of per-round ratios"
          + ("; dry run: CPU, meaningless" if dry else "") + ")")
    print(table(headers, out, left=(0, 1, 2, 3, -2, -1)))


# -------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="NET", choices=[n[0] for n in NETWORKS],
                    help="networks (default: all five: " + ", ".join(n[0] for n in NETWORKS) + ")")
    ap.add_argument("--batch", nargs="+", type=int, default=[1, 32], help="batch sizes (default: 1 32)")
    ap.add_argument("--dtype", nargs="+", choices=["fp16", "bf16"], default=["fp16", "bf16"],
                    help="storage dtypes (default: fp16 bf16)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--budget", type=float, default=570, help="seconds for the whole run, 0: none (default 570)")
    ap.add_argument("--jobs", type=int, default=None, help="processes compiling netlang's kernels first")
    ap.add_argument("--part", choices=["all", "layers", "e2e"], default="all")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    ap.add_argument("--dry-run", action="store_true", help="the whole logic, tiny, on the CPU (Triton's interpreter)")
    args = ap.parse_args(argv)
    gpu = not args.dry_run
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"           # before anything imports triton
        args.batch, args.dtype, args.repeats = [1], ["fp32"], 1
        args.jobs = 1 if args.jobs is None else args.jobs
        torch.set_num_threads(1)             # (tiny ops: threads only add spin-waits)
    elif not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (or --dry-run)", file=sys.stderr)
        return 2
    else:
        args.jobs = min(12, max(1, (os.cpu_count() or 2) - 2)) if args.jobs is None else args.jobs
        torch.backends.cudnn.benchmark = True
    import torch._dynamo as _dynamo  # noqa: F401  (after TRITON_INTERPRET is settled)
    import triton
    for limit in ("cache_size_limit", "recompile_limit"):       # (one name or the other, by version)
        if hasattr(torch._dynamo.config, limit):
            setattr(torch._dynamo.config, limit, max(getattr(torch._dynamo.config, limit), 1024))
    args.clock = Clock(0 if args.dry_run else args.budget)
    dev_name = torch.cuda.get_device_name() if gpu else None
    peak, bw = device_peak(dev_name)
    ridge = peak / bw if peak else NOMINAL_RIDGE
    ctx = {"gpu": gpu, "device": "cuda" if gpu else "cpu", "dry": args.dry_run, "repeats": args.repeats,
           "peak": peak, "ridge": ridge, "clock": args.clock}
    print(f"device: {dev_name or 'CPU (dry run: Triton interpreter, times meaningless)'}; "
          f"torch {torch.__version__}, triton {triton.__version__}")
    print(f"peak: {fmt(peak, '.0f')} dense fp16/bf16 TFLOP/s, {fmt(bw, '.2f')} TB/s; memory-bound below "
          f"{ridge:.0f} FLOP/byte{'' if peak else ' (nominal)'}; budget {args.budget:.0f} s; repeats {args.repeats}")
    result = {"device": dev_name, "torch": torch.__version__, "triton": triton.__version__, "dry_run": args.dry_run,
              "peak_tflops": peak, "bandwidth_tbs": bw, "ridge": ridge,
              "args": {k: v for k, v in vars(args).items() if k != "clock"}}
    bad = 0
    layers = conv_layers(args.only, args.dry_run) if args.part in ("all", "layers") else []
    warm = warm_kernels(warm_tasks(args, layer_configs(layers, args.dtype, args.batch)), args.jobs, ctx["device"])
    progress(warm)
    result["warm_up"] = warm
    with torch.no_grad():
        if args.part in ("all", "layers"):
            rows, info = run_layers(args, ctx, layers)
            print_layers(rows, ctx)
            summary = summarize_layers(rows)
            print_layer_summary(summary)
            for n in info["notes"]:
                print(n)
            bad += check_failures(summary)
            result.update(layers=rows, layer_summary=summary, layer_notes=info["notes"])
    if args.part in ("all", "e2e"):
        result["end_to_end"] = end_to_end(args)
    print(f"\n{warm}\ntotal {args.clock.elapsed():.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
        print(f"wrote {args.json}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
