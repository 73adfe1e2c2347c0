"""The `netlang` command: check and summary, exit codes, located errors, options, JSON, and that
it runs without torch."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import netlang
from netlang.cli import main

DATA = Path(__file__).parent / "data"
RESNET = str(DATA / "resnet.net")
REPO = Path(__file__).resolve().parent.parent

BAD_ADD = """\
network bad {
    input 3x8x8
    add {
        conv(8, 1)
        identity
    }
}
"""


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def bad_file(tmp_path):
    p = tmp_path / "bad.net"
    p.write_text(BAD_ADD)
    return p


# ---------------------------------------------------------------------------- check

def test_check_every_network_of_a_file(capsys):
    rc, out, err = run(capsys, "check", RESNET)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["resnet", "resnet18", "resnet34", "resnet50"]
    assert lines[1] == "resnet18: ok — 74 layers, input 3x224x224, output fc 1000"


def test_check_one_network_with_input_and_param(capsys):
    rc, out, err = run(capsys, "check", RESNET, "--network", "resnet18", "--input", "3x64x64", "-p", "classes=10")
    assert rc == 0 and err == ""
    assert out == "resnet18: ok — 74 layers, input 3x64x64, output fc 10\n"


def test_check_reports_a_located_error(capsys, bad_file):
    rc, out, err = run(capsys, "check", bad_file)
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{bad_file}:3:5: shape error: add: branch 1 gives 8x8x8 but branch 2 gives 3x8x8"
    assert lines[1] == "        add {"
    assert lines[2].startswith("        ^")
    assert lines[-1].startswith("hint:") and "projection" in lines[-1]
    assert "Traceback" not in err


def test_check_syntax_error(capsys, tmp_path):
    p = tmp_path / "syntax.net"
    p.write_text("network t {\n    input 3x8x8\n    conv(8, 3,, 1)\n}\n")
    rc, out, err = run(capsys, "check", p)
    assert rc == 1 and out == ""
    assert err.startswith(f"{p}:3:15: syntax error")
    assert "Traceback" not in err


def test_missing_file(capsys, tmp_path):
    rc, out, err = run(capsys, "check", tmp_path / "nope.net")
    assert rc == 1 and "no such file" in err and "Traceback" not in err


def test_param_with_several_networks_needs_network(capsys):
    rc, out, err = run(capsys, "check", RESNET, "-p", "classes=10")
    assert rc == 1 and out == ""
    assert "choose it with --network" in err and "resnet, resnet18, resnet34, resnet50" in err


# ---------------------------------------------------------------------------- summary

def test_summary_needs_network_when_ambiguous(capsys, tmp_path):
    nets = tmp_path / "nets.net"          # no network is named like the file
    nets.write_text(Path(RESNET).read_text())
    rc, out, err = run(capsys, "summary", nets)
    assert rc == 1 and out == ""
    assert "declares 4 networks; choose one with --network" in err
    assert "hint: networks here: resnet, resnet18, resnet34, resnet50" in err


def test_summary_unknown_network(capsys):
    rc, out, err = run(capsys, "summary", RESNET, "--network", "resnet19")
    assert rc == 1 and "no network 'resnet19'" in err and "resnet18" in err


def test_summary_unknown_parameter(capsys):
    rc, out, err = run(capsys, "summary", RESNET, "-n", "resnet18", "-p", "depth=3")
    assert rc == 1 and "has no parameter 'depth'" in err and "layers" in err


def _footer(text: str) -> list[str]:
    """The totals under the table (without the rules, whose width follows the rows)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Parameters:"))
    return [line for line in lines[start:] if set(line) != {"-"}]


def _table_rows(text: str) -> list[str]:
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    return lines[rules[1] + 1:rules[2]]


def test_summary_table(capsys):
    rc, out, err = run(capsys, "summary", RESNET, "-n", "resnet18")
    assert rc == 0 and err == ""
    net = netlang.load(RESNET, network="resnet18")
    rows = _table_rows(out)
    assert len(rows) == net.graph.number_of_nodes()
    conv1 = rows[1].split()
    assert conv1[0] == "conv1" and "9,408" in conv1 and "64x112x112" in conv1      # 64 x 3 x 7 x 7 weights
    assert "Parameters:      11,689,512 trainable, 9,620 in buffers" in out


def test_summary_depth_collapses_blocks_and_keeps_totals(capsys):
    rc, full, _ = run(capsys, "summary", RESNET, "-n", "resnet18")
    rc1, shallow, _ = run(capsys, "summary", RESNET, "-n", "resnet18", "--depth", "1")
    assert rc == rc1 == 0
    rows = _table_rows(shallow)
    assert [r.split()[0] for r in rows] == ["input", "conv1", "bn1", "2", "maxpool", "layer1", "layer2", "layer3",
                                            "layer4", "avgpool", "9", "fc"]
    layer1 = next(r for r in rows if r.startswith("layer1"))
    assert "[16]" in layer1 and "147,968" in layer1
    assert _footer(shallow) == _footer(full)


def test_summary_depth_must_be_positive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", RESNET, "-n", "resnet18", "--depth", "0"])
    assert info.value.code == 2 and "expected a positive whole number" in capsys.readouterr().err


def test_a_file_defaults_to_the_network_named_like_it(capsys):
    rc, out, _ = run(capsys, "summary", RESNET, "--json")
    assert rc == 0 and json.loads(out)["network"] == "resnet"


def test_internal_error_exits_70_with_traceback(capsys, monkeypatch):
    import netlang.summary
    monkeypatch.setattr(netlang.summary, "to_json", lambda *a: (_ for _ in ()).throw(RecursionError("x")))
    rc, out, err = run(capsys, "summary", RESNET, "--json")
    assert rc == 70 and "internal error: this is a bug in netlang, please report it" in err and "Traceback" in err


@pytest.mark.parametrize("depth", [None, 1, 2])
def test_summary_json(capsys, depth):
    argv = ["summary", RESNET, "-n", "resnet18", "--input", "3x64x64", "-p", "classes=10", "--json"]
    if depth:
        argv += ["--depth", str(depth)]
    rc, out, err = run(capsys, *argv)
    assert rc == 0 and err == ""
    data = json.loads(out)
    net = netlang.load(RESNET, network="resnet18", input=(3, 64, 64), classes="10")
    assert data["totals"] == net.cost.totals()
    assert data["network"] == "resnet18" and data["input"] == [3, 64, 64] and data["outputs"] == ["fc"]
    for field in ("params", "buffers", "macs", "flops", "ew_ops", "act_elems", "layers"):
        assert sum(row[field] for row in data["layers"]) == data["totals"][field], field
    assert data["totals"]["params"] == 11_689_512 - 990 * 513


def test_summary_dtype(capsys):
    rc, out, _ = run(capsys, "summary", RESNET, "-n", "resnet18", "--json", "--dtype", "float16")
    t = json.loads(out)["totals"]
    assert rc == 0 and t["dtype"] == "float16" and t["act_bytes_forward"] == 2 * t["act_elems"]


def test_bad_input_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as info:
        main(["summary", RESNET, "-n", "resnet18", "--input", "3by64"])
    assert info.value.code == 2
    assert "expected CxHxW" in capsys.readouterr().err


# ---------------------------------------------------------------------------- subprocesses

def test_cli_in_a_subprocess(bad_file):
    ok = subprocess.run([sys.executable, "-m", "netlang.cli", "check", RESNET, "-n", "resnet18"],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith("resnet18: ok")
    bad = subprocess.run([sys.executable, "-m", "netlang.cli", "summary", str(bad_file)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith(f"{bad_file}:3:5: shape error:") and "Traceback" not in bad.stderr


NO_TORCH = textwrap.dedent("""
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "triton"):
                raise ImportError("blocked: " + name)
            return None

    sys.meta_path.insert(0, NoTorch())
    try:
        import torch
    except ImportError:
        pass
    else:
        raise SystemExit("the import blocker does not work")
    import netlang
    from netlang.cli import main
    assert "torch" not in sys.modules
    rc = main(["check", sys.argv[1], "-n", "resnet18"])
    rc |= main(["summary", sys.argv[1], "-n", "resnet18", "--depth", "2"])
    rc |= main(["summary", sys.argv[1], "-n", "resnet50", "--json"])
    assert not any(m.split(".")[0] in ("torch", "triton") for m in sys.modules)
    sys.exit(rc)
""")


def test_check_and_summary_work_without_torch():
    proc = subprocess.run([sys.executable, "-c", NO_TORCH, RESNET], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("resnet18: ok")
    assert "netlang summary: resnet18" in proc.stdout and '"network": "resnet50"' in proc.stdout


def test_import_netlang_does_not_import_torch():
    code = ("import sys, netlang, netlang.cli, netlang.summary, netlang.passes; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'triton')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- check: templates

TEMPLATE = """\
block unit(c, k) { conv(c, k, pad=k // 2) -> relu }

network mobile(cfg, last, classes=10) {
    input 3x32x32
    for c in cfg {
        unit(c, 3)
    }
    head: conv(last, 1) -> global_avgpool -> flatten -> linear(classes)
}

network mobile_small = mobile(cfg=[16, 24], last=64)
network mobile_large = mobile([16, 24, 40], 128, classes=100)
"""


def test_check_reports_a_template_and_checks_its_instances(capsys, tmp_path):
    p = tmp_path / "mobile.net"
    p.write_text(TEMPLATE)
    rc, out, err = run(capsys, "check", p)
    assert rc == 0 and err == ""
    assert out.splitlines() == [
        "mobile: template — needs cfg, last; checked through its instances mobile_small, mobile_large",
        # 2 units of conv + relu, then conv, pool, flatten, linear
        "mobile_small: ok — 8 layers, input 3x32x32, output head.3 10",
        "mobile_large: ok — 10 layers, input 3x32x32, output head.3 100",
    ]


def test_check_a_template_alone_and_with_its_parameters(capsys, tmp_path):
    p = tmp_path / "alone.net"
    p.write_text(TEMPLATE.split("network mobile_small")[0])
    rc, out, _ = run(capsys, "check", p)
    assert rc == 0
    assert out == "mobile: template — needs cfg, last; no instance here (give -p cfg=… -p last=… to check it)\n"
    # -p supplies parameters without a default
    rc, out, _ = run(capsys, "check", p, "-p", "cfg=[8]", "-p", "last=8")
    assert rc == 0 and out == "mobile: ok — 6 layers, input 3x32x32, output head.3 10\n"
    rc, out, _ = run(capsys, "check", p, "-p", "cfg=[8]")
    assert rc == 0 and out.startswith("mobile: template — needs last;")


def test_check_finds_an_unknown_name_in_a_template(capsys, tmp_path):
    p = tmp_path / "typo.net"
    p.write_text(TEMPLATE.replace("unit(c, 3)", "unti(c, 3)"))
    rc, out, err = run(capsys, "check", p)
    assert rc == 1 and out == ""
    lines = err.splitlines()
    assert lines[0] == f"{p}:6:9: name error: unknown name 'unti'"
    assert lines[2] == "            ^^^^"
    assert lines[3] == f"{p}:3:9: note: in network mobile, a template (its parameters cfg, last have no default)"
    assert lines[4] == "hint: did you mean 'unit'?"


def test_an_instance_that_leaves_out_a_parameter_fails(capsys, tmp_path):
    p = tmp_path / "partial.net"
    p.write_text(TEMPLATE + "network mobile_bad = mobile(cfg=[16])\n")
    rc, out, err = run(capsys, "check", p)
    assert rc == 1
    assert "type error: network mobile needs its 'last' argument" in err


def test_p_values_are_seen_by_the_defaults_after_them(capsys, tmp_path):
    p = tmp_path / "dep.net"
    p.write_text("network x(n=2, m=n * 2) {\n    input 3x8x8\n    conv(m, 1)\n}\n")
    rc, out, _ = run(capsys, "check", p, "-p", "n=3")
    assert rc == 0 and out == "x: ok — 1 layers, input 3x8x8, output 0 6x8x8\n"
