"""The Triton backend's code generator: a fused IR becomes one Python file of kernels and launches.

`generate(net)` runs the `fuse` pipeline (docs/fusion.md) on the analysed network and walks the
fused graph in topological order. Each node becomes one of:

- kernel   one or more launches of a kernel family (conv.py, depthwise.py, pool.py,
           pointwise.py, resample.py), specialised on the layer's constants: each distinct
           specialisation is one constexpr dict at module level, however many layers use it;
- view     no work: an identity, a dropout, a flatten, a merged sibling's slice, a node the
           memory plan placed into a concat's buffer;
- fallback a torch call on NCHW views, for what no kernel covers; `--explain` lists each one.

Activations live in one arena laid out by the memory plan (memory-plan pass): every value is an
NHWC view of it (a channel slice where concat-in-place put it), allocated once per batch size
and reused. Weights are prepared once per load (prepack.py: batchnorms folded, packed for the
kernel), from the unfused state_dict, which the module holds under the checkpoint's names.

The file imports only torch and triton: kernels, preparation and runtime helpers are copied in
from this package's tested functions (inspect.getsource), so the file netlang compile writes and
the module netlang.compile returns are the same code.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from netlang.ir import eval_outputs, inputs_of, state_entries, topo_order
from netlang.passes import run_pipeline

from ..torchgen.fused import _ancestors, _plain
from ..torchgen.names import comment, py_ident
from . import common, conv, depthwise, pointwise, pool, prepack, resample, runtime, tune

VIEW_OPS = ("identity", "dropout", "drop_path", "slice")
FAMILIES = (conv, depthwise, pool, pointwise, resample)
HELPERS = (common.output_pixels, common.apply_step, common.epilogue)
# the source of every function the generated file carries, read once, as the code was imported
SOURCE = {fn: inspect.getsource(getattr(fn, "fn", fn))
          for fn in (*HELPERS, *(k for fam in FAMILIES for k in fam.KERNELS), *prepack.FUNCTIONS,
                     *runtime.FUNCTIONS, *tune.FUNCTIONS, conv.pack_weight, depthwise.pack_weight_dw,
                     resample.pack_weight_t)}
ACT_PROLOGUE = ("relu", "relu6")
UNARY = ("relu", "relu6", "tanh", "sigmoid", "hardswish", "hardsigmoid", "silu", "gelu", "leaky_relu", "elu", "mish",
         "softplus", "scale")


@dataclass
class Row:
    """One node of the plan, as --explain shows it."""
    node: str
    op: str
    route: str              # "kernel", "view", "in place", "fallback"
    detail: str


@dataclass
class Generated:
    text: str
    entry: str               # the expression that builds the module in the file's namespace
    cls: str
    plan: list = field(default_factory=list)
    specs: dict = field(default_factory=dict)      # specialisation name -> its constexprs


def fuse(net):
    return run_pipeline(net.graph, ["fuse"])


def generate(net, header: str | None = None) -> Generated:
    H = fuse(net)
    w = _Writer(net.graph, H)
    w.write()
    return w.assemble(net, header)


def _pad(a: dict) -> tuple:
    """A convolution's or pool's leading padding; with "same" the trailing side may take one
    more pixel, which the kernels' bounds masks give (they never read past the input)."""
    if a["pad"] != "same":
        return tuple(a["pad"])
    dil = a.get("dilation", (1, 1))
    return tuple(dil[i] * (a["k"][i] - 1) // 2 for i in range(2))


def _map(shape) -> tuple:
    """(C, H, W) of a value; a vector of F is the map F x 1 x 1."""
    return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)


class _Writer:
    def __init__(self, G, H):
        self.G, self.H = G, H
        self.plan = H.graph["memory_plan"]
        self.views: list = []            # arena_views specs
        self.view_of: dict = {}          # node -> index into views
        self.expr: dict = {}             # node -> expression of its NHWC view in forward
        self.rs: dict = {}               # node -> row stride of that view
        self.pack_lines: list[str] = []
        self.packed = 0
        self.fwd: list[str] = []
        self.specs: dict = {}            # (kernel name, constexpr items) -> spec name
        self.kernels: list = []          # kernel families used, in first-use order
        self.rows: list[Row] = []
        self.flat_nhwc: dict = {}        # flatten node -> the CxHxW map it flattens in NHWC order

    # ------------------------------------------------------------------ values
    def value(self, n: str) -> str:
        return self.expr[n]

    def own(self, n: str, shape) -> None:
        """n gets storage of its own, outside the arena."""
        c, h, w = _map(shape)
        self.view_of[n] = len(self.views)
        self.views.append((None, h, w, c))
        self.expr[n], self.rs[n] = f"v[{self.view_of[n]}]", c

    def place(self, n: str) -> None:
        """n's view as the memory plan lays it out: its own buffer, or its channels of the concat
        buffer it is placed into."""
        if n in self.expr:
            return
        b, at = self.plan["owner"][n]
        c = _map(self.H.nodes[n]["shape"])[0]
        bc, bh, bw = _map(self.H.nodes[b]["shape"])
        self.view_of[n] = len(self.views)
        self.views.append((self.plan["buffers"][b][0], bh, bw, bc, at, c))
        self.expr[n], self.rs[n] = f"v[{self.view_of[n]}]", bc

    def channels(self, expr: str, start: int, stop: int) -> str:
        """Channels start:stop of the view `expr`: another entry of VIEWS where `expr` is one (so
        forward slices nothing per call), else a slice."""
        if expr.startswith("v[") and expr.endswith("]") and expr[2:-1].isdigit():
            spec = self.views[int(expr[2:-1])]
            if spec[0] is not None:
                off, h, w, c, c0, width = spec
                sub = (off, h, w, c, c0 + start, stop - start)
                if sub not in self.views:
                    self.views.append(sub)
                return f"v[{self.views.index(sub)}]"
        return f"{expr}[..., {start}:{stop}]"

    def flat(self, expr: str, f: int) -> str:
        """The whole-buffer view `expr` as (N, 1, 1, f)."""
        if expr.startswith("v[") and expr.endswith("]") and expr[2:-1].isdigit():
            spec = self.views[int(expr[2:-1])]
            if spec[0] is not None:
                sub = (spec[0], 1, 1, f, 0, f)
                if sub not in self.views:
                    self.views.append(sub)
                return f"v[{self.views.index(sub)}]"
        return f"{expr}.reshape(N, 1, 1, {f})"

    # ------------------------------------------------------------------ weights
    def put(self, expr: str) -> str:
        name = f"netlang_p{self.packed}"
        self.packed += 1
        self.pack_lines.append(f"put({name!r}, {expr})")
        return f"self.{name}"

    # ------------------------------------------------------------------ launches
    def launch(self, family, launch: common.Launch, bind: dict, note: str = "") -> None:
        n = note
        if family not in self.kernels:
            self.kernels.append(family)
        key = (launch.kernel.__name__, tuple(sorted(launch.consts.items())))
        if launch.kernel in (conv.KERNELS[0], resample.KERNELS[1]):        # (the tl.dot kernels)
            blocks = [v for k, v in launch.consts.items() if k.startswith("BLOCK_")]
            assert min(blocks) >= common.MIN_DOT, f"netlang internal error: a tl.dot block below 16 in {n}"
        if key not in self.specs:
            base = launch.kernel.__name__.strip("_").upper()
            self.specs[key] = f"{base}_{sum(1 for k in self.specs if k[0] == key[0])}"
        if launch.kernel is conv.KERNELS[0]:         # (tunable: the grid follows the blocks)
            grid = f"conv_grid(N * {launch.grid[0][0]}, {launch.consts['COUT_G']}, {launch.grid[2]})"
        else:
            grid = "(" + ", ".join(str(g) if isinstance(g, int) else f"cdiv(N * {g[0]}, {g[1]})"
                                   for g in launch.grid) + ",)"
        args = [bind[a] if a in launch.roles else ("N" if a == "N" else repr(a)) for a in launch.args]
        line = f"{launch.kernel.__name__}[{grid}]({', '.join(args)}, **{self.specs[key]})"
        self.fwd.append(line + (f"  # {comment(note)}" if note else ""))

    def steps_after(self, n: str, out: str, out_rs: int, c: int, hw: tuple, steps, ins: list) -> None:
        """Epilogue steps a launch could not take, as pointwise launches in place on `out`."""
        while steps:
            res_rs = None
            first_add = next((st for st in steps if st["op"] == "add"), None)
            if first_add is not None:
                res_rs = self.rs[ins[first_add["inputs"][0]]]
            launch, res, steps = pointwise.pointwise_launch(c=c, hw=hw, x_rs=out_rs, y_rs=out_rs, r_rs=res_rs,
                                                            steps=steps)
            self.launch(pointwise, launch, {"x": out, "y": out, "s": out, "t": out,
                                            "r": self.value(ins[res]) if res >= 0 else out}, f"{n} (epilogue)")

    # ------------------------------------------------------------------ the graph
    def write(self) -> None:
        H = self.H
        mains = eval_outputs(H)
        need = set(mains).union(*(_ancestors(H, m) for m in mains))
        order = topo_order(H)
        self.step = {n: i for i, n in enumerate(order)}
        self.redirected: dict = {}       # a merged sibling's slice -> the concat its conv writes it into
        self.pooled: dict = {}           # global_avgpool node -> the conv whose epilogue computes it
        for n in order:
            if n not in need:
                continue
            if n in self.pooled:
                self.rows.append(Row(n, "global_avgpool", "fused", f"the mean of {self.pooled[n]}'s epilogue"))
                continue
            data = H.nodes[n]
            op = data["op"]
            if op == "input":
                self.own(n, data["shape"])
                self.input = n
                self.rows.append(Row(n, op, "input", "copied to NHWC"))
                continue
            ins = inputs_of(H, n)
            self.node(n, data, ins)
        self.main, self.mains = mains[0], mains

    def node(self, n: str, data: dict, ins: list) -> None:
        op, a = data["op"], data["args"]
        H = self.H
        if n in self.redirected:
            return self.rows.append(Row(n, op, "view", f"its channels of {self.redirected[n]}, which "
                                        f"{ins[0]} writes"))
        if op in VIEW_OPS or (op == "flatten" and self._flatten_view(n, ins[0])):
            src = self.expr[ins[0]]
            self.rs[n] = self.rs[ins[0]]
            if op == "slice":
                self.expr[n] = self.channels(src, a["start"], a["stop"])
            elif op == "flatten":
                self.expr[n] = self.flat(src, data["shape"][0])
                self.rs[n] = data["shape"][0]
            else:
                self.expr[n] = src
            how = ("its input's storage in NHWC order (the linear layers after it read their columns in "
                   "that order)" if n in self.flat_nhwc else "a view of its input")
            return self.rows.append(Row(n, op, "view", how))
        if op in ("center_crop", "flatten"):
            self.own(n, data["shape"])
        elif self.plan["owner"][n][0] == n or "placement" in data:
            self.place(n)
        else:                                    # in place on its input, as the memory plan has it
            self.expr[n], self.rs[n] = self.expr[ins[0]], self.rs[ins[0]]
        out, out_rs = self.expr[n], self.rs[n]
        c, h, w = _map(data["shape"])
        placed = f" (into {data['placement']['into']})" if "placement" in data else ""
        if op == "flatten":
            src = self.value(ins[0])
            self.fwd.append(f"{out}.view(N, -1).copy_({src}.permute(0, 3, 1, 2).reshape(N, -1))  # {comment(n)}")
            return self.rows.append(Row(n, op, "fallback", "torch copy: a flatten in NCHW order, read by more "
                                        "than linear layers"))
        if op in ("conv", "linear"):
            return self.conv(n, data, ins, out, out_rs, placed)
        x = self.value(ins[0])
        x_rs = self.rs[ins[0]]
        ic, ih, iw = _map(H.nodes[ins[0]]["shape"])
        if op in ("maxpool", "avgpool"):
            launch = pool.pool_launch(c=c, hw=(ih, iw), kernel=tuple(a["k"]), stride=tuple(a["stride"]),
                                      padding=_pad(a), ceil=a["ceil"], mode=op[:3],
                                      count_include_pad=a.get("count_include_pad", True), x_rs=x_rs, y_rs=out_rs)
            self.launch(pool, launch, {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"pool2d {op[:3]} {_k(a['k'])} s{_k(a['stride'])}{placed}"))
        if op == "global_avgpool":
            self.launch(resample, resample.global_pool_launch(c=c, hw=(ih, iw), x_rs=x_rs, y_rs=out_rs),
                        {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"global_avgpool {ih}x{iw}{placed}"))
        if op == "adaptive_avgpool":
            launch = resample.adaptive_launch(c=c, hw=(ih, iw), out_hw=(h, w), x_rs=x_rs, y_rs=out_rs)
            self.launch(resample, launch, {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"adaptive_avgpool {ih}x{iw} -> {h}x{w}{placed}"))
        if op == "center_crop":
            launch = resample.copy_launch(c=c, hw=(ih, iw), ohw=(h, w), top=(ih - h) // 2, left=(iw - w) // 2,
                                          x_rs=x_rs, y_rs=out_rs)
            self.launch(resample, launch, {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"copy_window {ih}x{iw} -> {h}x{w}"))
        if op == "concat":
            return self.concat(n, data, ins, out, out_rs)
        if op == "channel_shuffle":
            launch = resample.shuffle_launch(c=c, hw=(h, w), groups=a["groups"], x_rs=x_rs, y_rs=out_rs)
            self.launch(resample, launch, {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"channel_shuffle {a['groups']} (a gather){placed}"))
        if op == "upsample":
            launch = resample.upsample_launch(c=c, hw=(ih, iw), factor=tuple(float(f) for f in a["factor"]),
                                              mode=a["mode"], x_rs=x_rs, y_rs=out_rs)
            self.launch(resample, launch, {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"upsample {a['mode']} x{_k(a['factor'])}{placed}"))
        if op == "conv_t":
            wt = self.put(f"pack_weight_t(s[{n + '.weight'!r}], {a['groups']}, dt)")
            b = self.put(f"s[{n + '.bias'!r}].float()") if a["bias"] else out
            launch = resample.conv_transpose_launch(
                cin=ic, cout=c, hw=(ih, iw), kernel=tuple(a["k"]), stride=tuple(a["stride"]),
                padding=tuple(a["pad"]), output_padding=tuple(a["output_pad"]), dilation=tuple(a["dilation"]),
                groups=a["groups"], x_rs=x_rs, y_rs=out_rs, bias=a["bias"])
            self.launch(resample, launch, {"x": x, "w": wt, "b": b, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"conv_transpose {_k(a['k'])} s{_k(a['stride'])}{placed}"))
        if op in UNARY or op in ("batchnorm", "prelu", "layer_scale"):
            bind = {"x": x, "y": out, "s": out, "t": out, "r": out}
            if op == "layer_scale":      # (an affine: its (C, 1, 1) scales, a shift of zeros)
                bind["s"] = self.put(f"s[{n!r}].float().reshape({c})")
                bind["t"] = self.put(f"s[{n!r}].float().new_zeros({c})")
                steps = ()
            elif op == "batchnorm":
                bind["s"] = self.put(f"bn_affine(s, {n!r}, {a['eps']!r})[0]")
                bind["t"] = self.put(f"bn_affine(s, {n!r}, {a['eps']!r})[1]")
                steps = ()
            elif op == "prelu":           # (its slopes, one per channel, as the scale vector)
                bind["s"] = self.put(f"s[{n + '.weight'!r}].float().expand({c})")
                steps = ()
            else:
                steps = ({"op": op, "args": dict(a)},)
            launch, _, rest = pointwise.pointwise_launch(c=c, hw=(h, w), x_rs=x_rs, y_rs=out_rs,
                                                         affine=op in ("batchnorm", "layer_scale"), steps=steps,
                                                         prelu=op == "prelu")
            assert not rest
            self.launch(pointwise, launch, bind, n)
            return self.rows.append(Row(n, op, "kernel", f"pointwise {op}{' in place' if x == out else ''}{placed}"))
        if op in ("add", "mean") or (op == "mul" and self._gate_or_same(n, ins)):
            return self.eltwise(n, op, ins, out, out_rs, (h, w), c, placed)
        if op in ("softmax", "log_softmax"):
            self.launch(pointwise, pointwise.softmax_launch(c=c, hw=(h, w), x_rs=x_rs, y_rs=out_rs,
                                                            log=op == "log_softmax"),
                        {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"{op} over channels"))
        if op == "layernorm":
            wn = self.put(f"s[{n + '.weight'!r}].float()")
            bn = self.put(f"s[{n + '.bias'!r}].float()")
            self.launch(pointwise, pointwise.layernorm_launch(c=c, hw=(h, w), eps=a["eps"], x_rs=x_rs, y_rs=out_rs),
                        {"x": x, "w": wn, "b": bn, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"layernorm over channels{placed}"))
        if op == "lrn":
            self.launch(pointwise, pointwise.lrn_launch(c=c, hw=(h, w), size=a["size"], alpha=a["alpha"],
                                                        beta=a["beta"], k=a["k"], x_rs=x_rs, y_rs=out_rs),
                        {"x": x, "y": out}, n)
            return self.rows.append(Row(n, op, "kernel", f"lrn size {a['size']}"))
        self.fallback(n, data, ins, out, why=f"no kernel for {op}")

    def _flatten_view(self, n: str, src: str) -> bool:
        """Whether a flatten can stay a view: its input is a whole buffer (contiguous), and either a
        1x1 map or read (through views) by linear layers only, whose weights then read NHWC order."""
        c, h, w = _map(self.H.nodes[src]["shape"])
        if self.rs[src] != c:
            return False
        if h * w == 1:
            return True
        readers, todo = [], [n]          # (reader, input position), through views
        while todo:
            for _, dst, pos in self.H.out_edges(todo.pop(), keys=True):
                if self.H.nodes[dst]["op"] in VIEW_OPS and self.H.nodes[dst]["op"] != "slice":
                    if dst in self.H.graph["outputs"]:
                        return False        # (a view of it is an output: that must be NCHW order)
                    todo.append(dst)
                else:
                    readers.append((dst, pos))
        # only a linear layer's main input may be read in NHWC order (a residual it adds is not permuted)
        if n in self.H.graph["outputs"] or not readers or any(
                self.H.nodes[r]["op"] != "linear" or pos != 0 or "siblings" in self.H.nodes[r] for r, pos in readers):
            return False
        self.flat_nhwc[n] = (c, h, w)
        return True

    def _flattened_from(self, n: str):
        """The CxHxW map a linear's input flattens in NHWC order, if any (through views)."""
        while self.H.nodes[n]["op"] in VIEW_OPS:
            n = inputs_of(self.H, n)[0]
        return self.flat_nhwc.get(n)

    def _gate_or_same(self, n: str, ins: list) -> bool:
        out = _map(self.H.nodes[n]["shape"])
        shapes = [_map(self.H.nodes[s]["shape"]) for s in ins]
        return all(s == out or (s[0] == out[0] and s[1:] == (1, 1)) for s in shapes) and shapes[0] == out \
            or (len(ins) == 2 and shapes[1] == out and shapes[0][0] == out[0] and shapes[0][1:] == (1, 1))

    # ------------------------------------------------------------------ op families
    def conv(self, n: str, data: dict, ins: list, out: str, out_rs: int, placed: str) -> None:
        H, a, op = self.H, data["args"], data["op"]
        cin, h, w = _map(H.nodes[ins[0]]["shape"])
        cout, oh, ow = _map(data["shape"])
        x = self.value(ins[0])
        if op == "linear":           # (a 1x1 convolution; on a vector, of a 1x1 map)
            kernel = stride = dilation = (1, 1)
            padding, groups = (0, 0), 1
            if len(data["shape"]) == 1:
                cin, h, w = _map(H.nodes[ins[0]]["shape"])[0], 1, 1
        else:
            kernel, stride, dilation = tuple(a["k"]), tuple(a["stride"]), tuple(a["dilation"])
            padding, groups = _pad(a), a["groups"]
        # the prologue: a batchnorm (and relu/relu6) applied as the input is read
        pro = data.get("prologue", ())
        ps = pt = out
        pro_act = None
        if pro:
            assert pro[0]["op"] == "batchnorm" and len(pro) <= 2 and all(st["op"] in ACT_PROLOGUE for st in pro[1:]), \
                f"netlang internal error: a prologue the Triton backend does not know: {pro}"
            bn = pro[0]
            ps = self.put(f"bn_affine(s, {bn['node']!r}, {bn['args']['eps']!r})[0]")
            pt = self.put(f"bn_affine(s, {bn['node']!r}, {bn['args']['eps']!r})[1]")
            pro_act = pro[1]["op"] if len(pro) > 1 else None
        # the weights, batchnorm folded, siblings side by side
        if "siblings" in data:
            parts = [self._folded(s["node"], s["args"], s["epilogue"]) for s in data["siblings"]]
            wexpr = f"torch.cat([{', '.join(p[0] for p in parts)}])"
            bexpr = f"torch.cat([{', '.join(p[1] for p in parts)}])"
            tails = [tuple(st for st in s["epilogue"] if st["op"] != "batchnorm") for s in data["siblings"]]
            same = all(_same_steps(t, tails[0]) for t in tails)
            steps = list(tails[0]) if same else []
            band = None if same else _step_band(data["siblings"], tails)
            if band is not None:            # (one contiguous run of siblings with the same steps, the rest none)
                steps, band, same = list(band[2]), band[:2], True
        else:
            band = None
            wexpr, bexpr = self._folded(n, a, data.get("epilogue", ()))
            epi = list(data.get("epilogue", ()))
            steps = epi[1:] if epi and epi[0]["op"] == "batchnorm" else epi      # (the batchnorm is folded)
            same = True
        flat = self._flattened_from(ins[0]) if op == "linear" else None
        if flat is not None:
            wexpr = f"nhwc_columns({wexpr}, {flat[0]}, {flat[1]}, {flat[2]})"
        dw = op == "conv" and groups == cin and groups > 1
        family = depthwise if dw else conv
        if dw and band is not None:         # (the depthwise kernel has no channel band: steps in a second launch)
            steps, band, same = [], None, False
        pack = f"pack_weight_dw({wexpr}, dt)" if dw else f"pack_weight({wexpr}, {groups}, dt)"
        wname = self.put(pack)
        bname = self.put(bexpr)
        res_rs = None
        first_add = next((st for st in steps if st["op"] == "add"), None)
        if first_add is not None:
            res_rs = self.rs[ins[first_add["inputs"][0]]]
        launcher = depthwise.depthwise_launch if dw else conv.conv_launch
        pool_into = self._pool_reader(n, data, dw, oh * ow, steps, band)
        second, part = self._sibling_into_concat(n, data) if not dw else (None, None)
        if pool_into is not None:
            # (the pool's output, C values a sample, gets storage of its own: the arena's plan has it
            # live from the pool's step, and this launch writes it a step earlier)
            self.own(pool_into, H.nodes[pool_into]["shape"])
            out, out_rs = self.expr[pool_into], self.rs[pool_into]
            self.pooled[pool_into] = n
        launch, res, rest = launcher(cin=cin, cout=cout, hw=(h, w), ohw=(oh, ow), kernel=kernel, stride=stride,
                                     padding=padding, dilation=dilation, groups=groups, x_rs=self.rs[ins[0]],
                                     y_rs=out_rs, r_rs=res_rs, bias=True,
                                     prologue=(pro_act or "") if pro else None, steps=steps,
                                     **({"step_channels": band} if band else {}),
                                     **({"pool": True} if pool_into is not None else {}),
                                     **({"second": second} if second else {}))
        self.launch(family, launch, {"x": x, "w": wname, "b": bname, "ps": ps, "pt": pt, "y": out,
                                     "y2": self.expr[part] if part else out,
                                     "r": self.value(ins[res]) if res >= 0 else out}, n)
        self.steps_after(n, out, out_rs, cout, (oh, ow), rest, ins)
        if part and rest:                   # (the part stored into its concat is what its readers read)
            self.steps_after(n, self.expr[part], self.rs[part], second[1] - second[0], (oh, ow), rest, ins)
        if not same:
            for s, t in zip(data["siblings"], tails):
                if not t:
                    continue
                if part and (s["start"], s["stop"]) == second[:2]:
                    self.steps_after(s["node"], self.expr[part], self.rs[part], s["stop"] - s["start"], (oh, ow),
                                     list(t), ins)
                else:
                    self.steps_after(s["node"], self.channels(out, s["start"], s["stop"]), out_rs,
                                     s["stop"] - s["start"], (oh, ow), list(t), ins)
        detail = (f"{'linear' if op == 'linear' else ('depthwise' if dw else 'conv2d')} {cin}->{cout}"
                  + (f" {_k(kernel)} s{_k(stride)}" if op == "conv" else "")
                  + (f" g{groups}" if groups > 1 else "")
                  + (" +prologue" if pro else "")
                  + (f" {len(data['siblings'])} siblings merged" if "siblings" in data else "")
                  + (f" epilogue: {'+'.join(st['op'] for st in steps)}" if steps else "")
                  + (f" on channels {band[0]}:{band[1]}" if band else "")
                  + (f" then global average pool (into {pool_into})" if pool_into is not None else "")
                  + (f", channels {second[0]}:{second[1]} into {self.redirected[part]}" if second else "")
                  + (f" ({'+'.join(st['op'] for st in rest)} in a second launch)" if rest else "") + placed)
        self.rows.append(Row(n, op, "kernel", detail))

    def _sibling_into_concat(self, n: str, data: dict):
        """((lo, hi, row stride), slice node) for the first merged sibling whose part only a concat
        reads, where the concat's buffer may be written at this conv's step (nothing else lives
        there from now until the memory plan's start of that buffer); that part is then stored
        straight into the concat, which copies nothing for it. (None, None) where none qualifies."""
        H = self.H
        if "siblings" not in data:
            return None, None
        for _, sl in H.out_edges(n):
            if H.nodes[sl]["op"] != "slice" or sl in H.graph["outputs"] or H.out_degree(sl) != 1 or sl in self.expr:
                continue
            cat = next(iter(H.successors(sl)))
            cd = H.nodes[cat]
            ins = inputs_of(H, cat)
            if cd["op"] != "concat" or ins.count(sl) != 1 or _map(cd["shape"])[1:] != _map(H.nodes[sl]["shape"])[1:]:
                continue
            if not self._free_from(cat, n):
                continue
            self.place(cat)
            at = sum(_map(H.nodes[s]["shape"])[0] for s in ins[:ins.index(sl)])
            a = H.nodes[sl]["args"]
            self.expr[sl] = self.channels(self.expr[cat], at, at + a["stop"] - a["start"])
            self.rs[sl] = self.rs[cat]
            self.redirected[sl] = cat
            return (a["start"], a["stop"], self.rs[cat]), sl
        return None, None

    def _pool_reader(self, n: str, data: dict, dw: bool, pixels: int, steps, band):
        """The global_avgpool that is the conv's only reader, if the conv's epilogue can end in
        that mean (one launch, a map of at most conv.POOL_MAX pixels, the pool placed nowhere);
        else None."""
        H = self.H
        if (dw or data["op"] != "conv" or "siblings" in data or "placement" in data or band
                or n in H.graph["outputs"] or H.out_degree(n) != 1 or pixels > conv.POOL_MAX):
            return None
        g = next(iter(H.successors(n)))
        if H.nodes[g]["op"] != "global_avgpool" or "placement" in H.nodes[g] or common.epilogue_codes(steps)[2]:
            return None
        return g

    def _free_from(self, target: str, n: str) -> bool:
        """Whether node n may write target's buffer (by the memory plan) at its own step, earlier
        than the plan starts that buffer: no other buffer sharing its arena range is live from n's
        step until then (n's inputs, read while it writes, and its own buffer included)."""
        plan = self.plan
        b = plan["owner"][target][0]
        off, size, first, _ = plan["buffers"][b]
        now = self.step[n]
        return first <= now or not any(
            o < off + size and off < o + sz and not (last < now or f >= first)
            for other, (o, sz, f, last) in plan["buffers"].items() if other != b)

    def _folded(self, node: str, a: dict, epilogue) -> tuple[str, str]:
        """Expressions (in prepack) of a layer's weight and bias with its batchnorm folded."""
        bn = epilogue[0] if epilogue and epilogue[0]["op"] == "batchnorm" else None
        call = (f"folded(s, {node!r}, {a['bias']!r}, {bn['node'] if bn else None!r}, "
                f"{bn['args']['eps'] if bn else 0.0!r}, {a['out']})")
        return f"{call}[0]", f"{call}[1]"

    def concat(self, n: str, data: dict, ins: list, out: str, out_rs: int) -> None:
        c, h, w = _map(data["shape"])
        offset, copied = 0, 0
        for src in ins:
            sd = self.H.nodes[src]
            sc, sh, sw = _map(sd["shape"])
            if sd.get("placement", {}).get("into") != n and self.redirected.get(src) != n:
                top, left = (sh - h) // 2, (sw - w) // 2
                launch = resample.copy_launch(c=sc, hw=(sh, sw), ohw=(h, w), top=top, left=left,
                                              x_rs=self.rs[src], y_rs=out_rs)
                self.launch(resample, launch, {"x": self.value(src), "y": self.channels(out, offset, offset + sc)},
                            f"{n} <- {src}")
                copied += 1
            offset += sc
        placed = len(ins) - copied
        self.rows.append(Row(n, "concat", "in place" if not copied else "kernel",
                             f"{placed} of {len(ins)} inputs written in place" +
                             (f", {copied} copied (copy_window)" if copied else "")))

    def eltwise(self, n: str, op: str, ins: list, out: str, out_rs: int, hw: tuple, c: int, placed: str) -> None:
        shapes = [_map(self.H.nodes[s]["shape"]) for s in ins]
        order = list(range(len(ins)))
        if shapes[0][1:] != hw and len(ins) == 2:       # (a gate first: the map goes first, mul commutes)
            order = [1, 0]
        x = self.value(ins[order[0]])
        x_rs = self.rs[ins[order[0]]]
        for i, k in enumerate(order[1:]):
            last = i == len(order) - 2
            steps = [{"op": "add", "inputs": (1,), "args": {}}]
            if last and op == "mean":
                steps.append({"op": "scale", "args": {"s": 1.0 / len(ins)}})
            bcast = shapes[k][1:] != hw
            launch, _, rest = pointwise.pointwise_launch(c=c, hw=hw, x_rs=x_rs, y_rs=out_rs, r_rs=self.rs[ins[k]],
                                                         steps=steps, mul=op == "mul", bcast=bcast)
            assert not rest
            self.launch(pointwise, launch, {"x": x, "r": self.value(ins[k]), "y": out, "s": out, "t": out}, n)
            x, x_rs = out, out_rs
        self.rows.append(Row(n, op, "kernel", f"pointwise {op} of {len(ins)} ({len(ins) - 1} launches){placed}"))

    def fallback(self, n: str, data: dict, ins: list, out: str, why: str) -> None:
        nchw = []
        for s in ins:
            sc, sh, sw = _map(self.H.nodes[s]["shape"])
            v = self.value(s)
            nchw.append(f"{v}.reshape(N, {sc})" if len(self.H.nodes[s]["shape"]) == 1 else f"{v}.permute(0, 3, 1, 2)")
        expr = _plain(data["op"], data["args"], nchw, len(data["shape"]), {"crop_to": "None", "crop_all": "None"})
        if len(data["shape"]) == 1:
            self.fwd.append(f"{out}.copy_(({expr}).reshape({out}.shape))  # {comment(n)}: torch fallback")
        else:
            self.fwd.append(f"{out}.copy_(({expr}).permute(0, 2, 3, 1))  # {comment(n)}: torch fallback")
        self.rows.append(Row(n, data["op"], "fallback", why))

    # ------------------------------------------------------------------ the file
    def assemble(self, net, header: str | None) -> Generated:
        G, H = self.G, self.H
        name = G.graph["name"]
        cls = py_ident("".join(p[:1].upper() + p[1:] for p in name.replace("-", "_").split("_")) + "Triton",
                       set(), "Net")
        factory = py_ident(f"{name}_triton", {cls}, "make")
        in_shape = tuple(G.nodes[G.graph["inputs"][0]]["shape"])
        out_shape = tuple(H.nodes[self.main]["shape"])
        lines = [header or f"# {comment(name)}: Triton kernels generated by netlang.",
                 f'"""{comment(name)} for inference on a GPU: Triton kernels generated by netlang from its fused IR',
                 f"({comment(', '.join(H.graph.get('passes', ())))}).",
                 "",
                 f"{factory}() builds it; load_state_dict takes the unfused checkpoint (strict) and prepacks it.",
                 "Without a GPU, set TRITON_INTERPRET=1 before importing triton to run it (slowly) on the CPU.",
                 '"""',
                 "import math", "import os", "", "import torch", "import triton", "import triton.language as tl",
                 "from torch import nn", "", "cdiv = triton.cdiv", ""]
        lines += ["", "# " + "-" * 30 + " kernels (netlang's backends/triton, copied)", ""]
        seen = set()
        for fam in [common] + self.kernels:
            for fn in HELPERS if fam is common else fam.KERNELS:
                if fn.__name__ not in seen:
                    seen.add(fn.__name__)
                    lines += [SOURCE[fn], ""]
        lines += ["", "# " + "-" * 30 + " specialisations: one per distinct layer configuration", ""]
        for (kname, items), spec in self.specs.items():
            lines += _wrapped(f"{spec} = dict(", [f"{k}={v!r}" for k, v in items], ")")
        convs = [spec for (kname, _), spec in self.specs.items() if kname == conv.KERNELS[0].__name__]
        lines += ["", "", "# " + "-" * 30 + " autotuning (on a GPU; the defaults above elsewhere)", ""]
        for fn in tune.FUNCTIONS:
            lines += [SOURCE[fn], ""]
        lines += [f"TUNE_KEY = {tune.TUNE_KEY!r}", ""]
        if convs:
            lines += ["if tuning():",
                      f"    {conv.KERNELS[0].__name__} = tuned({conv.KERNELS[0].__name__})",
                      *_wrapped("    for spec in (", [f"{c}" for c in convs] + [""], "):", indent=8),
                      "        for block in ('BLOCK_M', 'BLOCK_N', 'BLOCK_K'):",
                      "            del spec[block]", ""]
        lines += ["", "", "# " + "-" * 30 + " weight preparation and runtime (netlang's backends/triton)", ""]
        helpers = list(prepack.FUNCTIONS) + list(runtime.FUNCTIONS) + [conv.pack_weight]
        if depthwise in self.kernels:
            helpers.append(depthwise.pack_weight_dw)
        if resample in self.kernels and any("pack_weight_t" in ln for ln in self.pack_lines):
            helpers.append(resample.pack_weight_t)
        for fn in helpers:
            lines += [SOURCE[fn], ""]
        lines += [""] + _wrapped("STATE = [", [repr(e) for e in _state(G)], "]", per_line=1) + [""]
        lines += [f"ARENA = {self.plan['arena']}   # elements per sample (peak live: {self.plan['peak']})"]
        lines += _wrapped("VIEWS = [  # (offset, H, W, C of the buffer, first channel, channels) per sample",
                          [repr(v) for v in self.views], "]", per_line=1) + [""]
        lines += ["", f"class {cls}(nn.Module):",
                  f'    """{comment(name)}: input N x {" x ".join(map(str, in_shape))}, output N x '
                  f'{" x ".join(map(str, out_shape))}. Inference only."""', "",
                  "    def __init__(self):",
                  "        super().__init__()",
                  "        declare_state(self, STATE)",
                  "        self.training = False",
                  "        self.netlang_arena = {}",
                  "        self.netlang_graphs = {}",
                  "        self.netlang_cuda_graph = False     # True: forward replays one CUDA graph per input shape",
                  "        self.register_load_state_dict_post_hook(lambda module, keys: module.prepack())",
                  "        self.prepack()", "",
                  "    def train(self, mode=True):",
                  "        if mode:",
                  f"            raise RuntimeError('{cls} is compiled for inference: training needs the torch "
                  "backend')",
                  "        return super().train(False)", "",
                  "    def _apply(self, fn, *args, **kwargs):",
                  "        super()._apply(fn, *args, **kwargs)",
                  "        self.prepack()          # (moved or cast: pack again on the new device, in the new dtype)",
                  "        return self", "",
                  "    def prepack(self):",
                  '        """The tensors the kernels read, from the state as it is now: batchnorms folded in fp32,',
                  '        weights packed in the state\'s dtype."""',
                  "        s = {k: t.detach() for k, t in self.state_dict().items()}",
                  "        dt = next((t.dtype for t in s.values() if t.is_floating_point()), torch.float32)",
                  "        with torch.no_grad():",
                  "            def put(name, t):",
                  "                self.register_buffer(name, t.contiguous(), persistent=False)"]
        lines += ["            " + ln for ln in self.pack_lines]
        lines += ["        self.netlang_dtype = dt",
                  "        self.netlang_arena.clear()",
                  "        self.netlang_graphs.clear()", "",
                  "    def views(self, n, device):",
                  '        """The arena for a batch of n, allocated on the first call with that batch size."""',
                  "        key = (n, str(device))",
                  "        if key not in self.netlang_arena:",
                  "            arena = torch.empty(n * ARENA, device=device, dtype=self.netlang_dtype)",
                  "            self.netlang_arena[key] = arena_views(arena, n, VIEWS)",
                  "        return self.netlang_arena[key]", "",
                  "    def forward(self, x):",
                  "        if self.training:",
                  f"            raise RuntimeError('{cls} is compiled for inference')",
                  f"        check_input(x, {in_shape!r}, {cls!r})",
                  "        if self.netlang_cuda_graph and x.is_cuda:",
                  "            return graphed(self, x, self.launches)",
                  "        return self.launches(x)", "",
                  "    def launches(self, x):",
                  '        """The forward pass: every kernel launch, in order."""',
                  "        N = x.shape[0]",
                  "        v = self.views(N, x.device)"]
        in_c, in_h, in_w = _map(in_shape)
        src = "x" if len(in_shape) == 3 else f"x.reshape(N, 1, 1, {in_c})"
        lines.append(f"        v[{self.view_of[self.input]}].copy_({src}.permute(0, 2, 3, 1))" if len(in_shape) == 3
                     else f"        v[{self.view_of[self.input]}].copy_({src})")
        lines += ["        " + ln for ln in self.fwd]
        outs = []
        for m in self.mains:
            shape = H.nodes[m]["shape"]
            outs.append(f"{self.expr[m]}.permute(0, 3, 1, 2).contiguous()" if len(shape) == 3
                        else f"{self.expr[m]}.reshape(N, {shape[0]}).clone()")
        lines.append(f"        return {', '.join(outs)}")
        lines += ["", "", f"def {factory}():", f'    """{comment(name)}, for inference with Triton kernels."""',
                  f"    return {cls}()", ""]
        return Generated("\n".join(lines), f"{factory}()", cls, self.rows,
                         {spec: dict(items) for (_, items), spec in self.specs.items()})


def _same_steps(a, b) -> bool:
    return [(st["op"], st["args"]) for st in a] == [(st["op"], st["args"]) for st in b]


def _step_band(siblings, tails):
    """(lo, hi, steps) where the siblings with steps are one contiguous run of channels lo..hi
    sharing the same steps (resnet50's conv1 -> relu merged with its downsample); else None."""
    marked = [i for i, t in enumerate(tails) if t]
    if not marked or marked != list(range(marked[0], marked[-1] + 1)) or \
            not all(_same_steps(tails[i], tails[marked[0]]) for i in marked):
        return None
    if any(st["op"] == "add" for st in tails[marked[0]]):
        return None
    return siblings[marked[0]]["start"], siblings[marked[-1]]["stop"], tails[marked[0]]


def _wrapped(head: str, items: list, tail: str, indent: int = 4, per_line: int | None = None,
             width: int = 110) -> list:
    """head item, item, ... tail over several lines: `per_line` items each, or as many as fit."""
    if per_line is None and len(head) + sum(len(i) + 2 for i in items) + len(tail) <= width:
        return [head + ", ".join(i for i in items if i) + tail]
    lines, cur = [head], " " * indent
    for i, item in enumerate(i for i in items if i):
        piece = item + ","
        if per_line == 1 or (len(cur) + len(piece) + 1 > width and cur.strip()):
            if cur.strip():
                lines.append(cur.rstrip())
            cur = " " * indent
        cur += piece + " "
    if cur.strip():
        lines.append(cur.rstrip())
    lines.append(" " * (indent - 4) + tail)
    return lines


def _k(pair) -> str:
    pair = tuple(pair)
    return f"{pair[0]}x{pair[1]}" if pair[0] != pair[1] else f"{pair[0]}"


def _state(G) -> list:
    """The checkpoint's entries (key, shape, init kind), in the unfused network's order."""
    kinds = {}
    for n in G.nodes:
        op = G.nodes[n]["op"]
        kinds[n] = op
    out = []
    for key, shape, buffer in state_entries(G):
        node, _, suffix = key.rpartition(".") if key not in kinds else (key, "", "")
        op = kinds.get(node)
        if suffix == "num_batches_tracked":
            kind = "count"
        elif suffix == "running_mean":
            kind = "mean"
        elif suffix == "running_var":
            kind = "var"
        elif op == "batchnorm":
            kind = "ones" if suffix == "weight" else "zeros"
        elif op == "prelu" or op == "layer_scale":
            kind = float(G.nodes[node]["args"]["init"])      # (nn.PReLU's init, CNBlock's layer_scale)
        elif op == "layernorm":
            kind = "ones" if suffix == "weight" else "zeros"
        elif suffix == "weight" and len(shape) > 1:
            kind = "weight"
        else:
            kind = "zeros"
        out.append((key, tuple(shape), kind))
    return out


def explain(rows: list) -> str:
    """The plan as a table: every node with its kernel, view or fallback."""
    w1 = max([len(r.node) for r in rows] + [4])
    w2 = max([len(r.op) for r in rows] + [2])
    out = [f"{'node':<{w1}}  {'op':<{w2}}  {'route':<8}  detail"]
    out += [f"{r.node:<{w1}}  {r.op:<{w2}}  {r.route:<8}  {r.detail}" for r in rows]
    counts = {}
    for r in rows:
        counts[r.route] = counts.get(r.route, 0) + 1
    out.append("")
    out.append(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return "\n".join(out)
