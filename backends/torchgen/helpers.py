"""Functions and small layers the generated file defines when it uses them (it imports only torch)."""

HELPERS = {
    "same_value": '''
def same_value(a, b):
    """netlang's ==: a boolean never equals a number."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b
''',
    "drop_path": '''
def drop_path(x, p, training):
    """Stochastic depth: in training, zero a sample's whole branch with probability p and scale
    the survivors by 1 / (1 - p); the identity in eval."""
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep
''',
    "DropPath": '''
class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return drop_path(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"
''',
    "Scale": '''
class Scale(nn.Module):
    """Multiply by a constant (scaled residual branches)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def forward(self, x):
        return x * self.s

    def extra_repr(self):
        return f"s={self.s}"
''',
    "LayerNorm2d": '''
class LayerNorm2d(nn.LayerNorm):
    """nn.LayerNorm over the channels at each pixel of an NCHW map (torchvision's LayerNorm2d)."""

    def forward(self, x):
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
''',
    "FrozenBatchNorm2d": '''
class FrozenBatchNorm2d(nn.Module):
    """A batchnorm whose statistics and affine parameters are fixed buffers, in training as at
    inference (torchvision.ops.FrozenBatchNorm2d, a detection backbone's norm layer)."""

    def __init__(self, num_features, eps=1e-05):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)

    def extra_repr(self):
        return f"{self.weight.shape[0]}, eps={self.eps}"
''',
    "Linear2d": '''
class Linear2d(nn.Linear):
    """nn.Linear at each pixel of an NCHW map, over its channels (ConvNeXt's channels-last
    linear between two permutes)."""

    def forward(self, x):
        return F.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)
''',
    "center_crop": '''
def center_crop(x, h, w):
    top = (x.shape[-2] - h) // 2
    left = (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]
''',
    "CenterCrop": '''
class CenterCrop(nn.Module):
    def __init__(self, h, w=None):
        super().__init__()
        self.h, self.w = h, h if w is None else w

    def forward(self, x):
        return center_crop(x, self.h, self.w)

    def extra_repr(self):
        return f"h={self.h}, w={self.w}"
''',
    "channel_shuffle": '''
def channel_shuffle(x, groups):
    """F.channel_shuffle as torchvision's ShuffleNetV2 writes it: differentiable and traceable on
    every torch netlang supports (torch 2.3's aten.channel_shuffle has no derivative and no meta
    kernel, so neither training nor torch.compile could take it). A new tensor, as that op gives:
    with 1 group, or as many groups as channels, the order is unchanged and flatten would return
    a view of x."""
    y = x.unflatten(1, (groups, -1)).transpose(1, 2).flatten(1, 2)
    return y.clone() if groups in (1, x.shape[1]) else y
''',
    "ChannelShuffle": '''
class ChannelShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"
''',
    "cat_cropped": '''
def cat_cropped(xs):
    """concat(crop=true): centre-crop every input to the smallest height and width among them,
    then join them along channels."""
    h, w = min(x.shape[-2] for x in xs), min(x.shape[-1] for x in xs)
    return torch.cat([center_crop(x, h, w) for x in xs], 1)
''',
    "mean_join": '''
def mean_join(xs, p, training):
    """The mean of the inputs; in training each is dropped with probability p (for the whole
    batch), and at least one is always kept."""
    if not training or p == 0.0:
        return torch.stack(xs).mean(0)
    n = len(xs)
    keep = torch.rand(n, device=xs[0].device) >= p
    # Where every input was dropped, keep one chosen at random (without a branch, for torch.compile).
    chosen = torch.arange(n, device=xs[0].device) == torch.randint(n, (1,), device=xs[0].device)
    keep = keep | (chosen & ~keep.any())
    w = keep.to(xs[0].dtype)
    return (torch.stack(xs) * w.view(n, *([1] * xs[0].dim()))).sum(0) / w.sum()
''',
    "init_weights": '''
def init_weights(module, rules=()):
    """Kaiming-normal convolutions (fan_out, relu) with zero bias, batchnorm weight 1 and bias 0,
    linear layers as PyTorch initialises them; then the network's init rules in order, each
    (layer kind, layer name or name prefix, "weight" or "bias", scheme, torch.nn.init arguments)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    kinds = {"conv": nn.Conv2d, "conv_t": nn.ConvTranspose2d, "linear": nn.Linear,
             "batchnorm": (nn.BatchNorm2d, nn.BatchNorm1d), "layernorm": nn.LayerNorm, "prelu": nn.PReLU}
    layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)      # what a rule naming a prefix reaches
    params = dict(module.named_parameters())
    for target, entry, scheme, a in rules:
        if target in params and target not in kinds:
            found = [(None, params[target])]        # a layer scale: a parameter of its block, no module
        else:
            found = [(m, getattr(m, entry, None)) for name, m in module.named_modules()
                     if (isinstance(m, kinds[target]) if target in kinds
                         else name == target or (isinstance(m, layers) and name.startswith(target + ".")))]
        for m, t in found:
            if t is None:
                continue
            if scheme == "default" and not isinstance(m, layers):
                m.reset_parameters()
            elif scheme in ("zeros", "ones", "constant"):
                nn.init.constant_(t, {"zeros": 0.0, "ones": 1.0}.get(scheme, a.get("value")))
            elif scheme in ("default", "fan_uniform"):
                # U(+-1/sqrt(fan)) of the layer's weight; with fan_in, PyTorch's own init of
                # convolutions and linear layers, weight and bias
                w = m.weight
                fan = w.shape[1 if a.get("mode", "fan_in") == "fan_in" else 0] * (w[0][0].numel() if w.dim() > 1 else 1)
                nn.init.uniform_(t, -fan ** -0.5, fan ** -0.5)
            else:
                getattr(nn.init, scheme + "_")(t, **a)
''',
    "check_input": '''
def check_input(model, x, shape):
    """Raise a ValueError naming the layer that cannot take x, where x is not of the declared
    shape (each new size is tried once, on the meta device)."""
    if isinstance(x, torch.fx.Proxy):
        return                  # symbolic tracing (torch.fx): no sizes to check
    size = tuple(x.shape[1:])
    if size == shape or torch.compiler.is_compiling() or model.__dict__.get("_checking"):
        return
    if x.dim() != len(shape) + 1:
        raise ValueError(f"{type(model).__name__} takes a batch of {'x'.join(map(str, shape))} inputs, "
                         f"got a tensor of shape {tuple(x.shape)}")
    accepted = model.__dict__.setdefault("_accepted_sizes", set())
    if size in accepted:
        return
    names = {id(m): n for n, m in model.named_modules() if n}
    entered = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda m, args: entered.append((names.get(id(m)), tuple(args[0].shape[1:]) if args else None)))
    model.__dict__["_checking"] = True
    try:
        state = {k: torch.empty_like(v, device="meta") for k, v in model.state_dict().items()}
        with torch.no_grad():
            torch.func.functional_call(model, state, (torch.empty((1,) + size, device="meta"),))
    except Exception as err:
        layer, got = next(((n, s) for n, s in reversed(entered) if n), (None, None))
        where = f"layer {layer}" if layer else "its first layer"
        if got is not None:
            where += f", which gets {'x'.join(map(str, got))},"
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{type(model).__name__}: an input of {'x'.join(map(str, size))} does not fit: "
                         f"{where} cannot take it (the declared input is {'x'.join(map(str, shape))}; "
                         f"PyTorch says: {reason})") from None
    finally:
        hook.remove()
        model.__dict__["_checking"] = False
    accepted.add(size)
''',
}

# A helper needs these others too.
NEEDS = {"DropPath": ["drop_path"], "CenterCrop": ["center_crop"], "cat_cropped": ["center_crop"],
         "ChannelShuffle": ["channel_shuffle"]}


def helper_source(used: set) -> list[str]:
    want = set(used)
    for h in list(want):
        want.update(NEEDS.get(h, ()))
    return [HELPERS[h].strip("\n") for h in HELPERS if h in want]
