"""The lean LALR driver (netlang/lalr.py) against Lark's own path (parse tree, then the tree to
the AST): the same AST, spans included, on the zoo, the error files, generated programs and
mutated zoo files; and the same error wherever either fails."""
from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pytest

from netlang import parser as P

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import progen  # noqa: E402
from fuzz_cases import mutate_bytes, mutate_tokens  # noqa: E402

ZOO = sorted((ROOT / "architectures").glob("*.net"))


def same(a, b, path="module"):
    assert type(a) is type(b), f"{path}: {type(a).__name__} vs {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    else:
        assert a == b and type(a) is type(b), f"{path}: {a!r} vs {b!r}"


def outcome(parse, text):
    try:
        return parse(text), None
    except Exception as err:            # (compared: the same kind and the same words)
        return None, f"{type(err).__name__}: {err}"


def compare(text, name="case.net"):
    lark_path = outcome(lambda t: P._Build(name, t).module(P._slow_parse(t, name, "start")), text)
    lean = outcome(lambda t: P.parse(t, name), text)
    assert lark_path[1] == lean[1]
    if lark_path[0] is not None:
        same(lark_path[0], lean[0])
    return lark_path[1] is None


@pytest.mark.parametrize("path", ZOO + sorted((ROOT / "tests" / "errors").glob("*.net")), ids=lambda p: p.name)
def test_the_zoo_and_the_error_files_parse_alike(path):
    compare(path.read_text(encoding="utf-8", errors="replace"), path.name)


def test_generated_and_mutated_programs_parse_alike():
    rng = random.Random(7)
    zoo = [p.read_text(encoding="utf-8") for p in ZOO]
    texts = [progen.generate(i) for i in range(150)]
    texts += [mutate_tokens(rng, rng.choice(zoo)) for _ in range(150)]
    texts += [mutate_bytes(rng, rng.choice(zoo).encode()).decode("utf-8", "replace") for _ in range(150)]
    parsed = sum(compare(t) for t in texts)
    assert 150 < parsed < len(texts)          # both sides of the mix: programs that parse, and errors


def test_valid_files_never_fall_back_to_larks_path(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("fell back to Lark's path")
    monkeypatch.setattr(P, "_slow_parse", refuse)
    for path in ZOO:
        P.parse(path.read_text(encoding="utf-8"), path.name)


def test_a_long_list_parses_in_linear_time():
    # (the left-recursive list grows in place; a copy per item made it quadratic)
    import time
    def seconds(n):
        text = "def xs = [" + ", ".join(["1"] * n) + "]\n"
        t = time.perf_counter()
        P.parse(text, "l.net")
        return time.perf_counter() - t
    small, large = min(seconds(5000) for _ in range(3)), min(seconds(40000) for _ in range(2))
    assert large < small * 8 * 2.5, (small, large)
