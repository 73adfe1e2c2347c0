"""The ONNX backend (backends/onnx/) against the reference interpreter: onnx.checker (full check)
and onnxruntime's outputs on random weights and random batchnorm statistics, for the zoo and for
random programs of tests/progen.py; initializer names against the state_dict; export without torch."""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
import networkx as nx  # noqa: E402
import numpy as np  # noqa: E402

import netlang  # noqa: E402
import progen  # noqa: E402
from netlang.backends.onnx import lower  # noqa: E402
from netlang.backends.onnx.lowering import LOWER  # noqa: E402
from netlang.backends.reference import random_state, run_eval  # noqa: E402
from netlang import ops  # noqa: E402
from netlang.errors import NetlangError  # noqa: E402
from netlang.ir import eval_outputs, inputs_of, state_entries  # noqa: E402
from test_differential import ZOO, smallest_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# fp32 through up to a few hundred layers, summed in another order than torch's: outputs agree to
# this fraction of their largest value
RTOL = 1e-4
# The zoo's weights come to 4.3 billion parameters (17 GB in fp32) at its smallest inputs;
# serialising, checking and loading them would take many minutes. The networks up to this many
# parameters (56 of 123) are exported and run; the larger ones are built from the ops, argument
# kinds and input ranks that those and the random programs below exercise (checked by
# test_large_networks_need_no_other_lowering), so they take no lowering path left unchecked.
# NETLANG_ONNX_FULL_ZOO=1 lifts the cap: every zoo network exported, checked and run (docs/onnx.md;
# 194 s and 6.8 GB at most on two cores, measured beside another job).
MAX_PARAMS = None if os.environ.get("NETLANG_ONNX_FULL_ZOO") == "1" else 10_000_000


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_against_reference(net, seed: int = 0, batch: int = 2, rtol: float = RTOL):
    """Export with random state, check the model, run it: None where it agrees with the
    reference, else what differs."""
    G = net.graph
    state = random_state(G, seed)
    model = lower(net, state=state)
    onnx.checker.check_model(model.SerializeToString(), full_check=True)
    x = torch.randn(batch, *G.nodes[G.graph["inputs"][0]]["shape"], generator=torch.Generator().manual_seed(seed))
    got = session(model).run(None, {G.graph["inputs"][0]: x.numpy()})
    with torch.no_grad():
        real = run_eval(G, state, x)
    if len(got) != len(real):
        return f"{len(got)} outputs, the network has {len(real)} at inference"
    for g, w, o in zip(got, real, eval_outputs(G)):
        w = w.numpy()
        if g.shape != w.shape or g.shape != (batch, *G.nodes[o]["shape"]):
            return f"{o}: shape {g.shape}, reference {w.shape}"
        err, scale = float(np.abs(g - w).max()), max(float(np.abs(w).max()), 1e-3)
        if not err <= rtol * scale:
            return f"{o}: max |onnx - reference| = {err:.3g} (outputs up to {scale:.3g})"
    return model


@functools.lru_cache(maxsize=None)
def zoo_net(path, name):
    return netlang.load(path, network=name, input=smallest_input(path, name))


@pytest.mark.parametrize("path,name", ZOO, ids=[f"{p.name}:{n}" for p, n in ZOO])
def test_zoo_network_equals_the_reference(path, name):
    net = zoo_net(path, name)
    if MAX_PARAMS is not None and net.params > MAX_PARAMS:
        pytest.skip(f"{net.params:,} parameters: too many to serialise here (MAX_PARAMS; NETLANG_ONNX_FULL_ZOO=1 "
                    "runs it); test_large_networks_need_no_other_lowering covers its lowerings")
    model = check_against_reference(net)
    assert not isinstance(model, str), f"{name}: {model}"
    G = net.graph
    # initializers are the state_dict's entries under its keys (the training counter left out,
    # and the layers only auxiliary heads read); node names include every layer's module name
    outs = eval_outputs(G)
    live = set(outs).union(*(nx.ancestors(G, o) for o in outs))
    want = [k for k, _, _ in state_entries(G) if not k.endswith("num_batches_tracked")
            and (k if k in G else k.rpartition(".")[0]) in live]
    assert sorted(i.name for i in model.graph.initializer) == sorted(want)
    names = {nd.name for nd in model.graph.node}
    assert {n for n in live if G.nodes[n]["op"] != "input"} <= names
    assert [o.name for o in model.graph.output] == outs
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "N" and [d.dim_value for d in dims[1:]] == list(G.nodes["input"]["shape"])
    # every value is annotated, with the IR's shape
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim][1:] for v in model.graph.value_info}
    for n in live:
        if n not in outs and G.nodes[n]["op"] != "input":
            assert shapes.get(n, shapes.get(f"{n}:out")) == list(G.nodes[n]["shape"]), n


def _variant(G, n) -> tuple:
    """What decides which lowering path a node takes: its op, its input's rank, its flags and
    modes, and the two numeric choices the rules branch on."""
    d = G.nodes[n]
    a = d["args"]
    ins = inputs_of(G, n)
    rank = len(G.nodes[ins[0]]["shape"]) if ins else 0
    flags = tuple(sorted((k, v) for k, v in a.items() if isinstance(v, (bool, str)) or k == "pad" and v == "same"))
    extra = ()
    if d["op"] == "lrn":
        extra = (a["size"] % 2,)
    if d["op"] == "adaptive_avgpool":
        h, w = G.nodes[ins[0]]["shape"][1:]
        extra = (h % a["out"][0] == 0 and w % a["out"][1] == 0,)
    if d["op"] == "softplus":
        extra = (a["beta"] == 1,)
    if d["op"] in ("add", "mul"):
        extra = (len(ins) > 2,)
    return (d["op"], rank, flags, extra)


def test_large_networks_need_no_other_lowering():
    nets = [zoo_net(p, n) for p, n in ZOO]
    cap = MAX_PARAMS or 10_000_000          # (the full zoo runs them all; the split is still checked)
    small = [net for net in nets if net.params <= cap]
    large = [net for net in nets if net.params > cap]
    covered = {_variant(net.graph, n) for net in small for n in net.graph}
    covered |= {_variant(net.graph, n) for _, net in programs() for n in net.graph}
    covered |= {_variant(net.graph, n) for net in map(netlang.loads, TARGETED) for n in net.graph}
    needed = {_variant(net.graph, n) for net in large for n in net.graph}
    assert needed <= covered, sorted(needed - covered)
    assert len(ZOO) == 123 and len(small) >= 50


# What the random programs and the smaller networks leave out, and the larger ones use.
TARGETED = [
    "network n {\n    input 3x6x6\n    conv(4, 3, pad=1, bias=false) -> batchnorm(frozen=true) -> relu\n}\n",
    "network n {\n    input 4x5x5\n    batchnorm(affine=false) -> lrn(2) -> lrn(3)\n}\n",
    # both kinds of gelu of one value: onnxruntime's Gelu fusion must not take the other's nodes
    "network n {\n    input 2x4x4\n    flatten -> linear(9) -> add {\n"
    "        gelu(approximate=\"tanh\") -> gelu(approximate=\"tanh\")\n        gelu\n    }\n}\n",
]


@pytest.mark.parametrize("text", TARGETED)
def test_targeted_programs_equal_the_reference(text):
    got = check_against_reference(netlang.loads(text))
    assert not isinstance(got, str), got


def test_every_op_of_the_registry_lowers():
    # nothing is refused: docs/onnx.md says so
    assert set(ops.OPS) - {"input"} <= set(LOWER)


PROGRAMS = 300
_PROGRAMS: list = []


def programs() -> list:
    """(seed, network) of the random programs (made once: two tests read them)."""
    if not _PROGRAMS:
        _PROGRAMS.extend((seed, net) for seed, _, net in progen.valid_programs(0, PROGRAMS, with_net=True))
    return _PROGRAMS


def test_random_programs_equal_the_reference():
    failures, ran = [], 0
    for seed, net in programs():
        got = check_against_reference(net, seed)
        ran += 1
        if isinstance(got, str):
            failures.append(f"seed {seed}: {got}")
    assert not failures, "\n".join(failures[:10]) + f"\n({len(failures)} of {ran} programs)"
    assert ran >= PROGRAMS * 0.9


def test_the_comparison_fails_on_a_wrong_lowering(monkeypatch):
    import netlang.backends.onnx.lowering as lowering
    net = netlang.loads("network n {\n    input 2x5x5\n    c: conv(3, 3, pad=\"same\") -> relu\n}\n")
    assert not isinstance(check_against_reference(net), str)
    # "same" padding with the odd pixel at the top-left instead of the bottom-right
    monkeypatch.setattr(lowering, "_conv_pads", lambda a: [1, 1, 1, 1] if a["pad"] != "same" else [1, 1, 0, 0])
    net = netlang.loads("network n {\n    input 2x6x6\n    c: conv(3, 2, pad=\"same\") -> relu\n}\n")
    assert isinstance(check_against_reference(net), str)


def test_a_torch_state_dict_loads_one_to_one():
    path = ROOT / "architectures" / "resnet_cifar.net"
    model = netlang.compile(path, network="resnet20").eval()
    net = netlang.load(path, network="resnet20")
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buf.normal_(0, 0.2)
        exported = lower(net, state=model.state_dict(), batch=2)
        x = torch.randn(2, 3, 32, 32)
        want = model(x).numpy()
    got = session(exported).run(None, {"input": x.numpy()})[0]
    assert np.abs(got - want).max() <= RTOL * np.abs(want).max()
    assert exported.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 2
    # numpy arrays work as well
    arrays = {k: v.numpy() for k, v in model.state_dict().items()}
    assert lower(net, state=arrays).graph.initializer[0].raw_data == exported.graph.initializer[0].raw_data


def test_a_state_dict_that_does_not_fit_is_an_error():
    net = netlang.load(ROOT / "architectures" / "resnet_cifar.net", network="resnet20")
    state = random_state(net.graph)
    with pytest.raises(NetlangError, match="missing conv1.weight"):
        lower(net, state={k: v for k, v in state.items() if k != "conv1.weight"})
    with pytest.raises(NetlangError, match="unexpected extra.weight"):
        lower(net, state=dict(state, **{"extra.weight": torch.zeros(1)}))
    with pytest.raises(NetlangError, match=r"conv1.weight of resnet20: expected shape \(16, 3, 3, 3\), got \(16, 3\)"):
        lower(net, state=dict(state, **{"conv1.weight": torch.zeros(16, 3)}))


def test_a_fused_network_is_refused():
    net = netlang.load(ROOT / "architectures" / "resnet_cifar.net", network="resnet20", passes=["fuse"])
    with pytest.raises(NetlangError, match="exports the unfused network"):
        lower(net)


def test_random_weights_are_drawn_without_torch_and_run():
    net = netlang.load(ROOT / "architectures" / "resnet_cifar.net", network="resnet20")
    model = netlang.lower(net, "onnx", seed=1)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    w = inits["conv1.weight"]
    assert abs(w.std() - (2 / (16 * 9)) ** 0.5) < 0.05 and (inits["bn1.running_var"] == 1).all()
    out = session(model).run(None, {"input": np.ones((2, 3, 32, 32), np.float32)})[0]
    assert out.shape == (2, 10) and np.isfinite(out).all()


def _drawn(net, seed=0) -> dict:
    model = netlang.lower(net, "onnx", seed=seed)
    return {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}


def test_init_statements_reach_the_onnx_weights():
    # SE-ResNet zeroes the last batchnorm of every residual branch: one rule, `se_bottleneck.bn3`
    net = netlang.load(ROOT / "architectures" / "seresnet.net", network="seresnet50")
    w = _drawn(net)
    bn3 = [k for k in w if k.endswith(".bn3.weight")]
    assert len(bn3) == 16 and all((w[k] == 0).all() for k in bn3)
    assert (w["layer1.0.bn2.weight"] == 1).all() and (w["bn1.weight"] == 1).all()


INIT_RULES = """
network n {
    input 32x12x12
    a: conv(64, 3) -> batchnorm -> relu
    b: conv(64, 3) -> batchnorm -> relu
    c: conv(96, 1) -> conv_t(64, 2, stride=2)
    d: conv(128, 3) -> prelu(per_channel=true) -> layernorm
    global_avgpool -> flatten -> e: linear(2000) -> relu -> f: linear(500)
    init conv = kaiming_uniform(a=1, mode="fan_out"), "a.0" = xavier_normal(gain=2), b = trunc_normal(std=0.02)
    init "b.0.bias" = constant(0.5), conv_t = xavier_uniform, "d.0" = kaiming_normal(nonlinearity="tanh")
    init "c.0" = uniform(-3, -1), layernorm = normal(2, 0.5), prelu = default, linear.bias = ones
    init e = fan_uniform(mode="fan_out"), f = default, batchnorm = constant(3), "a.1" = default
    init "d.0.bias" = zeros
}
"""


def test_init_schemes_draw_torchs_distributions():
    # every scheme of netlang/init.py, by kind, by name, by prefix and per entry, in an order
    # where later rules overwrite earlier ones: numpy's draws against torch's init_weights, key by
    # key (constants exactly; draws by mean, spread and extremes over thousands of values)
    net = netlang.loads(INIT_RULES)
    got = _drawn(net, seed=3)
    torch.manual_seed(3)
    want = {k: v.double().numpy() for k, v in netlang.lower(net).state_dict().items()
            if not k.endswith("num_batches_tracked")}
    assert set(got) == set(want)
    assert abs(got["b.0.weight"].std() - 0.02) < 0.002 and (got["a.1.weight"] == 1).all()   # (the later rules)
    for k, w in want.items():
        g = got[k].astype(np.float64)
        assert g.shape == w.shape, k
        if (w == w.flat[0]).all():
            assert (g == w.flat[0]).all(), (k, w.flat[0], g.flat[:3])
            continue
        assert w.size >= 64, k          # (a drawn entry large enough to compare)
        spread = w.std()
        assert abs(g.mean() - w.mean()) < 4 * spread / np.sqrt(w.size) + 1e-3 * spread, k
        assert abs(g.std() / spread - 1) < 6 / np.sqrt(w.size) + 0.02, (k, g.std(), spread)
        if w.size >= 1000:              # the extremes: a uniform's bounds, a normal's tails
            assert abs(g.min() - w.min()) < spread and abs(g.max() - w.max()) < spread, (k, g.min(), w.min())


def test_a_fan_scheme_on_a_bias_is_an_error():
    net = netlang.loads(INIT_RULES.replace('"d.0.bias" = zeros', '"d.0.bias" = xavier_normal'))
    with pytest.raises(NetlangError, match="d.0.bias has 1 dimension"):
        netlang.lower(net, "onnx")


def _python(code: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


BLOCK = """
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {blocked}:
                raise ImportError("blocked: " + name)
    sys.meta_path.insert(0, Block())
"""


def test_the_export_does_not_import_torch(tmp_path):
    code = BLOCK.format(blocked={"torch"}) + f"""
    import netlang
    out = {str(tmp_path / "m.onnx")!r}
    from netlang.backends.onnx import save
    save(netlang.compile("architectures/resnet_cifar.net", backend="onnx", network="resnet20"), out)
    import onnx
    onnx.checker.check_model(out, full_check=True)
    assert not any(m.split(".")[0] == "torch" for m in sys.modules), "torch was imported"
    print("ok")
    """
    got = _python(code, tmp_path)
    assert got.stdout.strip() == "ok", got.stderr


def test_without_onnx_the_error_says_what_to_install(tmp_path):
    code = BLOCK.format(blocked={"onnx"}) + """
    import netlang
    try:
        netlang.compile("architectures/resnet_cifar.net", backend="onnx", network="resnet20")
    except netlang.NetlangError as err:
        print(err.format())
    """
    got = _python(code, tmp_path)
    assert "install netlang[onnx]" in got.stdout, got.stdout + got.stderr


def test_the_cli_writes_an_onnx_file(tmp_path):
    from netlang.cli import main
    out = tmp_path / "m.onnx"
    assert main(["compile", str(ROOT / "architectures" / "resnet_cifar.net"), "--network", "resnet20",
                 "--backend", "onnx", "-o", str(out)]) == 0
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 18 and model.graph.node[0].name == "conv1"


def test_the_cli_does_not_print_a_binary_file(capsys):
    from netlang.cli import main
    assert main(["compile", str(ROOT / "architectures" / "resnet_cifar.net"), "--network", "resnet20",
                 "--backend", "onnx"]) == 1
    assert "give -o OUT.onnx" in capsys.readouterr().err
