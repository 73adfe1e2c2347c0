"""The long differential run: random valid programs (tests/progen.py) through the PyTorch
lowering and the reference interpreter (tests/lowering_check.py), with counts at the end.

    .venv/bin/python tools/fuzz_lowering.py --count 50000 [--start 0] [--jobs 2] [--out fuzz-failures] [--fuse]

--fuse checks the fuse pipeline instead (tests/lowering_check.py: check_fused): verify() after
every pass, and the fused graph and the fused module against the reference interpreter.

Each failing program is written to the --out folder as <seed>.net with the failure on its first
line; the exit status is 1 if any program failed.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def _work(args):
    start, count, fuse = args
    import torch
    torch.set_num_threads(1)
    import progen
    from lowering_check import check, check_fused
    out = []
    for seed in range(start, start + count):
        text = progen.generate(seed)
        got = check_fused(text, seed=seed) if fuse else check(text, seed=seed, timeout=60)
        out.append((seed, text, got))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=50000)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=200)
    ap.add_argument("--out", default="fuzz-failures")
    ap.add_argument("--fuse", action="store_true", help="check the fuse pipeline and the fused module")
    args = ap.parse_args(argv)
    out = Path(args.out)
    chunks = [(s, min(args.chunk, args.start + args.count - s), args.fuse)
              for s in range(args.start, args.start + args.count, args.chunk)]
    kinds: Counter = Counter()
    details: Counter = Counter()
    done = 0
    t0 = time.time()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        for results in pool.imap_unordered(_work, chunks):
            for seed, text, got in results:
                done += 1
                if got is None:
                    kinds["ok"] += 1
                    continue
                kind, detail = got
                kinds[kind] += 1
                details[f"{kind}: {detail[:120]}"] += 1
                out.mkdir(exist_ok=True)
                (out / f"{seed}.net").write_text(f"# {kind}: {detail}\n{text}")
            if done % 2000 < args.chunk:
                print(f"{done}/{args.count} programs, {kinds['ok']} agree, {kinds['crash']} crashes, "
                      f"{kinds['mismatch']} mismatches, {kinds['hang']} hangs ({time.time() - t0:.0f} s)", flush=True)
    print(f"\n{done} programs (seeds {args.start}..{args.start + args.count - 1}) in {time.time() - t0:.0f} s: "
          f"{kinds['ok']} agree with the reference, {kinds['crash']} crashes, {kinds['mismatch']} mismatches, "
          f"{kinds['hang']} hangs")
    for d, n in details.most_common(20):
        print(f"  {n:6d}  {d}")
    return 1 if kinds["crash"] or kinds["mismatch"] or kinds["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
