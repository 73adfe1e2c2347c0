"""The fusion passes (netlang/passes: the `fuse` pipeline) and the fused PyTorch module.

Every pass keeps the IR contract on every zoo network (verify after each pass, the same MACs,
parameters, buffers, output shapes and state_dict entries); the fused graph computes what the
unfused one does (the reference interpreter on both, random programs included); the fused module
(netlang.compile(..., fuse=True)) equals the reference interpreter on the unfused graph within
1e-5 of its largest output (fp32), on random weights and random batchnorm statistics, for every
zoo network and docs example; golden dumps show what each pass rewrites.
"""
from __future__ import annotations

import copy
import io
import os
import pickle
from collections import Counter
from pathlib import Path

import pytest

import netlang
from netlang.cli import main
from netlang.ir import dump, state_entries, verify
from netlang.passes import PASSES, PIPELINES, run_pipeline
from netlang.passes.cost import analyse

torch = pytest.importorskip("torch")
from netlang.backends.pytorch import lower  # noqa: E402
from netlang.backends.reference import random_state, run, run_eval  # noqa: E402
from test_differential import DOC_EXAMPLES, ZOO, smallest_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
GOLDEN = ROOT / "tests" / "golden" / "passes"
RTOL = 1e-5       # fused against the reference, fp32: of the largest output value


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


def fused_graph(G):
    """The fuse pipeline one pass at a time, verifying after each."""
    for name in PIPELINES["fuse"]:
        G = run_pipeline(G, [name])
        verify(G)
    return G


# ---------------------------------------------------------------------------- the IR contract

@pytest.mark.parametrize("path,name", ZOO, ids=[f"{p.name}:{n}" for p, n in ZOO])
def test_every_zoo_network_keeps_its_contract_through_every_pass(path, name):
    G = netlang.load(path, network=name).graph
    H = fused_graph(G)
    before, after = analyse(G), analyse(H)
    assert (after.macs, after.params, after.buffers) == (before.macs, before.params, before.buffers)
    assert Counter(state_entries(H)) == Counter(state_entries(G))
    assert [H.nodes[o]["shape"] for o in H.graph["outputs"]] == [G.nodes[o]["shape"] for o in G.graph["outputs"]]
    plan = H.graph["memory_plan"]
    assert plan["peak"] <= plan["arena"]
    # every node the graph lost is named by one that stands for it
    kept = {n for m in H.nodes for n in H.nodes[m].get("fused_from", (m,))}
    gone = {n for n in G.nodes if n not in H} - kept
    assert all(G.nodes[n]["op"] in ("identity", "dropout", "drop_path") for n in gone)


def test_verify_catches_a_broken_fused_node():
    G = run_pipeline(netlang.load(ARCH / "resnet.net", network="resnet18", input=(3, 32, 32)).graph, ["fuse"])
    node = G.nodes["layer1.0.conv2"]
    assert [s["op"] for s in node["epilogue"]] == ["batchnorm", "add", "relu"]
    node["epilogue"] = node["epilogue"][:1] + node["epilogue"][2:]        # the add, gone
    with pytest.raises(AssertionError, match="takes 1 inputs, has 2"):
        verify(G)


# ---------------------------------------------------------------------------- each pass

def nodes_after(G, name):
    return run_pipeline(G, [name])


def test_fold_bn_refuses_a_convolution_read_twice():
    src = ("network n {\n    input 3x8x8\n    c: conv(4, 3, pad=1)\n    add {\n        b: batchnorm\n"
           "        identity\n    }\n}\n")
    G = netlang.loads(src).graph
    H = run_pipeline(G, ["fold-bn"])
    assert "b" in H and "epilogue" not in H.nodes["c"]
    G2 = netlang.loads("network n {\n    input 3x8x8\n    c: conv(4, 3, pad=1) -> b: batchnorm\n}\n").graph
    H2 = run_pipeline(G2, ["fold-bn"])
    assert "b" not in H2 and H2.nodes["c"]["fused_from"] == ("c", "b") and H2.graph["outputs"] == ["c"]


def test_merge_siblings_takes_resnet_v1_strided_pair_but_not_v1_5():
    v1 = run_pipeline(netlang.load(ARCH / "resnet.net", network="resnet50_v1").graph, ["fuse"])
    merged = v1.nodes["layer2.0.conv1"]
    assert [s["node"] for s in merged["siblings"]] == ["layer2.0.conv1", "layer2.0.downsample.0"]
    assert merged["args"]["out"] == 128 + 512 and merged["args"]["stride"] == (2, 2)
    assert [s["op"] for s in v1.nodes["layer2.0.conv3"]["epilogue"]] == ["batchnorm", "add", "relu"]
    v15 = run_pipeline(netlang.load(ARCH / "resnet.net", network="resnet50").graph, ["fuse"])
    # v1.5's strided blocks: a stride-1 conv1 and a stride-2 downsample stay apart
    assert [n for n in v15 if "siblings" in v15.nodes[n]] == ["layer1.0.conv1"]     # (both stride 1 there)
    assert "layer2.0.downsample.0" in v15 and "siblings" not in v15.nodes["layer2.0.conv1"]


def test_merge_siblings_makes_inception_reducers_one_convolution():
    H = run_pipeline(netlang.load(ARCH / "googlenet.net", network="googlenet").graph, ["fuse"])
    merged = H.nodes["inception3a.branch1.conv"]
    assert [(s["node"], s["start"], s["stop"]) for s in merged["siblings"]] == [
        ("inception3a.branch1.conv", 0, 64), ("inception3a.branch2.0.conv", 64, 160),
        ("inception3a.branch3.0.conv", 160, 176)]
    assert H.nodes["inception3a.branch2.0.conv:view"]["op"] == "slice"
    # the lecture notes' module with dimension reduction: its three 1x1 reducers are one conv
    seed = run_pipeline(netlang.load(ARCH / "inception_modules.net", network="inception_bottleneck").graph, ["fuse"])
    (merged,) = [d for _, d in seed.nodes(data=True) if "siblings" in d]
    assert [s["args"]["out"] for s in merged["siblings"]] == [128, 64, 64] and merged["args"]["k"] == (1, 1)


def test_fuse_residual_takes_the_shortcut_conv_computed_last():
    H = run_pipeline(netlang.load(ARCH / "resnet.net", network="resnet50").graph, ["fuse"])
    # layer2.0's downsample is computed after conv3, so it takes the add (and reads conv3)
    ds = H.nodes["layer2.0.downsample.0"]
    assert [n for n, _ in H.in_edges("layer2.0.downsample.0")] == ["layer1.2.conv3", "layer2.0.conv3"]
    assert [s["op"] for s in ds["epilogue"]] == ["batchnorm", "add", "relu"]
    # an identity shortcut: conv3 adds the block's input
    assert [s["op"] for s in H.nodes["layer1.1.conv3"]["epilogue"]] == ["batchnorm", "add", "relu"]


def test_inception_resnet_scaled_residual_is_one_epilogue():
    H = run_pipeline(netlang.load(ARCH / "inception_resnet_v2.net").graph, ["fuse"])
    steps = [[s["op"] for s in d.get("epilogue", ())] for _, d in H.nodes(data=True)]
    assert ["scale", "add", "relu"] in steps


def test_prologue_bn_on_densenet_and_not_on_a_shared_preactivation():
    dn = run_pipeline(netlang.load(ARCH / "densenet.net", network="densenet121").graph, ["fuse"])
    conv1 = dn.nodes["features.denseblock1.denselayer1.conv1"]
    assert [s["node"] for s in conv1["prologue"]] == ["features.denseblock1.denselayer1.norm1",
                                                       "features.denseblock1.denselayer1.relu1"]
    pre = run_pipeline(netlang.load(ARCH / "preact_resnet.net", network="preact_resnet164").graph, ["fuse"])
    # the first block of a stage feeds conv1 and the projection shortcut from one bn -> relu
    assert "prologue" not in pre.nodes["layer2.0.conv1"] and "layer2.0.relu1" in pre
    assert "prologue" in pre.nodes["layer2.1.conv1"]
    # (in the first stage that bn -> relu folds into the stem's convolution instead)
    assert [s["node"] for s in pre.nodes["conv1"]["epilogue"]] == ["layer1.0.bn1", "layer1.0.relu1"]


def test_concat_in_place_puts_a_dense_block_in_one_buffer():
    H = run_pipeline(netlang.load(ARCH / "densenet.net", network="densenet121").graph, ["fuse"])
    plan = H.graph["memory_plan"]
    layers = [n for n in H if n.startswith("features.denseblock1.denselayer") and n.endswith(".conv2")]
    owners = {plan["owner"][n][0] for n in layers}
    assert len(layers) == 6 and len(owners) == 1            # one buffer, the block's last concat
    (owner,) = owners
    assert H.nodes[owner]["shape"][0] == 64 + 6 * 32
    assert sorted(plan["owner"][n][1] for n in layers) == [64 + 32 * i for i in range(6)]
    assert plan["owner"]["features.pool0"] == (owner, 0)


def test_memory_plan_packs_buffers_that_do_not_overlap_in_time():
    H = run_pipeline(netlang.load(ARCH / "resnet.net", network="resnet50").graph, ["fuse"])
    plan = H.graph["memory_plan"]
    spans = list(plan["buffers"].values())
    for i, (o1, s1, f1, l1) in enumerate(spans):
        for o2, s2, f2, l2 in spans[i + 1:]:
            if not (l1 < f2 or l2 < f1):
                assert o1 + s1 <= o2 or o2 + s2 <= o1, "two live buffers overlap in the arena"
    assert plan["arena"] <= 1.2 * plan["peak"]


def test_memory_plan_runs_in_place_only_where_no_placed_value_is_read_again():
    # the conv lives in the concat's buffer; the first relu would overwrite it while the add
    # still reads it, so it gets a buffer; the second relu is the only reader of the first's
    text = """
network n {
    input 4x5x5
    c: conv(4, 1)
    add { concat { identity } -> r: relu -> s: relu
          identity }
}
"""
    H = run_pipeline(netlang.loads(text, filename="t.net").graph, ["fuse"])
    owner = H.graph["memory_plan"]["owner"]
    (cat,) = [n for n in H if H.nodes[n]["op"] == "concat"]
    assert owner["c"][0] == cat and owner["r"] == ("r", 0) and owner["s"] == ("r", 0)


def test_unknown_pass_is_a_clear_error():
    G = netlang.load(ARCH / "resnet.net", network="resnet18").graph
    with pytest.raises(netlang.errors.NetlangValueError, match="unknown pass 'fold'"):
        run_pipeline(G, ["fold"])


# ---------------------------------------------------------------------------- golden dumps

GOLDEN_CASES = {
    "inception3a": (ARCH / "googlenet.net", "googlenet", "inception3a"),
    "resnet50_bottleneck": (ARCH / "resnet.net", "resnet50", "layer2.0"),
    "densenet_dense_layer": (ARCH / "densenet.net", "densenet121", "features.denseblock1.denselayer2"),
    "preact_block": (ARCH / "preact_resnet.net", "preact_resnet164", "layer1.1"),
}


def golden_text(path, network, under) -> str:
    G = netlang.load(path, network=network).graph
    out = [f"# {network}, the nodes under {under}, before and after each pass of the fuse pipeline", "",
           "== before", dump(G, under)]
    for name in PIPELINES["fuse"]:
        G = run_pipeline(G, [name])
        out += [f"== after {name}", dump(G, under)]
    return "\n".join(out)


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_golden_ir_before_and_after_each_pass(case):
    # NETLANG_UPDATE_GOLDEN=1 rewrites them (then read the diff: it is the review)
    text = golden_text(*GOLDEN_CASES[case])
    path = GOLDEN / f"{case}.txt"
    if os.environ.get("NETLANG_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


# ---------------------------------------------------------------------------- numbers

def fused_agrees(path, name, input=None, seed=0):
    net = netlang.load(path, network=name, input=input)
    G = net.graph
    model = lower(net, init=False, fuse=True)
    state = random_state(G, seed)
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, *G.nodes[G.graph["inputs"][0]]["shape"], generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        got = model(x)
        real = run_eval(G, state, x)
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(real)
    for g, w in zip(got, real):
        assert tuple(g.shape) == tuple(w.shape)
        err = (g - w).abs().max().item()
        scale = max(w.abs().max().item(), 1e-3)
        assert err <= RTOL * scale, f"{name}: max |fused - reference| = {err:.3g} (outputs up to {scale:.3g})"
    return model, net, state


@pytest.mark.parametrize("path,name", ZOO, ids=[f"{p.name}:{n}" for p, n in ZOO])
def test_fused_zoo_network_equals_the_reference(path, name):
    fused_agrees(path, name, smallest_input(path, name))


@pytest.mark.parametrize("path,name", DOC_EXAMPLES, ids=[f"{p.name}:{n}" for p, n in DOC_EXAMPLES])
def test_fused_docs_example_equals_the_reference(path, name):
    fused_agrees(path, name)


def test_the_fused_comparison_fails_on_a_wrong_fold():
    # the check can fail: a batchnorm's variance read as its mean shows after folding
    model, net, state = fused_agrees(ARCH / "resnet.net", "resnet18", (3, 32, 32))
    swapped = dict(state)
    swapped["layer2.0.bn1.running_var"] = state["layer2.0.bn1.running_mean"].abs() + 0.1
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model(x), run(net.graph, swapped, x)[0], atol=1e-3)


def test_random_programs_fused_compute_what_they_did():
    # verify() after every pass; the fused graph and the fused module against the reference, in
    # float64 (tools/fuzz_lowering.py --fuse is the long run)
    import progen
    from lowering_check import check_fused
    failures = [(seed, got) for seed in range(200) if (got := check_fused(progen.generate(seed), seed=seed))]
    assert not failures, failures[:3]


@pytest.mark.parametrize("act", ['gelu(approximate="tanh")', "gelu", "softplus(beta=2)", 'gelu -> mish'])
def test_merged_siblings_with_their_own_gelu_or_softplus(act):
    # merged siblings whose epilogues differ apply each one's steps to its channels of the merged
    # output: a gelu or softplus, which has no in-place form, must be written back (found by
    # fuzzing, seeds 1449 and 2935: the gelu's result was dropped)
    from lowering_check import check_fused
    text = f"""network n {{
    input 3x8x8
    stem: conv(7, 1)
    concat {{
        downsample: conv(6, 1) -> {act}
        add {{
            @downsample
            identity -> conv(6, 1)
        }}
    }}
}}
"""
    H = run_pipeline(netlang.loads(text).graph, ["fuse"])
    assert "siblings" in H.nodes["downsample.0"]
    assert check_fused(text) is None


def test_the_fused_program_check_fails_on_a_wrong_pass(monkeypatch):
    # the check above can fail: a fold-bn that forgets the batchnorm's shift shows
    import progen
    from lowering_check import check_fused
    from netlang.backends.torchgen import fused
    monkeypatch.setattr(fused, "HELPERS", fused.HELPERS.replace("shift = shift + bn_bias", "pass"))
    found = [seed for seed in range(60) if check_fused(progen.generate(seed), seed=seed)]
    assert found


# ---------------------------------------------------------------------------- the fused module

def test_fused_module_loads_the_unfused_checkpoint_and_folds_on_load():
    net = netlang.load(ARCH / "resnet.net", network="resnet18", input=(3, 32, 32))
    plain = lower(net)
    fused = lower(net, fuse=True)
    fused.load_state_dict(plain.state_dict(), strict=True)
    assert list(fused.state_dict()) == list(plain.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(fused(x), plain.eval()(x), rtol=1e-4, atol=1e-5)
        # a weight changed in place is folded again before the next forward
        fused.layer1[0].bn1.running_mean.add_(0.5)
        plain.layer1[0].bn1.running_mean.add_(0.5)
        assert torch.allclose(fused(x), plain(x), rtol=1e-4, atol=1e-5)


def test_a_fused_module_refuses_training():
    fused = netlang.compile(ARCH / "resnet.net", network="resnet18", input=(3, 32, 32), fuse=True)
    assert not fused.training
    fused.train()
    with pytest.raises(RuntimeError, match="fused for inference"):
        fused(torch.randn(1, 3, 32, 32))


def test_a_fused_module_pickles_and_copies():
    fused = netlang.compile(ARCH / "googlenet.net", network="googlenet", fuse=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want = fused(x)
        buf = io.BytesIO()
        torch.save(fused, buf)
        buf.seek(0)
        for other in (copy.deepcopy(fused), pickle.loads(pickle.dumps(fused)),
                      torch.load(buf, weights_only=False)):
            assert torch.equal(other.eval()(x), want)


def test_compile_fuse_writes_a_standalone_file(tmp_path, capsys):
    out = tmp_path / "r18.py"
    assert main(["compile", str(ARCH / "resnet.net"), "--network", "resnet18", "--fuse", "-o", str(out)]) == 0
    import importlib.util
    spec = importlib.util.spec_from_file_location("r18_fused", out)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.resnet18_fused()
    plain = netlang.compile(ARCH / "resnet.net", network="resnet18").eval()
    model.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(model(x), plain(x), rtol=1e-4, atol=1e-5)


def test_every_pass_is_registered_and_documented():
    for name, fn in PASSES.items():
        assert fn.__module__.startswith("netlang.passes."), name
        doc = __import__(fn.__module__, fromlist=["x"]).__doc__
        assert doc.startswith(name), f"{fn.__module__}'s docstring starts with its pass name"


def test_summary_and_render_take_passes(capsys):
    assert main(["summary", str(ARCH / "resnet.net"), "--network", "resnet18", "--fuse"]) == 0
    fused = capsys.readouterr().out
    assert main(["summary", str(ARCH / "resnet.net"), "--network", "resnet18"]) == 0
    plain = capsys.readouterr().out
    layers = [line for line in fused.splitlines() if line.startswith("Layers:")]
    assert layers != [line for line in plain.splitlines() if line.startswith("Layers:")]
    assert [x for x in fused.splitlines() if x.startswith("MACs:")] == [x for x in plain.splitlines()
                                                                       if x.startswith("MACs:")]
    assert main(["render", str(ARCH / "resnet.net"), "--network", "resnet18", "--passes", "fold-bn", "-o", "-"]) == 0
    assert "digraph" in capsys.readouterr().out
    assert main(["summary", str(ARCH / "resnet.net"), "--network", "resnet18", "--passes", "fold,fuse"]) == 1
    assert "unknown pass 'fold'" in capsys.readouterr().err


def test_summary_fuse_shows_before_and_after(capsys):
    assert main(["summary", str(ARCH / "googlenet.net"), "--network", "googlenet", "--fuse", "-d", "1"]) == 0
    out = capsys.readouterr().out.split("Fusion (")[1]
    rows = {line[:28].strip(): line[28:].split() for line in out.splitlines()[2:8]}
    assert int(rows["layers (IR nodes)"][0]) > int(rows["layers (IR nodes)"][1])
    assert int(rows["kernels to launch"][0]) > int(rows["kernels to launch"][1])
    assert rows["MACs"] == ["1.59G", "1.59G", "(unchanged)"]
    assert "inception3a  1x1 x3 merged, conv+bn+relu x3" in out


def test_render_fuse_names_the_parts():
    from netlang.render import to_dot
    net = netlang.load(ARCH / "googlenet.net", network="googlenet", passes=["fuse"])
    dot = to_dot(net, depth=None)
    assert "3 merged: branch1.conv 64 | branch2.0.conv 96 | branch3.0.conv 16" in dot
    assert "in place: inception3a.0 channels 64.." in dot and "dashed" in dot


def test_a_cropping_concat_whose_input_is_named_t():
    # found by tools/fuzz_lowering.py --fuse: forward cropped with `min(t.shape[2] for t in (t, v))`
    # inside `[... for t in (t, v)]`, where the inner `t` was the loop's, not the label's
    src = ("network n {\n    input 2x6x6\n    concat(crop=true) {\n        t: center_crop(2, w=4)\n"
           "        conv(3, 3, pad=1)\n    }\n    conv(4, 1)\n}\n")
    from lowering_check import check_fused
    assert check_fused(src) is None


def test_lowering_an_already_fused_ir_is_a_clear_error():
    net = netlang.load(ARCH / "googlenet.net", network="googlenet", passes=["fuse"])
    with pytest.raises(netlang.errors.NetlangValueError, match="already went through drop-identities"):
        lower(net)
