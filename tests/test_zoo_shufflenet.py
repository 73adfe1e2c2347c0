"""ShuffleNet V2 (architectures/shufflenet.net) against torchvision's golden listings (0.5x and
1.0x: keys, shapes, order, parameter split, published GFLOPS), torchvision 0.29.1's published
figures for 1.5x and 2.0x (its weights' meta, quoted here), and MACs recomputed here from the
paper's layer table (Table 5) by plain arithmetic, never read back from netlang."""
from pathlib import Path

import pytest

from netlang.ir import inputs_of
from zoo_checks import check_forward, check_torchvision_macs, check_torchvision_state_dict, golden, load

ROOT = Path(__file__).resolve().parents[1]
WIDTHS = {"shufflenet_v2_x0_5": (48, 96, 192, 1024), "shufflenet_v2_x1_0": (116, 232, 464, 1024),
          "shufflenet_v2_x1_5": (176, 352, 704, 1024), "shufflenet_v2_x2_0": (244, 488, 976, 2048)}
# torchvision 0.29.1, ShuffleNet_V2_X*_Weights.IMAGENET1K_V1.meta: num_params and _ops ("GFLOPS")
PUBLISHED = {"shufflenet_v2_x0_5": (1_366_792, 0.040), "shufflenet_v2_x1_0": (2_278_604, 0.145),
             "shufflenet_v2_x1_5": (3_503_624, 0.296), "shufflenet_v2_x2_0": (7_393_996, 0.583)}


def macs_by_hand(widths) -> int:
    """Table 5: conv1 3x3/2 to 24 at 112, maxpool to 56, stages of 4, 8, 4 units at 28, 14, 7,
    conv5 1x1, fc. A stride-2 unit: branch1 is a depthwise 3x3/2 and a 1x1 from its input width to
    half the output width, branch2 a 1x1 at the input size, a depthwise 3x3/2 and a 1x1; a
    stride-1 unit's branch2 the same on half the channels at one size."""
    macs = 24 * 3 * 9 * 112 * 112
    cin, side = 24, 56
    for out, units in zip(widths[:3], (4, 8, 4)):
        half, side = out // 2, side // 2
        macs += (cin * 9 + cin * half) * side * side                               # branch1
        macs += cin * half * (2 * side) ** 2 + (half * 9 + half * half) * side * side   # branch2
        macs += (units - 1) * (half * half * 2 + half * 9) * side * side
        cin = out
    return macs + cin * widths[3] * 7 * 7 + widths[3] * 1000


@pytest.mark.parametrize("model", ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0"])
def test_state_dict_and_macs_are_torchvisions(model):
    net = load("shufflenet.net", model)
    check_torchvision_state_dict(net, model)
    check_torchvision_macs(net, model, rel=2e-2)      # (0.5x is published as 0.04)
    assert golden(model)["meta"]["num_params"] == PUBLISHED[model][0]
    assert golden(model)["meta"]["gflops"] == PUBLISHED[model][1]


@pytest.mark.parametrize("model", sorted(WIDTHS))
def test_params_and_macs_against_the_published_and_the_layer_table(model):
    net = load("shufflenet.net", model)
    params, gflops = PUBLISHED[model]
    assert net.cost.params == params
    assert net.cost.macs == macs_by_hand(WIDTHS[model])
    assert round(net.cost.macs / 1e9, 3) == gflops
    # the zoo page quotes both
    row = f"| {model} | {params:,} | {params:,} | {gflops:g} | {round(net.cost.macs / 1e9, 3):g} | torchvision 0.29.1 |"
    assert row in (ROOT / "docs" / "zoo.md").read_text()


def test_units_split_and_shuffle_as_torchvision_does():
    net = load("shufflenet.net", "shufflenet_v2_x1_0")
    G = net.graph
    # stage2.1: x.chunk(2, dim=1) -- the first half passes, the second goes into branch2
    parts = [G.nodes[f"stage2.1.0:part{i}"]["args"] for i in range(2)]
    assert parts == [{"start": 0, "stop": 58}, {"start": 58, "stop": 116}]
    assert inputs_of(G, "stage2.1.branch2.0") == ["stage2.1.0:part1"]
    assert G.nodes["stage2.1.3"]["op"] == "channel_shuffle" and G.nodes["stage2.1.3"]["args"] == {"groups": 2}
    # stage2.0 (stride 2): both branches read the whole input
    assert inputs_of(G, "stage2.0.branch1.0") == inputs_of(G, "stage2.0.branch2.0") == ["maxpool"]
    assert tuple(net.cost.scope_cost("stage4").shape) == (464, 7, 7) and net.shape("fc") == (1000,)


def test_forward_at_a_small_input():
    check_forward("shufflenet.net", "shufflenet_v2_x0_5", input=(3, 64, 64))
