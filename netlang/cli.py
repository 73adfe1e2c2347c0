"""The `netlang` command.

Only NetlangError is caught: a user's mistake prints a located message and exits 1; anything
else is a bug in netlang and shows its traceback.
"""
from __future__ import annotations

import argparse
import json
import re
import sys

from .api import BACKENDS, analyse_module, choose_network, load_module
from .elaborate import check_template, elaborate, instances_of, template_params
from .errors import NetlangError, NetlangValueError
from .ir import verify
from .ops import fmt_shape
from .passes.cost import DTYPE_BYTES


def _input_shape(text: str):
    if not re.fullmatch(r"\d+(x\d+)*", text.strip()):
        raise argparse.ArgumentTypeError(f"expected CxHxW, e.g. 3x224x224, got {text!r}")
    return tuple(int(p) for p in text.strip().split("x"))


def _param(text: str):
    name, eq, value = text.partition("=")
    if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name.strip()) or not value.strip():
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return name.strip(), value.strip()


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .net file")
    p.add_argument("--network", "-n", help="which network of the file (needed when it declares several)")
    p.add_argument("--input", "-i", type=_input_shape, metavar="CxHxW", help="replace the network's input shape")
    p.add_argument("-p", "--param", dest="params", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="set a network parameter (a netlang expression, e.g. -p layers=[2,2,2,2]); repeatable")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="netlang", description="A graph language and compiler for CNN architectures.")
    ap.add_argument("--version", action="version", version="netlang " + __import__("netlang").__version__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parse, elaborate and infer shapes; report the first error")
    _add_common(p)
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("summary", help="per-layer table of shapes, parameters, MACs and memory")
    _add_common(p)
    p.add_argument("--depth", "-d", type=int, metavar="N", help="collapse names deeper than N parts into their block")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPE_BYTES), help="element type for byte counts")
    _add_passes(p)
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("zoo", help="check every network of a folder of .net files and print their cost table")
    p.add_argument("folder", nargs="?", help="folder of .net files (default: the bundled architectures)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (docs/zoo.md)")
    p.add_argument("--render", metavar="OUTDIR", help="also draw every network into OUTDIR (docs/render.md)")
    p.add_argument("--format", default="svg", choices=("svg", "png", "pdf", "dot"), help="format for --render")
    p.set_defaults(run=cmd_zoo)

    p = sub.add_parser("render", help="draw a network as a Graphviz diagram (docs/render.md)")
    _add_common(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.{svg,png,pdf,dot}",
                   help="the file to write; its suffix picks the format; '-' prints DOT")
    p.add_argument("--depth", "-d", type=_render_depth, default="auto", metavar="N|full|auto",
                   help="draw scopes of N or more name parts as single boxes; full: open every scope; "
                        "auto (default): the deepest depth that stays readable")
    p.add_argument("--expand", action="store_true",
                   help="draw every repeated block and every batchnorm/activation on its own (at the depth "
                        "--depth gives; auto picks it as without --expand)")
    p.add_argument("--dpi", type=_render_dpi, metavar="N", help="a PNG's resolution (dot's default: 96)")
    p.add_argument("--color", choices=("params", "macs", "memory"), help="shade boxes by this cost, with a legend")
    p.add_argument("--rankdir", choices=("TB", "LR"), default="TB", help="top to bottom (default) or left to right")
    _add_passes(p)
    p.set_defaults(run=cmd_render)

    p = sub.add_parser("compile", help="lower a network with a backend and write the standalone file: torch "
                                       "(a PyTorch model) or triton (Triton GPU kernels)")
    _add_common(p)
    p.add_argument("--backend", "-b", default="torch", choices=BACKENDS, help="the backend (default: torch)")
    p.add_argument("-o", "--output", metavar="OUT.py", help="the file to write (default: print it)")
    p.add_argument("--explain", action="store_true",
                   help="triton: list every node with its kernel, view or torch fallback (instead of the file)")
    _add_passes(p)
    p.set_defaults(run=cmd_compile)
    return ap


def _add_passes(p) -> None:
    p.add_argument("--passes", type=lambda t: [x.strip() for x in t.split(",") if x.strip()], default=[],
                   metavar="NAME,...", help="run these passes (or pipelines) over the IR first (docs/fusion.md)")
    p.add_argument("--fuse", action="store_true",
                   help="the same as --passes fuse: the graph fused for inference (compile: the file's entry "
                        "builds the fused network)")


def _passes(args) -> list:
    return list(args.passes) + (["fuse"] if args.fuse else [])


def _render_depth(text: str):
    if text in ("auto", "full"):
        return None if text == "full" else "auto"
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, 'full' or 'auto', got {text!r}")
    return int(text)


def _render_dpi(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def cmd_check(args) -> int:
    module = load_module(args.file)
    names = [choose_network(module, args.network)] if args.network or len(module.networks) == 1 else module.networks
    params = dict(args.params)
    if params and len(names) > 1:
        raise NetlangValueError("-p applies to one network; choose it with --network", None,
                                hint="networks here: " + ", ".join(names))
    for name in names:
        missing = template_params(module, name, params)
        if missing:
            # a generic network: its instances are checked in full; of it, what needs no parameter
            check_template(module, name)
            inst = instances_of(module, name)
            print(f"{name}: template — needs {', '.join(missing)}; "
                  + (f"checked through its instances {', '.join(inst)}" if inst else
                     "no instance here (give " + " ".join(f"-p {m}=…" for m in missing) + " to check it)"))
            continue
        G = elaborate(module, name, params, args.input)
        verify(G)
        aux = G.graph.get("output_aux") or [False] * len(G.graph["outputs"])
        outs = ", ".join(("aux " if a else "") + f"{o} {fmt_shape(G.nodes[o]['shape'])}"
                         for o, a in zip(G.graph["outputs"], aux))
        print(f"{name}: ok — {G.number_of_nodes() - 1} layers, "
              f"input {fmt_shape(G.nodes['input']['shape'])}, output {outs}")
    if not names:
        print(f"{args.file}: ok — no networks (definitions only)")
    return 0


def cmd_summary(args) -> int:
    if args.depth is not None and args.depth < 1:
        raise NetlangValueError(f"--depth must be at least 1, got {args.depth}", None)
    module = load_module(args.file)
    passes = _passes(args)
    net = analyse_module(module, args.network, args.input, passes=passes, dtype=args.dtype,
                         params=dict(args.params))
    if args.json:
        json.dump(net.cost.to_json(args.depth), sys.stdout, indent=1)
        print()
    else:
        print(net.summary(args.depth))
        if passes:
            from .summary import fusion_table
            plain = analyse_module(module, args.network, args.input, dtype=args.dtype, params=dict(args.params))
            print()
            print(fusion_table(plain.graph, net.graph, plain.cost, net.cost, args.depth or 2))
    return 0


def cmd_zoo(args) -> int:
    from pathlib import Path

    from .elaborate import bundled_architectures
    from .summary import published_of, published_table, source_of, zoo_table
    folder = Path(args.folder) if args.folder else bundled_architectures()
    if folder is None or not folder.is_dir():
        raise NetlangValueError(f"no such folder: {args.folder}", None)
    if args.render and args.format != "dot":
        from .render import dot_program
        dot_program()                     # fail before the work when Graphviz is missing
    rows, failures, published = [], 0, {}
    for path in sorted(folder.glob("*.net")):
        try:
            module = load_module(path)
            source = source_of(path.read_text())
            published.update(published_of(path.read_text()))
            for name in module.networks:
                if template_params(module, name):
                    continue            # a template: its instances are the zoo's networks
                net = analyse_module(module, name)
                rows.append((path.name, net, source))
        except NetlangError as err:
            failures += 1
            print(err.format(), file=sys.stderr)
    if args.markdown:
        print(ZOO_PREAMBLE.format(command=f"netlang zoo {args.folder or ''} --markdown".replace("  ", " ")))
    print(zoo_table(rows, markdown=args.markdown))
    if args.markdown and any(net.name in published for _, net, _ in rows):
        print(ZOO_PUBLISHED)
        print(published_table(rows, published))
    if args.render:
        from .render import render_all
        paths = render_all([(f, n) for f, n, _ in rows], args.render, args.format)
        print(f"drew {len(paths)} networks into {args.render}", file=sys.stderr)
    if failures:
        print(f"{failures} file(s) failed", file=sys.stderr)
    return 1 if failures else 0


ZOO_PREAMBLE = """# The zoo

Every network of `architectures/`, analysed by netlang: this page is the output of
`{command}` (a test checks that it is current). Counting convention
([cost.md](cost.md)): Params are trainable weights and biases (batchnorm's running statistics
are buffers, not counted); MACs are the multiply-accumulates of convolutions and linear layers
for one image (FLOPs = 2 x MACs; torchvision's "GFLOPS" are these MACs); Activations is the
memory of every layer output of one forward pass in fp32. Auxiliary classifiers count in all
three. Where a figure differs from the one printed in the paper or the lecture notes, see
[seed-figures.md](seed-figures.md) and the tests named there.
"""

# Before the table of the figures the files say were published for their networks.
ZOO_PUBLISHED = """
## Published figures

The figures published for these networks (a file's `# published` lines say which), beside
netlang's own count: parameters, and multiply-accumulates in the publisher's GFLOPS (which are
MACs), to as many decimals as were published. The tests hold netlang's counts against the
golden files and these figures.
"""


def cmd_render(args) -> int:
    from .render import check_dpi, dot_program, format_of, render, to_dot
    fmt = "dot" if args.output == "-" else format_of(args.output)
    check_dpi(args.dpi, fmt)
    if fmt != "dot":
        dot_program()                     # fail before the work when Graphviz is missing
    module = load_module(args.file)
    net = analyse_module(module, args.network, args.input, passes=_passes(args), params=dict(args.params))
    opts = dict(depth=args.depth, expand=args.expand, color=args.color, rankdir=args.rankdir)
    if args.output == "-":
        sys.stdout.write(to_dot(net, **opts))
    else:
        render(net, args.output, fmt, dpi=args.dpi, **opts)
    return 0


def cmd_compile(args) -> int:
    module = load_module(args.file)
    net = analyse_module(module, args.network, args.input, params=dict(args.params))
    passes = _passes(args)
    if args.backend == "triton":
        if passes:
            raise NetlangValueError("--backend triton always runs the fuse pipeline: leave out --passes/--fuse", None)
        from netlang.backends.triton import explain, generate as generate_triton
        src = generate_triton(net, header=compile_header(args, net))
        if args.explain:
            sys.stdout.write(f"{net.name}: the Triton backend's plan\n\n{explain(src.plan)}\n")
            return 0
    else:
        if args.explain:
            raise NetlangValueError("--explain lists the Triton backend's plan: use it with --backend triton", None)
        from netlang.backends.torchgen import generate
        src = generate(net, header=compile_header(args, net), fuse=passes or False)
    if args.output and args.output != "-":
        from pathlib import Path
        try:
            Path(args.output).write_text(src.text)
        except OSError as e:
            raise NetlangValueError(f"cannot write {args.output}: {e.strerror}", None) from None
        print(f"wrote {args.output}: {src.entry} builds {net.name} ({net.cost.params:,} parameters)", file=sys.stderr)
    else:
        sys.stdout.write(src.text)
    return 0


def shown_path(path: str) -> str:
    """A path as a comment may show it: relative to the working directory, or just its name (a
    generated file never carries the build machine's absolute paths)."""
    from pathlib import Path
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return p.name


def compile_header(args, net) -> str:
    """The generated file's first lines: where it came from and how to make it again."""
    from netlang.backends.torchgen.names import comment
    file = shown_path(args.file)
    cmd = ["netlang compile", file, "--backend", args.backend] + (["--fuse"] if args.fuse else []) \
        + ([f"--passes {','.join(args.passes)}"] if args.passes else [])
    cmd += [f"--network {net.name}"] if args.network else []
    cmd += [f"--input {'x'.join(map(str, args.input))}"] if args.input else []
    cmd += [f"-p {k}={v}" for k, v in args.params]
    cmd += [f"-o {shown_path(args.output)}"] if args.output and args.output != "-" else []
    params = ", ".join(f"{k}={v!r}" for k, v in net.graph.graph.get("params", {}).items())
    shape = "x".join(map(str, net.graph.nodes["input"]["shape"]))
    what = "Triton GPU kernels" if args.backend == "triton" else "a PyTorch model"
    lines = [f"# {comment(net.name)}: {what} generated by netlang from {comment(file)}, input {shape}.",
             f"# Network parameters: {comment(params or '(none)')}",
             f"# Made by: {comment(' '.join(cmd))}",
             "# Its state_dict keys are the .net file's layer names; change that file and compile again."]
    outs = net.graph.graph["outputs"]
    if len(outs) > 1:
        lines.append(f"# forward returns {comment(outs[0])} in eval, ({comment(', '.join(outs))}) in training.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except NetlangError as err:
        print(err.format(), file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
