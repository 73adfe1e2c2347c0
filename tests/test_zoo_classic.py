"""The classic networks of the zoo: LeNet-5, AlexNet, ZFNet, VGG, Network in Network and the
All-CNN family, against torchvision's golden listings where torchvision ships the network, and
against the figures printed in the papers and in the lecture-note seeds otherwise.

Every expected value is either a printed figure (its source named beside it) or recomputed here
from the layer table by plain arithmetic, never read back from netlang. Where a printed figure
disagrees with the network, the test asserts the disagreement and says why.
"""
import re
from math import prod

import pytest

import seed_figures as sf
from netlang.ir import state_entries
from zoo_checks import (ARCH, check_figure, check_forward, check_torchvision_macs, check_torchvision_state_dict,
                        golden, load)

WEIGHT_OPS = ("conv", "linear")
K, M = 10**3, 10**6


def weight_layers(G) -> list[str]:
    return [n for n in G.nodes if G.nodes[n]["op"] in WEIGHT_OPS]


def weights_only(net) -> int:
    """Parameters less the biases: the seeds' convention."""
    return sum(prod(shape) for key, shape, buffer in state_entries(net.graph)
               if not buffer and key.endswith(".weight"))


def shape(net, name: str) -> tuple:
    """The output of a layer, or of the last layer of a scope."""
    return tuple(net.cost.scope_cost(name).shape)


# ------------------------------------------------------------------ torchvision

TORCHVISION = [("alexnet.net", "alexnet")] + [
    ("vgg.net", f"vgg{depth}{bn}") for depth in (11, 13, 16, 19) for bn in ("", "_bn")]


@pytest.mark.parametrize("file,model", TORCHVISION, ids=[m for _, m in TORCHVISION])
def test_torchvision_state_dict_params_and_macs(file, model):
    # Published GFLOPS (multiply-accumulates): alexnet 0.714, vgg11 7.609, vgg13 11.308,
    # vgg16 15.47, vgg19 19.632; the _bn variants the same.
    net = load(file, model)
    check_torchvision_state_dict(net, model)
    check_torchvision_macs(net, model)
    ref = golden(model)
    G = net.graph
    assert list(G.nodes[G.graph["inputs"][0]]["shape"]) == ref["input_size"]
    assert list(G.nodes[G.graph["outputs"][0]]["shape"]) == ref["output_shape"][1:]


@pytest.mark.parametrize("file,model", TORCHVISION, ids=[m for _, m in TORCHVISION])
def test_torchvision_parameter_free_layers_sit_where_torchvisions_do(file, model):
    # The ReLUs, pools, dropouts and the adaptive pool have torchvision's names and types too
    # (the state_dict alone cannot tell a dropout before a Linear from one after it); the
    # unlabelled flatten is a call in forward(), as torchvision writes it.
    torch = pytest.importorskip("torch")
    from netlang.backends.pytorch import lower
    with torch.device("meta"):
        module = lower(load(file, model), init=False)
    leaves = {n: type(m).__name__ for n, m in module.named_modules() if not list(m.children())}
    theirs = {n: t for n, t in golden(model)["module_names"] if t not in ("Sequential", "AlexNet", "VGG")}
    assert {n: leaves.get(n) for n in theirs} == theirs
    assert [(n, t) for n, t in leaves.items() if n not in theirs] == []


# ------------------------------------------------------------------ VGG

VGG_TABLE_1 = {  # configuration: network, weight layers in Table 1's header, torchvision twin
    "A": ("vgg_a", 11, "vgg11"), "A-LRN": ("vgg_a_lrn", 11, None), "B": ("vgg_b", 13, "vgg13"),
    "C": ("vgg_c", 16, None), "D": ("vgg_d", 16, "vgg16"), "E": ("vgg_e", 19, "vgg19"),
}


@pytest.mark.parametrize("config", VGG_TABLE_1)
def test_vgg_weight_layers_and_torchvision_twins(config):
    network, layers, twin = VGG_TABLE_1[config]
    net = load("vgg.net", network)
    # "11 weight layers" ... "19 weight layers" (Table 1); seeds 000/002: VGG16 16, VGG19 19.
    assert len(weight_layers(net.graph)) == layers
    assert shape(net, "features") == (512, 7, 7)
    if twin:
        # torchvision's network is the paper's column plus a parameter-free adaptive pool to
        # 7x7 (the identity at 224x224): same state_dict, same count, same MACs.
        tv = load("vgg.net", twin)
        assert state_entries(tv.graph) == state_entries(net.graph)
        assert tv.cost.macs == net.cost.macs
        # the batch norm adds a scale and a shift (2 parameters) per conv output channel
        convs = [n for n in weight_layers(net.graph) if net.graph.nodes[n]["op"] == "conv"]
        channels = sum(net.graph.nodes[n]["args"]["out"] for n in convs)
        assert load("vgg.net", f"{twin}_bn").cost.params == net.cost.params + 2 * channels


def test_vgg_layer_counts_printed_in_the_seeds():
    for name, network in (("VGG16", "vgg16"), ("VGG19", "vgg19")):
        assert len(weight_layers(load("vgg.net", network).graph)) == sf.LAYER_COUNTS[name]["printed"]


# ------------------------------------------------------------------ AlexNet

# Seed 000's simplified AlexNet: printed name -> this file's layer (pool5 is its MAX POOL3).
ALEXNET_SEED_LAYERS = {"CONV1": "conv1", "MAX POOL1": "pool1", "NORM1": "norm1", "CONV2": "conv2",
                       "MAX POOL2": "pool2", "NORM2": "norm2", "CONV3": "conv3", "CONV4": "conv4",
                       "CONV5": "conv5", "MAX POOL3": "pool5", "FC6": "fc6", "FC7": "fc7", "FC8": "fc8"}


def chw(printed: tuple) -> tuple:
    return printed if len(printed) == 1 else (printed[2], printed[0], printed[1])


def test_alexnet_paper_layer_sizes_against_seed_000():
    net = load("alexnet.net", "alexnet_paper")
    assert net.shape("input") == (3, 227, 227)
    for row in sf.ALEXNET["layers"]:
        ours, printed = net.shape(ALEXNET_SEED_LAYERS[row["name"]]), chw(row["printed_shape"])
        if row["name"].startswith("NORM"):
            # The seed (CS231n) normalises after pooling, as CaffeNet does; the paper normalises
            # first ("max-pooling layers ... follow both response-normalization layers"). Same
            # parameters and MACs; the printed size is that of the pool.
            assert ours != printed
            assert ours == net.shape("conv" + row["name"][-1])
            assert printed == net.shape("pool" + row["name"][-1])
        else:
            assert ours == printed == chw(row["shape"])


def test_alexnet_paper_two_gpu_split_is_groups_2():
    net = load("alexnet.net", "alexnet_paper")
    G = net.graph
    # Seed 000: "CONV1, CONV2, CONV4, CONV5: connections only with feature maps on same GPU",
    # "CONV3, FC6, FC7, FC8: connections with all feature maps in preceding layer". conv1 reads
    # the whole image on both GPUs, which is an ungrouped conv.
    assert {n: G.nodes[n]["args"]["groups"] for n in ("conv1", "conv2", "conv3", "conv4", "conv5")} == \
        {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}
    weights = {key: shape for key, shape, _ in state_entries(G) if key.endswith(".weight")}
    # "[55x55x48] x 2": each half of conv2 reads the 48 maps of its own GPU.
    assert sf.ALEXNET["split_shape_printed"] == (55, 55, 48)
    assert weights["conv1.weight"] == (96, 3, 11, 11) and net.shape("conv1") == (2 * 48, 55, 55)
    assert weights["conv2.weight"] == (256, 96 // 2, 5, 5)
    assert weights["conv3.weight"] == (384, 256, 3, 3)
    assert weights["conv4.weight"] == (384, 384 // 2, 3, 3)
    assert weights["conv5.weight"] == (256, 384 // 2, 3, 3)
    assert weights["fc6.weight"] == (4096, 6 * 6 * 256)
    assert [n for n in G.nodes if G.nodes[n]["op"] == "lrn"] == ["norm1", "norm2"]
    assert all(G.nodes[n]["args"]["p"] == 0.5 for n in ("drop6", "drop7"))


def test_alexnet_paper_parameters_60M():
    grouped = load("alexnet.net", "alexnet_paper")
    single = load("alexnet.net", "alexnet_paper", groups=1)
    assert grouped.cost.params == sf.ALEXNET["params_grouped_with_bias"] == 60_965_224
    assert single.cost.params == sf.ALEXNET["params_ungrouped_with_bias"] == 62_378_344
    # "60M params" (seed 001), "60 million parameters" (the paper's abstract): one significant
    # figure. Both the two-GPU and the single-tower counts read 60M; to two figures they are 61M
    # and 62M.
    check_figure(grouped.cost.params, 6, 10 * M)
    check_figure(single.cost.params, 6, 10 * M)
    # "11 x 11 x 3 x 96 = 35K" (seed 002): weights only.
    conv1 = grouped.cost.scope_cost("conv1").params - 96
    assert conv1 == sf.ALEXNET["conv1_params_weights"] == 11 * 11 * 3 * 96
    check_figure(conv1, 35, K)


def test_alexnet_paper_neurons_650K():
    net = load("alexnet.net", "alexnet_paper")
    units = [prod(net.shape(n)) for n in weight_layers(net.graph)]
    # Section 3.5: "the number of neurons in the network's remaining layers is given by
    # 253,440-186,624-64,896-64,896-43,264-4096-4096-1000". All but the first are the outputs of
    # conv2..fc8; conv1 gives 55 x 55 x 96 = 290,400, and no size of conv1 gives 253,440 (cause
    # undetermined). The paper's input, "150,528-dimensional", is 224 x 224 x 3; here 227.
    paper = [253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000]
    assert units[1:] == paper[1:]
    assert units[0] == 55 * 55 * 96 == 290_400 != paper[0]
    assert prod(net.shape("input")) == 227 * 227 * 3 != 150_528 == 224 * 224 * 3
    # "650K units" (seed 001), "650,000 neurons" (the abstract): the sum is 659,272, which reads
    # 660K; the paper's own list sums to 622,312. A loose round figure.
    assert sum(units) == sf.ALEXNET["units"] == 659_272
    assert round(sum(units) / (10 * K)) == 66 != 65
    assert sum(paper) == 622_312


def test_alexnet_layer_counts_printed_in_the_seeds():
    for network in ("alexnet_paper", "alexnet"):
        G = load("alexnet.net", network).graph
        assert len(weight_layers(G)) == sf.LAYER_COUNTS["AlexNet"]["printed"] == 8   # "8 layers"
        assert len(weight_layers(G)) - 1 == sf.ALEXNET["hidden_layers_printed"]      # "7 hidden layers"


# ------------------------------------------------------------------ ZFNet

def test_zfnet_figure_3_sizes():
    net = load("zfnet.net", "zfnet")
    # Figure 3: 110 -> 55 (the caption's "96 different 55 by 55 element feature maps") -> 26 ->
    # 13 -> 13 -> 13 -> 13 -> 6, and "6 . 6 . 256 = 9216" inputs to layer 6.
    sizes = {"conv1": (96, 110, 110), "pool1": (96, 55, 55), "norm1": (96, 55, 55),
             "conv2": (256, 26, 26), "pool2": (256, 13, 13), "conv3": (384, 13, 13),
             "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
             "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}
    assert {n: net.shape(n) for n in sizes} == sizes
    assert sf.ZFNET["printed_pool1_out"] == 55
    assert prod(net.shape("pool5")) == sf.ZFNET["fc_input_printed"] == 9216
    assert net.graph.nodes["fc6"]["args"]["out"] == 4096
    # 55 and 13 need the pools to round up: rounding down gives 54 (and then 12).
    assert all(net.graph.nodes[p]["args"]["ceil"] for p in ("pool1", "pool2", "pool5"))
    assert sf.ZFNET["pool1_out_from_110_floor"] == 54
    assert net.cost.params == (7 * 7 * 3 * 96 + 96) + (5 * 5 * 96 * 256 + 256) + (3 * 3 * 256 * 384 + 384) \
        + (3 * 3 * 384 * 384 + 384) + (3 * 3 * 384 * 256 + 256) + (9216 * 4096 + 4096) \
        + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)


def test_zfnet_against_alexnet_as_the_seeds_describe_it():
    # Seeds 000/002: "CONV1: change from (11x11 stride 4) to (7x7 stride 2); CONV3,4,5: instead
    # of 384, 384, 256 filters use 512, 1024, 512" -- the paper's Table 2 model (b).
    alex = load("alexnet.net", "alexnet_paper").graph.nodes
    zf = load("zfnet.net", "zfnet_b").graph.nodes
    assert (alex["conv1"]["args"]["k"], alex["conv1"]["args"]["stride"]) == ((11, 11), (4, 4))
    assert (zf["conv1"]["args"]["k"], zf["conv1"]["args"]["stride"]) == ((7, 7), (2, 2))
    assert [alex[f"conv{i}"]["args"]["out"] for i in (3, 4, 5)] == [384, 384, 256]
    assert [zf[f"conv{i}"]["args"]["out"] for i in (3, 4, 5)] == [512, 1024, 512]
    assert zf["pool5"]["shape"] == (512, 6, 6)


# ------------------------------------------------------------------ LeNet-5

def lenet_connections(net, scope: str) -> int:
    """Connections as the paper counts them: each unit's inputs plus its bias. A subsampling unit
    has 2x2 inputs and a bias (its coefficient scales the sum: the 1x1 depthwise conv adds only
    its bias); a conv or F6 unit has its kernel's inputs and a bias."""
    total = 0
    for layer in net.cost.layers:
        if not layer.name.startswith(scope + ".") and layer.name != scope:
            continue
        args, units = net.graph.nodes[layer.name]["args"], prod(layer.shape)
        if layer.op == "avgpool":
            total += units * args["k"][0] * args["k"][1]
        elif layer.op == "conv" and args["groups"] == args["out"] and args["k"] == (1, 1):
            total += units
        elif layer.op in WEIGHT_OPS:
            total += layer.macs + (units if args["bias"] else 0)
    return total


# Section II.B: (trainable parameters, connections) per layer. The RBF output layer's 840
# parameters are fixed, not trained; its 840 connections are in the 340,908.
LENET_PAPER = {"C1": (156, 122_304), "S2": (12, 5_880), "C3": (1_516, 151_600), "S4": (32, 2_000),
               "C5": (48_120, 48_120), "F6": (10_164, 10_164), "out": (0, 840)}


def test_lenet5_sizes():
    net = load("lenet.net", "lenet5")
    assert {s: shape(net, s) for s in LENET_PAPER} == {
        "C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10), "S4": (16, 5, 5),
        "C5": (120, 1, 1), "F6": (84,), "out": (10,)}


def test_lenet5_table_1_gives_the_papers_1516():
    # The connection table quoted in lenet.net, read back from the file: 60 of the 96 (S2, C3)
    # pairs, so 60 x 5 x 5 weights and 16 biases, and 10 x 10 units of C3 each.
    lines = (ARCH / "lenet.net").read_text().splitlines()
    top = next(i for i, line in enumerate(lines) if re.match(r"#\s+0  1  2  3", line))
    columns = {m.end() - 1: int(m.group()) for m in re.finditer(r"\d+", lines[top])}
    table = {int(line[1:6]): {columns[i] for i, ch in enumerate(line) if ch == "X"}
             for line in lines[top + 1:top + 7]}
    assert sorted(table) == list(range(6))
    # C3 maps 0-5 read 3 neighbouring S2 maps, 6-11 read 4, 12-14 read 4 non-neighbouring, 15 all
    assert [sum(c in table[r] for r in range(6)) for c in range(16)] == [3] * 6 + [4] * 9 + [6]
    pairs = sum(len(cols) for cols in table.values())
    assert pairs == 60
    assert pairs * 5 * 5 + 16 == LENET_PAPER["C3"][0]
    assert 10 * 10 * LENET_PAPER["C3"][0] == LENET_PAPER["C3"][1]


def test_lenet5_parameters_and_connections_against_the_paper():
    net = load("lenet.net", "lenet5")
    params = {s: net.cost.scope_cost(s).params for s in LENET_PAPER}
    connections = {s: lenet_connections(net, s) for s in LENET_PAPER}
    # Equal to the paper except C3, which reads all six S2 maps (netlang cannot pick a subset
    # of channels): 16 x (6 x 25 + 1) = 2,416 parameters and 100 x 2,416 connections; and the
    # output layer, whose 84 x 10 weights are trained here but fixed codes in the paper.
    assert params == {**{s: p for s, (p, _) in LENET_PAPER.items()}, "C3": 2_416, "out": 840}
    assert connections == {**{s: c for s, (_, c) in LENET_PAPER.items()}, "C3": 241_600}
    # "340,908 connections, but only 60,000 trainable free parameters"
    assert sum(p for p, _ in LENET_PAPER.values()) == 60_000
    assert sum(c for _, c in LENET_PAPER.values()) == 340_908
    assert net.cost.params == 60_000 + 900 + 840 == 61_740
    assert sum(connections.values()) == 340_908 + 90_000


def test_lenet5_squashing_function():
    # f(a) = A tanh(S a), A = 1.7159, S = 2/3 (Appendix A), after every layer up to F6.
    G = load("lenet.net", "lenet5").graph
    for s in ("C1", "S2", "C3", "S4", "C5", "F6"):
        names = sorted((n for n in G.nodes if n.startswith(s + ".")), key=lambda n: int(n.split(".")[1]))
        tail = [(G.nodes[n]["op"], G.nodes[n]["args"].get("s")) for n in names[-3:]]
        assert tail == [("scale", pytest.approx(2 / 3)), ("tanh", None), ("scale", 1.7159)]


# ------------------------------------------------------------------ Network in Network

def conv_params(rows) -> int:
    """rows: (kernel, in, out) per conv, each with a bias."""
    return sum(k * k * cin * cout + cout for k, cin, cout in rows)


NIN = {  # mlpconv layers of the released models: (kernel, in, out) per conv
    "nin": [(5, 3, 192), (1, 192, 160), (1, 160, 96), (5, 96, 192), (1, 192, 192), (1, 192, 192),
            (3, 192, 192), (1, 192, 192), (1, 192, 10)],
    "nin_imagenet": [(11, 3, 96), (1, 96, 96), (1, 96, 96), (5, 96, 256), (1, 256, 256), (1, 256, 256),
                     (3, 256, 384), (1, 384, 384), (1, 384, 384), (3, 384, 1024), (1, 1024, 1024),
                     (1, 1024, 1000)],
}


@pytest.mark.parametrize("network", NIN)
def test_nin_mlpconv_layers_and_global_average_pooling(network):
    net = load("nin.net", network)
    G = net.graph
    convs = [n for n in G.nodes if G.nodes[n]["op"] == "conv"]
    # Each mlpconv is a conv and a two-layer perceptron of 1x1 convs; the classifier is a
    # global average pool over one map per class, no fully connected layer (seed 002: "micronetwork
    # uses multilayer perceptron (FC, i.e. 1x1 conv layers)").
    assert [(G.nodes[n]["args"]["k"][0], G.nodes[n]["args"]["out"]) for n in convs] == \
        [(k, cout) for k, _, cout in NIN[network]]
    assert not [n for n in G.nodes if G.nodes[n]["op"] == "linear"]
    assert sum(G.nodes[n]["op"] == "relu" for n in G.nodes) == len(convs)
    assert net.cost.params == conv_params(NIN[network])
    if network == "nin":
        assert (shape(net, "pool1"), shape(net, "pool2"), shape(net, "mlpconv3")) == \
            ((96, 16, 16), (192, 8, 8), (10, 8, 8))
        assert net.cost.params == 966_986
    else:
        assert [shape(net, f"pool{i}") for i in (1, 2, 3)] == [(96, 27, 27), (256, 13, 13), (384, 6, 6)]
        assert shape(net, "mlpconv4") == (1000, 6, 6)
        assert net.cost.params == 7_595_176
    assert net.shape(G.graph["outputs"][0]) == (NIN[network][-1][2],)


# ------------------------------------------------------------------ All-CNN

ALL_CNN = {"Model A": "model_a", "Strided-CNN-A": "strided_cnn_a", "ConvPool-CNN-A": "convpool_cnn_a",
           "All-CNN-A": "all_cnn_a", "Model B": "model_b", "Strided-CNN-B": "strided_cnn_b",
           "ConvPool-CNN-B": "convpool_cnn_b", "All-CNN-B": "all_cnn_b", "Model C": "model_c",
           "Strided-CNN-C": "strided_cnn_c", "ConvPool-CNN-C": "convpool_cnn_c", "All-CNN-C": "all_cnn_c"}


@pytest.mark.parametrize("model", ALL_CNN)
def test_allcnn_sizes_and_parameters_against_table_3(model):
    net = load("allcnn.net", ALL_CNN[model])
    ref = sf.ALL_CNN[model]
    assert net.shape("input") == (3, 32, 32)
    assert (shape(net, "stage1"), shape(net, "stage2")) == ((96, 16, 16), (192, 8, 8))
    assert net.shape("head.0") == (192, 6, 6)        # "global averaging over 6x6 spatial dimensions"
    assert net.shape(net.graph.graph["outputs"][0]) == (10,)
    # seed 004 copies Table 3's "# parameters" column ("≈0.9M", "≈1.28M", "≈1M"...), to the
    # precision printed. The exact count is recomputed layer by layer in seed_figures.py.
    assert net.cost.params == ref["params_with_bias"]
    text = re.fullmatch(r"≈(\d+)(?:\.(\d+))?M", ref["printed_text"].replace(" ", ""))
    digits = len(text.group(2) or "")
    agrees = round(net.cost.params / M, digits) == pytest.approx(ref["printed"] / M)
    # Only Model B and Strided-CNN-B (0.886M, printed to 1M) and ConvPool-CNN-C and All-CNN-C
    # (1.370M, "≈1.4M") agree. The others are printed 2-13% high (A, B) or 36% high (Model C
    # and Strided-CNN-C: 0.955M against "≈1.3M"); a stride or a pooling conv's replacement changes
    # no count, and the printed column agrees with that, so the source counted something else in
    # each base model. Cause undetermined.
    assert agrees == (ref["verdict"] == sf.MATCH)
    if model in ("ConvPool-CNN-C", "All-CNN-C"):
        check_figure(net.cost.params, 1.4, M, 1)
    if model == "Model A":
        assert round(net.cost.params / M, 1) == 0.8 != 0.9


def test_allcnn_variants_differ_as_the_paper_says():
    params = {m: load("allcnn.net", n).cost.params for m, n in ALL_CNN.items()}
    extra = (3 * 3 * 96 * 96 + 96) + (3 * 3 * 192 * 192 + 192)   # one 3x3 conv per stage
    for x in "ABC":
        base = params[f"Model {x}"]
        assert params[f"Strided-CNN-{x}"] == base
        assert params[f"ConvPool-CNN-{x}"] == params[f"All-CNN-{x}"] == base + extra == base + 415_008
    G = load("allcnn.net", "all_cnn_c").graph
    assert not [n for n in G.nodes if G.nodes[n]["op"] in ("maxpool", "linear")]   # all convolutional
    G = load("allcnn.net", "strided_cnn_c").graph
    strides = [G.nodes[n]["args"]["stride"] for n in G.nodes if G.nodes[n]["op"] == "conv"]
    assert strides.count((2, 2)) == 2 and not [n for n in G.nodes if G.nodes[n]["op"] == "maxpool"]


# ------------------------------------------------------------------ forward passes

FORWARD = [  # file, network, input (None: the declared one), batch
    ("lenet.net", "lenet5", None, 2),
    ("alexnet.net", "alexnet_paper", None, 1),     # groups=2 and LRN at the published size
    ("alexnet.net", "alexnet", (3, 64, 64), 2),    # the adaptive pool takes a 1x1 map to 6x6
    ("zfnet.net", "zfnet", (3, 64, 64), 2),
    ("vgg.net", "vgg_a_lrn", (3, 32, 32), 2),
    ("nin.net", "nin", None, 2),
    ("nin.net", "nin_imagenet", (3, 64, 64), 2),
    ("allcnn.net", "all_cnn_c", None, 2),
    ("allcnn.net", "model_b", None, 2),
]


@pytest.mark.parametrize("file,network,input,batch", FORWARD, ids=[f[1] for f in FORWARD])
def test_forward(file, network, input, batch, torch_one_thread):
    check_forward(file, network, batch=batch, input=input)
