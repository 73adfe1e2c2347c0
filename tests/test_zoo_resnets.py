"""The ResNet variants of the zoo against torchvision and against the figures their papers print.

Sources of the printed figures, cited again beside each check:
- He et al., "Deep Residual Learning for Image Recognition", CVPR 2016: section 4.2 and Table 6
  (the CIFAR-10 ResNets, 20 to 1202 layers).
- He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016: Table 3 (ResNet-164 1.7M,
  ResNet-1001 10.2M) and the appendix (where the first activation goes).
- Huang et al., "Deep Networks with Stochastic Depth", ECCV 2016: eq. 4 (the linear decay rule,
  p_L = 0.5) and section 3 (the expected depth (3L - 1) / 4, "approximately 40" for ResNet-110).
- Zagoruyko and Komodakis, "Wide Residual Networks", BMVC 2016: Table 1 (structure), Table 4
  (parameters of WRN-d-k) and the ImageNet table (WRN-50-2-bottleneck, 68.9M).
- Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017: Table 1
  (ResNet-50 vs ResNeXt-50), Table 2 and section 3.3 (~70k parameters per conv2 block, ~0.22
  GFLOPs) and Figure 3 (three equivalent forms of the block).
- torchvision: the golden listings in tests/golden/torchvision; for wide_resnet101_2, which has
  none, the figures torchvision publishes with its weights (126,886,696 parameters, 22.75 GFLOPS).
- The seeds: "uses wider residual blocks (F x k filters instead of F filters in each layer)",
  "50-layer wide ResNet outperforms 152-layer original ResNet" (seeds 000 and 002), "152 layers
  on ImageNet, 1202 on Cifar" (000, 002), the pre-activation unit "moves activation to residual
  mapping pathway" (000, 002), and stochastic depth: "randomly drop a subset of layers during
  each training pass", "bypass with identity function", "use full deep network at test time" (002).

Parameter counts: the ResNet authors' papers (Identity Mappings, ResNeXt) count convolution and
fully connected weights, not batch norm's scale and shift; Wide ResNet counts everything. Where
that changes a verdict the test says so.
"""
from __future__ import annotations

import pytest

from zoo_checks import (check_figure, check_forward, check_torchvision_macs, check_torchvision_state_dict,
                        golden, load)
from netlang.ir import inputs_of, state_entries, topo_order

M, G = 10**6, 10**9
WEIGHT_OPS = ("conv", "linear")


def weight_depth(net) -> int:
    """Conv and linear layers on the longest path from the input to the main output."""
    g, best = net.graph, {}
    for n in topo_order(g):
        best[n] = (g.nodes[n]["op"] in WEIGHT_OPS) + max((best[p] for p in g.predecessors(n)), default=0)
    return best[g.graph["outputs"][0]]


def without_batchnorm(net) -> int:
    return net.params - sum(c.params for c in net.cost.layers if c.op == "batchnorm")


def ops(net, op: str) -> list[str]:
    return [n for n in topo_order(net.graph) if net.graph.nodes[n]["op"] == op]


def out_shape(net) -> tuple:
    return tuple(net.graph.nodes[net.graph.graph["outputs"][0]]["shape"])


# ================================================================== torchvision's ResNeXt and WRN

TORCHVISION = ["resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2"]


@pytest.mark.parametrize("model", TORCHVISION)
def test_torchvision_state_dict_and_macs(model):
    net = load("resnet.net", model)
    check_torchvision_state_dict(net, model)
    check_torchvision_macs(net, model)
    assert out_shape(net) == tuple(golden(model)["output_shape"][1:]) == (1000,)


def test_resnext_as_the_paper_writes_it_is_torchvisions_resnext50_32x4d():
    """resnext.net's generic network with the paper's C and d is the same network."""
    net = load("resnext.net", "resnext")
    check_torchvision_state_dict(net, "resnext50_32x4d")
    assert net.macs == load("resnet.net", "resnext50_32x4d").macs


def test_wide_resnet101_2_against_resnet101():
    """No golden listing: torchvision's WRN-101-2 is its ResNet-101 with the two inner convs of
    every bottleneck twice as wide, so its state_dict is resnet101's, inner widths doubled."""
    net = load("resnet.net", "wide_resnet101_2")
    expected = []
    for key, shape, _ in golden("resnet101")["state_dict"]:
        shape = list(shape)
        parts = key.split(".")
        if key.startswith("layer") and parts[2] in ("conv1", "bn1", "conv2", "bn2", "conv3") and shape != []:
            if parts[2] != "conv3":
                shape[0] *= 2                       # the output of conv1 / conv2, and their batch norms
            if parts[2] in ("conv2", "conv3"):
                shape[1] *= 2                       # the input of conv2 / conv3
        expected.append((key, tuple(shape)))
    assert [(k, tuple(s)) for k, s, _ in state_entries(net.graph)] == expected
    # torchvision's published Wide_ResNet101_2_Weights: num_params and GFLOPS (MACs)
    assert net.params == 126_886_696
    assert net.macs == pytest.approx(22.75 * G, rel=1e-2)
    check_figure(net.macs, 22.75, G, 2)


# ================================================================== ResNeXt paper

RESNET_STAGES = ["conv1", "layer1", "layer2", "layer3", "layer4", "avgpool"]


def test_resnext_table1():
    """Xie et al. 2017, Table 1: output sizes, the ResNeXt-50 (32x4d) template, and the two
    networks' # params and FLOPs."""
    resnext = load("resnet.net", "resnext50_32x4d")
    resnet = load("resnet.net", "resnet50")
    for net in (resnext, resnet):
        assert [net.cost.scope_cost(s).shape[1:] for s in RESNET_STAGES] == \
            [(112, 112), (56, 56), (28, 28), (14, 14), (7, 7), (1, 1)]
    # [1x1, 128; 3x3, 128, C=32; 1x1, 256] at conv2, every width doubling per stage
    for i, (mid, out) in enumerate([(128, 256), (256, 512), (512, 1024), (1024, 2048)], 1):
        conv1, conv2, conv3 = (resnext.graph.nodes[f"layer{i}.0.conv{k}"]["args"] for k in (1, 2, 3))
        assert (conv1["out"], conv2["out"], conv2["groups"], conv2["k"], conv3["out"]) == (mid, mid, 32, (3, 3), out)
    # ResNeXt-50: 25.0 x 10^6 params, 4.2 x 10^9 FLOPs
    check_figure(resnext.params, 25.0, M, 1)
    check_figure(without_batchnorm(resnext), 25.0, M, 1)
    check_figure(resnext.macs, 4.2, G, 1)
    # ResNet-50: 4.1 x 10^9 FLOPs is torchvision's (and fb.resnet.torch's) v1.5, stride in the
    # 3x3; He et al.'s own ResNet-50 (stride in the first 1x1) is 3.9 G.
    check_figure(resnet.macs, 4.1, G, 1)
    check_figure(load("resnet.net", "resnet50_v1").macs, 3.9, G, 1)
    # ResNet-50: 25.5 x 10^6 params is the count without batch norm's 53,120 parameters;
    # torchvision's 25,557,032 rounds to 25.6.
    check_figure(without_batchnorm(resnet), 25.5, M, 1)
    check_figure(resnet.params, 25.6, M, 1)


TABLE2 = [(1, 64, 64), (2, 40, 80), (4, 24, 96), (8, 14, 112), (32, 4, 128)]   # C, d, width of group conv


@pytest.mark.parametrize("C, d, group_width", TABLE2)
def test_resnext_table2_preserved_complexity(C, d, group_width):
    """Xie et al. 2017, Table 2 and eq. 4: a conv2 block (256 -> 256 at 56x56) of cardinality C
    and bottleneck width d has C (256 d + 3 3 d d + d 256) parameters, "~70k", and params x 56 x
    56 FLOPs, "~0.22 billion"."""
    net = load("resnext.net", "resnext_form_c", C=C, d=d)
    b = net.graph.nodes["b"]["args"]
    assert (b["out"], b["groups"]) == (group_width, C)
    assert net.params == C * (256 * d + 3 * 3 * d * d + d * 256)
    assert net.macs == net.params * 56 * 56
    check_figure(net.params, 7, 10**4)           # ~70k, to the 10k it is printed to
    check_figure(net.macs, 0.22, G, 2)


def test_resnext_figure3_forms_have_the_same_cost():
    """Xie et al. 2017, Figure 3: (a) C paths summed, (b) early concatenation, (c) grouped conv;
    section 3.3: the ResNeXt block has ~70k parameters, as the ResNet bottleneck."""
    nets = [load("resnext.net", f"resnext_form_{f}") for f in "abc"]
    assert {n.params for n in nets} == {32 * (256 * 4 + 3 * 3 * 4 * 4 + 4 * 256)} == {70_144}
    assert {n.macs for n in nets} == {70_144 * 56 * 56}
    assert {out_shape(n) for n in nets} == {(256, 56, 56)}
    assert len(ops(nets[0], "conv")) == 3 * 32 and len(ops(nets[1], "conv")) == 2 * 32 + 1
    # the ResNet bottleneck it replaces: 256 x 64 + 3 x 3 x 64 x 64 + 64 x 256 = 69,632, also ~70k
    resnet50 = load("resnet.net", "resnet50")
    block = sum(c.params for c in resnet50.cost.layers if c.name.startswith("layer1.1.") and c.op == "conv")
    assert block == 69_632
    check_figure(block, 7, 10**4)


@pytest.mark.usefixtures("torch_one_thread")
def test_resnext_figure3_forms_compute_the_same_function():
    """With the weights of (c) split path by path into (a) and (b), the three forms give the same
    output: the equivalence Figure 3 states."""
    torch = pytest.importorskip("torch")
    import netlang
    from zoo_checks import ARCH
    d, size = 4, (256, 6, 6)                                     # C = 32 paths of width d
    forms = {f: netlang.compile(ARCH / "resnext.net", network=f"resnext_form_{f}", input=size).eval() for f in "abc"}
    torch.manual_seed(0)
    c = {k: torch.randn_like(v) * 0.1 for k, v in forms["c"].state_dict().items()}
    forms["c"].load_state_dict(c)
    a_w, b_w, c_w = c["a.weight"], c["b.weight"], c["c.weight"]          # (128,256), (128,4,3,3), (256,128)

    def path_weights(key: str):
        """Path i of a recursion is the scope `paths` + i times `rest`."""
        i = key.count("rest.")
        rows = slice(i * d, (i + 1) * d)
        layer = key.split(".")[-2]
        return {"a": a_w[rows], "b": b_w[rows], "c": c_w[:, rows]}[layer]

    for f in "ab":
        sd = forms[f].state_dict()
        forms[f].load_state_dict({k: (c_w if k == "c.weight" else path_weights(k)) for k in sd})
    x = torch.randn(2, *size)
    with torch.no_grad():
        outs = {f: m(x) for f, m in forms.items()}
    # float32 sums taken in another order: agreement to a few ulps of the outputs, not bitwise
    torch.testing.assert_close(outs["a"], outs["c"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outs["b"], outs["c"], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(outs["c"], torch.relu(x))         # the residual branch does something


# ================================================================== Wide ResNet paper and seeds

# Zagoruyko and Komodakis 2016, Table 4: depth-k -> # params (M)
WRN_TABLE4 = {(40, 1): 0.6, (40, 2): 2.2, (40, 4): 8.9, (40, 8): 35.7, (28, 10): 36.5, (28, 12): 52.5,
              (22, 8): 17.2, (22, 10): 26.8, (16, 8): 11.0, (16, 10): 17.1}


def wrn_params(depth: int, k: int, classes: int = 10) -> int:
    """Every parameter of WRN-depth-k, counted from Table 1 and the authors' code: bias-free
    convs, batch norm scale and shift, a 1x1 projection where a group changes the width."""
    n = (depth - 4) // 6
    total, cin = 3 * 3 * 3 * 16, 16
    for width in (16 * k, 32 * k, 64 * k):
        for j in range(n):
            total += 2 * cin + 9 * cin * width + 2 * width + 9 * width * width
            total += cin * width if cin != width else 0
            cin = width
    return total + 2 * cin + cin * classes + classes


@pytest.mark.parametrize("depth, k", sorted(WRN_TABLE4))
def test_wrn_table4_params(depth, k):
    net = load("wide_resnet.net", "wide_resnet", depth=depth, k=k)
    assert net.params == wrn_params(depth, k)
    check_figure(net.params, WRN_TABLE4[depth, k], M, 1)
    # depth = 6N + 4 counts the convs: conv1, 6N in the blocks, the three projections (k > 1)
    assert len(ops(net, "conv")) == depth - (k == 1)


def test_wrn_28_10_and_its_dropout():
    net = load("wide_resnet.net", "wrn_28_10")
    assert net.params == 36_479_194
    check_figure(net.params, 36.5, M, 1)                    # Table 4; brief and seed: ~36.5M
    # Table 1: groups at 32x32, 16x16, 8x8, widths 16k, 32k, 64k; then the 8x8 pool
    assert [net.shape(f"layer{i}.0.0") for i in (1, 2, 3)] == [(160, 32, 32), (320, 16, 16), (640, 8, 8)]
    assert net.shape("avgpool") == (640, 1, 1) and out_shape(net) == (10,)
    assert ops(net, "dropout") == []
    dropped = load("wide_resnet.net", "wrn_28_10_dropout")
    drops = ops(dropped, "dropout")
    assert len(drops) == 12 and {dropped.graph.nodes[n]["args"]["p"] for n in drops} == {0.3}
    # dropout sits between the convs of each block: after relu2, before conv2
    for n in drops:
        (pred,) = dropped.graph.predecessors(n)
        (succ,) = dropped.graph.successors(n)
        assert pred.endswith(".relu2") and succ.endswith(".conv2")
    assert dropped.params == net.params and dropped.macs == net.macs


def test_wrn_seed_figures_width_and_depth():
    """Seeds 000/002: "wider residual blocks (F x k filters instead of F filters in each layer)"
    and "50-layer wide ResNet outperforms 152-layer original ResNet"."""
    wide, thin = load("wide_resnet.net", "wrn_28_10"), load("wide_resnet.net", "wide_resnet", depth=28, k=1)
    block_convs = [n for n in ops(thin, "conv") if n.endswith((".conv1", ".conv2"))]
    assert len(block_convs) == 24
    assert all(wide.graph.nodes[n]["args"]["out"] == 10 * thin.graph.nodes[n]["args"]["out"] for n in block_convs)
    assert wide.graph.nodes["conv1"]["args"]["out"] == thin.graph.nodes["conv1"]["args"]["out"] == 16
    # On ImageNet (WRN-50-2-bottleneck = torchvision's wide_resnet50_2) only the bottleneck's
    # inner two convs are k = 2 times wider; its 1x1 expansions keep ResNet-50's 4F.
    wrn50, resnet50 = load("resnet.net", "wide_resnet50_2"), load("resnet.net", "resnet50")
    for n in ops(resnet50, "conv"):
        ratio = 2 if n.endswith((".conv1", ".conv2")) else 1
        assert wrn50.graph.nodes[n]["args"]["out"] == ratio * resnet50.graph.nodes[n]["args"]["out"]
    assert weight_depth(wrn50) == 50 and weight_depth(load("resnet.net", "resnet152")) == 152
    # Zagoruyko and Komodakis 2016, ImageNet table: WRN-50-2-bottleneck 68.9M
    check_figure(wrn50.params, 68.9, M, 1)


# ================================================================== pre-activation ResNet

def test_preact_resnet_table3_params_and_depth():
    """He et al. 2016 (Identity Mappings), Table 3: ResNet-164 1.7M, ResNet-1001 10.2M. The 10.2M
    is the count without batch norm: with its 149,216 parameters ResNet-1001 has 10.33M."""
    for depth, printed, with_bn in ((164, 1.7, 1.7), (1001, 10.2, 10.3)):
        net = load("preact_resnet.net", "preact_resnet", depth=depth)
        n = (depth - 2) // 9
        assert weight_depth(net) == depth == 9 * n + 2
        assert len(ops(net, "add")) == 3 * n
        check_figure(without_batchnorm(net), printed, M, 1)
        check_figure(net.params, with_bn, M, 1)
    assert net.params == 10_327_706 and without_batchnorm(net) == 10_178_490


def test_preact_resnet164_shapes_and_preactivation():
    net = load("preact_resnet.net", "preact_resnet164")
    assert net.params == 1_703_258
    assert [net.cost.scope_cost(f"layer{i}").shape for i in (1, 2, 3)] == [(64, 32, 32), (128, 16, 16), (256, 8, 8)]
    assert out_shape(net) == (10,)
    # Seeds 000/002: pre-activation "moves activation to residual mapping pathway": nothing
    # follows an addition but the next unit's BN or its identity shortcut; in the original
    # ResNet every addition is followed by a ReLU.
    for add in ops(net, "add"):
        assert {net.graph.nodes[s]["op"] for s in net.graph.successors(add)} <= {"batchnorm", "identity"}
    original = load("resnet_cifar.net", "resnet110")
    for add in ops(original, "add"):
        assert [original.graph.nodes[s]["op"] for s in original.graph.successors(add)] == ["relu"]
    # the projection of a unit that changes the shape reads the activated input (the appendix)
    for i in (1, 2, 3):
        assert list(net.graph.predecessors(f"layer{i}.0.shortcut")) == [f"layer{i}.0.relu1"]
        assert net.graph.nodes[f"layer{i}.0.shortcut"]["args"]["k"] == (1, 1)
    assert net.graph.nodes["layer2.0.conv1"]["args"]["stride"] == (2, 2)


# ================================================================== CIFAR ResNets and stochastic depth

# He et al. 2016, Table 6: # layers -> # params (M), to the precision printed
CIFAR_TABLE6 = {20: (0.27, 2), 32: (0.46, 2), 44: (0.66, 2), 56: (0.85, 2), 110: (1.7, 1), 1202: (19.4, 1)}


@pytest.mark.parametrize("depth", sorted(CIFAR_TABLE6))
def test_cifar_resnet_table6(depth):
    net = load("resnet_cifar.net", "resnet_cifar", depth=depth)
    n = (depth - 2) // 6
    # 6n + 2 weighted layers (seeds 000/002: "1202 on Cifar"); 3n shortcuts, all parameter-free
    assert weight_depth(net) == depth == 6 * n + 2
    assert len(ops(net, "add")) == 3 * n
    assert not [c for c in net.cost.layers if ".shortcut" in c.name and c.params]
    printed, digits = CIFAR_TABLE6[depth]
    check_figure(net.params, printed, M, digits)
    # independent count: bias-free 3x3 convs and their batch norms, stage by stage, and the fc
    expected, cin = 27 * 16 + 32, 16
    for width in (16, 32, 64):
        for _ in range(n):
            expected += 9 * cin * width + 9 * width * width + 4 * width
            cin = width
    assert net.params == expected + 64 * 10 + 10


def test_cifar_resnet110_shapes():
    net = load("resnet_cifar.net", "resnet110")
    assert net.params == 1_727_962
    # section 4.2: maps of 32, 16, 8 with 16, 32, 64 filters
    assert [net.cost.scope_cost(f"layer{i}").shape for i in (1, 2, 3)] == [(16, 32, 32), (32, 16, 16), (64, 8, 8)]
    assert out_shape(net) == (10,)
    # option A: subsample (a 1x1 pool of stride 2 is x[:, :, ::2, ::2]), then as many zero
    # channels again; the stochastic-depth code averages 2x2 instead
    g = net.graph
    for i in (2, 3):
        pool, cat = f"layer{i}.0.shortcut.0", f"layer{i}.0.shortcut.1"
        assert (g.nodes[pool]["op"], g.nodes[pool]["args"]["k"], g.nodes[pool]["args"]["stride"]) == \
            ("avgpool", (1, 1), (2, 2))
        halves = [g.nodes[p] for p in inputs_of(g, cat)]
        assert [h["op"] for h in halves] == ["identity", "scale"] and halves[1]["args"]["s"] == 0
        assert [list(g.predecessors(p)) for p in inputs_of(g, cat)] == [[pool], [pool]]
    assert net.shape("layer2.0.shortcut.0") == (16, 16, 16) and net.shape("layer2.0.shortcut.1") == (32, 16, 16)
    sd = load("resnet_cifar.net", "resnet110_stochastic_depth").graph
    assert sd.nodes["layer2.0.shortcut.0"]["args"]["k"] == (2, 2)



def test_stochastic_depth_survival_block_by_block():
    """Huang et al. 2016, eq. 4: p_l = 1 - l / L (1 - p_L) with p_L = 0.5 over the L = 54 blocks
    of ResNet-110, l counted from the input; drop_path drops with probability 1 - p_l."""
    net = load("resnet_cifar.net", "resnet110_stochastic_depth")
    plain = load("resnet_cifar.net", "resnet110")
    drops = ops(net, "drop_path")
    L = 54
    assert len(drops) == L and ops(plain, "drop_path") == []
    survival = {}
    for node in drops:
        stage, index = node.split(".")[:2]                       # layer{s}.{i}.…
        l = (int(stage[len("layer"):]) - 1) * 18 + int(index) + 1
        survival[l] = 1 - net.graph.nodes[node]["args"]["p"]
        # it gates the residual branch: after bn2, before the addition
        (pred,) = net.graph.predecessors(node)
        (succ,) = net.graph.successors(node)
        assert pred == f"{stage}.{index}.bn2" and net.graph.nodes[succ]["op"] == "add"
    assert sorted(survival) == list(range(1, L + 1))
    for l in range(1, L + 1):
        assert survival[l] == pytest.approx(1 - l / L * (1 - 0.5), abs=1e-12)
    assert survival[1] == pytest.approx(1 - 1 / 108) and survival[L] == pytest.approx(0.5)
    assert all(survival[l] > survival[l + 1] for l in range(1, L))
    # the expected number of blocks in training is (3L - 1) / 4 = 40.25, "approximately 40"
    assert sum(survival.values()) == pytest.approx((3 * L - 1) / 4) == pytest.approx(40.25)
    assert round(sum(survival.values())) == 40
    # drop_path has no parameters: still ResNet-110's 1.7M
    assert net.params == plain.params


@pytest.mark.usefixtures("torch_one_thread")
def test_stochastic_depth_drops_in_training_and_runs_the_full_network_at_test_time():
    """Seed 002: "randomly drop a subset of layers during each training pass", "bypass with
    identity function", "use full deep network at test time"."""
    torch = pytest.importorskip("torch")
    import netlang
    from zoo_checks import ARCH
    path = ARCH / "resnet_cifar.net"
    sd = netlang.compile(path, network="resnet110_stochastic_depth")
    full = netlang.compile(path, network="resnet_cifar", depth=110, shortcut_pool=2)
    full.load_state_dict(sd.state_dict())              # the same parameters: drop_path has none
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        sd.eval(), full.eval()
        torch.testing.assert_close(sd(x), full(x), rtol=0, atol=0)
        sd.train(), full.train()
        torch.manual_seed(0)
        first = sd(x)
        second = sd(x)
        reference = full(x)
    assert not torch.allclose(first, reference) and not torch.allclose(first, second)


# ================================================================== forward passes

FORWARD = [
    ("resnet.net", "resnext50_32x4d", (3, 32, 32)),
    ("resnext.net", "resnext_form_a", (256, 4, 4)),
    ("resnet_cifar.net", "resnet20", None),
    ("resnet_cifar.net", "resnet110_stochastic_depth", None),
    ("preact_resnet.net", "preact_resnet164", None),
    ("wide_resnet.net", "wrn_28_10_dropout", (3, 16, 16)),
]


@pytest.mark.usefixtures("torch_one_thread")
@pytest.mark.parametrize("file, network, size", FORWARD, ids=[f[1] for f in FORWARD])
def test_forward(file, network, size):
    check_forward(file, network, batch=2, input=size)
