"""The command line's conventions: '-' for standard input, the zoo by file or network name,
check --json, usage errors, and the exit statuses that tell a crash from a mistake."""
from __future__ import annotations

import io
import json

import pytest

from netlang.cli import main

SYNTAX = b"network t {\n    input 3x8x8\n    conv(8, 3,, 1)\n}\n"


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_stdin_errors_name_stdin_and_json_lists_them(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(SYNTAX)))
    rc, out, err = run(capsys, "check", "-", "--json")
    assert rc == 1 and err == ""
    [d] = json.loads(out)
    assert (d["file"], d["line"], d["col"], d["kind"]) == ("<stdin>", 3, 15, "syntax error")


def test_a_network_name_finds_its_zoo_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(capsys, "check", "resnet18")
    assert rc == 0 and out.startswith("resnet18: ok — 74 layers") and "resnet.net" in err
    rc, _, err = run(capsys, "check", "resnet19")
    assert rc == 1 and "did you mean 'resnet18'?" in err


def test_zoo_list_names_each_network_with_its_file(capsys):
    rc, out, _ = run(capsys, "zoo", "--list")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()}
    assert rc == 0 and rows["resnet50"] == "resnet.net" and rows["vgg16"] == "vgg.net"


def test_mistyped_option_is_a_usage_error_of_the_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", "resnet18", "--dpeth", "1"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "usage: netlang summary" in err and "did you mean '--depth'?" in err


def test_interrupt_exits_130_without_traceback(capsys, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr("netlang.cli.load_module", interrupted)
    rc, _, err = run(capsys, "check", "resnet18")
    assert rc == 130 and "Traceback" not in err
