"""The fused network: the unfused source, and a subclass of its network class whose forward runs
the fused graph (netlang.passes' `fuse` pipeline) for inference.

The unfused classes hold the state under the checkpoint's names, so an unfused state_dict
(torchvision's, for the zoo) loads with strict=True; `fold()` then computes, from that state, the
tensors the fused forward reads (each convolution's weights with its batchnorm folded in, merged
siblings' weights side by side, prologue scales and shifts) as non-persistent buffers. It runs on
construction and after every load_state_dict, and forward refolds if a source tensor changed in
place since. The forward is straight-line code over the fused graph's nodes in topological order,
each fused node one convolution call with its epilogue in place on the fresh output; it deletes a
value after its last reader, as the memory plan assumes.

Layout: activations are channels_last (NHWC) from the input on, and so are the weights, since
oneDNN's convolutions run fastest that way on the CPU (benchmarks/fusion.py). Grouped
convolutions are the exception. Their weights stay NCHW, and at batch 1 they also read NCHW
input, where oneDNN is faster. Inference only: the module is built in eval mode, and forward in
train mode is an error.
"""
from __future__ import annotations

import re

from netlang.ir import eval_outputs, inputs_of, state_key, topo_order

from .names import comment, py_ident

PARAM_OPS = ("conv", "conv_t", "linear", "batchnorm", "prelu", "layernorm")

HELPERS = '''

def {fold_batchnorm}(weight, bias, bn_weight, bn_bias, mean, var, eps):
    """A convolution or linear layer's weight and bias with the batchnorm after it folded in."""
    scale = bn_weight / torch.sqrt(var + eps) if bn_weight is not None else 1 / torch.sqrt(var + eps)
    shift = (bias - mean if bias is not None else -mean) * scale
    if bn_bias is not None:
        shift = shift + bn_bias
    return weight * scale.reshape(-1, *([1] * (weight.dim() - 1))), shift


def {affine_of}(bn_weight, bn_bias, mean, var, eps):
    """A batchnorm at inference as scale and shift per channel, shaped for an NCHW map."""
    scale = 1 / torch.sqrt(var + eps)
    if bn_weight is not None:
        scale = scale * bn_weight
    shift = -mean * scale
    if bn_bias is not None:
        shift = shift + bn_bias
    return scale.reshape(1, -1, 1, 1), shift.reshape(1, -1, 1, 1)


def {crop_to}(x, h, w):
    top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
    return x[:, :, top:top + h, left:left + w]


def {crop_all}(maps):
    """Maps cropped to the smallest height and width among them (concat(crop=true))."""
    h, w = min(t.shape[2] for t in maps), min(t.shape[3] for t in maps)
    return [{crop_to}(t, h, w) for t in maps]
'''


def fused_source(H, base_cls: str, base_entry: str, network: str, input_shape: tuple,
                 base_text: str = "", layout: str = "auto") -> tuple[str, str]:
    """(source, entry) to append to the unfused file `base_text`: the fused class, its helpers
    and its factory, named apart from every name the file already defines."""
    taken = set(re.findall(r"^(?:class|def) (\w+)", base_text, re.M)) | set(re.findall(r"^(\w+) =", base_text, re.M))
    names = {h: py_ident(h, taken) for h in ("fold_batchnorm", "affine_of", "crop_to", "crop_all", "refold")}
    w = _Writer(H, names, layout)
    w.write()
    cls = py_ident(f"{base_cls}Fused", taken)
    factory = py_ident(f"{network}_fused", taken, "make")
    helpers = HELPERS.format(**names)
    passes = ", ".join(H.graph.get("passes", ()))
    out = [helpers, "", f"class {cls}({base_cls}):",
           f'    """{comment(network)} fused for inference by netlang ({comment(passes)}).',
           "",
           "    Loads the unfused state_dict (strict) and folds it as it loads; eval mode only.",
           f'    Build it with {factory}()."""', "",
           "    def __init__(self, *args, **kwargs):",
           f"        raise TypeError('build a {cls} with {factory}()')", "",
           "    def fold(self):",
           '        """The tensors forward reads, from the state as it is now."""',
           "        state = self.state_dict(keep_vars=True)",
           "        with torch.no_grad():"]
    out += ["            " + line for line in w.fold_lines] or ["            pass"]
    out += ["        self.__dict__['netlang_sources'] = [state[k] for k in " + repr(sorted(w.sources))
            + " if k in state]",
            "        self.__dict__['netlang_versions'] = [t._version for t in self.netlang_sources]",
            "        self.__dict__['netlang_modules'] = [self.get_submodule(n) for n in "
            + repr(w.modules) + "]", "",
            "    def forward(self, x):",
            "        if self.training:",
            f"            raise RuntimeError('{cls} is fused for inference: call .eval(), or compile without "
            "fuse to train')",
            "        if not torch.compiler.is_compiling():",
            f"            check_input(self, x, {tuple(input_shape)!r})",
            "            if [t._version for t in self.netlang_sources] != self.netlang_versions:",
            "                self.fold()       # a source tensor changed in place",
            "        m = self.netlang_modules"]
    out += ["        " + line for line in w.fwd_lines]
    out += ["", "", f"def {names['refold']}(module, incompatible_keys):", "    module.fold()", "", "",
            f"def {factory}():",
            f'    """{comment(network)}, fused for inference."""',
            f"    model = {base_entry}",
            f"    model.__class__ = {cls}",
            f"    model.register_load_state_dict_post_hook({names['refold']})",
            "    model.fold()",
            "    return model.eval()", ""]
    return "\n".join(out), f"{factory}()"


class _Writer:
    def __init__(self, H, helpers: dict, layout: str = "auto"):
        self.H = H
        self.layout = layout        # "auto" (below), "channels_last" or "nchw": benchmarks/fusion.py --routes
        self.helpers = helpers
        self.fold_lines: list[str] = []
        self.fwd_lines: list[str] = []
        self.sources: set = set()
        self.modules: list[str] = []
        self.names: dict = {}
        # forward's locals never shadow what it calls
        self.taken: set = {"x", "m", "one", "self", "torch", "F", "nn", "check_input"} | set(helpers.values())
        self.buffers = 0
        self.grouped = False

    # ------------------------------------------------------------------ helpers
    def var(self, n: str) -> str:
        if n not in self.names:
            self.names[n] = py_ident(n.replace(".", "_").replace(":", "_"), self.taken, "v")
            self.taken.add(self.names[n])
        return self.names[n]

    def state(self, node: str, suffix: str, optional: bool = False) -> str:
        key = state_key(node, suffix)
        self.sources.add(key)
        return f"state[{key!r}]" if not optional else f"state.get({key!r})"

    def buffer(self, expr: str, layout: str = "") -> str:
        name = f"netlang_t{self.buffers}"
        self.buffers += 1
        self.fold_lines.append(f"self.register_buffer({name!r}, ({expr}).detach(){layout}, persistent=False)")
        return f"self.{name}"

    def weight_layout(self, data: dict) -> str:
        if self.layout == "nchw" or (self.layout == "auto" and _nchw_at_one(data)):
            return ""
        return ".contiguous(memory_format=torch.channels_last)"

    def module(self, node: str) -> str:
        self.modules.append(node)
        return f"m[{len(self.modules) - 1}]"

    def bn(self, node: str) -> str:
        return ", ".join([self.state(node, "weight", True), self.state(node, "bias", True),
                          self.state(node, "running_mean"), self.state(node, "running_var")])

    # ------------------------------------------------------------------ the graph
    def write(self) -> None:
        H = self.H
        mains = eval_outputs(H)
        need = set(mains).union(*(_ancestors(H, m) for m in mains))
        order = [n for n in topo_order(H) if n in need]
        last = {}
        for i, n in enumerate(order):
            for s in inputs_of(H, n):
                last[s] = i
        for i, n in enumerate(order):
            data = H.nodes[n]
            if data["op"] == "input":
                self.names[n] = "x"
                if len(data["shape"]) == 3 and self.layout != "nchw":
                    self.fwd_lines.append("x = x.contiguous(memory_format=torch.channels_last)")
                continue
            ins = [self.var(s) for s in inputs_of(H, n)]
            out = self.var(n)
            code = self.node(n, data, ins)
            if code is not None:            # (None: the node wrote its own lines)
                self.fwd_lines.append(f"{out} = {code}  # {comment(n)}")
            dead = sorted({self.var(s) for s in inputs_of(H, n) if last.get(s) == i and s not in mains} - {out})
            if dead:
                self.fwd_lines.append(f"del {', '.join(dead)}")
        if self.grouped:
            self.fwd_lines.insert(0, "one = x.shape[0] == 1")
        result = [self.var(m) + (".contiguous()" if len(H.nodes[m]["shape"]) == 3 else "") for m in mains]
        self.fwd_lines.append(f"return {', '.join(result)}")

    def node(self, n: str, data: dict, ins: list[str]) -> str | None:
        op, a = data["op"], data["args"]
        if op in ("conv", "linear") and any(k in data for k in ("prologue", "epilogue", "siblings")):
            return self.fused(n, data, ins)
        if op == "conv" or op == "linear":
            return self.fused(n, dict(data, epilogue=()), ins)
        if op in PARAM_OPS:
            return f"{self.module(n)}({ins[0]})"
        if op == "layer_scale":           # (its parameter, a (C, 1, 1) tensor, as a buffer)
            return f"{ins[0]} * {self.buffer(self.state(n, ''))}"
        return _plain(op, a, ins, len(data["shape"]), self.helpers)

    def fused(self, n: str, data: dict, ins: list[str]) -> str | None:
        op, a = data["op"], data["args"]
        x = ins[0]
        for st in data.get("prologue", ()):
            if st["op"] == "batchnorm":
                affine = f"{self.helpers['affine_of']}({self.bn(st['node'])}, {st['args']['eps']!r})"
                scale = self.buffer(f"{affine}[0]")
                shift = self.buffer(f"{affine}[1]")
                x = f"torch.addcmul({shift}, {x}, {scale})"
            else:
                x = _pointwise(st, x, inplace=x.startswith("torch.addcmul"))
        if "siblings" in data:
            ws, bs = [], []
            for sib in data["siblings"]:
                w, b = self.weights(sib["node"], sib["args"], sib["epilogue"])
                ws.append(w)
                bs.append(b)
            weight = self.buffer(f"torch.cat([{', '.join(ws)}])", self.weight_layout(data))
            if any(b != "None" for b in bs):
                # (a sibling without a bias of its own adds zeros)
                bs = [b if b != "None" else f"{self.state(sib['node'], 'weight')}.new_zeros({sib['args']['out']})"
                      for b, sib in zip(bs, data["siblings"])]
                bias = self.buffer(f"torch.cat([{', '.join(bs)}])")
            else:
                bias = "None"
            tails = [_after_bn(s["epilogue"]) for s in data["siblings"]]
            if all(t == tails[0] for t in tails):
                steps = tails[0]
            else:
                # each sibling's own steps, in place on its channels of the fresh output
                self.fwd_lines.append(f"{self.var(n)} = {self.conv_call(n, a, x, weight, bias)}  # {comment(n)}")
                for s, t in zip(data["siblings"], tails):
                    view = f"{self.var(n)}[:, {s['start']}:{s['stop']}]"
                    if t:
                        code = _steps(t, view, ins)
                        if any(st["op"] in NO_IN_PLACE for st in t):
                            code = f"{view}.copy_({code})"      # (a gelu or softplus makes a new tensor)
                        self.fwd_lines.append(code + "  # " + comment(s["node"]))
                return None
        else:
            steps_all = data.get("epilogue", ())
            w, b = self.weights(n, a, steps_all, op)
            layout = self.weight_layout(data) if op == "conv" else ""
            weight = self.buffer(w, layout)
            bias = self.buffer(b) if b != "None" else "None"
            steps = _after_bn(steps_all)
        return _steps(steps, self.conv_call(n, a, x, weight, bias), ins)

    def conv_call(self, n: str, a: dict, x: str, weight: str, bias: str) -> str:
        if self.H.nodes[n]["op"] == "linear":
            if len(self.H.nodes[n]["shape"]) == 3:      # at each pixel: a 1x1 convolution
                return f"F.conv2d({x}, {weight}[:, :, None, None], {bias})"
            return f"F.linear({x}, {weight}, {bias})"
        pad = '"same"' if a["pad"] == "same" else repr(tuple(a["pad"]))
        if self.layout == "auto" and _nchw_at_one(self.H.nodes[n]):
            self.grouped = True
            x = f"({x}.contiguous() if one else {x})"
        return (f"F.conv2d({x}, {weight}, {bias}, {tuple(a['stride'])!r}, {pad}, {tuple(a['dilation'])!r}, "
                f"{a['groups']})")

    def weights(self, n: str, a: dict, epilogue, op: str = "conv") -> tuple[str, str]:
        """Source (in fold) of the weight and bias a convolution uses, its batchnorm folded."""
        w = self.state(n, "weight")
        b = self.state(n, "bias") if a["bias"] else "None"
        if epilogue and epilogue[0]["op"] == "batchnorm":
            bn = epilogue[0]
            folded = f"{self.helpers['fold_batchnorm']}({w}, {b}, {self.bn(bn['node'])}, {bn['args']['eps']!r})"
            return f"{folded}[0]", f"{folded}[1]"
        return w, b if b != "None" else "None"


def _nchw_at_one(data: dict) -> bool:
    """Convolutions that oneDNN runs faster on NCHW than on channels_last at batch 1: grouped
    ones, and those with small output maps (7x7: ResNet's last stage), where channels_last
    takes a slower path (benchmarks/fusion.py). Their weights stay NCHW; at batch 8 they read
    channels_last input, which is faster there."""
    shape = data["shape"]
    return data["args"]["groups"] > 1 or (len(shape) == 3 and shape[1] * shape[2] <= 64)


def _steps(steps, code: str, ins: list[str]) -> str:
    """An epilogue's steps, in place on the fresh output `code`."""
    for st in steps:
        if st["op"] == "add":
            for i in st["inputs"]:
                code = f"{code}.add_({ins[i]})"
        else:
            code = _pointwise(st, code, inplace=True)
    return code


def _after_bn(epilogue) -> tuple:
    return tuple(epilogue[1:]) if epilogue and epilogue[0]["op"] == "batchnorm" else tuple(epilogue)


# Steps whose PyTorch function has no in-place form: _pointwise gives a new tensor for them.
NO_IN_PLACE = ("gelu", "softplus")


def _pointwise(st: dict, x: str, inplace: bool) -> str:
    op, a = st["op"], st["args"]
    if op == "scale":
        return f"{x}.mul_({a['s']!r})" if inplace else f"({x} * {a['s']!r})"
    if op == "relu6":
        return f"{x}.clamp_(0, 6)" if inplace else f"torch.clamp({x}, 0, 6)"
    ip = ", inplace=True" if inplace else ""
    if op in ("hardswish", "hardsigmoid", "silu", "mish"):
        return f"F.{op}({x}{ip})"
    if op == "gelu":
        return f"F.gelu({x}, approximate={a['approximate']!r})"
    if op == "leaky_relu":         # (in place: the fused module is for inference, no backward)
        return f"F.leaky_relu({x}, {a['slope']!r}{ip})"
    if op == "elu":
        return f"F.elu({x}, {a['alpha']!r}{ip})"
    if op == "softplus":
        return f"F.softplus({x}, {a['beta']!r}, {a['threshold']!r})"
    return f"{x}.{op}_()" if inplace else f"torch.{op}({x})"


def _pool_pad(a: dict) -> tuple:
    return (a["k"][0] // 2, a["k"][1] // 2) if a["pad"] == "same" else tuple(a["pad"])


def _plain(op: str, a: dict, ins: list[str], rank: int, helpers: dict) -> str:
    """An op the passes left alone, in eval: functional, never in place."""
    x = ins[0] if ins else None
    if op in ("identity", "dropout", "drop_path"):
        return x
    if op in ("relu", "relu6", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu",
              "mish", "softplus"):
        return _pointwise({"op": op, "args": a}, x, inplace=False)
    if op == "scale":
        return f"{x} * {a['s']!r}"
    if op == "softmax":
        return f"torch.softmax({x}, 1)"
    if op == "log_softmax":
        return f"torch.log_softmax({x}, 1)"
    if op == "lrn":
        return f"F.local_response_norm({x}, {a['size']}, {a['alpha']!r}, {a['beta']!r}, {a['k']!r})"
    if op == "flatten":
        return f"torch.flatten({x}, 1)"
    if op == "maxpool":
        return f"F.max_pool2d({x}, {tuple(a['k'])!r}, {tuple(a['stride'])!r}, {_pool_pad(a)!r}, ceil_mode={a['ceil']})"
    if op == "avgpool":
        return (f"F.avg_pool2d({x}, {tuple(a['k'])!r}, {tuple(a['stride'])!r}, {_pool_pad(a)!r}, "
                f"ceil_mode={a['ceil']}, count_include_pad={a['count_include_pad']})")
    if op == "global_avgpool":
        return f"{x}.mean((2, 3), keepdim=True)"
    if op == "adaptive_avgpool":
        return f"F.adaptive_avg_pool2d({x}, {tuple(a['out'])!r})"
    if op == "upsample":
        factor = tuple(float(f) for f in a["factor"])
        extra = ", align_corners=False" if a["mode"] == "bilinear" else ""
        return f"F.interpolate({x}, scale_factor={factor!r}, mode={a['mode']!r}{extra})"
    if op == "center_crop":
        return f"{helpers['crop_to']}({x}, {a['h']}, {a['w']})"
    if op == "slice":
        return f"{x}[:, {a['start']}:{a['stop']}]"
    if op == "channel_shuffle":
        return f"{x}.unflatten(1, ({a['groups']}, -1)).transpose(1, 2).flatten(1, 2)"     # (F.channel_shuffle: no meta kernel in torch 2.3)
    if op == "concat":
        if a["crop"] and rank == 3:
            return f"torch.cat({helpers['crop_all']}([{', '.join(ins)}]), 1)"
        return f"torch.cat([{', '.join(ins)}], 1)"
    if op == "add":
        return " + ".join(ins)
    if op == "mul":
        return " * ".join(ins)
    if op == "mean":
        return f"({' + '.join(ins)}) / {len(ins)}"
    raise KeyError(f"netlang internal error: the fused lowering has no rule for op {op!r}")


def _ancestors(H, n: str) -> set:
    out, todo = set(), [n]
    while todo:
        for s in inputs_of(H, todo.pop()):
            if s not in out:
                out.add(s)
                todo.append(s)
    return out


__all__ = ["fused_source"]
