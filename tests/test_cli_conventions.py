"""The command line's conventions: '-' for standard input, the zoo by file or network name,
check --json, usage errors, and the exit statuses that tell a crash from a mistake."""
from __future__ import annotations

import io
import json

import pytest

import netlang
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


ZOO_NET = """block unit(c) { conv(c, 3, pad=1) -> relu }

network tiny {
    input 3x16x16
    stem: conv(8, 3, pad=1) -> batchnorm -> relu
    body: unit(8)
    global_avgpool -> flatten -> fc: linear(10)
}
"""


def test_zoo_render_passes_depth_and_color_through_and_is_quiet_when_piped(tmp_path, capsys):
    from netlang.render import to_dot
    (tmp_path / "tiny.net").write_text(ZOO_NET)
    out = tmp_path / "drawn"
    assert main(["zoo", str(tmp_path), "--render", str(out), "--format", "dot", "--depth", "1",
                 "--color", "macs"]) == 0
    err = capsys.readouterr().err
    net = netlang.load(tmp_path / "tiny.net")
    assert (out / "tiny.dot").read_text() == to_dot(net, depth=1, color="macs")
    assert to_dot(net, depth=1, color="macs") != to_dot(net)        # the options made a difference
    assert "\r" not in err and "\x1b[K" not in err                  # stderr is not a terminal here


def test_progress_line_is_drawn_on_a_terminal_only():
    import io

    from netlang.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True
    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        p = Progress(12, stream)
        p(3, "drew", "resnet50")
        p.close()
    assert "[ 3/12] drew resnet50" in tty.getvalue() and tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""


def test_zoo_list_refuses_a_fifo_instead_of_reading_it_forever(tmp_path, capsys):
    import os
    (tmp_path / "tiny.net").write_text(ZOO_NET)
    os.mkfifo(tmp_path / "pipe.net")
    assert main(["zoo", str(tmp_path), "--list"]) == 1
    out, err = capsys.readouterr()
    assert "tiny" in out and "not a regular file" in err
