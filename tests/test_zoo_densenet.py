"""DenseNet (architectures/densenet.net) against torchvision's golden listings and the figures of
Huang et al., "Densely Connected Convolutional Networks", CVPR 2017."""
import networkx as nx
import pytest

from netlang.ir import inputs_of
from zoo_checks import check_figure, check_forward, check_torchvision_macs, check_torchvision_state_dict, load

FILE = "densenet.net"
M = 10**6
# Table 1: the layers of the four dense blocks of each network.
BLOCKS = {
    "densenet121": [6, 12, 24, 16],
    "densenet169": [6, 12, 32, 32],
    "densenet201": [6, 12, 48, 32],
    "densenet264": [6, 12, 64, 48],
}
TORCHVISION = ["densenet121", "densenet169", "densenet201"]
K = 32                       # growth rate of every network of Table 1
K0 = 2 * K                   # maps after the first conv (DenseNet-BC)


@pytest.mark.parametrize("name", TORCHVISION)
def test_state_dict_and_parameters_are_torchvisions(name):
    check_torchvision_state_dict(load(FILE, name), name)


@pytest.mark.parametrize("name", TORCHVISION)
def test_macs_are_torchvisions_published_gflops(name):
    # densenet121 2.834, densenet169 3.36, densenet201 4.291 GFLOPS (multiply-accumulates).
    check_torchvision_macs(load(FILE, name), name)


def network(name: str):
    """One of Table 1's networks: the file's instance, or for DenseNet-264, which the file leaves
    out, the generic network with its column."""
    if name == "densenet264":
        return load(FILE, "densenet", blocks=BLOCKS[name])
    return load(FILE, name)


def block_output(G, name: str, block: int) -> tuple:
    """The shape a dense block gives: what the next transition (or norm5 after the last block)
    reads."""
    after = "features.norm5" if block == len(BLOCKS[name]) else f"features.transition{block}.norm"
    (source,) = inputs_of(G, after)
    assert source.startswith(f"features.denseblock{block}.")
    return G.nodes[source]["shape"]


@pytest.mark.parametrize("name", BLOCKS)
def test_table_1_output_sizes(name):
    G = network(name).graph
    size = {n: tuple(G.nodes[n]["shape"][1:]) for n in G.nodes if len(G.nodes[n]["shape"]) == 3}
    assert size["features.conv0"] == (112, 112)                    # Convolution
    assert size["features.pool0"] == (56, 56)                      # Pooling
    for block, side in enumerate([56, 28, 14, 7], start=1):
        assert tuple(block_output(G, name, block)[1:]) == (side, side)
        if block < 4:                                              # Transition: 1x1 conv, then pool
            assert size[f"features.transition{block}.conv"] == (side, side)
            assert size[f"features.transition{block}.pool"] == (side // 2, side // 2)
    assert G.nodes["classifier"]["shape"] == (1000,)               # 1000D fully-connected


@pytest.mark.parametrize("name", BLOCKS)
def test_the_name_counts_the_conv_and_fc_layers(name):
    # 121 = 1 + 2 x (6 + 12 + 24 + 16) + 3 transitions + 1 classifier, 169 and 201 likewise.
    # DenseNet-264 is the exception: the same count gives 1 + 2 x 130 + 3 + 1 = 265.
    G = network(name).graph
    layers = sum(1 for _, d in G.nodes(data=True) if d["op"] in ("conv", "linear"))
    assert layers == 1 + 2 * sum(BLOCKS[name]) + (len(BLOCKS[name]) - 1) + 1
    printed = int(name.removeprefix("densenet"))
    assert layers == (265 if printed == 264 else printed)


def test_each_layer_reads_every_earlier_map_of_its_block():
    """Eq. 2, x_l = H_l([x_0, ..., x_{l-1}]): layer l of a block depends on the output of every
    earlier layer of the block, and reads k0 + k(l - 1) channels, as many as the block input and
    the l - 1 earlier layers give together (so none of them is left out of the concatenation)."""
    G = load(FILE, "densenet121").graph
    block_input = K0
    for block, layers in enumerate(BLOCKS["densenet121"], start=1):
        scope = f"features.denseblock{block}"
        for l in range(1, layers + 1):
            first = f"{scope}.denselayer{l}.norm1"
            reads = G.nodes[inputs_of(G, first)[0]]["shape"][0]
            assert reads == block_input + K * (l - 1), (first, reads)
            upstream = nx.ancestors(G, first)
            assert all(f"{scope}.denselayer{j}.conv2" in upstream for j in range(1, l))
            assert G.nodes[f"{scope}.denselayer{l}.conv2"]["shape"][0] == K        # k new maps
        out = block_input + K * layers
        assert block_output(G, "densenet121", block)[0] == out
        block_input = out // 2                                   # compression theta = 0.5


def test_densenet201_has_20m_parameters():
    # Section 4 (ImageNet results): "a DenseNet-201 with 20M parameters" (torchvision: 20,013,928).
    check_figure(load(FILE, "densenet201").cost.params, 20, M)


@pytest.mark.usefixtures("torch_one_thread")
def test_forward_on_a_small_batch():
    # 32x32 is the smallest input that survives the five halvings (to 1x1 before the global pool).
    _, out = check_forward(FILE, "densenet121", batch=2, input=(3, 32, 32))
    assert tuple(out.shape) == (2, 1000)
