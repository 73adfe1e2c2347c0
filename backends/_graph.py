"""Decisions about the graph that the torch lowering and the torch source generator share (no
torch needed)."""
from __future__ import annotations

import keyword

import networkx as nx

from netlang import ops
from netlang.ir import inputs_of

# Layers whose output is fresh storage that their backward does not read: a sum may be
# accumulated into it in place (torchvision's `out += identity`), saving an allocation per
# residual block, when nothing else reads it.
FRESH_OUTPUT = {"conv", "conv_t", "linear", "batchnorm", "add", "concat"}

# Layers whose backward reads their own output: an in-place activation after them, directly or
# through views, would overwrite what autograd saved.
SAVES_OUTPUT = {"relu", "relu6", "sigmoid", "tanh", "softmax"}


def adds_in_place(G: nx.MultiDiGraph, n: str) -> bool:
    first = inputs_of(G, n)[0]
    return (G.nodes[first]["op"] in FRESH_OUTPUT and G.out_degree(first) == 1
            and first not in G.graph["outputs"])


def overwrites_saved_output(G: nx.MultiDiGraph, n: str) -> bool:
    src = inputs_of(G, n)[0] if G.in_degree(n) else None
    while src is not None and ops.OPS[G.nodes[src]["op"]].aliases_input:
        src = inputs_of(G, src)[0]
    return src is not None and G.nodes[src]["op"] in SAVES_OUTPUT


# Every attribute of a fresh nn.Module in torch 2.13 (tests/test_torch_source.py checks the
# installed torch adds none): a child module cannot take these names.
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
    'to_empty', 'train', 'training', 'type', 'xpu', 'zero_grad'
})


def check_module_names(G: nx.MultiDiGraph) -> None:
    """Every part of every layer's name must be free to name a child module."""
    from netlang.errors import NetlangNameError
    taken = MODULE_ATTRIBUTES
    for n, data in G.nodes(data=True):
        if data["op"] == "input":
            continue
        for part in n.split("."):
            if part in taken or part.startswith("__"):
                raise NetlangNameError(
                    f"'{part}' cannot name a PyTorch module: nn.Module already has an attribute '{part}'",
                    data["loc"], hint=f"choose another label; the layer's state_dict keys would start with '{n}.'")


def pool_pad(a: dict) -> tuple:
    """A pool's padding as a pair: pad="same" (stride 1, odd kernel, by the shape rule) is k // 2."""
    return (a["k"][0] // 2, a["k"][1] // 2) if a["pad"] == "same" else tuple(a["pad"])


def is_attr(name: str) -> bool:
    """Can `name` be written as `obj.name`?"""
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


def attr_ref(base: str, rel: str) -> str:
    """Python source reaching the dotted module path `rel` from `base`: attribute access where the
    part is an identifier, getattr for digits and keywords (torch.compile traces both)."""
    out = base
    for part in rel.split("."):
        out = f"{out}.{part}" if is_attr(part) else f"getattr({out}, {part!r})"
    return out


def merge_expr(G: nx.MultiDiGraph, n: str, args: list[str]) -> tuple[str, str | None]:
    """A merge node as an inline expression over its inputs' variables, and the helper function
    the expression calls (cat_cropped, mean_join) or None. Both torch backends write forward with
    it, so the in-memory module and the generated file compute the same thing."""
    data = G.nodes[n]
    op, a = data["op"], data["args"]
    if op == "concat":
        if a["crop"]:
            return f"cat_cropped([{', '.join(args)}], {data['shape'][1]}, {data['shape'][2]})", "cat_cropped"
        return f"torch.cat([{', '.join(args)}], 1)", None
    if op == "add":
        if adds_in_place(G, n):
            return args[0] + "".join(f".add_({b})" for b in args[1:]), None
        return " + ".join(args), None
    if op == "mul":
        return " * ".join(args), None
    if op == "mean":
        if a["drop"]:
            return f"mean_join([{', '.join(args)}], {a['drop']!r}, self.training)", "mean_join"
        return f"({' + '.join(args)}) / {len(args)}", None
    raise KeyError(f"{op!r} is not a merge")
