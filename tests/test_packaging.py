"""The wheel installs beside anything: the grammar and the zoo inside it, its backends as
netlang.backends (a user's own top-level `backends` package is left alone), version ranges in
its metadata that agree with the pins CI installs, and an error naming the extra to install
where a backend's dependency is missing (docs/install.md)."""
import ast
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "constraints.txt"

# A ResNet-18-like network written by the user, outside the repository: the zoo's block file
# must come from inside the installed wheel.
RESNET_LIKE = textwrap.dedent("""
    import "blocks/resnet.net"
    network small {
        input 3x32x32
        conv1: conv(16, 3, pad=1, bias=false) -> bn1: batchnorm -> relu
        layer1: basic_block(16) * 2
        layer2: basic_block(32, stride=2) -> basic_block(32)
        avgpool: global_avgpool -> flatten -> fc: linear(10)
    }
""")

# The user's own package named backends, with a module named like netlang's.
USER_BACKENDS = {
    "backends/__init__.py": 'WHO = "the user\'s backends"\n',
    "backends/pytorch.py": 'def lower():\n    return "the user\'s own lowering"\n',
}


def run(cmd, **kw):
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(ROOT), "-w", str(tmp)])
    return next(tmp.glob("netlang-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    return target


def test_wheel_contains_grammar_zoo_and_backends_inside_netlang(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "netlang/_data/netlang.lark" in names
    zoo = {n for n in names if n.startswith("netlang/_data/architectures/") and n.endswith(".net")}
    on_disk = {"netlang/_data/architectures/" + p.relative_to(ROOT / "architectures").as_posix()
               for p in (ROOT / "architectures").rglob("*.net")}
    assert zoo == on_disk and zoo
    assert any(n.endswith("entry_points.txt") for n in names)
    shipped = {n[len("netlang/backends/"):] for n in names if n.startswith("netlang/backends/")}
    on_disk = {p.relative_to(ROOT / "backends").as_posix() for p in (ROOT / "backends").rglob("*.py")}
    assert shipped == on_disk and "pytorch.py" in shipped and "triton/conv.py" in shipped
    tops = {n.split("/")[0] for n in names}
    assert tops == {"netlang", "netlang-0.1.0.dist-info"}, "no top-level backends (nor anything else)"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_installed_netlang_finds_grammar_and_imports_from_the_zoo(installed, tmp_path):
    user_file = tmp_path / "mine.net"
    user_file.write_text(RESNET_LIKE)
    code = textwrap.dedent(f"""
        import netlang, netlang.cli, sys
        assert netlang.__file__.startswith({str(installed)!r}), netlang.__file__
        sys.exit(netlang.cli.main(["check", {str(user_file)!r}]))
    """)
    env = dict(os.environ, PYTHONPATH=str(installed))
    done = run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert "small: ok" in done.stdout


# ---------------------------------------------------------------------------- versions

def pins() -> dict:
    lines = (line.split("#")[0].strip() for line in CONSTRAINTS.read_text().splitlines())
    return {r.name: r for r in map(Requirement, filter(None, lines))}


def pinned(name: str) -> str:
    (spec,) = pins()[name].specifier
    return spec.version


def extras(wheel) -> dict:
    """The wheel's Requires-Dist, as {extra: {name: Requirement}}."""
    meta = zipfile.ZipFile(wheel).read("netlang-0.1.0.dist-info/METADATA").decode()
    out: dict = {}
    for line in meta.splitlines():
        if line.startswith("Requires-Dist: "):
            req = Requirement(line[len("Requires-Dist: "):])
            extra = re.search(r"extra == ['\"]([\w-]+)['\"]", str(req.marker)) if req.marker else None
            out.setdefault(extra.group(1) if extra else None, {})[req.name] = req
    return out


def test_constraints_pin_exactly_what_is_installed():
    found = pins()
    assert {"torch", "triton"} <= set(found)
    for name, req in found.items():
        (spec,) = req.specifier
        assert spec.operator == "==", f"{name}: a pin, not a range"
        installed = Version(importlib.metadata.version(name))
        assert installed.public == spec.version, f"{name} {installed} installed, {spec.version} pinned"


def test_metadata_declares_ranges_that_admit_the_pins(wheel):
    declared = extras(wheel)
    for extra, names in (("torch", {"torch"}), ("triton", {"triton", "torch"})):
        for name in names:
            req = declared[extra][name]
            assert all(s.operator == ">=" for s in req.specifier), f"netlang[{extra}] {req}: a range, not a pin"
            assert Version(pinned(name)) in req.specifier, \
                f"the pin of {name} lies outside netlang[{extra}]'s {req}"
    assert declared["torch"]["torch"].specifier == declared["triton"]["torch"].specifier


def test_the_backends_refuse_a_release_below_the_bounds(wheel, monkeypatch):
    # torch 2.3's CUDA wheel brings triton 2.3.1: the Triton backend says so, not a failure deep in a kernel
    import types

    from netlang import optional
    from netlang.errors import NetlangError
    for extra, names in extras(wheel).items():
        for name in set(names) & set(optional.MINIMUM):
            assert Version(next(iter(names[name].specifier)).version).release[:2] == optional.MINIMUM[name]
    assert optional.release("2.3.1+cu121") == (2, 3) and optional.release("3.10.0rc1") == (3, 10)
    assert optional.release("unknown") is None
    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(__version__="2.3.1"))
    with pytest.raises(NetlangError, match=r"needs triton 3\.4 or newer; this is 2\.3\.1: "
                                                    r"pip install -U 'netlang\[triton\]'"):
        optional.require("triton", needs="the Triton backend", extra="triton")
    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(__version__="3.4.0"))
    assert optional.require("triton", needs="the Triton backend", extra="triton").__version__ == "3.4.0"


# The APIs that set each lower bound (docs/install.md): (dependency, the API, where the backends
# use it, the first release that has it).
LATE_APIS = [
    ("torch", "torch.compiler.is_compiling", "torch.compiler.is_compiling(", "2.3"),
    ("torch", "torch.nn.Module.load_state_dict(assign=)", "assign=True", "2.1"),
    ("torch", "torch.func.functional_call", "torch.func.functional_call(", "2.0"),
    ("triton", "triton.autotune(cache_results=)", "cache_results=True", "3.4"),
    ("triton", "triton.language.dot(input_precision=)", 'input_precision="ieee"', "3.0"),
]


def _api_exists(api: str) -> bool:
    import inspect

    import torch  # noqa: F401 (the names below are looked up from it)
    import triton
    import triton.language  # noqa: F401
    path, _, kwarg = api.partition("(")
    obj = {"torch": torch, "triton": triton}[path.split(".")[0]]
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
    if obj is None:
        return False
    fn = getattr(obj, "fn", obj)            # triton.language.dot is wrapped by its builtin decorator
    return not kwarg or kwarg.rstrip("=)") in inspect.signature(fn).parameters


@pytest.mark.parametrize("dep,api,used_as,since", LATE_APIS, ids=[a[1] for a in LATE_APIS])
def test_each_lower_bound_covers_the_apis_the_backends_use(wheel, dep, api, used_as, since):
    assert _api_exists(api), f"{api} is not in the installed {dep}"
    sources = "".join(p.read_text() for p in (ROOT / "backends").rglob("*.py"))
    assert used_as in sources, f"the backends no longer use {api}: {dep}'s lower bound may come down"
    for extra, names in extras(wheel).items():
        if dep in names and extra:
            bound = Version(next(iter(names[dep].specifier)).version)
            assert bound >= Version(since), f"netlang[{extra}] allows {dep} {bound}, but {api} came in {since}"


# ---------------------------------------------------------------------------- netlang.backends

def test_nothing_imports_the_top_level_name_backends():
    """Every module of the tree, and the docs' examples, import the backends as netlang.backends
    (a bare `backends` would import a user's package, or a second copy of netlang's)."""
    # this file is the one that means the user's package when it says backends
    files = run(["git", "ls-files", "*.py", "*.md", ":!tests/test_packaging.py"], cwd=ROOT).stdout.split()
    bad = []
    for name in files:
        text = (ROOT / name).read_text(encoding="utf-8")
        if name.endswith(".py"):
            for node in ast.walk(ast.parse(text, name)):
                mods = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                bad += [f"{name}:{node.lineno}" for m in mods if m.split(".")[0] == "backends"]
        # a dotted name in prose, docstrings or generated code: backends.pytorch, not backends/
        bad += [f"{name}: {m.group(0)}" for m in re.finditer(r"(?<![\w./-])backends\.[A-Za-z_]\w*", text)]
    assert not bad, "import these as netlang.backends...: " + ", ".join(bad)


CHECK_USER_BACKENDS = """
import sys
import backends, backends.pytorch
assert backends.WHO == "the user's backends" and backends.pytorch.lower() == "the user's own lowering"
assert backends.__file__.startswith(USER_ROOT), backends.__file__
"""


def test_a_checkout_maps_netlang_backends_and_leaves_a_users_backends_alone(tmp_path):
    for rel, text in USER_BACKENDS.items():
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text(text)
    code = f"USER_ROOT = {str(tmp_path)!r}\n" + CHECK_USER_BACKENDS + textwrap.dedent(f"""
        import netlang, netlang.backends.pytorch as p
        assert p.__file__ == {str(ROOT / "backends" / "pytorch.py")!r}, p.__file__
        model = netlang.compile({str(ROOT / "architectures" / "resnet.net")!r}, network="resnet18",
                                input=(3, 32, 32))
        assert type(model).__name__ == "ResNet"
        assert sys.modules["backends.pytorch"].lower() == "the user's own lowering"
        ours = sorted(m for m in sys.modules if m.split(".")[0] == "backends")
        assert ours == ["backends", "backends.pytorch"], ours
    """)
    # cwd first on sys.path: the user's project, as where a script of theirs runs
    run([sys.executable, "-c", code], cwd=tmp_path)


# ---------------------------------------------------------------------------- missing dependencies

BLOCK = """
import sys
class Missing:
    # what an environment without these packages does: the import fails, with its name
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Missing())
"""


def blocked_run(blocked: set, code: str, cwd):
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked) + textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("blocked,backend,extra", [({"torch"}, "torch", "torch"), ({"triton"}, "triton", "triton"),
                                                   ({"torch", "triton"}, "triton", "triton")])
def test_a_missing_dependency_names_the_extra_to_install(tmp_path, blocked, backend, extra):
    net = tmp_path / "mine.net"
    net.write_text(RESNET_LIKE)
    done = blocked_run(blocked, f"""
        import netlang
        from netlang.errors import NetlangDependencyError
        try:
            netlang.compile({str(net)!r}, backend={backend!r})
        except NetlangDependencyError as e:
            assert isinstance(e, ImportError) and isinstance(e, netlang.NetlangError)
            print(e)
        else:
            raise SystemExit("compiled without " + {sorted(blocked)!r}[0])
        import netlang.cli
        # the CLI runs a backend only for triton (torch source is written without torch)
        if {backend!r} == "triton":
            sys.exit(netlang.cli.main(["compile", {str(net)!r}, "--backend", "triton"]))
    """, tmp_path)
    first = sorted(blocked)[0]
    message = (f"missing dependency: the {'Triton' if backend == 'triton' else 'torch'} backend needs {first}, "
               f"which is not installed: install netlang[{extra}] (pip install 'netlang[{extra}]')")
    assert done.stdout.strip() == message, done.stdout + done.stderr
    if backend == "triton":
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert message in done.stderr
    else:
        assert done.returncode == 0, done.stderr


def test_without_torch_netlang_still_checks_and_writes_torch_source(tmp_path):
    net = tmp_path / "mine.net"
    net.write_text(RESNET_LIKE)
    done = blocked_run({"torch", "triton"}, f"""
        import netlang.cli
        assert netlang.cli.main(["check", {str(net)!r}]) == 0
        assert netlang.cli.main(["compile", {str(net)!r}, "-o", "model.py"]) == 0
        assert not any(m.split(".")[0] in ("torch", "triton") for m in sys.modules)
    """, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "class Small(nn.Module)" in (tmp_path / "model.py").read_text()


# ---------------------------------------------------------------------------- a fresh environment

@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory):
    """A new virtual environment (not seeing this one's packages) with the user's own package
    named backends installed first and then the wheel with its torch extra, at the pinned torch."""
    tmp = tmp_path_factory.mktemp("fresh")
    user = tmp / "user_project"
    for rel, text in USER_BACKENDS.items():
        (user / rel).parent.mkdir(parents=True, exist_ok=True)
        (user / rel).write_text(text)
    (user / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"
        [project]
        name = "user-backends"
        version = "1.0"
        [tool.hatch.build.targets.wheel]
        packages = ["backends"]
    """))
    venv = tmp / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", str(user)])
    run([str(py), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), f"{wheel}[torch]"])
    work = tmp / "work"             # outside the repository
    work.mkdir()
    (work / "resnet18-like.net").write_text(RESNET_LIKE)
    yield py, work
    shutil.rmtree(venv, ignore_errors=True)     # about 1 GB


def test_fresh_env_cli_compiles_beside_a_users_backends(fresh):
    py, work = fresh
    netlang = py.parent / "netlang"
    done = run([str(netlang), "compile", "resnet18-like.net", "-o", "model.py"], cwd=work)
    # conv1 432 + bn1 32, layer1 2 x (2 x 2304 + 2 x 32), layer2 (4608 + 9216 + 512 + 3 x 64)
    # + (2 x 9216 + 2 x 64), fc 330
    assert "wrote model.py: Small() builds small (43,226 parameters)" in done.stderr
    # the file it wrote runs in the same environment, importing only torch
    run([str(py), "-c", "import model, torch, sys; m = model.Small().eval(); "
                        "assert m(torch.randn(1, 3, 32, 32)).shape == (1, 10); "
                        "assert 'netlang' not in sys.modules"], cwd=work)
    done = run([str(netlang), "summary", "resnet18-like.net"], cwd=work)
    assert "fc" in done.stdout


def test_fresh_env_python_compiles_and_agrees_with_the_reference(fresh):
    py, work = fresh
    site = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    code = f"USER_ROOT = {site!r}\n" + CHECK_USER_BACKENDS + textwrap.dedent("""
        import importlib.metadata, torch
        import netlang
        from netlang.backends.reference import random_state, run
        assert netlang.backends.__file__.startswith(USER_ROOT + "/netlang/backends/")
        net = netlang.load("resnet18-like.net")
        model = netlang.compile("resnet18-like.net").eval()
        state = random_state(net.graph, seed=3)
        model.load_state_dict(state, strict=True)
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            got, want = model(x), run(net.graph, state, x)[0]
        assert got.shape == (2, 10)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)   # fp32, different op order
        assert sys.modules["backends.pytorch"].lower() == "the user's own lowering"
        assert not [f for f in importlib.metadata.files("netlang") if f.parts[0] == "backends"]
        own = {str(f) for f in importlib.metadata.files("user-backends") if f.suffix == ".py"}
        assert own == {"backends/__init__.py", "backends/pytorch.py"}, own
        print(torch.__version__)
    """)
    done = run([str(py), "-c", code], cwd=work)
    assert done.stdout.strip().split("+")[0] == pinned("torch")


def test_fresh_env_without_triton_names_its_extra(fresh):
    py, work = fresh
    done = subprocess.run([str(py.parent / "netlang"), "compile", "resnet18-like.net", "--backend", "triton"],
                          capture_output=True, text=True, cwd=work)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "install netlang[triton] (pip install 'netlang[triton]')" in done.stderr
    assert "Traceback" not in done.stderr
