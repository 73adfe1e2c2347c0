"""The op registry against PyTorch: shape rules, parameter and buffer counts, MAC counts.

PyTorch is the independent reference. Every grid runs both ways: where torch computes an output
the shape rule must give the same shape, and where torch refuses the configuration the rule must
raise OpError (and the reverse).
"""
from __future__ import annotations

import itertools
import math

import pytest

import netlang
from netlang import ops
from netlang.ops import OpError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    pass


# ---------------------------------------------------------------------------- helpers

def canon(name: str, **kw) -> dict:
    """Canonical arguments of op `name`: defaults filled, ints given for pairs become pairs."""
    op = ops.OPS[name]
    args = {}
    for p in op.params:
        v = kw.pop(p.name, p.default)
        assert v is not ops.REQUIRED, f"{name} needs {p.name}"
        if p.kind in ("pair", "pad") and isinstance(v, int):
            v = (v, v)
        args[p.name] = v
    for p in op.params:
        if p.same_as and args[p.name] is None:
            args[p.name] = args[p.same_as]
    assert not kw, f"unknown arguments {kw} for {name}"
    return args


def rule(name: str, in_shapes, **kw) -> tuple:
    return tuple(ops.OPS[name].shape(canon(name, **kw), list(in_shapes)))


def cost(name: str, in_shapes, **kw) -> ops.Cost:
    args = canon(name, **kw)
    out = tuple(ops.OPS[name].shape(args, list(in_shapes)))
    return ops.OPS[name].costs(args, list(in_shapes), out)


def torch_shape(fn, *shapes) -> tuple | None:
    """Output shape of fn on zero tensors of the given (batch-less) shapes, or None if torch refuses
    (raises, or gives an empty tensor as conv_transpose2d does when the padding eats the output)."""
    xs = [torch.zeros((1,) + tuple(s)) for s in shapes]
    try:
        with torch.no_grad():
            y = fn(*xs)
    except (RuntimeError, ValueError):
        return None
    out = tuple(y.shape[1:])
    return out if all(d > 0 for d in out) else None


def rule_or_none(name: str, in_shapes, **kw) -> tuple | None:
    try:
        return rule(name, in_shapes, **kw)
    except OpError:
        return None


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


def n_buffers(m) -> int:
    names = {k for k, _ in m.named_parameters()}
    return sum(v.numel() for k, v in m.state_dict().items() if k not in names)


def agree(cases, ours, theirs):
    """Run both sides over `cases`; return the cases where they disagree (shape or refusal)."""
    bad = []
    for case in cases:
        a, b = ours(*case), theirs(*case)
        if a != b:
            bad.append((case, a, b))
    return bad


# Every op of the registry has a test below; a new op without one fails here.
COVERED = {
    "input", "conv", "conv_t", "linear", "batchnorm", "lrn", "relu", "relu6", "tanh", "sigmoid", "softmax",
    "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "prelu", "mish", "softplus", "log_softmax",
    "layernorm", "layer_scale", "identity", "scale", "dropout", "drop_path", "flatten", "maxpool", "avgpool",
    "global_avgpool", "adaptive_avgpool", "upsample", "center_crop", "concat", "add", "mean", "mul",
    "channel_shuffle",      # (and split, which is the language's: tests/test_split_shuffle.py)
}


def test_every_registered_op_is_covered():
    assert set(ops.LANGUAGE) == COVERED


def test_registry_partitions_layers_and_merges():
    assert set(ops.MERGES) == {"concat", "add", "mean", "mul"}
    assert set(ops.LAYERS) | set(ops.MERGES) | {"input"} == set(ops.LANGUAGE)
    assert not set(ops.LAYERS) & set(ops.MERGES)


# ---------------------------------------------------------------------------- convolution

SIZES = range(1, 10)


def test_conv_shape_grid_square():
    cases = list(itertools.product(SIZES, (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (1, 2)))

    def ours(L, k, s, p, d):
        return rule_or_none("conv", [(2, L, L)], out=3, k=k, stride=s, pad=p, dilation=d)

    def theirs(L, k, s, p, d):
        w = torch.zeros(3, 2, k, k)
        return torch_shape(lambda x: F.conv2d(x, w, stride=s, padding=p, dilation=d), (2, L, L))

    assert agree(cases, ours, theirs) == []
    # The grid exercises both outcomes.
    assert any(ours(*c) is None for c in cases) and any(ours(*c) is not None for c in cases)


def test_conv_shape_grid_asymmetric():
    # 1x7 / 7x1 kernels with (0, 3) / (3, 0) padding as in Inception v3, plus mixed strides.
    cases = []
    for h, w in ((17, 17), (5, 9), (9, 5), (7, 7), (3, 8)):
        for k, p in (((1, 7), (0, 3)), ((7, 1), (3, 0)), ((1, 3), (0, 1)), ((3, 5), (1, 2)), ((2, 4), (0, 0))):
            for s in ((1, 1), (2, 1), (1, 2), (2, 3)):
                for d in ((1, 1), (2, 1)):
                    cases.append((h, w, k, p, s, d))

    def ours(h, w, k, p, s, d):
        return rule_or_none("conv", [(4, h, w)], out=8, k=k, stride=s, pad=p, dilation=d)

    def theirs(h, w, k, p, s, d):
        wt = torch.zeros(8, 4, *k)
        return torch_shape(lambda x: F.conv2d(x, wt, stride=s, padding=p, dilation=d), (4, h, w))

    assert agree(cases, ours, theirs) == []
    assert rule("conv", [(768, 17, 17)], out=192, k=(1, 7), pad=(0, 3)) == (192, 17, 17)


@pytest.mark.parametrize("cin,cout,groups", [(4, 8, 1), (4, 8, 2), (4, 8, 4), (6, 9, 3), (6, 8, 3), (5, 10, 2),
                                             (32, 32, 32), (3, 64, 1)])
def test_conv_groups_against_torch(cin, cout, groups):
    torch_ok = cin % groups == 0 and cout % groups == 0
    if not torch_ok:
        with pytest.raises(ValueError):
            nn.Conv2d(cin, cout, 3, groups=groups)
        with pytest.raises(OpError) as info:
            rule("conv", [(cin, 8, 8)], out=cout, k=3, groups=groups)
        assert info.value.arg == "groups"
        return
    for bias in (True, False):
        m = nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=bias)
        c = cost("conv", [(cin, 8, 8)], out=cout, k=3, pad=1, groups=groups, bias=bias)
        assert c.params == n_params(m)
        assert c.buffers == n_buffers(m) == 0
        expect = torch_shape(m, (cin, 8, 8))
        assert rule("conv", [(cin, 8, 8)], out=cout, k=3, pad=1, groups=groups) == expect


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("k,d", [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (2, 3), ((1, 7), 1), ((2, 3), (2, 1))])
def test_conv_pad_same_matches_torch(k, d):
    for h, w in ((7, 7), (8, 5), (1, 1), (2, 9)):
        m = nn.Conv2d(3, 5, k, padding="same", dilation=d)
        expect = tuple(m(torch.zeros(1, 3, h, w)).shape[1:])
        assert rule("conv", [(3, h, w)], out=5, k=k, pad="same", dilation=d) == expect == (5, h, w)
        assert cost("conv", [(3, h, w)], out=5, k=k, pad="same", dilation=d).params == n_params(m)


def test_conv_pad_same_needs_stride_1():
    with pytest.raises(ValueError):              # torch's own refusal, the reference
        nn.Conv2d(3, 5, 3, stride=2, padding="same")
    for s in (2, (1, 2), (2, 1)):
        with pytest.raises(OpError) as info:
            rule("conv", [(3, 8, 8)], out=5, k=3, stride=s, pad="same")
        assert info.value.arg == "pad" and info.value.kind == "value"


def test_conv_t_shape_grid():
    cases = list(itertools.product((1, 2, 3, 5), (1, 2, 3, 4), (1, 2, 3), (0, 1, 2), (0, 1, 2), (1, 2)))

    def ours(L, k, s, p, op, d):
        return rule_or_none("conv_t", [(2, L, L)], out=3, k=k, stride=s, pad=p, output_pad=op, dilation=d)

    def theirs(L, k, s, p, op, d):
        w = torch.zeros(2, 3, k, k)
        return torch_shape(lambda x: F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=op, dilation=d),
                           (2, L, L))

    assert agree(cases, ours, theirs) == []
    assert any(ours(*c) is None for c in cases)


def test_conv_t_output_pad_asymmetric():
    for (h, w), k, s, p, op in [((4, 5), (3, 2), (2, 3), (1, 0), (1, 2)), ((7, 7), 3, 2, 1, 1), ((1, 1), 4, 2, 1, 0)]:
        m = nn.ConvTranspose2d(6, 4, k, stride=s, padding=p, output_padding=op)
        expect = tuple(m(torch.zeros(1, 6, h, w)).shape[1:])
        assert rule("conv_t", [(6, h, w)], out=4, k=k, stride=s, pad=p, output_pad=op) == expect
    # U-Net's 2x2/2 up-convolution doubles the size.
    assert rule("conv_t", [(32, 32, 32)], out=16, k=2, stride=2) == (16, 64, 64)


@pytest.mark.parametrize("cin,cout,groups,bias", [(4, 8, 1, True), (4, 8, 2, False), (6, 3, 3, True),
                                                  (8, 8, 8, True), (4, 6, 4, True)])
def test_conv_t_params_against_torch(cin, cout, groups, bias):
    if cin % groups or cout % groups:
        with pytest.raises(ValueError):
            nn.ConvTranspose2d(cin, cout, 3, groups=groups)
        with pytest.raises(OpError):
            rule("conv_t", [(cin, 5, 5)], out=cout, k=3, groups=groups)
        return
    m = nn.ConvTranspose2d(cin, cout, (3, 2), stride=2, groups=groups, bias=bias)
    c = cost("conv_t", [(cin, 5, 5)], out=cout, k=(3, 2), stride=2, groups=groups, bias=bias)
    assert c.params == n_params(m) and c.buffers == n_buffers(m) == 0


# ---------------------------------------------------------------------------- linear

@pytest.mark.parametrize("fin,fout,bias", [(1, 1, True), (512, 1000, True), (2048, 1000, False), (7, 3, True)])
def test_linear_against_torch(fin, fout, bias):
    m = nn.Linear(fin, fout, bias=bias)
    assert rule("linear", [(fin,)], out=fout, bias=bias) == tuple(m(torch.zeros(1, fin)).shape[1:])
    c = cost("linear", [(fin,)], out=fout, bias=bias)
    assert c.params == n_params(m) and c.buffers == n_buffers(m) == 0
    assert c.macs == fin * fout


def test_linear_refuses_a_feature_map():
    with pytest.raises(OpError) as info:
        rule("linear", [(512, 7, 7)], out=10)
    assert "flatten" in (info.value.hint or "")
    with pytest.raises(OpError) as info:
        rule("linear", [(512,)], out=10, pointwise=True)
    assert info.value.arg == "pointwise"


@pytest.mark.parametrize("shape,fout,bias", [((96, 56, 56), 384, True), ((3, 1, 5), 2, False), ((7, 4, 4), 7, True)])
def test_pointwise_linear_is_nn_linear_on_the_channels_last_map(shape, fout, bias):
    c, h, w = shape
    m = nn.Linear(c, fout, bias=bias)
    want = tuple(m(torch.zeros(1, c, h, w).permute(0, 2, 3, 1)).permute(0, 3, 1, 2).shape[1:])
    assert rule("linear", [shape], out=fout, bias=bias, pointwise=True) == want
    cst = cost("linear", [shape], out=fout, bias=bias, pointwise=True)
    assert cst.params == n_params(m) and cst.buffers == 0
    assert cst.macs == c * fout * h * w                      # MACs per pixel x pixels
    assert ops.OPS["linear"].state(canon("linear", out=fout, bias=bias, pointwise=True), [shape]) == \
        [(k, tuple(v.shape), False) for k, v in m.state_dict().items()]


@pytest.mark.parametrize("shape", [(96, 56, 56), (768, 1, 1), (10,)])
def test_layernorm_and_layer_scale_state_against_torch(shape):
    c = shape[0]
    m = nn.LayerNorm(c)
    assert rule("layernorm", [shape]) == shape
    assert ops.OPS["layernorm"].state(canon("layernorm"), [shape]) == \
        [(k, tuple(v.shape), False) for k, v in m.state_dict().items()]
    cst = cost("layernorm", [shape])
    assert cst.params == n_params(m) and cst.buffers == 0 and cst.macs == 0
    assert ops.OPS["layernorm"].param_index["eps"].default == 1e-6       # ConvNeXt's, not nn.LayerNorm's
    # torchvision's CNBlock: nn.Parameter(torch.ones(dim, 1, 1) * layer_scale); on a vector one per feature
    scale = torch.ones(c, 1, 1) if len(shape) == 3 else torch.ones(c)
    assert ops.OPS["layer_scale"].state(canon("layer_scale"), [shape]) == [("", tuple(scale.shape), False)]
    cst = cost("layer_scale", [shape])
    assert cst.params == c and cst.macs == 0 and rule("layer_scale", [shape]) == shape


# ---------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("c", [1, 3, 64, 2048])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_params_and_buffers_against_torch(c, affine):
    m = nn.BatchNorm2d(c, affine=affine)
    cst = cost("batchnorm", [(c, 4, 5)], affine=affine)
    assert cst.params == n_params(m) == (2 * c if affine else 0)
    # running_mean, running_var and num_batches_tracked
    assert cst.buffers == n_buffers(m) == 2 * c + 1
    assert rule("batchnorm", [(c, 4, 5)]) == tuple(m.eval()(torch.zeros(1, c, 4, 5)).shape[1:])


def test_lrn_against_torch():
    m = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
    for shape in ((96, 55, 55), (3, 1, 1), (1, 4, 6)):
        assert rule("lrn", [shape], size=5, k=2.0) == torch_shape(m, shape)
    c = cost("lrn", [(96, 55, 55)], size=5)
    assert c.params == n_params(m) == 0 and c.buffers == n_buffers(m) == 0
    with pytest.raises(OpError):
        rule("lrn", [(4096,)], size=5)


# ---------------------------------------------------------------------------- element-wise

@pytest.mark.parametrize("name,module", [
    ("relu", nn.ReLU(inplace=True)), ("relu6", nn.ReLU6(inplace=True)), ("tanh", nn.Tanh()),
    ("sigmoid", nn.Sigmoid()), ("softmax", nn.Softmax(dim=1)), ("identity", nn.Identity()),
    ("dropout", nn.Dropout(0.5)), ("flatten", nn.Flatten()),
    ("hardswish", nn.Hardswish(inplace=True)), ("hardsigmoid", nn.Hardsigmoid()), ("silu", nn.SiLU()),
    ("gelu", nn.GELU()), ("leaky_relu", nn.LeakyReLU()), ("elu", nn.ELU()), ("mish", nn.Mish()),
    ("softplus", nn.Softplus()), ("log_softmax", nn.LogSoftmax(dim=1)),
])
def test_pointwise_and_views_against_torch(name, module):
    module.eval()
    for shape in ((3, 5, 7), (10,), (1, 1, 1)):
        assert rule(name, [shape]) == torch_shape(module, shape)
        c = cost(name, [shape])
        assert c.params == n_params(module) == 0 and c.buffers == n_buffers(module) == 0 and c.macs == 0


def test_activation_costs_and_state():
    # one element-wise op per element for every activation; softmax and log_softmax 3
    for name in ops.ACTIVATIONS:
        assert cost(name, [(3, 5, 7)]).ew_ops == (3 if "softmax" in name else 1) * 105, name
    assert ops.OPS["gelu"].param_index["approximate"].choices == ("none", "tanh")
    assert ops.OPS["leaky_relu"].param_index["slope"].default == nn.LeakyReLU().negative_slope
    assert ops.OPS["softplus"].param_index["threshold"].default == nn.Softplus().threshold


@pytest.mark.parametrize("shape", [(6, 5, 7), (10,)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_prelu_state_is_nn_prelus(shape, per_channel):
    m = nn.PReLU(shape[0] if per_channel else 1)
    args = canon("prelu", per_channel=per_channel)
    assert rule("prelu", [shape], per_channel=per_channel) == torch_shape(m, shape)
    assert ops.OPS["prelu"].state(args, [shape]) == [("weight", tuple(m.weight.shape), False)]
    c = cost("prelu", [shape], per_channel=per_channel)
    assert c.params == n_params(m) and c.buffers == n_buffers(m) == 0 and c.macs == 0
    assert ops.OPS["prelu"].param_index["init"].default == nn.PReLU().weight.item()


def test_softplus_refuses_beta_zero():
    with pytest.raises(OpError, match="beta"):
        rule("softplus", [(3, 4, 4)], beta=0.0)
    assert rule("softplus", [(3, 4, 4)], beta=-2.0) == torch_shape(nn.Softplus(beta=-2.0), (3, 4, 4))


def test_scale_and_drop_path_keep_the_shape():
    for shape in ((3, 5, 7), (10,)):
        assert rule("scale", [shape], s=0.17) == torch_shape(lambda x: x * 0.17, shape)
        # drop_path multiplies each sample by a 0/1 mask of shape (N, 1, 1, 1)
        mask = torch.ones((1,) + (1,) * len(shape))
        assert rule("drop_path", [shape], p=0.2) == torch_shape(lambda x: x * mask / 0.8, shape)
        assert cost("scale", [shape], s=0.17).params == cost("drop_path", [shape], p=0.2).params == 0


def test_input_rule():
    assert rule("input", [], shape=(3, 224, 224)) == (3, 224, 224)
    assert ops.OPS["input"].arity == 0


# ---------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("name", ["maxpool", "avgpool"])
def test_pool_shape_grid(name):
    cases = list(itertools.product(range(1, 12), (1, 2, 3, 4, 5), (1, 2, 3), (0, 1, 2), (False, True)))
    tmod = nn.MaxPool2d if name == "maxpool" else nn.AvgPool2d

    def ours(L, k, s, p, ceil):
        return rule_or_none(name, [(2, L, L)], k=k, stride=s, pad=p, ceil=ceil)

    def theirs(L, k, s, p, ceil):
        try:
            m = tmod(k, stride=s, padding=p, ceil_mode=ceil)
        except (RuntimeError, ValueError):
            return None
        return torch_shape(m, (2, L, L))

    assert agree(cases, ours, theirs) == []
    assert any(ours(*c) is None for c in cases)


def test_pool_ceil_drops_a_window_that_starts_in_the_padding():
    # 6 + 2*1 = 8 padded, k=2, s=2: ceil((8-2)/2)+1 = 4 windows, but the 4th would start at
    # padded index 6 = 5 + pad, i.e. wholly in the right padding, so torch drops it.
    m = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)
    assert torch_shape(m, (1, 6, 6)) == (1, 4, 4)
    assert rule("maxpool", [(1, 6, 6)], k=2, stride=2, pad=1, ceil=True) == (1, 4, 4)
    # Plain ceil without padding: 7 -> ceil((7-3)/2)+1 = 3 (floor would give 3 too), 8 -> 4 vs 3.
    for L, expect in ((7, 3), (8, 4), (112, 56), (55, 27), (14, 7)):
        m = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        ours = rule("maxpool", [(1, L, L)], k=3, stride=2, ceil=True)
        assert ours == torch_shape(m, (1, L, L)) == (1, expect, expect)
    # The case where the last window is dropped without padding: s > k.
    m = nn.MaxPool2d(1, stride=3, ceil_mode=True)
    for L in range(1, 10):
        assert rule("maxpool", [(1, L, L)], k=1, stride=3, ceil=True) == torch_shape(m, (1, L, L))


def test_pool_ceil_window_may_overhang_a_small_input():
    # GoogLeNet's maxpool(3, stride=2, ceil=true) on a 2x2 map (a 32x32 input): torch gives 1x1.
    m = nn.MaxPool2d(3, stride=2, ceil_mode=True)
    assert torch_shape(m, (480, 2, 2)) == (480, 1, 1)
    assert rule("maxpool", [(480, 2, 2)], k=3, stride=2, ceil=True) == (480, 1, 1)
    with pytest.raises(OpError, match="kernel 3 is larger than the padded input 2"):
        rule("maxpool", [(480, 2, 2)], k=3, stride=2)
    # a window must still start inside the input: 1 -> nothing with k=3, stride 1
    assert torch_shape(nn.MaxPool2d(3, stride=1, ceil_mode=True), (1, 1, 1)) is None
    with pytest.raises(OpError):
        rule("maxpool", [(1, 1, 1)], k=3, stride=1, ceil=True)


def test_pool_asymmetric_and_default_stride():
    for h, w in ((9, 9), (8, 13), (3, 3)):
        m = nn.AvgPool2d((1, 3), stride=(1, 2), padding=(0, 1), ceil_mode=True)
        assert rule("avgpool", [(4, h, w)], k=(1, 3), stride=(1, 2), pad=(0, 1), ceil=True) == torch_shape(m, (4, h, w))
        m = nn.MaxPool2d((3, 2))             # stride defaults to the kernel, as in torch
        assert rule("maxpool", [(4, h, w)], k=(3, 2)) == torch_shape(m, (4, h, w))


@pytest.mark.parametrize("k", [1, 3, 5, (3, 5)])
def test_pool_pad_same(k):
    kk = (k, k) if isinstance(k, int) else k
    m = nn.MaxPool2d(k, stride=1, padding=(kk[0] // 2, kk[1] // 2))
    for shape in ((2, 7, 7), (2, 4, 9)):
        assert rule("maxpool", [shape], k=k, stride=1, pad="same") == torch_shape(m, shape) == shape


def test_pool_pad_same_refusals():
    with pytest.raises(OpError):
        rule("maxpool", [(2, 8, 8)], k=3, stride=2, pad="same")
    with pytest.raises(OpError):
        rule("avgpool", [(2, 8, 8)], k=2, stride=1, pad="same")


def test_pool_padding_more_than_half_the_kernel():
    with pytest.raises(RuntimeError):                # torch's refusal, the reference
        nn.MaxPool2d(2, stride=1, padding=2)(torch.zeros(1, 1, 8, 8))
    for name in ("maxpool", "avgpool"):
        with pytest.raises(OpError) as info:
            rule(name, [(1, 8, 8)], k=2, stride=1, pad=2)
        assert info.value.arg == "pad"
        with pytest.raises(OpError):
            rule(name, [(1, 8, 8)], k=(3, 3), stride=1, pad=(1, 2))
        assert rule(name, [(1, 8, 8)], k=3, stride=1, pad=1) == (1, 8, 8)     # exactly half is fine


def test_pool_params_are_zero():
    for m, name in ((nn.MaxPool2d(3), "maxpool"), (nn.AvgPool2d(3), "avgpool")):
        c = cost(name, [(4, 9, 9)], k=3)
        assert c.params == n_params(m) == 0 and c.buffers == n_buffers(m) == 0


def test_global_and_adaptive_avgpool_against_torch():
    for shape in ((512, 7, 7), (3, 1, 1), (8, 13, 2)):
        assert rule("global_avgpool", [shape]) == torch_shape(nn.AdaptiveAvgPool2d(1), shape)
        for out in (1, 6, (6, 6), (2, 3), (7, 1)):
            assert rule("adaptive_avgpool", [shape], out=out) == torch_shape(nn.AdaptiveAvgPool2d(out), shape)
    with pytest.raises(OpError):
        rule("global_avgpool", [(512,)])
    with pytest.raises(OpError):
        rule("adaptive_avgpool", [(512,)], out=1)


# ---------------------------------------------------------------------------- resampling

@pytest.mark.parametrize("factor,mode", [(2, "nearest"), ((2, 3), "nearest"), (2, "bilinear"), ((1, 4), "bilinear")])
def test_upsample_against_torch(factor, mode):
    f = factor if isinstance(factor, tuple) else (factor, factor)
    m = nn.Upsample(scale_factor=tuple(float(x) for x in f), mode=mode)
    for shape in ((3, 5, 7), (1, 1, 1)):
        assert rule("upsample", [shape], factor=factor, mode=mode) == torch_shape(m, shape)
        assert cost("upsample", [shape], factor=factor, mode=mode).params == 0


def test_center_crop_against_slicing():
    for (c, h, w), th, tw in (((4, 10, 12), 6, 8), ((4, 7, 7), 7, 7), ((1, 9, 5), 3, None), ((2, 5, 5), 1, 1)):
        tw_ = th if tw is None else tw
        top, left = (h - th) // 2, (w - tw_) // 2
        expect = torch_shape(lambda x: x[:, :, top:top + th, left:left + tw_], (c, h, w))
        assert rule("center_crop", [(c, h, w)], h=th, w=tw) == expect
    with pytest.raises(OpError):
        rule("center_crop", [(4, 10, 12)], h=11, w=4)
    with pytest.raises(OpError):
        rule("center_crop", [(4, 10, 12)], h=4, w=13)


# ---------------------------------------------------------------------------- merges

def _crop_to(x, h, w):
    top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return x[:, :, top:top + h, left:left + w]


@pytest.mark.parametrize("c", [1, 2, 3, 4, 6, 12, 116])
@pytest.mark.parametrize("g", [1, 2, 3, 4, 5])
def test_channel_shuffle_shape_against_torch(c, g):
    ours = rule_or_none("channel_shuffle", [(c, 5, 3)], groups=g)
    assert ours == torch_shape(lambda x: F.channel_shuffle(x, g), (c, 5, 3))
    if ours is not None:
        assert cost("channel_shuffle", [(c, 5, 3)], groups=g) == ops.Cost()    # data movement only
        assert not ops.OPS["channel_shuffle"].aliases_input                    # a copy


def test_concat_against_torch_cat():
    shape_sets = [
        [(3, 8, 8), (5, 8, 8)], [(3, 8, 8), (5, 8, 7)], [(3, 8, 8), (5, 7, 8)], [(64, 28, 28)] * 4,
        [(10,), (20,)], [(10,), (2, 2, 2)], [(1, 1, 1), (1, 1, 1), (1, 1, 1)],
    ]
    for shapes in shape_sets:
        ours = rule_or_none("concat", shapes)
        assert ours == torch_shape(lambda *xs: torch.cat(xs, dim=1), *shapes), shapes
        if ours is not None:
            assert cost("concat", shapes).params == 0


def test_concat_crop_against_torch():
    # U-Net: the skip connection is larger and is centre-cropped to the upsampled map.
    for shapes in ([(16, 56, 56), (16, 64, 64)], [(8, 10, 12), (4, 9, 13), (2, 11, 11)], [(3, 5, 5), (3, 5, 5)]):
        h, w = min(s[1] for s in shapes), min(s[2] for s in shapes)
        expect = torch_shape(lambda *xs: torch.cat([_crop_to(x, h, w) for x in xs], dim=1), *shapes)
        assert rule("concat", shapes, crop=True) == expect
    with pytest.raises(OpError):
        rule("concat", [(3, 5, 5), (3, 4, 4)])


@pytest.mark.parametrize("name,reduce", [("add", lambda t: t.sum(0)), ("mean", lambda t: t.mean(0))])
def test_add_and_mean_need_equal_shapes(name, reduce):
    # torch.stack needs equal shapes: exactly netlang's rule (no broadcasting for add and mean).
    shape_sets = [[(4, 5, 5)] * 2, [(4, 5, 5)] * 3, [(4, 5, 5), (8, 5, 5)], [(4, 5, 5), (4, 3, 3)],
                  [(4, 5, 5), (4, 1, 1)], [(7,), (7,)], [(7,), (7, 1, 1)]]
    for shapes in shape_sets:
        assert rule_or_none(name, shapes) == torch_shape(lambda *xs: reduce(torch.stack(xs)), *shapes), shapes
    with pytest.raises(OpError) as info:
        rule(name, [(256, 56, 56), (64, 56, 56)])
    assert info.value.message == f"{name}: branch 1 gives 256x56x56 but branch 2 gives 64x56x56"
    assert "projection" in info.value.hint
    assert ops.OPS[name].min_inputs == 2


def test_mul_broadcasting_against_torch():
    dims = (1, 2, 3)
    cases = [[a, b] for a in itertools.product(dims, repeat=3) for b in itertools.product(dims, repeat=3)]
    cases += [[(4, 5, 5), (4, 1, 1), (1, 5, 5)], [(4, 1, 1), (4, 5, 5)], [(6,), (6,)], [(6,), (1,)]]
    for shapes in cases:
        assert rule_or_none("mul", shapes) == torch_shape(lambda *xs: math.prod(xs), *shapes), shapes
    # Unlike torch, mul does not align different ranks: a vector gate must be reshaped first.
    with pytest.raises(OpError):
        rule("mul", [(4, 5, 5), (4,)])


# ---------------------------------------------------------------------------- MACs

def _conv_macs(cin, cout, groups, kh, kw, hout, wout):
    return hout * wout * cout * (cin // groups) * kh * kw


def _conv_t_macs(cin, cout, groups, kh, kw, hin, win):
    # every input element is multiplied by a (cout/groups) x kh x kw slice of the weights
    return hin * win * cin * (cout // groups) * kh * kw


@pytest.mark.parametrize("cin,cout,k,s,p,g,hw", [
    (3, 64, 7, 2, 3, 1, 224), (64, 64, 3, 1, 1, 1, 56), (32, 32, 3, 1, 1, 32, 28), (8, 12, (1, 7), 1, (0, 3), 4, 17),
    (6, 9, (3, 2), (2, 1), 0, 3, 11),
])
def test_conv_macs(cin, cout, k, s, p, g, hw):
    c = cost("conv", [(cin, hw, hw)], out=cout, k=k, stride=s, pad=p, groups=g, bias=True)
    _, ho, wo = rule("conv", [(cin, hw, hw)], out=cout, k=k, stride=s, pad=p, groups=g)
    kh, kw = (k, k) if isinstance(k, int) else k
    assert c.macs == _conv_macs(cin, cout, g, kh, kw, ho, wo)
    # the bias is an element-wise add per output element, not a MAC
    assert c.ew_ops == cout * ho * wo


def test_macs_known_figures():
    # AlexNet conv1 (96 11x11/4 on 3x227x227 -> 55x55): 105,415,200 MACs; VGG16 conv1_1: 86,704,128.
    assert cost("conv", [(3, 227, 227)], out=96, k=11, stride=4).macs == 105_415_200
    assert cost("conv", [(3, 224, 224)], out=64, k=3, pad=1).macs == 86_704_128


@pytest.mark.parametrize("cin,cout,k,s,p,op,g,hw", [(16, 8, 2, 2, 0, 0, 1, 32), (6, 4, 3, 2, 1, 1, 2, 7),
                                                   (4, 4, (3, 1), (2, 1), 0, 0, 4, 5)])
def test_conv_t_macs(cin, cout, k, s, p, op, g, hw):
    c = cost("conv_t", [(cin, hw, hw)], out=cout, k=k, stride=s, pad=p, output_pad=op, groups=g)
    kh, kw = (k, k) if isinstance(k, int) else k
    assert c.macs == _conv_t_macs(cin, cout, g, kh, kw, hw, hw)


def test_macs_against_torch_flop_counter():
    from torch.utils.flop_counter import FlopCounterMode
    layers = [
        ("conv", (3, 32, 32), dict(out=16, k=3, stride=2, pad=1, bias=True),
         nn.Conv2d(3, 16, 3, stride=2, padding=1)),
        ("conv", (8, 9, 11), dict(out=12, k=(1, 7), pad=(0, 3), groups=4, bias=False),
         nn.Conv2d(8, 12, (1, 7), padding=(0, 3), groups=4, bias=False)),
        ("conv", (4, 10, 10), dict(out=4, k=3, dilation=2), nn.Conv2d(4, 4, 3, dilation=2)),
        ("conv_t", (16, 8, 8), dict(out=8, k=2, stride=2), nn.ConvTranspose2d(16, 8, 2, stride=2)),
        ("conv_t", (6, 5, 7), dict(out=4, k=3, stride=2, pad=1, output_pad=1, groups=2),
         nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)),
        ("linear", (300,), dict(out=70), nn.Linear(300, 70)),
        ("linear", (30,), dict(out=7, bias=False), nn.Linear(30, 7, bias=False)),
    ]
    for name, shape, kw, m in layers:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            m(torch.zeros((1,) + shape))
        # FlopCounterMode counts 2 FLOPs per multiply-accumulate and ignores bias adds.
        assert 2 * cost(name, [shape], **kw).macs == counter.get_total_flops(), (name, shape, kw)


# ---------------------------------------------------------------------------- errors

def test_op_errors():
    cases = [
        ("conv", [(3, 8, 8)], dict(out=8, k=3, groups=2), "groups"),
        ("conv", [(4, 8, 8)], dict(out=6, k=3, groups=4), "groups"),
        ("conv_t", [(3, 8, 8)], dict(out=8, k=3, groups=2), "groups"),
        ("conv", [(3, 4, 4)], dict(out=8, k=5), None),
        ("conv", [(3, 4, 4)], dict(out=8, k=3, dilation=2), None),
        ("conv", [(3, 4, 9)], dict(out=8, k=(1, 11), pad=(0, 0)), None),
        ("maxpool", [(3, 8, 8)], dict(k=3, pad=2), "pad"),
        ("avgpool", [(3, 8, 8)], dict(k=1, pad=1), "pad"),
        ("maxpool", [(3, 2, 2)], dict(k=3), None),
        ("conv", [(3, 8, 8)], dict(out=8, k=3, stride=2, pad="same"), "pad"),
        ("linear", [(3, 8, 8)], dict(out=8), None),
        ("conv", [(48,)], dict(out=8, k=1), None),
        ("conv_t", [(3, 8, 8)], dict(out=8, k=3, stride=2, output_pad=2), "output_pad"),
        ("conv_t", [(3, 1, 1)], dict(out=8, k=1, pad=1), "pad"),
        ("concat", [(3, 8, 8), (3, 4, 4)], {}, None),
        ("mul", [(3, 8, 8), (3, 4, 4)], {}, None),
        ("upsample", [(16,)], dict(factor=2), None),
    ]
    for name, shapes, kw, arg in cases:
        with pytest.raises(OpError) as info:
            rule(name, shapes, **kw)
        assert info.value.message.startswith(name), info.value.message
        if arg is not None:
            assert info.value.arg == arg, (name, kw, info.value.arg)


def test_kernel_larger_than_input_message_names_the_sizes():
    with pytest.raises(OpError) as info:
        rule("conv", [(3, 4, 6)], out=8, k=5, pad=0)
    assert info.value.message == "conv: kernel 5 is larger than the padded input 4 (height)"


# ---------------------------------------------------------------------------- through the language

def _one_layer(item: str, input_shape: str = "3x17x17"):
    net = netlang.loads(f"network t {{\n    input {input_shape}\n    x: {item}\n}}")
    return net.graph.nodes["x"]


def test_language_arguments_reach_the_rule_canonically():
    node = _one_layer("conv(8, 1x7, pad=(0, 3), bias=false)")
    assert node["args"] == canon("conv", out=8, k=(1, 7), pad=(0, 3), bias=False)
    assert node["shape"] == (8, 17, 17) == torch_shape(nn.Conv2d(3, 8, (1, 7), padding=(0, 3)), (3, 17, 17))
    node = _one_layer("maxpool(3, stride=2, ceil=true)")
    assert node["args"] == canon("maxpool", k=3, stride=2, ceil=True)
    assert node["shape"] == torch_shape(nn.MaxPool2d(3, 2, ceil_mode=True), (3, 17, 17)) == (3, 8, 8)


def test_language_reports_op_errors_at_the_argument():
    with pytest.raises(netlang.NetlangError) as info:
        netlang.loads("network t {\n    input 3x8x8\n    conv(8, 3, groups=2)\n}")
    err = info.value
    assert err.kind == "shape error" and "divisible by groups=2" in err.message
    assert (err.loc.line, err.loc.col) == (3, 16)            # the groups=2 argument
    with pytest.raises(netlang.NetlangError) as info:
        netlang.loads("network t {\n    input 3x8x8\n    conv(8, 3, stride=2, pad=\"same\")\n}")
    assert info.value.kind == "value error" and (info.value.loc.line, info.value.loc.col) == (3, 26)
