"""The torchvision golden files (tests/golden/torchvision/) are whole and agree with themselves.

They were written by tools/torchvision_golden.py in an environment with torchvision; these checks
need neither torchvision nor netlang. The parameter counts are summed here from the stored shapes
and held against the counts torchvision publishes for its weights, and the weight and input
formulas of outputs/*.json are rebuilt here and held against the sums the generator stored.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "torchvision"

MODELS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
    "resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2",
    "vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn",
    "alexnet", "googlenet", "inception_v3",
    "densenet121", "densenet169", "densenet201", "squeezenet1_0", "squeezenet1_1",
    "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "mnasnet1_0",
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "convnext_tiny", "regnet_y_400mf", "regnet_x_400mf",
]
TIMM_MODELS = ["seresnet50"]          # timm's, for its key layout (no published GFLOPS)
# torchvision's detection backbones: no published figures, several outputs, frozen batchnorms
DETECTION_MODELS = ["resnet50_fpn"]
FPN_OUTPUTS = ["0", "1", "2", "3", "pool"]
OUTPUT_MODELS = ["resnet18", "squeezenet1_1", "googlenet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                 "efficientnet_b0", "mnasnet1_0", "seresnet50", "shufflenet_v2_x0_5",
                 "convnext_tiny", "regnet_y_400mf", "resnet50_fpn"]
FIELDS = {
    "model": str, "constructor": str, "torch": str, "torchvision": str, "input_size": list,
    "output_shape": list, "num_params": int, "num_buffers_elems": int, "buffers": list,
    "meta": dict, "state_dict": list, "module_names": list,
}
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def load(name: str, sub: str = "") -> dict:
    return json.loads((GOLDEN / sub / f"{name}.json").read_text())


def numel(shape) -> int:
    return math.prod(shape)


def test_exactly_the_expected_files_are_there():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(MODELS + TIMM_MODELS + DETECTION_MODELS)
    assert sorted(p.stem for p in (GOLDEN / "outputs").glob("*.json")) == sorted(OUTPUT_MODELS)
    assert (GOLDEN / "README.md").is_file()


def frozen_affine(d: dict) -> set:
    """The weight and bias buffers of a detection backbone's FrozenBatchNorm2d layers."""
    types = dict(d["module_names"])
    return {k for k, _, _ in d["state_dict"]
            if types.get(k.rpartition(".")[0]) == "FrozenBatchNorm2d" and k.endswith((".weight", ".bias"))}


@pytest.mark.parametrize("name", MODELS + TIMM_MODELS + DETECTION_MODELS)
def test_description_fields_and_counts(name):
    d = load(name)
    for field, kind in FIELDS.items():
        assert isinstance(d.get(field), kind), field
    assert d["model"] == name
    if name in TIMM_MODELS:
        assert d["constructor"] == f"timm.create_model({name!r}, pretrained=False)"
        assert d["meta"]["source"].startswith("timm ")
    elif name in DETECTION_MODELS:
        assert d["constructor"] == ("torchvision.models.detection.backbone_utils.resnet_fpn_backbone("
                                    "backbone_name='resnet50', weights=None)")
        assert d["output_names"] == FPN_OUTPUTS
    else:
        assert d["constructor"].startswith(f"torchvision.models.{name}(weights=None")
    assert d["input_size"] == [3, 299, 299] if name == "inception_v3" else [3, 224, 224]
    if name in DETECTION_MODELS:
        # strides 4, 8, 16, 32 and the extra max pool's 64, 256 channels each
        assert d["output_shape"] == [[1, 256, 56, 56], [1, 256, 28, 28], [1, 256, 14, 14], [1, 256, 7, 7],
                                     [1, 256, 4, 4]]
    else:
        assert d["output_shape"] == [1, 1000]

    keys = [k for k, _, _ in d["state_dict"]]
    assert len(keys) == len(set(keys)), "state_dict keys repeat"
    for key, shape, dtype in d["state_dict"]:
        assert all(isinstance(s, int) and s > 0 for s in shape), key
        assert dtype == ("int64" if key.endswith("num_batches_tracked") else "float32"), key
    buffers = set(d["buffers"])
    assert buffers <= set(keys)
    # these architectures hold no buffers but batch-norm statistics, and a frozen batchnorm's
    # weight and bias (no num_batches_tracked there)
    assert buffers == {k for k in keys if k.endswith(BUFFER_SUFFIXES)} | frozen_affine(d)
    if name in DETECTION_MODELS:
        assert not any(k.endswith("num_batches_tracked") for k in keys)
        assert len(frozen_affine(d)) == 2 * 53          # the stem's and 52 in the bottlenecks
    assert d["buffers"] == [k for k in keys if k in buffers], "buffers not in state_dict order"

    params = sum(numel(s) for k, s, _ in d["state_dict"] if k not in buffers)
    assert params == d["num_params"]
    assert sum(numel(s) for k, s, _ in d["state_dict"] if k in buffers) == d["num_buffers_elems"]


@pytest.mark.parametrize("name", MODELS + TIMM_MODELS + DETECTION_MODELS)
def test_module_names_hold_every_state_dict_owner(name):
    d = load(name)
    names = [n for n, _ in d["module_names"]]
    assert len(names) == len(set(names))
    assert names[0] == "" and all(isinstance(t, str) and t for _, t in d["module_names"])
    owners = {k.rpartition(".")[0] for k, _, _ in d["state_dict"]}
    assert owners <= set(names)
    types = dict(d["module_names"])
    for k, shape, _ in d["state_dict"]:
        owner = types[k.rpartition(".")[0]]
        if k.endswith(".weight") and len(shape) == 4:
            assert owner == "Conv2d", k
        elif k.endswith(BUFFER_SUFFIXES):
            assert owner.startswith("BatchNorm") or owner == "FrozenBatchNorm2d", k
        elif k.endswith(".layer_scale"):
            # a parameter of the block itself, not of a child (netlang's layer_scale layer)
            assert owner == "CNBlock" and shape[1:] == [1, 1], k
        elif k.endswith(".weight") and len(shape) == 2:
            assert owner == "Linear", k


@pytest.mark.parametrize("name", MODELS)
def test_published_cost_is_recorded(name):
    d = load(name)
    meta = d["meta"]
    # torchvision publishes weights, and so GFLOPS (multiply-accumulates), for every model here
    assert isinstance(meta.get("gflops"), float) and meta["gflops"] > 0
    assert meta["file_size"] > 0 and meta["file_size_unit"] == "MB"
    assert meta["weights"].endswith(".IMAGENET1K_V1") or meta["weights"].endswith(".IMAGENET1K_V2")
    if name == "googlenet":
        # the published count is that of the released weights, which have no auxiliary heads
        shapes = {k: s for k, s, _ in d["state_dict"]}
        plain = d["state_dict_keys_aux_logits_false"]
        assert set(plain) <= set(shapes)
        assert {k.split(".")[0] for k in set(shapes) - set(plain)} == {"aux1", "aux2"}
        buffers = set(d["buffers"])
        plain_params = sum(numel(shapes[k]) for k in plain if k not in buffers)
        assert plain_params == d["num_params_aux_logits_false"] == meta["num_params"]
        assert d["num_params"] > meta["num_params"]
    else:
        assert meta["num_params"] == d["num_params"]
    # a weight variant of the same architecture has the same cost
    for other in meta.get("other_weights", {}).values():
        assert other["gflops"] == meta["gflops"] and other["num_params"] == meta["num_params"]


def test_published_gflops_are_conv_and_linear_macs():
    # alexnet at 224: conv and linear layers, from the layer table, summed here
    convs = [  # (out channels, in channels, kernel, output side)
        (64, 3, 11, 55), (192, 64, 5, 27), (384, 192, 3, 13), (256, 384, 3, 13), (256, 256, 3, 13)]
    macs = sum(co * ci * k * k * s * s for co, ci, k, s in convs)
    macs += 256 * 6 * 6 * 4096 + 4096 * 4096 + 4096 * 1000
    assert load("alexnet")["meta"]["gflops"] == pytest.approx(macs / 1e9, abs=0.0005)

    # resnet18: the stem, four stages of two basic blocks (a 1x1 projection where a stage starts,
    # after the first), the classifier; batch norm, relu, pooling and additions count nothing
    macs = 64 * 3 * 7 * 7 * 112 * 112 + 4 * 64 * 64 * 9 * 56 * 56
    for c, s in ((128, 28), (256, 14), (512, 7)):
        macs += (c * c // 2 * 9 + 3 * c * c * 9 + c * c // 2) * s * s
    macs += 512 * 1000
    assert load("resnet18")["meta"]["gflops"] == pytest.approx(macs / 1e9, abs=0.0005)

    # convnext_tiny: the 4x4 stride-4 stem; per block a 7x7 depthwise conv and two pointwise
    # linears (C -> 4C -> C) at every pixel; a 2x2 stride-2 conv between stages; the classifier.
    # LayerNorm, GELU, the layer scale and the additions count nothing.
    macs = 96 * 3 * 4 * 4 * 56 * 56
    for c, side, depth in ((96, 56, 3), (192, 28, 3), (384, 14, 9), (768, 7, 3)):
        macs += depth * (c * 49 + 2 * c * 4 * c) * side * side
        if c < 768:
            macs += 2 * c * c * 2 * 2 * (side // 2) ** 2
    macs += 768 * 1000
    assert load("convnext_tiny")["meta"]["gflops"] == pytest.approx(macs / 1e9, abs=0.0005)


def test_detection_backbones_record_measured_macs():
    # resnet50_fpn at 224: the ResNet-50 body without its classifier, then the FPN's 1x1 laterals
    # and 3x3 output convs at the four levels; the max pool, additions and upsampling count nothing
    body = 64 * 3 * 7 * 7 * 112 * 112
    c_in = 64
    for width, blocks, side in ((64, 3, 56), (128, 4, 28), (256, 6, 14), (512, 3, 7)):
        stride = 1 if width == 64 else 2
        for b in range(blocks):
            cin = c_in if b == 0 else 4 * width
            body += cin * width * (side * stride) ** 2 if b == 0 else cin * width * side * side   # conv1 (1x1)
            body += width * width * 9 * side * side + width * 4 * width * side * side            # conv2, conv3
            if b == 0:
                body += cin * 4 * width * side * side                                             # downsample
        c_in = 4 * width
    fpn = sum(c * 256 * s * s + 256 * 256 * 9 * s * s for c, s in ((256, 56), (512, 28), (1024, 14), (2048, 7)))
    assert load("resnet50_fpn")["meta"]["measured_macs"]["3x224x224"] == body + fpn
    assert set(load("resnet50_fpn")["meta"]["measured_macs"]) == {"3x224x224", "3x800x800"}


# ------------------------------------------------------------------ outputs/

def pattern(n: int, torch):
    j = torch.arange(n, dtype=torch.int64)
    return ((j * 7919) % 1009).to(torch.float64) / 504.0 - 1.0


def fill_value(key: str, shape, torch):
    """The float64 tensor the fill rules of outputs/*.json give one state_dict entry."""
    n = numel(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    if key.endswith("running_mean"):
        v = 0.1 * pattern(n, torch)
    elif key.endswith("running_var"):
        v = 1.25 + 0.25 * pattern(n, torch)
    elif key.endswith("bias"):
        v = 0.1 * pattern(n, torch)
    elif key.endswith("weight") and len(shape) == 1:
        v = 1.0 + 0.25 * pattern(n, torch)
    elif key.endswith("layer_scale"):
        v = 0.5 * pattern(n, torch)
    else:
        v = math.sqrt(6.0 / (n // shape[0])) * pattern(n, torch)
    return v.reshape(shape)


def input_image(side: int, torch):
    c = torch.arange(3, dtype=torch.float64).view(3, 1, 1)
    h = torch.arange(side, dtype=torch.float64).view(1, side, 1)
    w = torch.arange(side, dtype=torch.float64).view(1, 1, side)
    return torch.sin(0.37 * (c + 1) * h + 0.23 * w + 0.11 * h * w + c).unsqueeze(0)


@pytest.mark.parametrize("name", OUTPUT_MODELS)
def test_output_file_fields(name):
    g = load(name, "outputs")
    d = load(name)
    assert g["model"] == name and g["constructor"] == d["constructor"] and g["mode"] == "eval"
    assert g["input_shape"][:2] == [1, 3]
    if name in DETECTION_MODELS:
        # five maps, each flattened, one after the other
        assert g["output_names"] == FPN_OUTPUTS and len(g["output_shape"]) == 5
        assert len(g["output"]) == sum(numel(s) for s in g["output_shape"])
    else:
        assert g["output_shape"] == [1, 1000]
        assert len(g["output"]) == numel(g["output_shape"])
    assert all(isinstance(v, float) and math.isfinite(v) for v in g["output"])
    # not a degenerate output: the logits spread (a third of their range or more; ShuffleNet's
    # at 64x64 have std 0.09 for a largest 0.22), so a wrong network cannot match by accident
    stats = g["output_stats"]
    # (feature maps have heavier tails: the FPN's std is a quarter of its largest magnitude)
    spread = 0.2 if name in DETECTION_MODELS else 0.3
    assert stats["std"] > 0.05 and stats["std"] > spread * max(stats["max"], -stats["min"])
    assert max(g["output"]) == stats["max"] and min(g["output"]) == stats["min"]
    tol = g["tolerance"]
    assert 0 < tol["atol"] < 1e-2 and 0 < tol["rtol"] <= 1e-3 and tol["why"]
    assert [k for k, _ in g["fill_sums"]] == [k for k, _, _ in d["state_dict"]]
    # the layer_scale rule is written only where the model has such entries
    has_scale = any(k.endswith("layer_scale") for k, _, _ in d["state_dict"])
    assert any("layer_scale" in rule for rule, _ in g["fill_rules"]) == has_scale
    # (an FPN's five maps of 256 channels at the smallest input that has them all, 32x32: 22,016 values)
    assert (GOLDEN / "outputs" / f"{name}.json").stat().st_size < (300_000 if name in DETECTION_MODELS else 200_000)


@pytest.mark.parametrize("name", OUTPUT_MODELS)
def test_fill_and_input_formulas_rebuild_the_stored_sums(name):
    torch = pytest.importorskip("torch")
    g = load(name, "outputs")
    shapes = {k: s for k, s, _ in load(name)["state_dict"]}
    for key, stored in g["fill_sums"]:
        v = fill_value(key, shapes[key], torch).to(torch.float32).to(torch.float64)
        assert float(v.sum()) == pytest.approx(stored, rel=1e-9, abs=1e-9), key
    side = g["input_shape"][2]
    x = input_image(side, torch).to(torch.float32).to(torch.float64)
    assert float(x.sum()) == pytest.approx(g["input_sum"], rel=1e-9, abs=1e-9)
