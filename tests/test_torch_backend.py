"""The PyTorch lowering (backends/pytorch.py), op by op and network by network.

Every op of netlang.ops.OPS is lowered in a tiny network and its output compared with a reference
written here from torch.nn.functional, slicing and plain arithmetic, using the lowered module's
own weights. Then: training semantics (dropout, drop_path, mean(drop=p), auxiliary outputs),
state_dict names for the whole zoo, torchvision's outputs on formula weights
(tests/golden/torchvision/outputs), initialisation, and the API's boundaries.

Comparisons run in float64 with atol 1e-10 unless stated: the reference differs from the module
only in summation order.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
nn = torch.nn

import netlang  # noqa: E402
from netlang.backends.pytorch import lower  # noqa: E402
from netlang import ops  # noqa: E402
from netlang.ir import state_entries  # noqa: E402
from test_golden_files import fill_value, input_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "architectures"
GOLDEN = ROOT / "tests" / "golden" / "torchvision"
ATOL = 1e-10
# PyTorch notes that an even kernel with pad="same" pads a copy of the input; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    pass


# ---------------------------------------------------------------------------- helpers

def network(body: str, input: str = "4x10x9") -> str:
    return f"network t {{\n    input {input}\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "}\n"


def build(src: str, **kw):
    net = netlang.loads(src, **kw)
    return net, lower(net)


def randomize(module, seed: int = 0) -> None:
    """Random values for every float parameter and buffer, so that no default (a BN weight of 1,
    a running variance of 1, a zero bias) hides a mistake."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g, dtype=t.dtype) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g, dtype=t.dtype))


def same_pad(x, k, d=(1, 1)):
    """pad="same" spelled out: total d*(k-1) per axis, the odd one on the bottom/right."""
    th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
    return F.pad(x, (tw // 2, tw - tw // 2, th // 2, th - th // 2))


def grouped_conv(x, w, b, groups, **kw):
    """A grouped convolution as `groups` separate convolutions."""
    xs, ws = x.chunk(groups, 1), w.chunk(groups, 0)
    y = torch.cat([F.conv2d(xi, wi, None, **kw) for xi, wi in zip(xs, ws)], 1)
    return y if b is None else y + b.view(1, -1, 1, 1)


def conv_transpose_scatter(x, w, b, stride, pad, output_pad, dilation, groups):
    """A transposed convolution by scattering each input pixel times the kernel into a full
    output, `output_pad` rows and columns longer at the bottom/right, then cutting `pad` from
    every side."""
    n, cin, h, wd = x.shape
    kh, kw = w.shape[2:]
    cout_g = w.shape[1]
    full_h = (h - 1) * stride[0] + dilation[0] * (kh - 1) + 1 + output_pad[0]
    full_w = (wd - 1) * stride[1] + dilation[1] * (kw - 1) + 1 + output_pad[1]
    full = x.new_zeros(n, cout_g * groups, full_h, full_w)
    cin_g = cin // groups
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g]
        wg = w[g * cin_g:(g + 1) * cin_g]
        for i in range(kh):
            for j in range(kw):
                contrib = torch.einsum("nchw,co->nohw", xg, wg[:, :, i, j])
                r0, c0 = i * dilation[0], j * dilation[1]
                full[:, g * cout_g:(g + 1) * cout_g, r0:r0 + (h - 1) * stride[0] + 1:stride[0],
                     c0:c0 + (wd - 1) * stride[1] + 1:stride[1]] += contrib
    y = full[:, :, pad[0]:full_h - pad[0], pad[1]:full_w - pad[1]]
    return y if b is None else y + b.view(1, -1, 1, 1)


def lrn_by_hand(x, size, alpha, beta, k):
    """PyTorch's LRN: x / (k + alpha / size * sum of x^2 over `size` channels)^beta, the window
    from c - size // 2 to c + (size - 1) // 2."""
    c = x.shape[1]
    sq = x * x
    out = torch.empty_like(x)
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        out[:, i] = x[:, i] / (k + alpha / size * sq[:, lo:hi].sum(1)) ** beta
    return out


def adaptive_by_hand(x, oh, ow):
    """Adaptive average pooling: bin i spans [floor(i * H / oh), ceil((i + 1) * H / oh))."""
    h, w = x.shape[2:]
    rows = []
    for i in range(oh):
        r0, r1 = (i * h) // oh, -(-(i + 1) * h // oh)
        rows.append(torch.stack([x[:, :, r0:r1, (j * w) // ow:-(-(j + 1) * w // ow)].mean((2, 3))
                                 for j in range(ow)], -1))
    return torch.stack(rows, -2)


def bn_ref(x, m, training, eps=1e-5):
    """Batch norm from its definition: batch statistics (biased variance) in training, running
    statistics in eval; affine weight and bias if the layer has them."""
    dims = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)
    if training:
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
    else:
        mean, var = m.running_mean, m.running_var
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    if m.weight is not None:
        y = y * m.weight.view(shape) + m.bias.view(shape)
    return y


def crop(x, h, w):
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


# ---------------------------------------------------------------------------- op cases
# (id, ops it checks, body, input, reference(module, x, training) -> expected output)

CASES = [
    ("conv", {"conv"}, "l: conv(6, 3, stride=2, pad=1)", "4x10x9",
     lambda m, x, t: F.conv2d(x, m.l.weight, m.l.bias, 2, 1)),
    ("conv_same_odd", {"conv"}, 'l: conv(6, 5, pad="same")', "4x10x9",
     lambda m, x, t: F.conv2d(same_pad(x, (5, 5)), m.l.weight, m.l.bias)),
    ("conv_same_even", {"conv"}, 'l: conv(6, 4, pad="same")', "4x10x9",
     lambda m, x, t: F.conv2d(same_pad(x, (4, 4)), m.l.weight, m.l.bias)),
    ("conv_same_even_dilated", {"conv"}, 'l: conv(6, (2, 3), pad="same", dilation=3, bias=false)', "4x10x9",
     lambda m, x, t: F.conv2d(same_pad(x, (2, 3), (3, 3)), m.l.weight, None, dilation=3)),
    ("conv_groups_dilation", {"conv"}, "l: conv(8, 3, pad=2, dilation=2, groups=4, bias=false)", "4x10x9",
     lambda m, x, t: grouped_conv(x, m.l.weight, None, 4, padding=2, dilation=2)),
    ("conv_depthwise", {"conv"}, "l: conv(8, 3, stride=2, pad=1, groups=4)", "4x10x9",
     lambda m, x, t: grouped_conv(x, m.l.weight, m.l.bias, 4, stride=2, padding=1)),
    ("conv_1x7_7x1", {"conv"}, "a: conv(5, 1x7, pad=(0, 3))\nb: conv(6, 7x1, pad=(3, 0))", "4x10x9",
     lambda m, x, t: F.conv2d(F.conv2d(x, m.a.weight, m.a.bias, padding=(0, 3)), m.b.weight, m.b.bias,
                              padding=(3, 0))),
    ("conv_asymmetric_stride", {"conv"}, "l: conv(6, (3, 5), stride=(1, 2), pad=(1, 2))", "4x10x9",
     lambda m, x, t: F.conv2d(x, m.l.weight, m.l.bias, (1, 2), (1, 2))),
    ("conv_t", {"conv_t"}, "l: conv_t(6, 3, stride=2, pad=1, output_pad=1)", "4x5x4",
     lambda m, x, t: conv_transpose_scatter(x, m.l.weight, m.l.bias, (2, 2), (1, 1), (1, 1), (1, 1), 1)),
    ("conv_t_groups_dilation", {"conv_t"},
     "l: conv_t(6, (3, 2), stride=(2, 3), pad=(1, 0), output_pad=(1, 2), groups=2, dilation=2, bias=false)",
     "4x5x4",
     lambda m, x, t: conv_transpose_scatter(x, m.l.weight, None, (2, 3), (1, 0), (1, 2), (2, 2), 2)),
    ("conv_t_functional", {"conv_t"}, "l: conv_t(3, 4, stride=2, pad=1)", "4x5x4",
     lambda m, x, t: F.conv_transpose2d(x, m.l.weight, m.l.bias, 2, 1)),
    ("linear", {"linear", "flatten"}, "flatten\nl: linear(5)\nm: linear(3, bias=false)", "4x3x2",
     lambda m, x, t: x.reshape(x.shape[0], -1) @ m.l.weight.T @ m.m.weight.T + m.l.bias @ m.m.weight.T),
    ("batchnorm", {"batchnorm"}, "l: batchnorm(eps=0.001, momentum=0.3)", "4x10x9",
     lambda m, x, t: bn_ref(x, m.l, t, eps=0.001)),
    ("batchnorm_no_affine", {"batchnorm"}, "l: batchnorm(affine=false)", "4x10x9",
     lambda m, x, t: bn_ref(x, m.l, t)),
    ("batchnorm_1d", {"batchnorm"}, "flatten\nl: linear(6)\nn: batchnorm(eps=0.01)", "2x3x3",
     lambda m, x, t: bn_ref(F.linear(x.flatten(1), m.l.weight, m.l.bias), m.n, t, eps=0.01)),
    ("lrn", {"lrn"}, "l: lrn(3, alpha=0.1, beta=0.75, k=2)", "6x4x5",
     lambda m, x, t: lrn_by_hand(x, 3, 0.1, 0.75, 2.0)),
    ("lrn_even_size", {"lrn"}, "l: lrn(4, alpha=0.3, beta=0.5)", "6x4x5",
     lambda m, x, t: lrn_by_hand(x, 4, 0.3, 0.5, 1.0)),
    ("lrn_functional", {"lrn"}, "l: lrn(5, alpha=0.0001, beta=0.75, k=2)", "7x3x3",
     lambda m, x, t: F.local_response_norm(x, 5, 1e-4, 0.75, 2.0)),
    ("activations", {"relu", "relu6", "tanh", "sigmoid", "scale"},
     "scale(4)\nrelu6\nscale(-1.5)\ntanh\nscale(3)\nsigmoid\nscale(-2)\nrelu", "4x5x5",
     lambda m, x, t: (-2 / (1 + torch.exp(-3 * torch.tanh(-1.5 * (4 * x).clamp(0, 6))))).clamp(min=0)),
    ("relu", {"relu"}, "relu", "4x5x5", lambda m, x, t: torch.where(x > 0, x, 0)),
    ("more_activations", {"hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "mish", "softplus"},
     'scale(3)\nhardswish\nscale(2)\nsilu\ngelu\nscale(-2)\nleaky_relu(0.2)\nelu(alpha=0.5)\nscale(4)\n'
     'mish\ngelu(approximate="tanh")\nsoftplus(beta=2, threshold=1)\nscale(-1)\nhardsigmoid', "4x5x5",
     lambda m, x, t: F.hardsigmoid(-F.softplus(F.gelu(F.mish(4 * F.elu(F.leaky_relu(-2 * F.gelu(F.silu(
         2 * F.hardswish(3 * x))), 0.2), 0.5)), approximate="tanh"), 2, 1))),
    ("prelu", {"prelu"}, "a: prelu\nb: prelu(per_channel=true, init=0.1)\nprelu", "4x5x5",
     lambda m, x, t: F.prelu(F.prelu(F.prelu(x, m.a.weight), m.b.weight), getattr(m, "2").weight)),
    ("prelu_vector", {"prelu", "flatten"}, "flatten\nl: prelu(per_channel=true)", "2x2x2",
     lambda m, x, t: F.prelu(x.flatten(1), m.l.weight)),
    # ConvNeXt's layers: layer norm over the channels of each pixel and a linear at each pixel
    # are nn.LayerNorm and nn.Linear on the permuted tensor; the layer scale multiplies each channel
    ("convnext_layers", {"layernorm", "linear", "layer_scale", "gelu"},
     "n: layernorm(eps=0.01)\nfc: linear(6, pointwise=true)\ngelu\ng: layer_scale(0.5)\nlayernorm", "4x5x5",
     lambda m, x, t: F.layer_norm(
         (m.g * F.gelu(F.linear(F.layer_norm(x.permute(0, 2, 3, 1), (4,), m.n.weight, m.n.bias, 0.01),
                                m.fc.weight, m.fc.bias).permute(0, 3, 1, 2))).permute(0, 2, 3, 1),
         (6,), getattr(m, "4").weight, getattr(m, "4").bias, 1e-6).permute(0, 3, 1, 2)),
    ("layernorm_vector", {"layernorm", "layer_scale", "flatten"}, "flatten\nn: layernorm\ns: layer_scale", "2x2x2",
     lambda m, x, t: F.layer_norm(x.flatten(1), (8,), m.n.weight, m.n.bias, 1e-6) * m.s),
    ("log_softmax", {"log_softmax"}, "log_softmax", "4x5x5", lambda m, x, t: F.log_softmax(x, 1)),
    ("softmax", {"softmax"}, "softmax", "4x5x5",
     lambda m, x, t: torch.exp(x) / torch.exp(x).sum(1, keepdim=True)),
    ("softmax_vector", {"softmax", "flatten"}, "flatten\nsoftmax", "2x2x2",
     lambda m, x, t: torch.exp(x.flatten(1)) / torch.exp(x.flatten(1)).sum(1, keepdim=True)),
    ("identity_eval_layers", {"identity", "dropout", "drop_path"}, "identity\ndropout(0.5)\ndrop_path(0.3)",
     "4x5x5", lambda m, x, t: x),   # eval only: training is tested below
    ("maxpool_ceil", {"maxpool"}, "l: maxpool(3, stride=2, ceil=true)", "4x10x9",
     lambda m, x, t: F.max_pool2d(x, 3, 2, 0, ceil_mode=True)),
    ("maxpool_pad_ceil", {"maxpool"}, "l: maxpool(3, stride=2, pad=1, ceil=true)", "4x10x9",
     lambda m, x, t: F.max_pool2d(x, 3, 2, 1, ceil_mode=True)),
    ("maxpool_floor", {"maxpool"}, "l: maxpool(3, stride=2)", "4x10x9",
     lambda m, x, t: F.max_pool2d(x, 3, 2)),
    ("maxpool_same", {"maxpool"}, 'l: maxpool(3, stride=1, pad="same")', "4x10x9",
     lambda m, x, t: F.max_pool2d(F.pad(x, (1, 1, 1, 1), value=-math.inf), 3, 1)),
    ("maxpool_asymmetric", {"maxpool"}, "l: maxpool((2, 3), stride=(2, 1), pad=(1, 1))", "4x10x9",
     lambda m, x, t: F.max_pool2d(x, (2, 3), (2, 1), (1, 1))),
    ("avgpool_ceil_include_pad", {"avgpool"}, "l: avgpool(3, stride=2, pad=1, ceil=true)", "4x10x9",
     lambda m, x, t: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True)),
    ("avgpool_ceil_exclude_pad", {"avgpool"},
     "l: avgpool(3, stride=2, pad=1, ceil=true, count_include_pad=false)", "4x10x9",
     lambda m, x, t: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)),
    ("avgpool_plain", {"avgpool"}, "l: avgpool(2)", "4x10x9",
     lambda m, x, t: x[:, :, :10, :8].reshape(x.shape[0], 4, 5, 2, 4, 2).mean((3, 5))),
    ("avgpool_same", {"avgpool"}, 'l: avgpool(3, stride=1, pad="same")', "4x10x9",
     lambda m, x, t: F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 1)),
    ("global_avgpool", {"global_avgpool"}, "global_avgpool", "4x10x9",
     lambda m, x, t: x.mean((2, 3), keepdim=True)),
    ("adaptive_avgpool", {"adaptive_avgpool"}, "adaptive_avgpool(3)", "4x10x9",
     lambda m, x, t: adaptive_by_hand(x, 3, 3)),
    ("adaptive_avgpool_pair", {"adaptive_avgpool"}, "adaptive_avgpool((4, 2))", "4x10x9",
     lambda m, x, t: adaptive_by_hand(x, 4, 2)),
    ("upsample_nearest", {"upsample"}, "upsample((2, 3))", "4x5x4",
     lambda m, x, t: x.repeat_interleave(2, 2).repeat_interleave(3, 3)),
    ("upsample_bilinear", {"upsample"}, 'upsample(2, mode="bilinear")', "4x5x4",
     lambda m, x, t: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)),
    ("center_crop", {"center_crop"}, "center_crop(5, 4)", "4x10x9",     # top (10-5)//2, left (9-4)//2
     lambda m, x, t: x[:, :, 2:7, 2:6]),
    ("center_crop_square", {"center_crop"}, "center_crop(7)", "4x10x9",   # odd margins round down
     lambda m, x, t: x[:, :, 1:8, 1:8]),
    ("concat", {"concat"}, "concat { c: conv(3, 1)\n identity\n maxpool(3, stride=1, pad=1) }", "4x5x5",
     lambda m, x, t: torch.cat([F.conv2d(x, m.c.weight, m.c.bias), x, F.max_pool2d(x, 3, 1, 1)], 1)),
    ("concat_one_branch", {"concat"}, "concat { c: conv(3, 1) }", "4x5x5",
     lambda m, x, t: F.conv2d(x, m.c.weight, m.c.bias)),
    ("concat_vectors", {"concat", "flatten", "linear"}, "flatten\nconcat { l: linear(3)\n identity }", "2x2x2",
     lambda m, x, t: torch.cat([F.linear(x.flatten(1), m.l.weight, m.l.bias), x.flatten(1)], 1)),
    ("concat_crop", {"concat"},
     "a: conv(3, 1)\nb: conv(2, 3)\nconcat(crop=true) { c: conv(2, (3, 2))\n identity\n @a }", "4x10x9",
     # a: 3x10x9, b: 2x8x7, c: 2x6x6; b is cropped at (1, 0), a at (2, 1)
     lambda m, x, t: torch.cat([
         F.conv2d(F.conv2d(F.conv2d(x, m.a.weight, m.a.bias), m.b.weight, m.b.bias), m.c.weight, m.c.bias),
         F.conv2d(F.conv2d(x, m.a.weight, m.a.bias), m.b.weight, m.b.bias)[:, :, 1:7, 0:6],
         F.conv2d(x, m.a.weight, m.a.bias)[:, :, 2:8, 1:7]], 1)),
    ("crop_then_inplace_relu", {"center_crop", "relu", "concat"},
     # the relu may not write through the crop's view into `a`, which the identity branch reads
     "a: conv(4, 1)\nconcat(crop=true) { center_crop(6, 5) -> relu\n identity }", "4x10x9",
     lambda m, x, t: torch.cat([crop(F.conv2d(x, m.a.weight, m.a.bias), 6, 5).clamp(min=0),
                                crop(F.conv2d(x, m.a.weight, m.a.bias), 6, 5)], 1)),
    ("add", {"add", "relu"}, "add { c: conv(4, 3, pad=1)\n identity\n relu }", "4x5x5",
     lambda m, x, t: F.conv2d(x, m.c.weight, m.c.bias, padding=1) + x + x.clamp(min=0)),
    ("add_residual", {"add", "relu", "batchnorm"},
     "c: conv(4, 1)\nadd { relu -> n: batchnorm\n identity }\nrelu", "4x5x5",
     lambda m, x, t: (bn_ref(F.conv2d(x, m.c.weight, m.c.bias).clamp(min=0), m.n, t)
                      + F.conv2d(x, m.c.weight, m.c.bias)).clamp(min=0)),
    ("mean", {"mean", "scale"}, "mean { c: conv(4, 1)\n identity\n scale(3) }", "4x5x5",
     lambda m, x, t: (F.conv2d(x, m.c.weight, m.c.bias) + x + 3 * x) / 3),
    ("mul_gate", {"mul", "global_avgpool", "sigmoid"},
     "mul { identity\n global_avgpool -> c: conv(4, 1) -> sigmoid }", "4x5x5",
     lambda m, x, t: x * torch.sigmoid(F.conv2d(x.mean((2, 3), keepdim=True), m.c.weight, m.c.bias))),
    ("mul_maps", {"mul"}, "mul { c: conv(4, 1)\n identity\n tanh }", "4x5x5",
     lambda m, x, t: F.conv2d(x, m.c.weight, m.c.bias) * x * torch.tanh(x)),
    # channel j * g + i of the output is channel i * C/g + j of the input (torchvision's formula)
    ("channel_shuffle", {"channel_shuffle"}, "channel_shuffle(3)", "6x4x3",
     lambda m, x, t: x.view(-1, 3, 2, 4, 3).transpose(1, 2).reshape(-1, 6, 4, 3)),
    ("channel_shuffle_labelled", {"channel_shuffle", "relu"}, "c: conv(6, 1) -> s: channel_shuffle(2) -> relu",
     "4x4x3", lambda m, x, t: F.conv2d(x, m.c.weight, m.c.bias)[:, [0, 3, 1, 4, 2, 5]].clamp(min=0)),
    # split: x.chunk(2, dim=1), each half into its branch, the outputs concatenated; a relu on a
    # part must not write through the view into the input, which the other part reads
    ("split", {"concat", "relu"}, "split(2) { relu\n c: conv(3, 1) }", "4x5x5",
     lambda m, x, t: torch.cat([x[:, :2].clamp(min=0), F.conv2d(x[:, 2:], m.c.weight, m.c.bias)], 1)),
    ("split_then_add", {"concat", "add", "scale"},
     "a: conv(6, 1)\nadd { split(3) { identity\n scale(2)\n relu }\n identity }", "4x5x5",
     lambda m, x, t: (lambda a: torch.cat([a[:, :2], 2 * a[:, 2:4], a[:, 4:].clamp(min=0)], 1) + a)(
         F.conv2d(x, m.a.weight, m.a.bias))),
]
# Layers that act differently in training are checked in eval only here.
EVAL_ONLY = {"identity_eval_layers"}


def test_every_op_is_covered():
    covered = set().union(*(c[1] for c in CASES)) | {"input"}   # every network has an input
    assert covered == set(ops.LANGUAGE), f"ops without a lowering test: {sorted(set(ops.LANGUAGE) - covered)}"


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_against_torch_functional(case):
    name, covers, body, inp, ref = case
    net, m = build(network(body, inp))
    assert covers <= {d["op"] for _, d in net.graph.nodes(data=True)}, "the case lacks an op it claims"
    randomize(m)
    m.double()
    out = net.graph.graph["outputs"][0]
    modes = [False] if name in EVAL_ONLY else [False, True]
    for training in modes:
        m.train(training)
        x = torch.randn((3,) + net.shape("input"), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        x_before = x.clone()
        with torch.no_grad():
            expect = ref(m, x, training)
            got = m(x)
        assert torch.equal(x, x_before), "the forward wrote into its input"
        assert tuple(got.shape[1:]) == net.shape(out), "torch's shape differs from the IR's"
        torch.testing.assert_close(got, expect, atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_backward_in_training(case):
    # Gradients flow through every lowering in training (no in-place write that autograd needs).
    name, covers, body, inp, ref = case
    net, m = build(network(body, inp))
    m.train().double()
    x = torch.randn((3,) + net.shape("input"), dtype=torch.float64, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


CHAINS = ["relu -> relu", "sigmoid -> relu", "tanh -> relu6", "softmax -> relu", "relu6 -> relu",
          "relu -> dropout(0.5) -> relu", "sigmoid -> flatten -> relu", "hardswish -> relu", "relu -> hardswish",
          "silu -> mish -> hardsigmoid", "log_softmax -> silu", "sigmoid -> hardswish", "elu -> silu",
          "leaky_relu -> mish", "gelu -> relu6"]


@pytest.mark.parametrize("chain", CHAINS)
@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_inplace_activations_keep_gradients(chain, training):
    # An in-place ReLU must not overwrite a tensor that the layer before it saved for its own
    # backward (relu, relu6, sigmoid, tanh, softmax and log_softmax keep their output; hardswish,
    # silu and mish run in place too). The gradient is
    # compared with the same chain computed out of place.
    net, m = build(network(f"c: conv(4, 1)\n{chain}", "4x3x3"))
    m.train(training).double()
    fns = {"relu": torch.relu, "relu6": lambda v: v.clamp(0, 6), "sigmoid": torch.sigmoid, "tanh": torch.tanh,
           "softmax": lambda v: torch.softmax(v, 1), "flatten": lambda v: v.flatten(1), "hardswish": F.hardswish,
           "hardsigmoid": F.hardsigmoid, "silu": F.silu, "mish": F.mish, "log_softmax": lambda v: F.log_softmax(v, 1),
           "elu": F.elu, "leaky_relu": F.leaky_relu, "gelu": F.gelu}
    x = torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    y = m(x)
    (y * torch.arange(y.numel(), dtype=y.dtype).view(y.shape)).sum().backward()
    got = x.grad.clone()
    x.grad = None
    torch.manual_seed(3)
    v = F.conv2d(x, m.c.weight, m.c.bias)
    for item in chain.split(" -> "):
        v = F.dropout(v, 0.5, training) if item.startswith("dropout") else fns[item](v)
    (v * torch.arange(v.numel(), dtype=v.dtype).view(v.shape)).sum().backward()
    torch.testing.assert_close(got, x.grad, atol=ATOL, rtol=0)


def test_batchnorm_running_statistics_update_in_training_only():
    net, m = build(network("l: batchnorm(eps=0.001, momentum=0.3)", "4x5x5"))
    randomize(m)
    m.double()
    bn = m.l
    x = torch.randn(6, 4, 5, 5, dtype=torch.float64)
    mean0, var0 = bn.running_mean.clone(), bn.running_var.clone()
    m.eval()
    with torch.no_grad():
        m(x)
    assert torch.equal(bn.running_mean, mean0) and torch.equal(bn.running_var, var0)
    m.train()
    with torch.no_grad():
        m(x)
    # PyTorch's rule: momentum-weighted, the variance unbiased
    torch.testing.assert_close(bn.running_mean, 0.7 * mean0 + 0.3 * x.mean((0, 2, 3)), atol=ATOL, rtol=0)
    torch.testing.assert_close(bn.running_var, 0.7 * var0 + 0.3 * x.var((0, 2, 3), unbiased=True),
                               atol=ATOL, rtol=0)
    assert int(bn.num_batches_tracked) == 1
    assert bn.eps == 0.001 and bn.momentum == 0.3


# ---------------------------------------------------------------------------- training semantics

def test_dropout_acts_only_in_training():
    net, m = build(network("dropout(0.25)", "8x16x16"))
    x = torch.rand(64, 8, 16, 16) + 0.5
    assert torch.equal(m.eval()(x), x)
    torch.manual_seed(0)
    y = m.train()(x)
    zero = y == 0
    # survivors are scaled by 1 / (1 - p); 131,072 elements: the dropped share is 0.25 +- 0.006 (5 sigma)
    torch.testing.assert_close(y[~zero], x[~zero] / 0.75)
    assert abs(zero.double().mean().item() - 0.25) < 0.006


def test_drop_path_drops_whole_samples_in_training_only():
    p, n = 0.3, 4000
    net, m = build(network("l: drop_path(0.3)", "3x2x2"))
    x = torch.rand(n, 3, 2, 2, dtype=torch.float64) + 0.5
    assert torch.equal(m.eval()(x), x)
    torch.manual_seed(0)
    y = m.train()(x)
    flat_x, flat_y = x.reshape(n, -1), y.reshape(n, -1)
    dropped = (flat_y == 0).all(1)
    kept = torch.isclose(flat_y, flat_x / (1 - p), rtol=1e-12, atol=0).all(1)
    assert torch.equal(dropped | kept, torch.ones(n, dtype=torch.bool)), "a sample was partly dropped"
    # Binomial(4000, 0.3): the dropped share is 0.3 +- 0.036 (5 sigma); the scaled mean is unbiased,
    # its ratio to the input's mean 1 +- 0.05 (5 sigma of sqrt(p / (1 - p) / n))
    assert abs(dropped.double().mean().item() - p) < 0.036
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.05
    # in a residual branch: the identity always passes
    net, m = build(network("add { c: conv(3, 1) -> drop_path(0.5)\n identity }", "3x2x2"))
    m.double().train()
    xs = x[:400]
    with torch.no_grad():
        diff = (m(xs) - xs).reshape(400, -1)
        branch = F.conv2d(xs, m.c[0].weight, m.c[0].bias).reshape(400, -1)
    dropped = (diff == 0).all(1)
    kept = torch.isclose(diff, 2 * branch, rtol=0, atol=1e-12).all(1)
    assert (dropped | kept).all()
    assert 0.3 < dropped.double().mean().item() < 0.7     # Binomial(400, 0.5): 0.5 +- 0.125 (5 sigma)


def _mean_drop_masks(p: float, n_branches: int, runs: int, batch: int = 2):
    """Run mean(drop=p) over branches 1*x, 2*x, 4*x... with x = 1 and read which branches were
    kept from the output (each subset has its own mean)."""
    branches = "\n".join(["identity"] + [f"scale({2 ** i})" for i in range(1, n_branches)])
    net, m = build(network(f"mean(drop={p}) {{ {branches} }}", "1x1x1"))
    x = torch.ones(batch, 1, 1, 1, dtype=torch.float64)
    values = [2.0 ** i for i in range(n_branches)]
    means = {}
    for bits in range(1, 2 ** n_branches):
        kept = tuple(bool(bits >> i & 1) for i in range(n_branches))
        means[kept] = sum(v for v, k in zip(values, kept) if k) / sum(kept)
    assert len(set(means.values())) == len(means)
    torch.manual_seed(0)
    m.train()
    masks = []
    for _ in range(runs):
        y = m(x).flatten()
        assert torch.isfinite(y).all() and (y == y[0]).all(), "the drop differs across the batch"
        (kept,) = [k for k, v in means.items() if abs(v - y[0].item()) < 1e-12]
        masks.append(kept)
    m.eval()
    assert m(x).flatten()[0].item() == pytest.approx(sum(values) / n_branches, abs=1e-12)
    return masks


def test_mean_drop_keeps_at_least_one_input():
    # p close to 1: nearly every draw would drop all three inputs; one must always survive
    masks = _mean_drop_masks(0.95, 3, 600)
    assert all(any(k) for k in masks)
    # the survivor of an all-dropped draw is chosen at random, not always the same branch
    singles = [k.index(True) for k in masks if sum(k) == 1]
    assert len(singles) > 500 and {0, 1, 2} == set(singles)
    for i in range(3):
        assert abs(singles.count(i) / len(singles) - 1 / 3) < 0.1   # about 5 sigma at n = 500


def test_mean_drop_rate_is_p():
    # Each input is dropped with probability p; where that drops all of them, one input chosen
    # at random is kept: P(input dropped) = p - p^n / n. FractalNet's p = 0.15, two inputs:
    # 0.13875; the share over 2 x 3000 draws is within 0.0225 of it at 5 sigma.
    p, runs = 0.15, 3000
    masks = _mean_drop_masks(p, 2, runs)
    dropped = sum(not k[i] for k in masks for i in range(2)) / (2 * runs)
    assert abs(dropped - (p - p * p / 2)) < 0.0225


def test_auxiliary_outputs_only_in_training():
    src = """network t(classes=3) {
    input 3x8x8
    stem: conv(6, 3, pad=1)
    relu
    aux1: global_avgpool -> flatten -> linear(classes)
    @stem -> body: conv(6, 3, stride=2, pad=1) -> relu
    aux2: global_avgpool -> flatten -> linear(classes)
    @body -> fc: global_avgpool -> flatten -> linear(classes)
    output fc, aux aux1, aux aux2
}
"""
    net, m = build(src)
    assert net.graph.graph["outputs"] == ["fc.2", "aux1.2", "aux2.2"]
    assert net.graph.graph["output_aux"] == [False, True, True]
    randomize(m)
    m.double()
    calls = []
    for name in ("aux1.2", "aux2.2", "fc.2"):
        m.get_submodule(name).register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    stem = F.conv2d(x, m.stem.weight, m.stem.bias, padding=1)
    body = F.conv2d(stem, m.body[0].weight, m.body[0].bias, stride=2, padding=1).clamp(min=0)

    def head(v, lin):
        return F.linear(v.mean((2, 3)), lin.weight, lin.bias)

    expect = (head(body, m.fc[2]), head(stem.clamp(min=0), m.aux1[2]), head(body, m.aux2[2]))
    with torch.no_grad():
        train_out = m.train()(x)
        assert sorted(calls) == ["aux1.2", "aux2.2", "fc.2"]
        calls.clear()
        eval_out = m.eval()(x)
        assert calls == ["fc.2"], "eval ran an auxiliary head"
    assert isinstance(train_out, tuple) and len(train_out) == 3
    for got, want in zip(train_out, expect):
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    assert isinstance(eval_out, torch.Tensor)
    torch.testing.assert_close(eval_out, expect[0], atol=ATOL, rtol=0)


SEVERAL = """network t {
    input 3x8x8
    c2: conv(6, 3, pad=1) -> relu
    c3: conv(8, 3, stride=2, pad=1) -> relu
    side: global_avgpool -> flatten -> linear(5)
    @c3 -> c4: conv(4, 3, stride=2, pad=1)
    output c4, c2, c3, aux side
}
"""


def _several_outputs(backends):
    from netlang.backends.reference import random_state, run
    net = netlang.loads(SEVERAL, filename="several.net")
    G = net.graph
    assert G.graph["outputs"] == ["c4", "c2.1", "c3.1", "side.2"] and G.graph["output_aux"] == [False] * 3 + [True]
    state = random_state(G, 0, dtype=torch.float64)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    want = run(G, state, x)
    models = [make(net).double() for make in backends]
    with torch.no_grad():
        for model in models:
            model.load_state_dict(state)
            out = model.eval()(x)
            assert isinstance(out, tuple) and len(out) == 3
            for got, w in zip(out, want[:3]):
                torch.testing.assert_close(got, w, atol=1e-6, rtol=0)
    return models, x


def test_several_outputs_are_returned_in_eval_and_auxiliary_ones_in_training_only():
    # a backbone's feature maps are outputs at inference; the side head exists in training only
    (m, _), x = _several_outputs([lambda net: lower(net, init=False), lambda net: lower(net, init=False, fuse=True)])
    with torch.no_grad():
        out = m.train()(x)
    assert [tuple(o.shape) for o in out] == [(2, 4, 2, 2), (2, 6, 8, 8), (2, 8, 4, 4), (2, 5)]


def test_several_outputs_through_triton():
    pytest.importorskip("triton")
    from netlang.backends.triton import lower as lower_triton
    _several_outputs([lambda net: lower_triton(net, init=False)])


def test_the_main_output_cannot_be_auxiliary():
    from netlang.errors import NetlangError
    with pytest.raises(NetlangError, match="the first output is the main one and cannot be auxiliary"):
        netlang.loads("network t {\n    input 3x8x8\n    a: conv(4, 3)\n    output aux a\n}\n", filename="t.net")


def test_googlenet_auxiliary_heads_like_torchvision():
    net = netlang.load(ARCH / "googlenet.net", network="googlenet_torchvision", input=(3, 64, 64))
    m = lower(net)
    calls = []
    for aux in ("aux1", "aux2"):
        m.get_submodule(aux + ".fc1").register_forward_hook(lambda mod, i, o, aux=aux: calls.append(aux))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = m.eval()(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 1000) and calls == []
        out = m.train()(x)
    # torchvision's GoogLeNetOutputs(logits, aux_logits2, aux_logits1) is in another order; the
    # netlang module returns the `output` statement's order
    assert isinstance(out, tuple) and [tuple(o.shape) for o in out] == [(2, 1000)] * 3
    assert calls == ["aux1", "aux2"]


# ---------------------------------------------------------------------------- names: the whole zoo

def zoo():
    from test_differential import ZOO         # (templates left out: their instances are the networks)
    yield from ZOO


ZOO = list(zoo())


@pytest.mark.parametrize("path,name", ZOO, ids=[f"{p.stem}:{n}" for p, n in ZOO])
def test_zoo_state_dict_is_what_the_ir_promises(path, name):
    net = netlang.load(path, network=name)
    entries = state_entries(net.graph)
    # On the meta device: real shapes and keys, no memory and no arithmetic, so even vgg16 is quick.
    with torch.device("meta"):
        m = lower(net, init=False)
    sd = m.state_dict()
    assert [(k, tuple(v.shape)) for k, v in sd.items()] == [(k, s) for k, s, _ in entries]
    assert {k for k, _ in m.named_buffers()} == {k for k, _, buf in entries if buf}
    assert sum(p.numel() for p in m.parameters()) == net.cost.params
    assert sum(b.numel() for b in m.buffers()) == net.cost.buffers
    for k, v in sd.items():
        assert v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float32), k
    # forward runs and gives the IR's output shape; with auxiliary outputs, all of them in training
    outputs = net.graph.graph["outputs"]
    # at inference, the outputs not marked aux (a backbone's several maps come as a tuple)
    infer = [o for o, aux in zip(outputs, net.graph.graph["output_aux"]) if not aux]
    x = torch.empty((2,) + net.shape("input"), device="meta")
    with torch.no_grad():
        y = m.eval()(x)
        ys = y if len(infer) > 1 else (y,)
        assert [tuple(t.shape) for t in ys] == [(2,) + net.shape(o) for o in infer]
        if len(outputs) > 1:
            ys = m.train()(x)
            assert [tuple(t.shape) for t in ys] == [(2,) + net.shape(o) for o in outputs]


# ---------------------------------------------------------------------------- torchvision

TORCHVISION = {  # torchvision model -> (file, network)
    "resnet18": ("resnet.net", "resnet18"),
    "squeezenet1_0": ("squeezenet.net", "squeezenet1_0"),
    "squeezenet1_1": ("squeezenet.net", "squeezenet1_1"),
    "googlenet": ("googlenet.net", "googlenet_torchvision"),
    "mobilenet_v2": ("mobilenet.net", "mobilenet_v2"),
    "mobilenet_v3_small": ("mobilenet.net", "mobilenet_v3_small"),
    "mobilenet_v3_large": ("mobilenet.net", "mobilenet_v3_large"),
    "efficientnet_b0": ("efficientnet.net", "efficientnet_b0"),
    "mnasnet1_0": ("mnasnet.net", "mnasnet1_0"),
    "seresnet50": ("seresnet.net", "seresnet50"),        # timm's layout
    "shufflenet_v2_x0_5": ("shufflenet.net", "shufflenet_v2_x0_5"),
    "shufflenet_v2_x1_0": ("shufflenet.net", "shufflenet_v2_x1_0"),
    "convnext_tiny": ("convnext.net", "convnext_tiny"),
    "regnet_y_400mf": ("regnet.net", "regnet_y_400mf"),
    "regnet_x_400mf": ("regnet.net", "regnet_x_400mf"),
    "resnet50_fpn": ("fpn.net", "resnet50_fpn"),        # resnet_fpn_backbone's layout, five outputs
}


def golden(model: str, sub: str = "") -> dict:
    return json.loads((GOLDEN / sub / f"{model}.json").read_text())


@pytest.mark.parametrize("model", sorted(TORCHVISION))
def test_keys_shapes_and_module_types_match_torchvision(model):
    file, name = TORCHVISION[model]
    net = netlang.load(ARCH / file, network=name)
    ref = golden(model)
    ours = {k: s for k, s, _ in state_entries(net.graph)}
    assert ours == {k: tuple(s) for k, s, _ in ref["state_dict"]}
    assert {k for k, _, buf in state_entries(net.graph) if buf} == set(ref["buffers"])
    assert net.cost.params == ref["num_params"]
    if model == "seresnet50":
        assert list(ours) == [k for k, _, _ in ref["state_dict"]]      # (timm publishes no GFLOPS)
    elif model == "resnet50_fpn":
        # no published figures: the MACs counted on torchvision's module, at 224 and at 800
        assert list(ours) == [k for k, _, _ in ref["state_dict"]]
        assert net.cost.macs == ref["meta"]["measured_macs"]["3x224x224"]
        big = netlang.load(ARCH / file, network=name, input=(3, 800, 800))
        assert big.cost.macs == ref["meta"]["measured_macs"]["3x800x800"]
    elif model == "googlenet":
        # torchvision registers the auxiliary heads last, and publishes the GFLOPS (MACs) of
        # aux_logits=False
        aux = sum(net.cost.scope_cost(a).macs for a in ("aux1", "aux2"))
        assert net.cost.macs - aux == pytest.approx(ref["meta"]["gflops"] * 1e9, rel=1e-3, abs=0.5e6)
    else:
        assert list(ours) == [k for k, _, _ in ref["state_dict"]]
        # (published to three decimals: 0.314 GFLOPS is anything within half a unit of the last)
        assert net.cost.macs == pytest.approx(ref["meta"]["gflops"] * 1e9, rel=1e-3, abs=0.5e6)
    # every module that holds state is of torchvision's type (Conv2d, BatchNorm2d, Linear,
    # LayerNorm2d), or where torchvision applies a plain nn.Linear or nn.LayerNorm to a permuted
    # (channels-last) tensor, as ConvNeXt's block does, the subclass that permutes around it
    # (Linear2d, LayerNorm2d); a layer_scale is a parameter of the block's own module (CNBlock)
    with torch.device("meta"):
        m = lower(net, init=False)
    types = dict(ref["module_names"])
    scales = {k.rpartition(".")[0] for k in ours if k.endswith(".layer_scale")}
    for owner in {k.rpartition(".")[0] for k in ours}:
        mod = m.get_submodule(owner)
        if owner in scales:
            assert types[owner] == "CNBlock" and isinstance(mod.layer_scale, nn.Parameter), owner
        elif type(mod).__name__ in ("Linear2d", "LayerNorm2d") and types[owner] in ("Linear", "LayerNorm"):
            assert isinstance(mod, getattr(nn, types[owner])), owner
        else:
            assert type(mod).__name__ == types[owner], owner
    if model.startswith("squeezenet"):
        # parameter-free layers too: ReLUs, pools and the dropout sit where torchvision has them
        leaves = {n: type(mod).__name__ for n, mod in m.named_modules() if not list(mod.children())}
        for n, t in ref["module_names"]:
            if t not in ("Sequential", "Fire", "SqueezeNet"):
                assert leaves.get(n) == t, n


def _published():
    from netlang.summary import published_of
    return sorted((path.name, name, *figures) for path in ARCH.glob("*.net")
                  for name, figures in published_of(path.read_text()).items())


@pytest.mark.parametrize("file,model,params,gflops,source", _published(), ids=lambda v: v if isinstance(v, str) else "")
def test_published_figures_in_the_zoo_files_are_netlangs(file, model, params, gflops, source):
    # each `# published` line (docs/zoo.md's table): the publisher's parameters exactly, its GFLOPS
    # to the decimals it gives
    net = netlang.load(ARCH / file, network=model)
    assert net.cost.params == params
    assert f"{net.cost.macs / 1e9:.{len(gflops.partition('.')[2])}f}" == gflops


def test_the_zoo_files_state_torchvisions_published_figures():
    # against the golden files' meta, for the models the golden files hold
    published = {model: (params, float(g)) for _, model, params, g, _ in _published()}
    for path in GOLDEN.glob("*.json"):
        ref = golden(path.stem)
        if "gflops" in ref["meta"] and path.stem in published:
            assert published[path.stem] == (ref["meta"]["num_params"], ref["meta"]["gflops"]), path.stem
    assert len(published) >= 46


def test_the_zoo_files_state_the_measured_figures_of_the_golden_files():
    # each `# measured` line (docs/zoo.md's table): the golden file's count on torchvision's module,
    # and netlang's at that input
    from netlang.summary import measured_of
    measured = [m for path in sorted(ARCH.glob("*.net")) for m in measured_of(path.read_text())]
    assert {m[0] for m in measured} == {"resnet50_fpn"} and len(measured) == 2
    for name, shape, params, macs, _ in measured:
        ref = golden(name)
        assert params == ref["num_params"]
        assert macs == ref["meta"]["measured_macs"]["x".join(map(str, shape))]
        net = netlang.load(ARCH / TORCHVISION[name][0], network=TORCHVISION[name][1], input=shape)
        assert (net.cost.params, net.cost.macs) == (params, macs)


OUTPUT_CASES = {"resnet18": ("resnet.net", "resnet18"), "squeezenet1_1": ("squeezenet.net", "squeezenet1_1"),
                "googlenet": ("googlenet.net", "googlenet_torchvision"),
                **{m: TORCHVISION[m] for m in ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
                                               "efficientnet_b0", "mnasnet1_0", "seresnet50", "shufflenet_v2_x0_5",
                                               "convnext_tiny", "regnet_y_400mf", "resnet50_fpn")}}


@pytest.mark.parametrize("model", sorted(OUTPUT_CASES))
def test_outputs_match_torchvision_on_formula_weights(model):
    file, name = OUTPUT_CASES[model]
    g, ref = golden(model, "outputs"), golden(model)
    side = g["input_shape"][2]
    net = netlang.load(ARCH / file, network=name, input=tuple(g["input_shape"][1:]))
    m = lower(net, init=False)
    state = {k: fill_value(k, s, torch).to(getattr(torch, dtype)) for k, s, dtype in ref["state_dict"]}
    m.load_state_dict(state, strict=True)
    m.eval()
    x = input_image(side, torch)
    expect = torch.tensor(g["output"], dtype=torch.float64)
    if "output_names" not in g:
        expect = expect.view(g["output_shape"])

    def flat(out):
        # several outputs (an FPN's five maps): each flattened, one after the other, as stored
        return torch.cat([t.flatten() for t in out]).double() if isinstance(out, tuple) else out.double()

    with torch.no_grad():
        got = flat(m(x.float()))
        # |got - output| <= atol + rtol * |output|, the bound the golden file states for float32
        tol = g["tolerance"]
        torch.testing.assert_close(got, expect, atol=tol["atol"], rtol=tol["rtol"])
        # a float64 forward differs from the stored float32-rounded logits by that rounding only
        got64 = flat(m.double()(x))
    # (float32's rounding is half an ulp, 2^-24 of the value: within 1e-6 for logits, not for the
    # FPN's maps of values up to 26)
    torch.testing.assert_close(got64, expect, atol=1e-6, rtol=2 ** -23)


# ---------------------------------------------------------------------------- initialisation

def test_conv_init_is_kaiming_normal_fan_out():
    torch.manual_seed(0)
    net, m = build(network("c: conv(256, 3, pad=1)\nd: conv(64, 1, bias=false)", "64x4x4"))
    w = m.c.weight.detach().double()
    std = math.sqrt(2 / (256 * 3 * 3))      # gain sqrt(2) (relu) over fan_out = out * kh * kw
    # 147,456 normal samples: the sample std is within 0.6% at 3 sigma; "a few percent" is 3%
    assert w.std().item() == pytest.approx(std, rel=0.03)
    assert abs(w.mean().item()) < 5 * std / math.sqrt(w.numel())
    kurtosis = (((w - w.mean()) / w.std()) ** 4).mean().item()
    assert kurtosis == pytest.approx(3.0, abs=0.1)       # normal (a uniform init gives 1.8)
    assert torch.equal(m.c.bias, torch.zeros(256))
    assert m.d.weight.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.06)   # 4,096 samples


def test_batchnorm_and_linear_init():
    torch.manual_seed(0)
    net, m = build(network("c: conv(8, 1)\nn: batchnorm\nflatten\nl: linear(500)\nb: batchnorm", "8x16x16"))
    for bn in (m.n, m.b):
        assert torch.equal(bn.weight, torch.ones_like(bn.weight)) and torch.equal(bn.bias, torch.zeros_like(bn.bias))
        assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
        assert torch.equal(bn.running_var, torch.ones_like(bn.running_var)) and int(bn.num_batches_tracked) == 0
    # nn.Linear's own init: weight and bias uniform in +-1/sqrt(fan_in)
    bound = 1 / math.sqrt(8 * 16 * 16)
    w = m.l.weight.detach()
    assert w.abs().max().item() <= bound and m.l.bias.abs().max().item() <= bound
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_init_is_reproducible_under_manual_seed():
    src = network("c: conv(8, 3)\nn: batchnorm\nt: conv_t(4, 2, stride=2)\nflatten\nl: linear(5)", "3x6x6")
    net = netlang.loads(src)

    def state(seed):
        torch.manual_seed(seed)
        return lower(net).state_dict()

    a, b, c = state(0), state(0), state(1)
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    for k in ("c.weight", "t.weight", "l.weight", "l.bias"):
        assert not torch.equal(a[k], c[k]), k


def test_compile_api():
    torch.manual_seed(0)
    m = netlang.compile(ARCH / "squeezenet.net", network="squeezenet1_1", input=(3, 48, 48), num_classes=10)
    assert isinstance(m, nn.Module)
    assert m.classifier[1].weight.shape == (10, 512, 1, 1)
    assert m.eval()(torch.randn(2, 3, 48, 48)).shape == (2, 10)


# ---------------------------------------------------------------------------- boundaries

def test_importing_netlang_does_not_import_torch():
    code = ("import sys, netlang\n"
            "net = netlang.load(sys.argv[1], network='resnet18')\n"
            "assert net.params == 11689512\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad\n")
    r = subprocess.run([sys.executable, "-c", code, str(ARCH / "resnet.net")], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr


def test_unknown_backend_is_a_netlang_error():
    with pytest.raises(netlang.NetlangError, match="unknown backend 'nope'"):
        netlang.compile(ARCH / "resnet.net", backend="nope", network="resnet18")
