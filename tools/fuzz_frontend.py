"""The front end under fire: generated, mutated and hostile files through the command line.

    .venv/bin/python tools/fuzz_frontend.py --count 50000 --jobs 2 --out /tmp/fuzzout [--start 0]

Each case is one file (and what it needs around it: a FIFO, a symlink loop, a huge sparse file):
a random valid program (tests/progen.py), a zoo file mutated token by token or byte by byte, or
a hostile file (huge numbers, deep nesting, long lines, special files, odd encodings, runaway
work). Each is run through `check`, `summary --json`, `render -o x.dot` and `compile -o x.py`
(the torch backend's source), every run in a child forked from this process (which imported
netlang once), under a memory cap (RLIMIT_AS) and a timeout. Outcomes:

    ok          exit 0
    user        exit 1, the message located (file:line:col: kind: ...)
    unlocated   exit 1, a message without a location (the command line's file is missing, ...)
    usage       exit 2
    internal    a traceback, exit 70, or any other exit: a bug
    timeout     killed at the timeout: a hang
    memory      MemoryError, or killed by a signal under the memory cap

A case whose file (bytes, name, folder, network) an earlier case of the run already had is
skipped: the hostile kinds draw from short lists, and --count counts distinct programs.

Failing runs (internal, timeout, memory; unlocated too, to read) are saved to --out as
<outcome>/<case>-<command>.net with a .txt beside it (the command, the case's kind and seed,
the end of stderr); `--start S --count 1` makes case S again. The exit status is 1 if any run
was internal, a timeout or a memory kill.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import random
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import progen  # noqa: E402
from fuzz_cases import hostile, mutate_bytes, mutate_tokens  # noqa: E402
from netlang import cli  # noqa: E402

FAILING = ("internal", "timeout", "memory")
OUTCOMES = ("ok", "user", "unlocated", "usage") + FAILING
MEMORY_EXIT = 99                     # the child's status after a MemoryError
LOCATED = re.compile(r"^\S.*?:\d+:\d+: [a-z ]*(error|warning): ")
COMMANDS = {
    "check": lambda f, n: ["check", f],
    "summary": lambda f, n: ["summary", f, "--json"] + n,
    "render": lambda f, n: ["render", f, "-o", "out.dot"] + n,
    "compile": lambda f, n: ["compile", f, "-o", "out.py"] + n,
}
ZOO = sorted((ROOT / "architectures").glob("*.net"))


class Case:
    """One file to run: its bytes, its name, and what else its folder holds."""

    def __init__(self, index: int, kind: str, data: bytes, name: str = "case.net", network: str | None = None,
                 setup=None, target: str | None = None):
        self.index, self.kind, self.data, self.name = index, kind, data, name
        self.network, self.setup, self.target = network, setup, target


def make_case(index: int) -> Case:
    rng = random.Random(index)
    roll = rng.random()
    if roll < 0.3:
        text = progen.generate(index)
        return Case(index, "progen", text.encode(), network="n")
    if roll < 0.8:
        src = rng.choice(ZOO)
        text = src.read_text(encoding="utf-8")
        m = re.search(r"^network (\w+)", text, re.M)
        if roll < 0.6:
            return Case(index, "zoo-token", mutate_tokens(rng, text).encode("utf-8", "surrogatepass"),
                        network=m.group(1) if m else None)
        return Case(index, "zoo-byte", mutate_bytes(rng, text.encode()), network=m.group(1) if m else None)
    kind, data, extra = hostile(rng)
    return Case(index, f"hostile-{kind}", data, **extra)


# ====================================================================== one run, in a child

def mapped_bytes() -> int:
    """The address space this process maps already. The cap is `mem` on top of it: a parent that
    imported torch, onnxruntime or triton maps gigabytes it never touches, and a cap counted from
    zero would leave a run no room at all (a MemoryError or worse on its first allocation)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_child(argv: list[str], cwd: str, mem: int, timeout: float) -> None:
    """In the forked child: the limits, stdout and stderr to files, netlang's main; never returns."""
    rc = 70
    try:
        os.chdir(cwd)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(f, fd)
            os.close(f)
        # as the command's own streams are: UTF-8, stderr escaping what it cannot encode
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace")
        cap = mapped_bytes() + mem
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        signal.alarm(int(timeout) + 2)          # (the parent kills it first; this is a backstop)
        try:
            rc = cli.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except MemoryError:
            rc = MEMORY_EXIT
        sys.stdout.flush()
        sys.stderr.flush()
    except MemoryError:
        rc = MEMORY_EXIT
    except BaseException:
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
        rc = 70
    os._exit(rc if isinstance(rc, int) and 0 <= rc < 256 else 70)


def classify(status: int, timed_out: bool, stderr: str) -> str:
    if timed_out:
        return "timeout"
    if os.WIFSIGNALED(status):
        return "memory"
    rc = os.WEXITSTATUS(status)
    if rc == MEMORY_EXIT or "MemoryError" in stderr:
        return "memory"
    if "Traceback (most recent call last)" in stderr:
        return "internal"
    if rc == 0:
        return "ok"
    if rc == 1:
        return "user" if LOCATED.match(stderr) else "unlocated"
    if rc == 2:
        return "usage"
    return "internal"


# ====================================================================== the fork server

class Fuzzer:
    def __init__(self, jobs: int, mem: int, timeout: float, out: Path | None, commands):
        self.jobs, self.mem, self.timeout, self.out, self.commands = jobs, mem, timeout, out, commands
        self.counts: Counter = Counter()
        self.by_command: Counter = Counter()
        self.seconds: Counter = Counter()       # run time by kind of case
        self.root = Path(tempfile.mkdtemp(prefix="netlang-fuzz-"))
        self.running: dict[int, tuple] = {}
        self.left: dict[int, int] = {}          # case -> runs not finished
        self.distinct = self.repeats = 0        # cases run, cases skipped as repeats
        self.last = None                        # the number of the last case made

    def prepare(self, case: Case) -> Path:
        d = self.root / str(case.index)
        d.mkdir()
        (d / case.name).write_bytes(case.data)        # (a name may hold os.fsdecode's stand-ins for bytes)
        if case.setup is not None:
            case.setup(d)
        return d

    def start(self, case: Case, d: Path, command: str) -> None:
        run_dir = d / command
        run_dir.mkdir()
        target = str(d / (case.target or case.name))      # (an absolute target, /dev/zero, stays as it is)
        argv = COMMANDS[command](target, ["--network", case.network] if case.network else [])
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(argv, str(run_dir), self.mem, self.timeout)
        self.running[pid] = (case, d, command, run_dir, time.monotonic() + self.timeout, argv, time.monotonic())

    def reap(self, block: bool) -> None:
        while self.running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            timed_out = False
            if pid == 0:
                now = time.monotonic()
                late = [p for p, r in self.running.items() if r[4] < now]
                if not late:
                    if not block:
                        return
                    time.sleep(0.002)
                    continue
                pid = late[0]
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                timed_out = True
            self.finish(pid, status, timed_out)
            if not block:
                return

    def finish(self, pid: int, status: int, timed_out: bool) -> None:
        case, d, command, run_dir, _, argv, began = self.running.pop(pid)
        self.seconds[case.kind.split("-")[0]] += time.monotonic() - began
        stderr = (run_dir / "stderr").read_text(encoding="utf-8", errors="replace")
        outcome = classify(status, timed_out, stderr)
        self.counts[outcome] += 1
        self.by_command[command, outcome] += 1
        if self.out is not None and outcome in FAILING + ("unlocated",):
            self.save(case, command, argv, outcome, stderr)
        self.left[case.index] -= 1
        if not self.left[case.index]:
            del self.left[case.index]
            shutil.rmtree(d, ignore_errors=True)

    def save(self, case: Case, command: str, argv, outcome: str, stderr: str) -> None:
        folder = self.out / outcome
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{case.index}-{command}"
        (folder / f"{stem}.net").write_bytes(case.data)
        note = (f"case {case.index} ({case.kind}), file named {case.name!r}"
                + (" (its folder also held special files: run the case again with --start)" if case.setup else "")
                + f"\nnetlang {' '.join(map(repr, argv))}\n\n{stderr[-4000:]}")
        (folder / f"{stem}.txt").write_text(note, encoding="utf-8", errors="backslashreplace")

    def warm_up(self) -> None:
        """Run every command once here, so that each child starts with the grammar's tables and
        the lazy imports already made (what forking is for)."""
        d = self.root / "warm"
        d.mkdir()
        (d / "w.net").write_text(progen.generate(0))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            cwd = os.getcwd()
            os.chdir(d)
            try:
                for command in self.commands:
                    cli.main(COMMANDS[command](str(d / "w.net"), ["--network", "n"]))
            finally:
                os.chdir(cwd)

    def run(self, start: int, count: int) -> None:
        """Run `count` distinct cases from case `start` on: a case whose file, name, folder and
        network an earlier case of this run had already (the hostile kinds draw from short lists)
        is skipped and counted in self.repeats."""
        self.warm_up()
        seen: set = set()
        index = start
        while self.distinct < count:
            case = make_case(index)
            index += 1
            key = hashlib.blake2b(repr((case.data, case.name, case.target, case.network,
                                        getattr(case.setup, "__name__", None))).encode("utf-8", "surrogatepass"),
                                  digest_size=16).digest()
            if key in seen:
                self.repeats += 1
                continue
            seen.add(key)
            self.distinct += 1
            self.last = case.index
            d = self.prepare(case)
            self.left[case.index] = len(self.commands)
            for command in self.commands:
                while len(self.running) >= self.jobs:
                    self.reap(block=True)
                self.start(case, d, command)
        while self.running:
            self.reap(block=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def failures(self) -> int:
        return sum(self.counts[o] for o in FAILING)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1000,
                    help="distinct cases to run (each through every command; repeated files are skipped)")
    ap.add_argument("--start", type=int, default=0, help="the first case's number (its seed)")
    ap.add_argument("--jobs", type=int, default=2, help="children running at once")
    ap.add_argument("--out", type=Path, help="save failing runs here")
    ap.add_argument("--memory", type=float, default=2.0, help="the memory each run may add to what the fuzzer maps, GiB (RLIMIT_AS)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a run counts as a hang")
    ap.add_argument("--commands", default=",".join(COMMANDS), help="which commands, comma-separated")
    args = ap.parse_args(argv)
    fuzzer = Fuzzer(args.jobs, int(args.memory * (1 << 30)), args.timeout, args.out, args.commands.split(","))
    t = time.perf_counter()
    fuzzer.run(args.start, args.count)
    dt = time.perf_counter() - t
    runs = sum(fuzzer.counts.values())
    print(f"{fuzzer.distinct} distinct programs (cases {args.start} to {fuzzer.last}, {fuzzer.repeats} repeats "
          f"skipped), {runs} runs in {dt:.1f} s: {fuzzer.distinct / dt:.1f} programs/s, {runs / dt:.1f} runs/s")
    for outcome in OUTCOMES:
        per = ", ".join(f"{c} {fuzzer.by_command[c, outcome]}" for c in fuzzer.commands if fuzzer.by_command[c, outcome])
        print(f"  {outcome:<10} {fuzzer.counts[outcome]:>7}" + (f"   ({per})" if per else ""))
    print("  run time by kind of case: " + ", ".join(f"{k} {v:.1f} s" for k, v in fuzzer.seconds.most_common()))
    if args.out is not None and fuzzer.failures():
        print(f"failing runs saved in {args.out}")
    return 1 if fuzzer.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
