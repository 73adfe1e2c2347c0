"""Initialisation rules: what a network's `init` statement may say.

A network body's `init` statements (any number, in conditionals too) are lists of rules applied,
in the order written, after the default initialisation (Kaiming-normal convolutions, fan_out,
relu, with zero bias; batchnorm weight 1, bias 0; linear layers as PyTorch initialises them):

    init linear = normal(0, 0.01), linear.bias = zeros, AuxLogits.fc = trunc_normal(std=0.001)

A rule's target is a kind of layer (KINDS: every layer of that op), a layer name or name prefix
(the convolutions and linear layers under it, and the layer of any kind named so: a batchnorm, a
layer_scale), or a block's name and a path inside it (`bottleneck.bn3`: that layer in every call
of the block), then optionally `.weight` or `.bias` (weight by default). Its value is a scheme of SCHEMES, with torch.nn.init's arguments and defaults. The
rules are stored evaluated in G.graph["init"] as (target, entry, scheme, arguments), only where a
network has any; the torch backend's init_weights applies them.
"""
from __future__ import annotations

from .errors import NetlangNameError, NetlangValueError

# layer kind -> the state entries a rule may set
KINDS = {"conv": ("weight", "bias"), "conv_t": ("weight", "bias"), "linear": ("weight", "bias"),
         "batchnorm": ("weight", "bias"), "layernorm": ("weight", "bias"), "prelu": ("weight",)}

# scheme -> its parameters in order, with defaults (torch.nn.init's), and what it draws
SCHEMES = {
    "default": ((), "the layer's own PyTorch initialisation (reset_parameters: weight and bias)"),
    "zeros": ((), "0"),
    "ones": ((), "1"),
    "constant": ((("value", None),), "value"),
    "normal": ((("mean", 0.0), ("std", 1.0)), "N(mean, std²)"),
    "trunc_normal": ((("mean", 0.0), ("std", 1.0), ("a", -2.0), ("b", 2.0)),
                     "N(mean, std²) redrawn outside [a, b] (a and b are values, not multiples of std)"),
    "uniform": ((("a", 0.0), ("b", 1.0)), "U(a, b)"),
    "kaiming_normal": ((("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
                       "N(0, gain²/fan), fan by mode"),
    "kaiming_uniform": ((("a", 0.0), ("mode", "fan_in"), ("nonlinearity", "leaky_relu")),
                        "U(±gain·√(3/fan))"),
    "xavier_normal": ((("gain", 1.0),), "N(0, gain²·2/(fan_in + fan_out))"),
    "xavier_uniform": ((("gain", 1.0),), "U(±gain·√(6/(fan_in + fan_out)))"),
    "fan_uniform": ((("mode", "fan_in"),), "U(±1/√fan): PyTorch's own linear init with fan_in, "
                                           "EfficientNet's classifier with fan_out"),
}
MODES = ("fan_in", "fan_out")
NONLINEARITIES = ("linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu")
# the layer kinds a name rule reaches under its prefix
NAMED_KINDS = ("conv", "conv_t", "linear")
# the layer kinds a rule reaches where it names the layer itself, and their entries
OWN_KINDS = dict(KINDS, layer_scale=("weight",))


def check_args(scheme: str, args: dict) -> str | None:
    """What is wrong with a scheme's evaluated arguments, or None."""
    for k, v in args.items():
        if k == "mode" and v not in MODES:
            return f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {v!r}"
        if k == "nonlinearity" and v not in NONLINEARITIES:
            return f"nonlinearity must be one of {', '.join(NONLINEARITIES)}, got {v!r}"
        if k not in ("mode", "nonlinearity") and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"{k} must be a number, got {v!r}"
    if scheme in ("normal", "trunc_normal") and args["std"] <= 0:
        return f"std must be positive, got {args['std']}"
    if scheme in ("uniform", "trunc_normal") and not args["a"] < args["b"]:
        return f"a must be below b, got a={args['a']}, b={args['b']}"
    return None


def resolve(G, scopes: dict, rules: list) -> list:
    """The rules as stored: (target, entry, scheme, arguments), a block's path expanded into the
    names it takes in each call of the block (in the order of the calls). A target that reaches
    no layer, or an entry the named layer lacks, is an error at the rule."""
    out = []
    for target, entry, scheme, vals, loc in rules:
        if isinstance(target, tuple):
            block, rest = target
            calls = [p for p, info in scopes.items() if info.get("block") == block]
            if not calls:
                raise NetlangNameError(f"init: block {block} is never called in this network", loc)
            names = [f"{p}.{rest}" if rest else p for p in calls]
        else:
            names = [target]
        for name in names:
            if name not in KINDS:
                _check_reached(G, name, entry, scheme, loc)
            out.append((name, entry, scheme, vals))
    return out


def _check_reached(G, name: str, entry: str, scheme: str, loc) -> None:
    own = G.nodes[name]["op"] if name in G else None
    if own in OWN_KINDS and own not in NAMED_KINDS:
        if entry not in OWN_KINDS[own] or (own == "batchnorm" and not G.nodes[name]["args"].get("affine", True)):
            raise NetlangValueError(f"init: {name} is a {own} without a {entry} to initialise", loc)
        if own == "layer_scale" and scheme in ("default", "fan_uniform"):
            raise NetlangValueError(f"init: {scheme} needs a layer with a fan; {name} is a layer_scale", loc,
                                    hint="a layer scale takes a value: constant(…), zeros, ones, normal(…)")
        return
    if not any(G.nodes[n]["op"] in NAMED_KINDS and (n == name or n.startswith(name + ".")) for n in G):
        raise NetlangNameError(f"init: no layer is named {name}, and no convolution or linear layer under it",
                               loc, hint="a rule names a kind (" + ", ".join(KINDS) + "), a layer, or a block "
                               "and a layer inside it (bottleneck.bn3)")
