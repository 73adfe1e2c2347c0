"""Identifiers, class names and literals of the generated source: nothing from a .net file reaches
it except through these."""
from __future__ import annotations

import builtins
import keyword
import re

from netlang.errors import NetlangNameError

from .helpers import HELPERS


class NeedsConcrete(Exception):
    """A decision needs a value that is not known here (a branch not taken by this call)."""


# Names the generated file defines or uses (every helper it may hold): no local variable,
# parameter or class may take them.
HELPER_NAMES = tuple(HELPERS)
RESERVED = (set(dir(builtins)) | set(keyword.kwlist) | {"self", "torch", "nn", "F", "OrderedDict", "x", "math"}
            | set(HELPER_NAMES))

# Every attribute of a fresh nn.Module in torch 2.13 (tests check the installed torch adds none),
# and the attribute generated classes give their output width: no child module can take these.
MODULE_ATTRIBUTES = frozenset({
    'T_destination', '__annotations__', '__call__', '__class__', '__delattr__', '__dict__',
    '__dir__', '__doc__', '__eq__', '__format__', '__ge__', '__getattr__', '__getattribute__',
    '__getstate__', '__gt__', '__hash__', '__init__', '__init_subclass__', '__le__', '__lt__',
    '__module__', '__ne__', '__new__', '__reduce__', '__reduce_ex__', '__repr__', '__setattr__',
    '__setstate__', '__sizeof__', '__str__', '__subclasshook__', '__weakref__', '_apply',
    '_backward_hooks', '_backward_pre_hooks', '_buffers', '_call_impl', '_compiled_call_impl',
    '_forward_hooks', '_forward_hooks_always_called', '_forward_hooks_with_kwargs',
    '_forward_pre_hooks', '_forward_pre_hooks_with_kwargs', '_get_backward_hooks',
    '_get_backward_pre_hooks', '_get_name', '_is_full_backward_hook', '_load_from_state_dict',
    '_load_state_dict_post_hooks', '_load_state_dict_pre_hooks',
    '_maybe_warn_non_full_backward_hook', '_modules', '_named_members',
    '_non_persistent_buffers_set', '_parameters', '_register_load_state_dict_pre_hook',
    '_register_state_dict_hook', '_replicate_for_data_parallel', '_save_to_state_dict',
    '_slow_forward', '_state_dict_hooks', '_state_dict_pre_hooks', '_version', '_wrapped_call_impl',
    'add_module', 'apply', 'bfloat16', 'buffers', 'call_super_init', 'children', 'compile', 'cpu',
    'cuda', 'double', 'dump_patches', 'eval', 'extra_repr', 'float', 'forward', 'get_buffer',
    'get_extra_state', 'get_parameter', 'get_submodule', 'half', 'ipu', 'load_state_dict',
    'modules', 'mtia', 'named_buffers', 'named_children', 'named_modules', 'named_parameters',
    'parameters', 'register_backward_hook', 'register_buffer', 'register_forward_hook',
    'register_forward_pre_hook', 'register_full_backward_hook', 'register_full_backward_pre_hook',
    'register_load_state_dict_post_hook', 'register_load_state_dict_pre_hook', 'register_module',
    'register_parameter', 'register_state_dict_post_hook', 'register_state_dict_pre_hook',
    'requires_grad_', 'set_extra_state', 'set_submodule', 'share_memory', 'state_dict', 'to',
    'to_empty', 'train', 'training', 'type', 'xpu', 'zero_grad',
    # nn.Sequential's own methods (a labelled layer inside a sequence), nn.ModuleDict's (a dotted
    # label's containers), and the generated classes' output width
    'append', 'extend', 'insert', 'pop', '_get_item_by_idx', 'clear', 'items', 'keys', 'update', 'values',
    'out_channels',
})


def check_module_names(G) -> None:
    """Every part of every layer's name must be free to name a child module."""
    for n, data in G.nodes(data=True):
        if data["op"] == "input":
            continue
        for part in n.split("."):
            if part in MODULE_ATTRIBUTES or part.startswith("__"):
                raise NetlangNameError(
                    f"'{part}' cannot name a PyTorch module: nn.Module already has an attribute '{part}'",
                    data["loc"], hint=f"choose another label; the layer's state_dict keys would start with '{n}.'")


def is_attr(name: str) -> bool:
    """Can `name` be written as `obj.name` (and mean the same attribute)?"""
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


def py_ident(text: str, taken: set, fallback: str = "v") -> str:
    """A Python identifier made from text, not in `taken` (which it joins): ASCII, not a keyword,
    builtin or name the file uses; `_2`, `_3`... after a repeat."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", text)
    if not base or not base.isidentifier() or base in RESERVED or base.startswith("__"):
        base = f"{fallback}_{base.strip('_')}" if base.strip("_") else fallback
    name, i = base, 2
    while name in taken or name in RESERVED:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


# torchvision's (and the papers') spellings of words in network and block names.
SPELLING = {
    "resnet": "ResNet", "resnext": "ResNeXt", "googlenet": "GoogLeNet", "vgg": "VGG", "densenet": "DenseNet",
    "squeezenet": "SqueezeNet", "alexnet": "AlexNet", "lenet": "LeNet", "lenet5": "LeNet5", "fcn": "FCN",
    "fcn8s": "FCN8s", "fcn16s": "FCN16s", "fcn32s": "FCN32s", "unet": "UNet", "nin": "NiN", "zfnet": "ZFNet",
    "allcnn": "AllCNN", "cnn": "CNN", "deconvnet": "DeconvNet", "fractalnet": "FractalNet", "preact": "PreAct",
    "cifar": "CIFAR", "se": "SE", "mlp": "MLP", "bn": "BN", "relu": "ReLU", "lrn": "LRN", "fc": "FC",
    "mobilenet": "MobileNet", "efficientnet": "EfficientNet", "shufflenet": "ShuffleNet", "convnext": "ConvNeXt",
    "regnet": "RegNet", "fpn": "FPN", "wrn": "WRN", "aux": "Aux",
}


def class_name(text: str, taken: set) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", text) if w]
    out = []
    for w in words:
        low = w.lower()
        if low in SPELLING:
            out.append(SPELLING[low])
        elif re.fullmatch(r"v\d+", low):
            out.append(low.upper())
        else:
            out.append(w[:1].upper() + w[1:])
    base = "".join(out) or "Module"
    if base[0].isdigit():
        base = "Net" + base
    if base in RESERVED:
        base += "Module"
    name, i = base, 2
    while name in taken or name in RESERVED:
        name, i = f"{base}{i}", i + 1
    taken.add(name)
    return name


def comment(text: str) -> str:
    """Text safe inside a # comment: one line, printable ASCII."""
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text).replace("\n", " "))


def lit(v) -> str:
    """A concrete netlang value as a Python literal (pairs of equal ints as one int)."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, (int, str)):
        return repr(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, tuple):
        if len(v) == 1:
            return f"({lit(v[0])},)"
        return "(" + ", ".join(lit(x) for x in v) + ")"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    raise NeedsConcrete(f"no literal for {v!r}")


def pair_lit(v) -> str:
    if isinstance(v, tuple) and len(v) == 2 and v[0] == v[1] and isinstance(v[0], int) and not isinstance(v[0], bool):
        return repr(v[0])
    return lit(v)


