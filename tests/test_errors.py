"""The bad-input corpus: every file in tests/errors/ is a small broken program whose first line
states the error it must produce:

    # expect: KIND at [FILE:]LINE:COL: REGEX

KIND is NetlangError.kind ("syntax error", "shape error", ...); FILE, when given, is the file the
error is located in, relative to tests/errors/ (an imported file); REGEX is searched in the
message followed by "hint: " and the hint. Files under tests/errors/imports/ are helpers that the
corpus imports, not cases.

Each case is loaded with netlang.elaborate.load and every network of it is elaborated; a file
that declares no network is then asked for its network, as `netlang summary` does.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from netlang.api import choose_network
from netlang.elaborate import elaborate, load, load_text
from netlang.errors import NetlangError

ERRORS = Path(__file__).parent / "errors"
HEADER = re.compile(r"# expect: (?P<kind>[a-z]+ error) at (?:(?P<file>[^:\s]+):)?(?P<line>\d+):(?P<col>\d+): "
                    r"(?P<pattern>.+)")
KINDS = {"syntax error", "name error", "type error", "value error", "shape error", "import error",
         "recursion error"}
CASES = sorted(ERRORS.glob("*.net"))


def expectation(path: Path) -> dict:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    m = HEADER.fullmatch(first.rstrip())
    assert m, f"{path.name}: first line is not an '# expect:' header: {first!r}"
    want = m.groupdict()
    want["file"] = (ERRORS / want["file"]).resolve() if want["file"] else path.resolve()
    want["line"], want["col"] = int(want["line"]), int(want["col"])
    return want


def run(path: Path) -> None:
    """What `netlang check` and `netlang summary` do with a file, minus the printing."""
    module = load(path)
    for name in module.networks:
        elaborate(module, name)
    if not module.networks:
        choose_network(module, None)


def check_excerpt(err: NetlangError, line: int, col: int, source_line: str) -> None:
    text = err.format()
    assert f"{err.loc.file}:{line}:{col}: {err.kind}: " in text
    lines = text.splitlines()
    shown = "    " + source_line
    assert shown in lines, f"source line {source_line!r} missing from:\n{text}"
    caret = lines[lines.index(shown) + 1]
    assert re.fullmatch(r"    [ \t]*\^+", caret), f"no caret line after the source line:\n{text}"
    assert caret.index("^") - 4 == col - 1, f"caret not at column {col}:\n{text}"


def test_corpus_is_large_and_covers_every_kind():
    assert len(CASES) >= 50
    kinds = {expectation(p)["kind"] for p in CASES}
    assert kinds == KINDS


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_case(path: Path):
    want = expectation(path)
    with pytest.raises(NetlangError) as info:
        run(path)
    err = info.value
    assert err.kind == want["kind"], err.format()
    assert err.loc is not None, err.format()
    assert Path(err.loc.file).resolve() == want["file"], err.format()
    assert (err.loc.line, err.loc.col) == (want["line"], want["col"]), err.format()
    assert re.search(want["pattern"], f"{err.message}\nhint: {err.hint}", re.S), err.format()
    source = want["file"].read_text(encoding="utf-8").splitlines()[want["line"] - 1]
    check_excerpt(err, want["line"], want["col"], source)


def test_harness_passes_valid_programs():
    # The same steps on the language examples raise nothing, so a case passes only by its error.
    run(Path(__file__).parent / "data" / "language_examples.net")


def test_header_parser_rejects_a_file_without_header(tmp_path):
    bad = tmp_path / "x.net"
    bad.write_text("network n {\n    input 3x8x8\n    relu\n}\n")
    with pytest.raises(AssertionError):
        expectation(bad)


# ------------------------------------------------------------------ empty files

def test_empty_text_has_no_networks_and_no_network_to_choose():
    module = load_text("", "empty.net")
    assert module.networks == []
    with pytest.raises(NetlangError, match="declares no network") as info:
        choose_network(module, None)
    assert info.value.kind == "name error"
    assert (info.value.loc.file, info.value.loc.line, info.value.loc.col) == ("empty.net", 1, 1)


def test_definitions_only_file_loads():
    module = load_text("block unit(c) {\n    conv(c, 3)\n}\n", "defs.net")
    assert module.networks == []
    assert "unit" in module.env.vars


# ------------------------------------------------------------------ the command line

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "netlang.cli", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("name", ["syntax_unclosed_paren", "shape_add_mismatch", "import_cycle",
                                  "recursion_mutual", "type_misspelt_parameter"])
def test_cli_check_reports_located_error(name):
    path = ERRORS / f"{name}.net"
    want = expectation(path)
    res = cli("check", str(path))
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    m = re.search(r"^(\S+):(\d+):(\d+): ([a-z]+ error): ", res.stderr, re.M)
    assert m, res.stderr
    assert Path(m[1]).resolve() == want["file"]
    assert (int(m[2]), int(m[3]), m[4]) == (want["line"], want["col"], want["kind"])
    assert re.search(want["pattern"], res.stderr, re.S), res.stderr
    assert re.search(r"^    [ \t]*\^+$", res.stderr, re.M), res.stderr


def test_cli_empty_file(tmp_path):
    empty = tmp_path / "empty.net"
    empty.write_text("")
    res = cli("check", str(empty))
    assert res.returncode == 0, res.stderr
    assert "no networks" in res.stdout
    res = cli("summary", str(empty))
    assert res.returncode == 1
    assert f"{empty}:1:1: name error: " in res.stderr and "declares no network" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr


def test_cli_summary_of_comments_only_file():
    path = ERRORS / "empty_only_comments.net"
    res = cli("summary", str(path))
    assert res.returncode == 1
    assert f"{path}:1:1: name error: " in res.stderr and "declares no network" in res.stderr
    assert "Traceback" not in res.stdout + res.stderr
