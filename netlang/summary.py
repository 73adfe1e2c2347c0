"""The per-layer summary table (in the spirit of the lecture notes' VGG table and torchinfo)."""
from __future__ import annotations

import html
import math
import re

from .ops import fmt_shape
from .passes.cost import CostReport, CONVENTION


def pair(v) -> str:
    return fmt_shape(v) if isinstance(v, tuple) else str(v)


def describe_op(op: str, args: dict) -> str:
    """A short label with the arguments that matter: `conv 7x7/2, 64`."""
    if op in ("conv", "conv_t"):
        s = f"{op} {pair(args['k'])}"
        if args["stride"] != (1, 1):
            s += f"/{args['stride'][0] if args['stride'][0] == args['stride'][1] else pair(args['stride'])}"
        s += f", {args['out']}"
        if args.get("groups", 1) > 1:
            s += f", g={args['groups']}"
        if args.get("dilation", (1, 1)) != (1, 1):
            s += f", d={pair(args['dilation'])}"
        return s
    if op in ("maxpool", "avgpool"):
        stride = args["stride"]
        s = f"{op} {pair(args['k'])}"
        if stride != (1, 1):
            s += f"/{stride[0] if stride[0] == stride[1] else pair(stride)}"
        return s + (" ceil" if args["ceil"] else "")
    if op == "linear":
        return f"linear {args['out']}"
    if op in ("dropout", "drop_path"):
        return f"{op} {args['p']:g}"
    if op == "mean" and args.get("drop"):
        return f"mean drop={args['drop']:g}"
    if op == "concat" and args.get("crop"):
        return "concat crop"
    if op == "lrn":
        return f"lrn {args['size']}"
    if op == "scale":
        return f"scale {args['s']:g}"
    if op == "upsample":
        return f"upsample x{pair(args['factor'])}" + (" bilinear" if args["mode"] == "bilinear" else "")
    if op == "adaptive_avgpool":
        return f"adaptive_avgpool {pair(args['out'])}"
    if op == "center_crop":
        return f"center_crop {args['h']}x{args['w']}"
    if op == "gelu" and args["approximate"] == "tanh":
        return "gelu tanh"
    if op == "leaky_relu":
        return f"leaky_relu {args['slope']:g}"
    if op == "elu":
        return f"elu {args['alpha']:g}"
    if op == "slice":
        return f"channels {args['start']}:{args['stop']}"
    if op == "channel_shuffle":
        return f"channel_shuffle {args['groups']}"
    if op == "prelu":
        return "prelu per channel" if args["per_channel"] else "prelu"
    if op == "softplus":
        return "softplus" + "".join(f" {k}={args[k]:g}" for k, d in (("beta", 1), ("threshold", 20)) if args[k] != d)
    return op


def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def describe_network(report: CostReport) -> str:
    """`resnet50: input 3x224x224, 25.56M params, 4.09G MACs`: a network in one line."""
    return (f"{report.network}: input {fmt_shape(report.input_shape)}, {human(report.params)} params, "
            f"{human(report.macs)} MACs")


def human_bytes(n: int) -> str:
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n} B"


HEADERS = ("Layer", "Op", "Output", "Params", "MACs", "Activations")
ALIGN = ("<", "<", ">", ">", ">", ">")


class Summary(str):
    """The per-layer table: prints as text (what `netlang summary` prints) and, in a notebook,
    shows as an HTML table. A str, so code that reads the text keeps working."""

    def __new__(cls, title: str, rows: list[tuple], footer: list[str]):
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]

        def line(cells):
            return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, ALIGN, widths)).rstrip()

        rule = "-" * len(line(HEADERS))
        out = [title, rule, line(HEADERS), rule] + [line(r) for r in rows] + [rule]
        out += footer[:-1] + [rule, footer[-1]]
        self = super().__new__(cls, "\n".join(out))
        self.title, self.rows, self.footer = title, rows, footer
        return self

    def __reduce__(self):
        # (a str subclass pickles through its constructor's arguments)
        return Summary, (self.title, self.rows, self.footer)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        def cells(tag, row):
            return "".join(f'<{tag} style="text-align:{"left" if a == "<" else "right"}">{html.escape(c)}</{tag}>'
                           for c, a in zip(row, ALIGN))
        body = "".join(f"<tr>{cells('td', r)}</tr>" for r in self.rows)
        foot = "<br>".join(html.escape(f) for f in self.footer)
        return (f"<table><caption style=\"text-align:left\"><b>{html.escape(self.title)}</b></caption>"
                f"<thead><tr>{cells('th', HEADERS)}</tr></thead><tbody>{body}</tbody></table>"
                f"<p style=\"font-size:smaller\">{foot}</p>")


def _is_layer(g, graph) -> bool:
    return g.layers <= 1 and g.name in graph


def row_op(g, graph) -> str:
    """A row's Op column: the layer's op with its arguments, or a scope's kind and layer count."""
    if _is_layer(g, graph):
        return describe_op(graph.nodes[g.name]["op"], graph.nodes[g.name]["args"])
    return f"{g.kind} [{g.layers}]"


def table(report: CostReport, graph, depth: int | None = None) -> Summary:
    rows = []
    for g in report.rows(depth):
        rows.append((g.name, row_op(g, graph), fmt_shape(g.shape), f"{g.params:,}" if g.params else "-",
                     human(g.macs) if g.macs else "-", human(g.act_elems) if g.act_elems else "-"))
    t = report.totals()
    footer = [
        f"Parameters:      {t['params']:,} trainable, {t['buffers']:,} in buffers "
        f"({human_bytes(t['param_bytes'])} as {t['dtype']})",
        f"MACs:            {t['macs']:,} ({human(t['macs'])});  FLOPs = 2 x MACs = {human(t['flops'])};"
        f"  element-wise ops {human(t['ew_ops'])}",
        f"Activations:     {t['act_elems']:,} elements = {human_bytes(t['act_bytes_forward'])} forward, "
        f"~{human_bytes(t['act_bytes_training'])} training (x2);  peak at inference "
        f"{human_bytes(t['peak_act_bytes'])}",
        f"Layers:          {t['layers']}   outputs: {', '.join(report.outputs)}",
        "Convention: " + CONVENTION,
    ]
    return Summary(f"netlang summary: {report.network}  (input {fmt_shape(report.input_shape)})", rows, footer)


# ---------------------------------------------------------------------------- JSON

# The version of `netlang summary --json`'s format (docs/summary.schema.json); it changes only
# when a key is removed or changes meaning.
SCHEMA_VERSION = 1


def to_json(report: CostReport, graph, depth: int | None = None) -> dict:
    """What `netlang summary --json` prints: the cost report's rows, each with the op text the
    table shows and, for a layer, its op and arguments; the edges between the rows; the totals."""
    data = report.to_json(depth)
    for g, row in zip(report.rows(depth), data["layers"]):
        layer = _is_layer(g, graph)
        row["op"] = graph.nodes[g.name]["op"] if layer else None
        row["text"] = row_op(g, graph)
        row["args"] = _plain(graph.nodes[g.name]["args"]) if layer else None
    return {"schema": SCHEMA_VERSION, "depth": depth, **data, "edges": _row_edges(report, graph, depth)}


def _row_edges(report: CostReport, graph, depth: int | None) -> list[dict]:
    """The graph's edges between rows, in the rows' order: with `depth`, an edge inside one row
    vanishes and parallel ones between two rows are kept once per input position."""
    from .ir import inputs_of

    def row(name: str) -> str:
        # as CostReport.rows() groups layers
        parts = name.split(".")
        return ".".join(parts[:depth]) if depth is not None and len(parts) > depth else name

    out, seen = [], set()
    for layer in report.layers:
        for pos, src in enumerate(inputs_of(graph, layer.name)):
            edge = (row(src), row(layer.name), pos)
            if edge[0] != edge[1] and edge not in seen:
                seen.add(edge)
                out.append({"from": edge[0], "to": edge[1], "pos": pos})
    return out


def _plain(v):
    """An op's arguments as JSON: pairs become lists, and whatever JSON cannot hold its text."""
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def source_of(text: str) -> str:
    """The paper a .net file cites: its header's first paragraph up to the parenthesis that
    closes the first one, e.g. "Wide Residual Networks (Zagoruyko, Komodakis, BMVC 2016)"."""
    para = []
    for line in text.splitlines():
        if not line.startswith("#") or not line[1:].strip():
            break
        para.append(line[1:].strip())
    words = " ".join(para)
    depth = 0
    for i, ch in enumerate(words):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return words[:i + 1]
    return words


_PUBLISHED = re.compile(r"^#\s*published\s+(\w+):\s*([\d,]+) parameters,\s*([\d.]+) GFLOPS\s*\((.+)\)\s*$", re.M)


def published_of(text: str) -> dict:
    """The figures a .net file says were published for its networks, one comment line each:
    `# published resnet50: 25,557,032 parameters, 4.089 GFLOPS (torchvision 0.29.1)`.
    {network: (params, GFLOPS as written, source)}."""
    return {m[1]: (int(m[2].replace(",", "")), m[3], m[4]) for m in _PUBLISHED.finditer(text)}


_MEASURED = re.compile(r"^#\s*measured\s+(\w+)\s+at\s+(\d+x\d+x\d+):\s*([\d,]+) parameters,\s*([\d,]+) MACs"
                       r"\s*\((.+)\)\s*$", re.M)


def measured_of(text: str) -> list:
    """The figures a .net file says were measured on another library's module, where none are
    published, one comment line per input: `# measured resnet50_fpn at 3x224x224: 26,799,296
    parameters, 6,929,104,896 MACs (torchvision 0.29.1's module)`. [(network, (C, H, W), params,
    MACs, source)], in the file's order."""
    return [(m[1], tuple(int(d) for d in m[2].split("x")), int(m[3].replace(",", "")), int(m[4].replace(",", "")),
             m[5]) for m in _MEASURED.finditer(text)]


def measured_table(measured: list, analyse) -> str:
    """Markdown: each measured figure beside netlang's count at the same input; analyse(network,
    input) gives netlang's Network."""
    out = ["| Network | Input | Measured params | netlang params | Measured MACs | netlang MACs | Source |",
           "|---|---|---|---|---|---|---|"]
    for name, shape, params, macs, source in measured:
        net = analyse(name, shape)
        out.append(f"| {name} | {fmt_shape(shape)} | {params:,} | {net.cost.params:,} | {macs:,} | "
                   f"{net.cost.macs:,} | {source} |")
    return "\n".join(out)


def published_table(rows, published: dict) -> str:
    """Markdown: each network with published figures, those figures beside netlang's (MACs to the
    published GFLOPS' decimals). rows: (file name, Network, source) as zoo_table's."""
    out = ["| Network | Published params | netlang params | Published GFLOPS | netlang GMACs | Source |",
           "|---|---|---|---|---|---|"]
    for _, net, _ in rows:
        if net.name not in published:
            continue
        params, gflops, source = published[net.name]
        digits = len(gflops.partition(".")[2])
        out.append(f"| {net.name} | {params:,} | {net.cost.params:,} | {gflops} | "
                   f"{net.cost.macs / 1e9:.{digits}f} | {source} |")
    return "\n".join(out)


def zoo_table(rows, markdown: bool = False) -> str:
    """One line per network: name, file, input, layers, params, MACs, activation memory, outputs,
    and, for Markdown, the source paper. rows: (file name, Network, source)."""
    headers = ("Network", "File", "Input", "Layers", "Params", "MACs", "Activations (fwd, fp32)", "Outputs")
    body = []
    for filename, net, _ in rows:
        t = net.cost.totals()
        outs = ", ".join(f"{o} {fmt_shape(net.graph.nodes[o]['shape'])}" for o in net.cost.outputs)
        body.append((net.name, filename, fmt_shape(net.cost.input_shape), str(t["layers"]), f"{t['params']:,}",
                     human(t["macs"]), human_bytes(t["act_bytes_forward"]), outs))
    if markdown:
        headers += ("Source",)
        body = [r + (src.replace("|", "\\|"),) for r, (_, _, src) in zip(body, rows)]
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(out)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    align = ("<", "<", ">", ">", ">", ">", ">", "<")

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in body])


# ---------------------------------------------------------------------------- fusion

STEP_NAMES = {"batchnorm": "bn", "add": "add", "relu": "relu", "relu6": "relu6", "tanh": "tanh",
              "sigmoid": "sigmoid", "hardswish": "hardswish", "hardsigmoid": "hardsigmoid", "silu": "silu",
              "gelu": "gelu", "leaky_relu": "leaky_relu", "elu": "elu", "mish": "mish", "softplus": "softplus",
              "scale": "scale"}


def fusion_parts(data: dict) -> list[str]:
    """What a fused node does besides its op, in short: ["bn+relu ->", "+bn+add+relu", ...]."""
    out = []
    if data.get("prologue"):
        out.append("+".join(STEP_NAMES[s["op"]] for s in data["prologue"]) + " ->")
    if data.get("epilogue"):
        out.append("-> " + "+".join(STEP_NAMES[s["op"]] for s in data["epilogue"]))
    if data.get("siblings"):
        sibs = data["siblings"]
        parts = [s["node"].split(".") for s in sibs]
        common = 0
        while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
            common += 1
        out.append(f"{len(sibs)} merged: " + " | ".join(
            f"{'.'.join(p[common:])} {s['stop'] - s['start']}" for p, s in zip(parts, sibs)))
    if data.get("placement"):
        p = data["placement"]
        out.append(f"in place: {p['into']} channels {p['offset']}..")
    return out


def fusion_kind(data: dict) -> str | None:
    """A fused node's pattern, as the summary counts them: `conv+bn+add+relu`, `1x1 x3 merged`."""
    if data.get("siblings"):
        k = data["args"].get("k", (1, 1))
        return f"{pair(k)} x{len(data['siblings'])} merged"
    steps = [STEP_NAMES[s["op"]] for s in data.get("prologue", ())] + [data["op"]] + \
        [STEP_NAMES[s["op"]] for s in data.get("epilogue", ())]
    return "+".join(steps) if len(steps) > 1 else None


def _runs(G) -> tuple[int, int]:
    """(kernels launched, activation elements written) of one forward at inference: views write
    nothing, and a concat copies only the inputs not placed into it."""
    from . import ops
    from .ir import inputs_of
    kernels = written = 0
    for n, d in G.nodes(data=True):
        op = ops.OPS[d["op"]]
        if d["op"] == "input" or op.aliases_input:
            continue
        if d["op"] == "concat":
            copied = [s for s in inputs_of(G, n) if G.nodes[s].get("placement", {}).get("into") != n]
            if not copied:
                continue
            written += sum(ops.numel(G.nodes[s]["shape"]) for s in copied)
        else:
            written += ops.numel(d["shape"])
        kernels += 1
    return kernels, written


def fusion_table(G, H, before: CostReport, after: CostReport, depth: int = 2) -> str:
    """Before and after the passes: nodes, kernels, bytes written, memory, and what fused where."""
    nb = before.bytes_per_elem
    k0, w0 = _runs(G)
    k1, w1 = _runs(H)
    plan = H.graph.get("memory_plan")
    rows = [("layers (IR nodes)", f"{G.number_of_nodes() - 1:,}", f"{H.number_of_nodes() - 1:,}"),
            ("kernels to launch", f"{k0:,}", f"{k1:,}"),
            ("activation bytes written", human_bytes(w0 * nb), human_bytes(w1 * nb)),
            ("peak activation memory", human_bytes(before.peak_elems * nb),
             human_bytes(plan["peak"] * nb) if plan else human_bytes(after.peak_elems * nb)),
            ("arena (memory plan)", "-", human_bytes(plan["arena"] * nb) if plan else "-"),
            ("MACs", human(before.macs), human(after.macs) + (" (unchanged)" if after.macs == before.macs else ""))]
    width = max(len(r[0]) for r in rows)
    out = [f"Fusion ({', '.join(H.graph.get('passes', ())) or 'no passes'}), one forward at inference, "
           f"{before.dtype}, per sample:",
           f"  {'':<{width}}  {'before':>14}  {'after':>14}"]
    out += [f"  {a:<{width}}  {b:>14}  {c:>14}" for a, b, c in rows]
    groups: dict = {}
    for n, d in H.nodes(data=True):
        kind = fusion_kind(d)
        if kind is None:
            continue
        key = ".".join(n.split(".")[:depth]) if n.count(".") >= depth else (d["scope"] or n)
        groups.setdefault(key, {}).setdefault(kind, 0)
        groups[key][kind] += 1
    if groups:
        out.append(f"  fused, by block (depth {depth}):")
        w = max(len(k) for k in groups)
        for key, kinds in groups.items():
            out.append(f"    {key:<{w}}  " + ", ".join(f"{k}" + (f" x{c}" if c > 1 else "") for k, c in kinds.items()))
    return "\n".join(out)
