"""Diagram speed: DOT generation (netlang's own work) and Graphviz's `dot` itself.

Prints, for the largest networks of the zoo and a few well-known ones, the time to write the
DOT text (default drawing, full depth, and full depth with every layer drawn: --expand) and the
time `dot -Tsvg` takes to lay out the default drawing and the expanded one.

    python benchmarks/render.py [--quick] [--top N]

Target (issue 5): DOT for the largest zoo network at full depth in under 1 s of netlang's own
work. Loading and analysing the network is not counted (benchmarks/frontend.py measures it).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from netlang.api import analyse_module, load_module  # noqa: E402
from netlang.elaborate import template_params  # noqa: E402
from netlang.render import run_dot, to_dot  # noqa: E402
from frontend import best  # noqa: E402  (benchmarks/ is the script's folder)

ALWAYS = ("resnet50", "googlenet", "inception_v4", "densenet121")


def zoo():
    for path in sorted((ROOT / "architectures").rglob("*.net")):
        module = load_module(path)
        for name in module.networks:
            if not template_params(module, name):       # a template has no shape to draw
                yield analyse_module(module, name)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one repetition, and no dot on expanded drawings")
    ap.add_argument("--top", type=int, default=5, help="how many of the largest networks (default 5)")
    args = ap.parse_args()
    repeat = 1 if args.quick else 5
    have_dot = shutil.which("dot") is not None

    nets = sorted(zoo(), key=lambda n: -n.graph.number_of_nodes())
    chosen = nets[:args.top] + [n for n in nets[args.top:] if n.name in ALWAYS]
    print(f"{'network':28s} {'layers':>6s} {'boxes':>5s}  {'DOT default':>11s} {'DOT full':>9s} "
          f"{'DOT expand':>10s}   {'dot default':>11s} {'dot expand':>10s}")
    worst = (0.0, "")
    for net in chosen:
        layers = net.graph.number_of_nodes() - 1
        t_auto, text = best(lambda: to_dot(net), repeat)
        t_full, _ = best(lambda: to_dot(net, depth=None), repeat)
        t_exp, expanded = best(lambda: to_dot(net, depth=None, expand=True), repeat)
        worst = max(worst, (t_full, net.name))
        boxes = sum(1 for line in text.splitlines() if line.lstrip().startswith('"') and "->" not in line)
        dots = "-", "-"
        if have_dot:
            d_auto, _ = best(lambda: run_dot(text, "svg"), 1 if args.quick else 3)
            dots = (f"{d_auto * 1e3:9.0f}ms", "-")
            if not args.quick:
                d_exp, _ = best(lambda: run_dot(expanded, "svg"), 1)
                dots = (dots[0], f"{d_exp * 1e3:8.0f}ms")
        print(f"{net.name:28s} {layers:6d} {boxes:5d}  {t_auto * 1e3:9.1f}ms {t_full * 1e3:7.1f}ms "
              f"{t_exp * 1e3:8.1f}ms   {dots[0]:>11s} {dots[1]:>10s}")
    print(f"\nslowest DOT at full depth: {worst[1]} {worst[0] * 1e3:.1f} ms (target < 1000 ms)"
          + ("" if have_dot else "; dot not installed, its times are not measured"))
    return 0 if worst[0] < 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
