"""Write the torchvision golden files under tests/golden/torchvision/.

The tests read these files without torchvision installed; this script is the only place that needs
it. Run it with the Python of any environment that has torch 2.14.1 and torchvision 0.29.1 (the
versions the committed files came from), never the project's own environment:

    python3 -m venv /path/to/venv-with-torchvision
    /path/to/venv-with-torchvision/bin/pip install torch==2.14.1 torchvision==0.29.1
    /path/to/venv-with-torchvision/bin/pip install --no-deps timm==1.0.31
    /path/to/venv-with-torchvision/bin/pip install pyyaml huggingface_hub safetensors
    /path/to/venv-with-torchvision/bin/python tools/torchvision_golden.py

A model whose weights enum is None comes from timm (timm.create_model(name, pretrained=False));
its file names timm's version, and its meta holds no published GFLOPS (timm's model configs
carry none).

It writes, for each model in MODELS, `<model>.json` (state_dict layout, parameter and buffer
counts, module names, output shape, and the cost torchvision publishes for its weights), and, for
the few small models in OUTPUT_MODELS, `outputs/<model>.json`: the logits of the model filled
with the weights of `fill_value` on the input of `input_image`, both plain formulas that a test can
rebuild without torchvision. The output is deterministic: running it twice writes the same bytes.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch
import torchvision
from torchvision import models

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "golden" / "torchvision"

# name -> (constructor keyword arguments, weights enum, input side)
MODELS = {
    "resnet18": ({}, models.ResNet18_Weights, 224),
    "resnet34": ({}, models.ResNet34_Weights, 224),
    "resnet50": ({}, models.ResNet50_Weights, 224),
    "resnet101": ({}, models.ResNet101_Weights, 224),
    "resnet152": ({}, models.ResNet152_Weights, 224),
    "resnext50_32x4d": ({}, models.ResNeXt50_32X4D_Weights, 224),
    "resnext101_32x8d": ({}, models.ResNeXt101_32X8D_Weights, 224),
    "wide_resnet50_2": ({}, models.Wide_ResNet50_2_Weights, 224),
    "vgg11": ({}, models.VGG11_Weights, 224),
    "vgg13": ({}, models.VGG13_Weights, 224),
    "vgg16": ({}, models.VGG16_Weights, 224),
    "vgg19": ({}, models.VGG19_Weights, 224),
    "vgg11_bn": ({}, models.VGG11_BN_Weights, 224),
    "vgg13_bn": ({}, models.VGG13_BN_Weights, 224),
    "vgg16_bn": ({}, models.VGG16_BN_Weights, 224),
    "vgg19_bn": ({}, models.VGG19_BN_Weights, 224),
    "alexnet": ({}, models.AlexNet_Weights, 224),
    "googlenet": ({"aux_logits": True, "init_weights": False}, models.GoogLeNet_Weights, 224),
    "inception_v3": ({"aux_logits": True, "init_weights": False}, models.Inception_V3_Weights, 299),
    "densenet121": ({}, models.DenseNet121_Weights, 224),
    "densenet169": ({}, models.DenseNet169_Weights, 224),
    "densenet201": ({}, models.DenseNet201_Weights, 224),
    "squeezenet1_0": ({}, models.SqueezeNet1_0_Weights, 224),
    "squeezenet1_1": ({}, models.SqueezeNet1_1_Weights, 224),
    "mobilenet_v2": ({}, models.MobileNet_V2_Weights, 224),
    "mobilenet_v3_small": ({}, models.MobileNet_V3_Small_Weights, 224),
    "mobilenet_v3_large": ({}, models.MobileNet_V3_Large_Weights, 224),
    "efficientnet_b0": ({}, models.EfficientNet_B0_Weights, 224),
    "mnasnet1_0": ({}, models.MNASNet1_0_Weights, 224),
    "seresnet50": ({}, None, 224),
    "shufflenet_v2_x0_5": ({}, models.ShuffleNet_V2_X0_5_Weights, 224),
    "shufflenet_v2_x1_0": ({}, models.ShuffleNet_V2_X1_0_Weights, 224),
    "convnext_tiny": ({}, models.ConvNeXt_Tiny_Weights, 224),
    "regnet_y_400mf": ({}, models.RegNet_Y_400MF_Weights, 224),
    "regnet_x_400mf": ({}, models.RegNet_X_400MF_Weights, 224),
    "resnet50_fpn": ({"backbone_name": "resnet50"}, None, 224),
}
# Detection backbones: built by torchvision.models.detection.backbone_utils; torchvision publishes
# no figures for them, so their meta holds the MACs of their convolutions and linear layers,
# counted here with forward hooks at each side of DETECTION_SIDES.
DETECTION = {"resnet50_fpn"}
DETECTION_SIDES = (224, 800)

# Models small enough to store a forward pass for: name -> input side.
OUTPUT_MODELS = {"resnet18": 64, "squeezenet1_1": 64, "googlenet": 64, "mobilenet_v2": 64, "mobilenet_v3_small": 64,
                 "mobilenet_v3_large": 64, "efficientnet_b0": 64, "mnasnet1_0": 64, "seresnet50": 64,
                 "shufflenet_v2_x0_5": 64, "convnext_tiny": 64,
                 "regnet_y_400mf": 64, "resnet50_fpn": 32}

# ------------------------------------------------------------------ the fill, stated as data
# Every number below is copied into each outputs/*.json, so a test can rebuild the same tensors.
PATTERN_MUL, PATTERN_MOD = 7919, 1009
PATTERN_TEXT = (
    "pattern(n)[j] = ((j * 7919) mod 1009) / 504 - 1 for j = 0..n-1, the product in int64, the "
    "division in float64; values in [-1, 1], mean ~0, variance ~1/3"
)
FILL_RULES = [
    # (which entries, formula); the first rule that matches a state_dict entry applies.
    ("key ends with 'num_batches_tracked'", "0"),
    ("key ends with 'running_mean'", "0.1 * pattern(numel)"),
    ("key ends with 'running_var'", "1.25 + 0.25 * pattern(numel)"),
    ("key ends with 'bias'", "0.1 * pattern(numel)"),
    ("key ends with 'weight', ndim == 1 (batch norm scale)", "1 + 0.25 * pattern(numel)"),
    ("key ends with 'weight', ndim >= 2 (conv, linear)",
     "sqrt(6 / fan_in) * pattern(numel), fan_in = numel / shape[0]"),
]
# Rules for entries only some models have, appended to a file's fill_rules only where its model has
# such an entry (the files of the other models keep their bytes).
EXTRA_RULES = [
    ("key ends with 'layer_scale' (ConvNeXt's per-channel scale, shape (C, 1, 1))", "0.5 * pattern(numel)"),
]
FILL_TEXT = (
    "For each state_dict entry, by key and shape only: values = formula reshaped (row-major, as "
    "torch.reshape) to the entry's shape, computed in float64 and cast to float32 (a float32 "
    "entry). The formula of the first matching rule applies."
)
INPUT_TEXT = (
    "input[0, c, h, w] = float32(sin(0.37 * (c + 1) * h + 0.23 * w + 0.11 * h * w + c)), "
    "c, h, w counted from 0, computed in float64 (a smooth image, unrelated to pattern's lattice)"
)


def fill_rules(keys: list) -> list:
    """FILL_RULES, and the EXTRA_RULES some key of `keys` needs."""
    extra = [r for r in EXTRA_RULES if any(k.endswith("layer_scale") for k in keys)]
    return FILL_RULES + extra


def pattern(n: int) -> torch.Tensor:
    j = torch.arange(n, dtype=torch.int64)
    return ((j * PATTERN_MUL) % PATTERN_MOD).to(torch.float64) / 504.0 - 1.0


def input_image(side: int) -> torch.Tensor:
    """The float64 input of INPUT_TEXT, shape [1, 3, side, side]."""
    c = torch.arange(3, dtype=torch.float64).view(3, 1, 1)
    h = torch.arange(side, dtype=torch.float64).view(1, side, 1)
    w = torch.arange(side, dtype=torch.float64).view(1, 1, side)
    return torch.sin(0.37 * (c + 1) * h + 0.23 * w + 0.11 * h * w + c).unsqueeze(0)


def fill_value(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The float64 tensor FILL_RULES gives state_dict entry `key` of `shape`."""
    n = math.prod(shape)
    if key.endswith("num_batches_tracked"):
        return torch.zeros(shape, dtype=torch.float64)
    if key.endswith("running_mean"):
        v = 0.1 * pattern(n)
    elif key.endswith("running_var"):
        v = 1.25 + 0.25 * pattern(n)
    elif key.endswith("bias"):
        v = 0.1 * pattern(n)
    elif key.endswith("weight") and len(shape) == 1:
        v = 1.0 + 0.25 * pattern(n)
    elif key.endswith("weight"):
        v = math.sqrt(6.0 / (n // shape[0])) * pattern(n)
    elif key.endswith("layer_scale"):
        v = 0.5 * pattern(n)
    else:
        raise ValueError(f"no fill rule for state_dict entry {key!r}")
    return v.reshape(shape)


# ------------------------------------------------------------------ helpers

def build(name: str, **kwargs) -> torch.nn.Module:
    kw = dict(MODELS[name][0])
    kw.update(kwargs)
    torch.manual_seed(0)
    if name in DETECTION:
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        return resnet_fpn_backbone(weights=None, **kw).eval()
    if MODELS[name][1] is None:
        import timm
        return timm.create_model(name, pretrained=False, **kw).eval()
    return getattr(models, name)(weights=None, **kw).eval()


def _timm_version() -> str:
    import timm
    return timm.__version__


def constructor_text(name: str) -> str:
    if name in DETECTION:
        args = [f"{k}={v!r}" for k, v in MODELS[name][0].items()] + ["weights=None"]
        return f"torchvision.models.detection.backbone_utils.resnet_fpn_backbone({', '.join(args)})"
    if MODELS[name][1] is None:
        return f"timm.create_model({name!r}, pretrained=False)"
    args = ["weights=None"] + [f"{k}={v!r}" for k, v in MODELS[name][0].items()]
    return f"torchvision.models.{name}({', '.join(args)})"


def f32(x: float) -> float:
    """The shortest decimal that reads back as the same float32."""
    return float(str(np.float32(x)))


def published_meta(enum) -> dict:
    default = enum.DEFAULT
    m = default.meta
    meta = {"weights": f"{enum.__name__}.{default.name}"}
    if "_ops" in m:
        meta["gflops"] = m["_ops"]
    if "num_params" in m:
        meta["num_params"] = m["num_params"]
    if "_file_size" in m:
        meta["file_size"] = m["_file_size"]
        meta["file_size_unit"] = "MB"
    others = {}
    for w in enum:
        if w is default:
            continue
        o = {k: w.meta[src] for k, src in (("gflops", "_ops"), ("num_params", "num_params"),
                                            ("file_size", "_file_size")) if src in w.meta}
        others[w.name] = o
    if others:
        meta["other_weights"] = others
    return meta


def dumps_compact(obj: dict, list_keys: tuple[str, ...]) -> str:
    """JSON with one line per item of the lists named in `list_keys`, everything else inline."""
    lines = ["{"]
    items = list(obj.items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if k in list_keys and isinstance(v, list) and v:
            lines.append(f"  {json.dumps(k)}: [")
            for j, e in enumerate(v):
                c = "," if j < len(v) - 1 else ""
                lines.append(f"    {json.dumps(e)}{c}")
            lines.append(f"  ]{comma}")
        else:
            lines.append(f"  {json.dumps(k)}: {json.dumps(v)}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def outputs_of(out) -> list:
    """A model's outputs as a list of (name, tensor): a detection backbone's OrderedDict of maps,
    or ("", logits)."""
    return list(out.items()) if isinstance(out, dict) else [("", out)]


def measured_macs(model: torch.nn.Module, side: int) -> int:
    """Multiply-accumulates of the model's convolutions and linear layers on a 3 x side x side
    input: per output element, in_channels / groups times the kernel's size (a linear: in_features)."""
    total = [0]

    def hook(m, inputs, out):
        if isinstance(m, torch.nn.Conv2d):
            total[0] += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        else:
            total[0] += out.numel() * m.in_features

    hooks = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, 3, side, side))
    for h in hooks:
        h.remove()
    return total[0]


# ------------------------------------------------------------------ the two kinds of file

def describe(name: str) -> dict:
    kwargs, enum, side = MODELS[name]
    model = build(name)
    buffer_names = {n for n, _ in model.named_buffers()}
    sd = model.state_dict()
    state = [[k, list(t.shape), str(t.dtype).replace("torch.", "")] for k, t in sd.items()]
    with torch.no_grad():
        outs = outputs_of(model(torch.zeros(1, 3, side, side)))
    if name in DETECTION:
        meta = {"source": f"torchvision {torchvision.__version__}: no published figures for the bare backbone",
                "measured_macs": {f"3x{s}x{s}": measured_macs(model, s) for s in DETECTION_SIDES}}
    elif enum is not None:
        meta = published_meta(enum)
    else:
        meta = {"source": f"timm {_timm_version()}"}
    doc = {
        "model": name,
        "constructor": constructor_text(name),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "input_size": [3, side, side],
        "output_shape": list(outs[0][1].shape) if len(outs) == 1 else [list(t.shape) for _, t in outs],
        "num_params": sum(p.numel() for p in model.parameters()),
        "num_buffers_elems": sum(b.numel() for b in model.buffers()),
        "buffers": [k for k in sd if k in buffer_names],
        "meta": meta,
        "state_dict": state,
        "module_names": [[n, type(m).__name__] for n, m in model.named_modules()],
    }
    if len(outs) > 1:
        doc["output_names"] = [k for k, _ in outs]
    if name == "googlenet":
        plain = build(name, aux_logits=False)
        doc["state_dict_keys_aux_logits_false"] = list(plain.state_dict().keys())
        doc["num_params_aux_logits_false"] = sum(p.numel() for p in plain.parameters())
    return doc


def forward_golden(name: str) -> dict:
    side = OUTPUT_MODELS[name]
    model = build(name)
    sd = model.state_dict()
    filled, sums = type(sd)(), []
    filled._metadata = sd._metadata       # (MNASNet's loader reads its version from it)
    for k, t in sd.items():
        v = fill_value(k, tuple(t.shape))
        filled[k] = v.to(t.dtype)
        sums.append([k, float(v.to(t.dtype).to(torch.float64).sum())])
    model.load_state_dict(filled, strict=True)
    x64 = input_image(side).float().double()     # the float32 input, held in float64
    with torch.no_grad():
        refs = outputs_of(model.double()(x64))                  # the reference: float64 throughout
        got32 = torch.cat([t.flatten() for _, t in outputs_of(model.float()(x64.float()))])  # float32 on CPU
    # (several outputs: each flattened, one after the other, in the model's order)
    ref = torch.cat([t.flatten() for _, t in refs])
    err = (got32.double().flatten() - ref).abs()
    scale = float(ref.abs().max())
    # Tolerance: 50x the float32-vs-float64 error seen here, at least 1e-4 of the logit scale;
    # float32 runs that sum in another order (another conv algorithm, another library) stay inside.
    atol = max(50 * float(err.max()), 1e-4 * scale)
    atol = float(f"{atol:.1e}")
    return {
        "model": name,
        "constructor": constructor_text(name),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "mode": "eval",
        "input_shape": [1, 3, side, side],
        "pattern": PATTERN_TEXT,
        "input": INPUT_TEXT,
        "fill": FILL_TEXT,
        "fill_rules": [list(r) for r in fill_rules(list(sd))],
        "input_sum": float(x64.sum()),
        "reference": "float64 forward of the float32-rounded weights and input, rounded to float32",
        "tolerance": {
            "atol": atol,
            "rtol": 1e-4,
            "why": "float32 accumulation order differs between conv algorithms; "
                   f"a float32 CPU forward here was off by at most {float(err.max()):.2e} "
                   f"(logits up to {scale:.3g}); TF32 or reduced precision needs its own bound",
        },
        "output_shape": list(refs[0][1].shape) if len(refs) == 1 else [list(t.shape) for _, t in refs],
        **({"output_names": [k for k, _ in refs]} if len(refs) > 1 else {}),
        "output_stats": {"min": f32(ref.min()), "max": f32(ref.max()),
                         "mean": f32(ref.mean()), "std": f32(ref.std())},
        "fill_sums": sums,
        "output": [f32(v) for v in ref.tolist()],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", help="write only these models")
    args = ap.parse_args()
    (OUT / "outputs").mkdir(parents=True, exist_ok=True)
    for name in MODELS:
        if args.only and name not in args.only:
            continue
        doc = describe(name)
        text = dumps_compact(doc, ("state_dict", "buffers", "module_names",
                                   "state_dict_keys_aux_logits_false"))
        (OUT / f"{name}.json").write_text(text)
        print(f"{name}: {doc['num_params']} params, {doc['meta'].get('gflops')} GFLOPS")
        if name in OUTPUT_MODELS:
            g = forward_golden(name)
            text = dumps_compact(g, ("fill_rules", "fill_sums"))
            (OUT / "outputs" / f"{name}.json").write_text(text)
            print(f"  outputs/{name}.json: tolerance {g['tolerance']}")


if __name__ == "__main__":
    main()
