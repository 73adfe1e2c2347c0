"""The wheel carries the grammar and the zoo, and an installed netlang finds them."""
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp)],
                           capture_output=True, text=True)
    if built.returncode != 0:
        pytest.fail("pip wheel failed:\n" + built.stdout + built.stderr)
    wheel = next(tmp.glob("netlang-*.whl"))
    target = tmp / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    return wheel, target


def test_wheel_contains_grammar_and_zoo(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "netlang/_data/netlang.lark" in names
    zoo = {n for n in names if n.startswith("netlang/_data/architectures/") and n.endswith(".net")}
    on_disk = {"netlang/_data/architectures/" + p.relative_to(ROOT / "architectures").as_posix()
               for p in (ROOT / "architectures").rglob("*.net")}
    assert zoo == on_disk and zoo
    assert any(n.endswith("entry_points.txt") for n in names)


def test_installed_netlang_finds_grammar_and_imports_from_the_zoo(installed, tmp_path):
    _, site = installed
    user_file = tmp_path / "mine.net"
    # Not beside the zoo: "blocks/resnet.net" must come from the bundled architectures.
    user_file.write_text(textwrap.dedent("""
        import "blocks/resnet.net"
        network small {
            input 3x32x32
            conv1: conv(64, 3, pad=1, bias=false) -> bn1: batchnorm -> relu
            layer1: basic_block(64) * 2
        }
    """))
    code = textwrap.dedent(f"""
        import netlang, netlang.cli, sys
        assert netlang.__file__.startswith({str(site)!r}), netlang.__file__
        sys.exit(netlang.cli.main(["check", {str(user_file)!r}]))
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "small: ok" in run.stdout
