"""The per-layer summary table (in the spirit of the lecture notes' VGG table and torchinfo)."""
from __future__ import annotations

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
    return op


def human(n: float, unit: str = "") -> str:
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: int) -> str:
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {suffix}"
    return f"{n} B"


def table(report: CostReport, graph, depth: int | None = None) -> str:
    headers = ("Layer", "Op", "Output", "Params", "MACs", "Activations")
    rows = []
    for g in report.rows(depth):
        if g.layers <= 1 and g.name in graph:
            kind = describe_op(graph.nodes[g.name]["op"], graph.nodes[g.name]["args"])
        else:
            kind = f"{g.kind} [{g.layers}]"
        rows.append((g.name, kind, fmt_shape(g.shape), f"{g.params:,}" if g.params else "-",
                     human(g.macs) if g.macs else "-", human(g.act_elems) if g.act_elems else "-"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    align = ("<", "<", ">", ">", ">", ">")

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    rule = "-" * len(line(headers))
    out = [f"netlang summary: {report.network}  (input {fmt_shape(report.input_shape)})", rule, line(headers), rule]
    out += [line(r) for r in rows]
    out.append(rule)
    t = report.totals()
    out += [
        f"Parameters:      {t['params']:,} trainable, {t['buffers']:,} in buffers "
        f"({human_bytes(t['param_bytes'])} as {t['dtype']})",
        f"MACs:            {t['macs']:,} ({human(t['macs'])});  FLOPs = 2 x MACs = {human(t['flops'])};"
        f"  element-wise ops {human(t['ew_ops'])}",
        f"Activations:     {t['act_elems']:,} elements = {human_bytes(t['act_bytes_forward'])} forward, "
        f"~{human_bytes(t['act_bytes_training'])} training (x2);  peak at inference "
        f"{human_bytes(t['peak_act_bytes'])}",
        f"Layers:          {t['layers']}   outputs: {', '.join(report.outputs)}",
        rule,
        "Convention: " + CONVENTION,
    ]
    return "\n".join(out)


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
