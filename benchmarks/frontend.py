"""Front-end speed: parse, elaborate, infer shapes and cost, in ms per 1,000 layers.

Prints, for resnet50 and for generated deep networks of growing size (up to ~10,000 layers), the
time of each phase, and the ratio of `netlang summary vgg16` to constructing the same model in
torch (when torch is importable), measured in this run.

    python benchmarks/frontend.py [--quick]

Targets (issue 2): resnet50 end to end < 100 ms of netlang's own work; per-1,000-layer cost flat
as the network grows (linear scaling); `netlang summary vgg16` faster than building the torch model.
"""
from __future__ import annotations

import argparse
import io
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlang import cli  # noqa: E402
from netlang.elaborate import Loader, elaborate  # noqa: E402
from netlang.passes.cost import analyse  # noqa: E402
from netlang.passes.shapes import infer_shapes  # noqa: E402


def best(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def phases(text: str, filename: str, network: str, repeat: int) -> dict:
    """Best-of-`repeat` time of each phase. Elaboration infers every shape as it places layers;
    the shapes column is the standalone re-inference pass, reported apart and not in the total."""
    # Parsing includes the files the text imports, as the command line does.
    t_parse, module = best(lambda: Loader().load_text(text, filename), repeat)
    t_elab, G = best(lambda: elaborate(module, network), repeat)
    t_shapes, _ = best(lambda: infer_shapes(G), repeat)
    t_cost, _ = best(lambda: analyse(G), repeat)
    layers = G.number_of_nodes() - 1
    return {"layers": layers, "parse": t_parse, "elaborate": t_elab, "shapes": t_shapes,
            "cost": t_cost, "total": t_parse + t_elab + t_cost}


def deep_loop(n: int) -> str:
    # Residual units of 5 layers each, written with a loop: elaboration-heavy.
    return f"""
block unit(c) {{
    add {{
        conv(c, 3, pad=1, bias=false) -> batchnorm -> relu
        identity
    }}
}}
network deep {{
    input 16x32x32
    for i in range(0, {n}) {{
        u{{i}}: unit(16)
    }}
    global_avgpool -> flatten -> fc: linear(10)
}}
"""


def deep_flat(n: int) -> str:
    # The same layers written out line by line: parse-heavy.
    lines = ["network deep {", "    input 16x32x32"]
    for i in range(n):
        lines.append(f"    c{i}: conv(16, 3, pad=1, bias=false) -> b{i}: batchnorm -> relu")
    lines += ["    global_avgpool -> flatten -> fc: linear(10)", "}"]
    return "\n".join(lines) + "\n"


def flat_list(n: int) -> str:
    # One long list: what a generated or hostile file looks like to the parser.
    return "def xs = [" + ", ".join(str(i % 1000) for i in range(n)) + "]\n"


def parse_speed(quick: bool) -> None:
    """Parse speed of long flat files, in items and bytes per second, text to AST: Lark's own path
    (its parse tree, then the transformer: the parser before netlang/lalr.py, and still the path
    for errors) against the lean driver, measured in this run, interleaved, best of three."""
    from netlang.limits import MAX_FILE_BYTES
    from netlang.parser import _Build, _slow_parse, parse
    print(f"\n{'long flat file':<24} {'bytes':>9} {'lark path s':>11} {'lean s':>7} {'speed-up':>8} "
          f"{'items/s before':>14} {'items/s':>9} {'MB/s before':>11} {'MB/s':>6}")
    rate = None
    for n in ((20_000,) if quick else (20_000, 100_000)):
        for name, text, items in ((f"list of {n} items", flat_list(n), n),
                                  (f"{n // 10} layer lines", deep_flat(n // 10), n // 10 * 3)):
            before, after = [], []
            for _ in range(3):
                before.append(best(lambda: _Build("<flat>", text).module(_slow_parse(text, "<flat>", "start")), 1)[0])
                after.append(best(lambda: parse(text, "<flat>"), 1)[0])
            t_old, t_new = min(before), min(after)
            rate = len(text) / t_new
            print(f"{name:<24} {len(text):>9,} {t_old:>11.2f} {t_new:>7.2f} {t_old / t_new:>7.2f}x "
                  f"{items / t_old:>14,.0f} {items / t_new:>9,.0f} {len(text) / t_old / 1e6:>11.3f} {rate / 1e6:>6.3f}")
    print(f"a file at the limit of {MAX_FILE_BYTES:,} bytes parses in about {MAX_FILE_BYTES / rate:.0f} s")


def row(name: str, r: dict) -> str:
    per_k = 1000 / r["layers"]
    return (f"{name:<22} {r['layers']:>7} {r['parse'] * 1e3:>9.1f} {r['elaborate'] * 1e3:>10.1f} "
            f"{r['shapes'] * 1e3:>9.1f} {r['cost'] * 1e3:>9.1f} {r['total'] * 1e3:>9.1f} "
            f"{r['total'] * 1e3 * per_k:>12.2f}")


def vgg16_ratio(repeat: int) -> None:
    vgg = ROOT / "architectures" / "vgg.net"
    if not vgg.is_file():
        print("architectures/vgg.net not found; skipping the torch comparison")
        return

    def summary():
        buf = io.StringIO()
        with redirect_stdout(buf):
            rc = cli.main(["summary", str(vgg), "--network", "vgg16"])
        assert rc == 0, buf.getvalue()
    t_summary, _ = best(summary, repeat)
    print(f"netlang summary vgg16 (in process): {t_summary * 1e3:.1f} ms")
    try:
        import warnings
        warnings.filterwarnings("ignore")
        import torch
        from torch import nn
    except ImportError:
        print("torch not importable: no ratio")
        return
    torch.set_num_threads(1)
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

    def build_torch():
        layers, c = [], 3
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
                c = v
        return nn.Sequential(nn.Sequential(*layers), nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                             nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(),
                             nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))
    t_torch, model = best(build_torch, repeat)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"torch: constructing VGG16 ({n_params:,} parameters): {t_torch * 1e3:.1f} ms")
    print(f"ratio netlang summary / torch construction = {t_summary / t_torch:.3f}  (target < 1)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    print(f"{'network':<22} {'layers':>7} {'parse ms':>9} {'elab ms':>10} {'shapes ms':>9} {'cost ms':>9} "
          f"{'total ms':>9} {'ms/1k layers':>12}")
    resnet = ROOT / "architectures" / "resnet.net"
    if resnet.is_file():
        text = resnet.read_text()
        # Each run loads the imported block file too, like the CLI does.
        r = phases(text, str(resnet), "resnet50", repeat)
        print(row("resnet50", r))
        target = "PASS" if r["total"] < 0.1 else "FAIL"
        print(f"  resnet50 end to end: {r['total'] * 1e3:.1f} ms (target < 100 ms: {target})")
    sizes = (500, 1000) if args.quick else (250, 500, 1000, 2000)
    per_k = []
    for n in sizes:
        r = phases(deep_loop(n), "<deep-loop>", "deep", repeat)
        per_k.append(r["total"] * 1e6 / r["layers"])
        print(row(f"deep loop, {n} units", r))
    for n in ((1000, 3333) if args.quick else (1000, 3333)):
        print(row(f"deep flat, {n} lines", phases(deep_flat(n), "<deep-flat>", "deep", repeat)))
    growth = max(per_k) / min(per_k)
    print(f"ms per 1,000 layers across sizes: {', '.join(f'{x:.1f}' for x in per_k)}; "
          f"max/min = {growth:.2f} (linear growth keeps this near 1)")
    vgg16_ratio(repeat)
    parse_speed(args.quick)


if __name__ == "__main__":
    main()
