"""The segmentation networks of the zoo against their papers' figures:

- FCN-32s/16s/8s (architectures/fcn.net): Long, Shelhamer, Darrell, "Fully Convolutional
  Networks for Semantic Segmentation", CVPR 2015, Table 1, and the reference Caffe models;
- DeconvNet (architectures/deconvnet.net): Noh, Hong, Han, "Learning Deconvolution Network for
  Semantic Segmentation", ICCV 2015, Table 1 and its parameter count;
- U-Net (architectures/unet.net): Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for
  Biomedical Image Segmentation", MICCAI 2015, Figure 1 and Section 2.

Sizes are read from the IR (no torch needed); the forward passes check the torch lowering."""
import pytest

import netlang
from netlang.ir import inputs_of, topo_order, verify
from zoo_checks import ARCH, check_figure, check_forward, load

M = 10**6
FCNS = ["fcn32s", "fcn16s", "fcn8s"]


def side(G, node: str) -> int:
    c, h, w = G.nodes[node]["shape"]
    assert h == w, (node, h, w)
    return h


def chain_to(G, node: str) -> list[str]:
    """The layers from the input to `node`, following each layer's first input."""
    path = [node]
    while inputs_of(G, path[-1]):
        path.append(inputs_of(G, path[-1])[0])
    return path[::-1]


# ------------------------------------------------------------------------------- FCN

@pytest.mark.parametrize("name", FCNS)
@pytest.mark.parametrize("size", [(500, 500), (224, 224), (333, 417), (32, 32), (1, 1)])
def test_fcn_output_is_the_input_size(name, size):
    # 500x500 is the declared input (Table 1's timings); any size gives back its size.
    net = load("fcn.net", name, input=(3, *size))
    G = net.graph
    assert G.graph["outputs"] == ["score"]
    assert tuple(G.nodes["score"]["shape"]) == (21, *size)


def test_fcn_table_1_vgg16_column():
    """Table 1, FCN-VGG16: 16 conv. layers, rf size 404, max stride 32, 134M parameters. The
    receptive field and stride are worked out here from the kernels and strides on the path to
    score_fr; the parameters are the learned ones: the reference model's upsampling
    deconvolution is a fixed bilinear kernel (lr_mult 0), which netlang counts as state."""
    net = load("fcn.net", "fcn32s")
    G = net.graph
    path = chain_to(G, "score_fr")
    convs = [n for n in path if G.nodes[n]["op"] == "conv"]
    assert len(convs) == 16 and convs[-3:] == ["fc6", "fc7", "score_fr"]
    rf, stride = 1, 1
    for n in path:
        if G.nodes[n]["op"] in ("conv", "maxpool"):
            k, s = G.nodes[n]["args"]["k"][0], G.nodes[n]["args"]["stride"][0]
            rf += (k - 1) * stride
            stride *= s
    assert (rf, stride) == (404, 32)
    fixed = sum(c.params for c in net.cost.layers if c.op == "conv_t")
    assert fixed == 21 * 21 * 64 * 64                              # upscore: 64x64, no bias
    check_figure(net.cost.params - fixed, 134, M)
    assert net.cost.params == 136_152_917                          # 134,346,581 learned + fixed


@pytest.mark.parametrize("name, upscore, ref_offset", [
    ("fcn32s", "upscore", 19), ("fcn16s", "upscore16", 27), ("fcn8s", "upscore8", 31)])
def test_fcn_crops_at_500(name, upscore, ref_offset):
    """At 500x500 the skip crops cut the centre, which is where the reference models' crop layers
    cut (offsets 5 and 9); the final crop's centre is 3 pixels further in than the reference's
    fixed offset (the file's header explains it)."""
    G = load("fcn.net", name).graph
    assert side(G, "score_fr") == 16                               # 500 + 2 x 100 padding, /32
    if name != "fcn32s":
        assert (side(G, "score_pool4"), side(G, "upscore2")) == (44, 34)
        assert (side(G, "score_pool4") - side(G, "score_pool4c")) // 2 == 5
    if name == "fcn8s":
        assert (side(G, "score_pool3"), side(G, "upscore_pool4")) == (88, 70)
        assert (side(G, "score_pool3") - side(G, "score_pool3c")) // 2 == 9
    assert (side(G, upscore) - 500) // 2 == ref_offset + 3


@pytest.mark.usefixtures("torch_one_thread")
def test_fcn8s_forward():
    # FCN-8s holds every op of the three (score layers, crops, sums, deconvolutions). The first
    # conv's 100 pixels of padding make any input cost about 17G multiply-accumulates.
    check_forward("fcn.net", "fcn8s", batch=1, input=(3, 32, 32))


# ------------------------------------------------------------------------------- DeconvNet

# Table 1: each layer's output, channels x height x width.
DECONVNET_TABLE = {
    "conv1_1": (64, 224), "conv1_2": (64, 224), "pool1": (64, 112),
    "conv2_1": (128, 112), "conv2_2": (128, 112), "pool2": (128, 56),
    "conv3_1": (256, 56), "conv3_2": (256, 56), "conv3_3": (256, 56), "pool3": (256, 28),
    "conv4_1": (512, 28), "conv4_2": (512, 28), "conv4_3": (512, 28), "pool4": (512, 14),
    "conv5_1": (512, 14), "conv5_2": (512, 14), "conv5_3": (512, 14), "pool5": (512, 7),
    "fc6": (4096, 1), "fc7": (4096, 1), "fc6_deconv": (512, 7),
    "unpool5": (512, 14), "deconv5_1": (512, 14), "deconv5_2": (512, 14), "deconv5_3": (512, 14),
    "unpool4": (512, 28), "deconv4_1": (512, 28), "deconv4_2": (512, 28), "deconv4_3": (256, 28),
    "unpool3": (256, 56), "deconv3_1": (256, 56), "deconv3_2": (256, 56), "deconv3_3": (128, 56),
    "unpool2": (128, 112), "deconv2_1": (128, 112), "deconv2_2": (64, 112),
    "unpool1": (64, 224), "deconv1_1": (64, 224), "deconv1_2": (64, 224),
    "seg_score": (21, 224),
}


def test_deconvnet_table_1():
    net = load("deconvnet.net", "deconvnet")
    G = net.graph
    assert G.graph["outputs"] == ["seg_score"]                    # 224 -> 224
    got = {n: (G.nodes[n]["shape"][0], side(G, n)) for n in DECONVNET_TABLE}
    assert got == DECONVNET_TABLE
    layers = [n for n in topo_order(G) if G.nodes[n]["op"] in ("conv", "conv_t", "maxpool", "upsample")]
    assert layers == list(DECONVNET_TABLE)                        # and in the table's order
    # Batch normalisation and a ReLU after every conv and deconv but the output.
    for n in layers[:-1]:
        if G.nodes[n]["op"] in ("conv", "conv_t"):
            (after,) = G.successors(n)
            assert G.nodes[after]["op"] == "batchnorm"
            assert G.nodes[next(G.successors(after))]["op"] == "relu"


def test_deconvnet_has_252m_parameters():
    # "approximately 252M parameters" (implementation details); netlang: 251,805,653, batch-norm
    # scales and shifts included (33,408 of them).
    params = load("deconvnet.net", "deconvnet").cost.params
    check_figure(params, 252, M)
    assert params == 251_805_653


def test_deconvnet_needs_224():
    # fc6 is a 7x7 conv without padding on pool5, which is 7x7 only from a 224x224 input on:
    # there is no smaller input for a forward pass (tests/test_torch_ecosystem.py runs it at 224).
    with pytest.raises(netlang.NetlangError, match="kernel 7 is larger than the padded input 6"):
        netlang.load(ARCH / "deconvnet.net", input=(3, 223, 223))


# ------------------------------------------------------------------------------- U-Net

# Figure 1, every convolution in order: output channels and side. 3x3 convs lose 2 pixels, 2x2
# up-convolutions double the side, the last is the 1x1 conv to the 2 classes.
UNET_CONVS = [
    (64, 570), (64, 568), (128, 282), (128, 280), (256, 138), (256, 136),
    (512, 66), (512, 64), (1024, 30), (1024, 28),
    (512, 56), (512, 54), (512, 52),
    (256, 104), (256, 102), (256, 100),
    (128, 200), (128, 198), (128, 196),
    (64, 392), (64, 390), (64, 388),
    (2, 388),
]


def test_unet_figure_1():
    G = load("unet.net", "unet").graph
    assert G.nodes["input"]["shape"] == (1, 572, 572)
    assert G.graph["outputs"] == ["head"] and G.nodes["head"]["shape"] == (2, 388, 388)
    order = topo_order(G)
    convs = [n for n in order if G.nodes[n]["op"] in ("conv", "conv_t")]
    assert len(convs) == 23                     # "In total the network has 23 convolutional layers."
    assert [(G.nodes[n]["shape"][0], side(G, n)) for n in convs] == UNET_CONVS
    assert [side(G, n) for n in order if G.nodes[n]["op"] == "maxpool"] == [284, 140, 68, 32]
    # Each skip: the copied map, centre-cropped, then the upsampled one (channels double).
    concats = [n for n in order if G.nodes[n]["op"] == "concat"]
    assert [(G.nodes[n]["shape"][0], side(G, n)) for n in concats] == [(1024, 56), (512, 104), (256, 200), (128, 392)]
    for n, skip, up in zip(concats, ["down4", "down3", "down2", "down1"], ["up4", "up3", "up2", "up1"]):
        first, second = inputs_of(G, n)
        assert first.startswith(skip + ".") and inputs_of(G, second) == [up]


def test_unet_parameters():
    # Worked out from the channels of Figure 1: 3x3 convs (9 c_in + 1) c_out, 2x2 up-convolutions
    # (4 c_in + 1) c_out, the 1x1 head (64 + 1) x 2.
    widths = [64, 128, 256, 512, 1024]
    down = sum((9 * cin + 1) * c + (9 * c + 1) * c for cin, c in zip([1] + widths[:-1], widths))
    up = sum((4 * 2 * c + 1) * c + (9 * 2 * c + 1) * c + (9 * c + 1) * c for c in widths[:-1])
    expected = down + up + (64 + 1) * 2
    assert expected == 31_030_658
    assert load("unet.net", "unet").cost.params == expected


@pytest.mark.parametrize("n", [4, 5, 28])
def test_unet_input_sizes(n):
    # Inputs 16n + 124 give every 2x2 pool an even size and an output of 16n - 60.
    net = netlang.load(ARCH / "unet.net", input=(1, 16 * n + 124, 16 * n + 124))
    verify(net.graph)
    assert net.graph.nodes["head"]["shape"] == (2, 16 * n - 60, 16 * n - 60)


@pytest.mark.usefixtures("torch_one_thread")
def test_unet_forward():
    # 188x188 is the smallest input (a 4x4 map); 6.1G multiply-accumulates.
    check_forward("unet.net", "unet", batch=1, input=(1, 188, 188))
