"""A short run of the front-end fuzzer (tools/fuzz_frontend.py): generated, mutated and hostile
files through check, summary --json, render and compile, each in a forked child under a 2 GiB
memory cap and a timeout. Not one run may end in a traceback, a hang or a memory kill."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

fuzz = pytest.importorskip("fuzz_frontend")

CASES = 750           # 3,000 runs, ~45 s on two idle cores; the long run is the tool's own (--count 50000)


def test_fuzzer_finds_no_internal_error_hang_or_memory_kill(tmp_path):
    fuzzer = fuzz.Fuzzer(jobs=2, mem=2 << 30, timeout=60,     # (a hang never ends; 60 s spares busy CI)
                         out=tmp_path, commands=list(fuzz.COMMANDS))
    fuzzer.run(start=0, count=CASES)
    counts = fuzzer.counts
    saved = sorted(p.name for p in tmp_path.rglob("*.txt"))
    assert counts["internal"] == 0 and counts["timeout"] == 0 and counts["memory"] == 0, (counts, saved)
    assert fuzzer.distinct == CASES and sum(counts.values()) == CASES * len(fuzz.COMMANDS)
    assert fuzzer.repeats > 0 and fuzzer.last == CASES + fuzzer.repeats - 1    # (repeated files skipped)
    # the mix reaches both sides: valid programs that pass, and located errors
    assert counts["ok"] > CASES // 4 and counts["user"] > CASES // 4, counts


def test_outcomes_are_classified_by_status_and_stderr():
    ok, one, two = 0 << 8, 1 << 8, 2 << 8        # waitpid statuses of exits 0, 1 and 2
    assert fuzz.classify(ok, False, "") == "ok"
    assert fuzz.classify(one, False, "a.net:3:5: type error: x\n") == "user"
    assert fuzz.classify(one, False, "name error: no network 'x'\n") == "unlocated"
    assert fuzz.classify(two, False, "usage: netlang\n") == "usage"
    assert fuzz.classify(70 << 8, False, "internal error\n") == "internal"
    assert fuzz.classify(one, False, "Traceback (most recent call last):\n") == "internal"
    assert fuzz.classify(fuzz.MEMORY_EXIT << 8, False, "") == "memory"
    assert fuzz.classify(9, False, "") == "memory"          # killed by SIGKILL
    assert fuzz.classify(9, True, "") == "timeout"
