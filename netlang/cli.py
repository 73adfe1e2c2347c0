"""The `netlang` command (docs/cli.md).

A user's mistake is a NetlangError: it prints a located message and exits 1. Anything else is a
bug in netlang: it prints its traceback and exits 70, so that a caller can tell the two apart.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import traceback

from .api import BACKENDS, analyse_module, choose_network, load_module
from .elaborate import check_template, elaborate, instances_of, template_params
from .errors import NetlangError, NetlangImportError, NetlangValueError, did_you_mean
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


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .net file ('-': standard input); a name not here is the bundled zoo's file of "
                                "that name, or the zoo file that declares the network so named (resnet50)")
    p.add_argument("--network", "-n", help="which network of the file (needed when it declares several)")
    p.add_argument("--input", "-i", type=_input_shape, metavar="CxHxW", help="replace the network's input shape")
    p.add_argument("-p", "--param", dest="params", type=_param, action="append", default=[], metavar="NAME=VALUE",
                   help="set a network parameter (a netlang expression, e.g. -p layers=[2,2,2,2]); repeatable")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="netlang", description="A graph language and compiler for CNN architectures.",
                                 epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version="netlang " + __import__("netlang").__version__)
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parse, elaborate and infer shapes; report the first error")
    _add_common(p)
    p.add_argument("--json", action="store_true",
                   help="print the diagnostics as a JSON list (empty when all is well) instead of text")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("summary", help="per-layer table of shapes, parameters, MACs and memory")
    _add_common(p)
    p.add_argument("--depth", "-d", type=_positive_int, metavar="N",
                   help="collapse names deeper than N parts into their block")
    p.add_argument("--json", action="store_true", help="print JSON for machines (docs/summary.schema.json)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPE_BYTES), help="element type for byte counts")
    _add_passes(p)
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser("zoo", help="check every network of a folder of .net files and print their cost table")
    p.add_argument("folder", nargs="?", help="folder of .net files (default: the bundled architectures)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table (docs/zoo.md)")
    p.add_argument("--render", metavar="OUTDIR", help="also draw every network into OUTDIR (docs/render.md)")
    p.add_argument("--format", default="svg", choices=("svg", "png", "pdf", "dot"), help="format for --render")
    # absent unless given (full is None), so rendering keeps its own defaults
    p.add_argument("--depth", "-d", type=_render_depth, default=argparse.SUPPRESS, metavar="N|full|auto",
                   help="for --render: as for render")
    p.add_argument("--color", choices=("params", "macs", "memory"), default=argparse.SUPPRESS,
                   help="for --render: as for render")
    p.add_argument("--dpi", type=_render_dpi, metavar="N", help="for --render: the PNGs' resolution (dot's default: 96)")
    p.add_argument("--list", action="store_true", help="list the networks and their files (nothing analysed)")
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
                                       "(a PyTorch model), triton (Triton GPU kernels) or onnx (an ONNX model)")
    _add_common(p)
    p.add_argument("--backend", "-b", default="torch", choices=BACKENDS, help="the backend (default: torch)")
    p.add_argument("-o", "--output", metavar="OUT.py", help="the file to write (default: print it)")
    p.add_argument("--explain", action="store_true",
                   help="triton: list every node with its kernel, view or torch fallback (instead of the file)")
    _add_passes(p)
    p.set_defaults(run=cmd_compile)
    for p in sub.choices.values():
        p.set_defaults(parser=p)          # a mistyped option is reported with its subcommand's usage
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


def _load(args):
    """The module the command line's FILE names: '-' is standard input (imports resolve from the
    working directory); a name not found here is looked up in the bundled zoo (netlang.zoo)."""
    if args.file == "-":
        data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise NetlangImportError(f"cannot read <stdin>: {err}", None) from None
        return load_module(text=text, filename="<stdin>")
    from .zoo import locate
    found = locate(args.file)
    if found.note:
        print(found.note, file=sys.stderr)
    args.file = str(found.path)
    args.network = args.network or found.network
    return load_module(args.file)


def cmd_check(args) -> int:
    if not args.json:
        return _check(args, print)
    try:
        _check(args, lambda line: None)
    except NetlangError as err:
        diag = err.to_json()
        diag["file"] = diag["file"] or ("<stdin>" if args.file == "-" else args.file)
        _print_json([diag])
        return 1
    _print_json([])
    return 0


def _print_json(data) -> None:
    json.dump(data, sys.stdout, indent=1)
    print()


def _check(args, say) -> int:
    module = _load(args)
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
            say(f"{name}: template — needs {', '.join(missing)}; "
                  + (f"checked through its instances {', '.join(inst)}" if inst else
                     "no instance here (give " + " ".join(f"-p {m}=…" for m in missing) + " to check it)"))
            continue
        G = elaborate(module, name, params, args.input)
        verify(G)
        aux = G.graph.get("output_aux") or [False] * len(G.graph["outputs"])
        outs = ", ".join(("aux " if a else "") + f"{o} {fmt_shape(G.nodes[o]['shape'])}"
                         for o, a in zip(G.graph["outputs"], aux))
        say(f"{name}: ok — {G.number_of_nodes() - 1} layers, "
              f"input {fmt_shape(G.nodes['input']['shape'])}, output {outs}")
    if not names:
        say(f"{module.path}: ok — no networks (definitions only)")
    return 0


def cmd_summary(args) -> int:
    module = _load(args)
    passes = _passes(args)
    net = analyse_module(module, args.network, args.input, passes=passes, dtype=args.dtype,
                         params=dict(args.params))
    if args.json:
        from .summary import to_json
        _print_json(to_json(net.cost, net.graph, args.depth))
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
    from .progress import Progress
    from .summary import measured_of, measured_table, published_of, published_table, source_of, zoo_table
    style = {k: getattr(args, k) for k in ("depth", "color") if hasattr(args, k)}
    if (style or args.dpi is not None) and not args.render:
        args.parser.error("--depth, --color and --dpi go with --render")
    folder = Path(args.folder) if args.folder else bundled_architectures()
    if folder is None or not folder.is_dir():
        raise NetlangValueError(f"no such folder: {args.folder}", None)
    if args.list:
        return zoo_list(folder)
    if args.render:
        from .render import check_dpi, dot_program
        check_dpi(args.dpi, args.format)  # before the work: a DPI only a PNG has
        if args.format != "dot":
            dot_program()                 # fail before the work when Graphviz is missing
    from .zoo import zoo_files
    todo, failures, published, measured, modules = [], 0, {}, [], {}
    for path in zoo_files(folder):
        try:
            module = load_module(path)
        except NetlangError as err:
            failures += 1
            print(err.format(), file=sys.stderr)
            continue
        text = path.read_text()
        published.update(published_of(text))
        for m in measured_of(text):
            measured.append(m)
            modules[m[0]] = module
        # a template is left out: its instances are the zoo's networks
        todo += [(path, module, source_of(text), name) for name in module.networks if not template_params(module, name)]
    progress = Progress(len(todo))
    rows = []
    for i, (path, module, source, name) in enumerate(todo):
        progress(i, "analysing", name)
        try:
            rows.append((path.name, analyse_module(module, name), source))
        except NetlangError as err:
            failures += 1
            progress.close()
            print(err.format(), file=sys.stderr)
    progress.close()
    if args.markdown:
        print(ZOO_PREAMBLE.format(command=f"netlang zoo {args.folder or ''} --markdown".replace("  ", " ")))
    print(zoo_table(rows, markdown=args.markdown))
    if args.markdown and any(net.name in published for _, net, _ in rows):
        print(ZOO_PUBLISHED)
        print(published_table(rows, published))
    if args.markdown and measured:
        print(ZOO_MEASURED)
        print(measured_table(measured, lambda name, shape: analyse_module(modules[name], name, input=shape)))
    if args.render:
        from .render import render_all
        sys.stdout.flush()                # the table before the progress line
        progress = Progress(len(rows))
        try:
            paths = render_all([(f, n) for f, n, _ in rows], args.render, args.format, progress=progress,
                               dpi=args.dpi, **style)
        finally:
            progress.close()
        print(f"drew {len(paths)} networks into {args.render}", file=sys.stderr)
    if failures:
        print(f"{failures} failed (a file or a network)", file=sys.stderr)
    return 1 if failures else 0


def zoo_list(folder) -> int:
    """`netlang zoo --list`: each network with its file, from the files' syntax alone."""
    from .zoo import declared, zoo_files
    rows, failures = [], 0
    for path in zoo_files(folder):
        try:
            nets = declared(path)
        except NetlangError as err:
            failures += 1
            print(err.format(), file=sys.stderr)
            continue
        rows += [(net.name, path.name, f"template: needs {', '.join(net.needs)}" if net.needs else "")
                 for net in nets]
    width = max((len(r[0]) for r in rows), default=0)
    file_width = max((len(r[1]) for r in rows), default=0)
    for name, file, note in rows:
        print(f"{name:<{width}}  {file:<{file_width}}  {note}".rstrip())
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

# Before the table of the figures measured where none are published.
ZOO_MEASURED = """
## Measured figures

Where the publisher gives no figures (torchvision's detection backbones), the parameters and the
multiply-accumulates of convolutions and linear layers counted on the publisher's module (a
file's `# measured` lines, from the golden files' `measured_macs`), beside netlang's count at the
same input.
"""


def cmd_render(args) -> int:
    from .render import check_dpi, dot_program, format_of, render, to_dot
    fmt = "dot" if args.output == "-" else format_of(args.output)
    check_dpi(args.dpi, fmt)
    if fmt != "dot":
        dot_program()                     # fail before the work when Graphviz is missing
    module = _load(args)
    net = analyse_module(module, args.network, args.input, passes=_passes(args), params=dict(args.params))
    opts = dict(depth=args.depth, expand=args.expand, color=args.color, rankdir=args.rankdir)
    if args.output == "-":
        sys.stdout.write(to_dot(net, **opts))
    else:
        render(net, args.output, fmt, dpi=args.dpi, **opts)
    return 0


def cmd_compile(args) -> int:
    module = _load(args)
    net = analyse_module(module, args.network, args.input, params=dict(args.params))
    passes = _passes(args)
    if args.backend == "onnx":
        return write_onnx(args, net, passes)
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


def write_onnx(args, net, passes) -> int:
    """An ONNX file is binary: it is written to -o, never printed."""
    if passes or args.explain:
        raise NetlangValueError("--backend onnx exports the unfused network: leave out --passes/--fuse/--explain", None)
    if not args.output or args.output == "-":
        raise NetlangValueError("--backend onnx writes a binary file: give -o OUT.onnx", None)
    from netlang.backends.onnx import lower, save
    save(lower(net), args.output)
    print(f"wrote {args.output}: {net.name} as ONNX ({net.cost.params:,} parameters, random weights)", file=sys.stderr)
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
    origin = "standard input" if args.file == "-" else file
    lines = [f"# {comment(net.name)}: {what} generated by netlang from {comment(origin)}, input {shape}.",
             f"# Network parameters: {comment(params or '(none)')}",
             f"# Made by: {comment(' '.join(cmd))}",
             "# Its state_dict keys are the .net file's layer names; change that file and compile again."]
    outs = net.graph.graph["outputs"]
    if len(outs) > 1:
        lines.append(f"# forward returns {comment(outs[0])} in eval, ({comment(', '.join(outs))}) in training.")
    return "\n".join(lines)


EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_SOFTWARE, EXIT_INTERRUPTED = 0, 1, 2, 70, 130

EXIT_STATUSES = """exit status:
  0    success
  1    an error in the input: file:line:col, the line, a caret
  2    a malformed command line (the subcommand's usage is printed)
  70   an internal error, a bug in netlang: the traceback is printed; please report it
  130  interrupted (Ctrl-C)"""


def parse_args(parser: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """The command line, or exit 2 with the usage of the subcommand an unknown option was given to."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = getattr(args, "parser", parser)
        known = [o for a in sub._actions for o in a.option_strings]
        close = [did_you_mean(x.split("=")[0], known) for x in extra if x.startswith("-")]
        sub.error("unrecognized arguments: " + " ".join(extra)
                  + "".join(f" ({c})" for c in close if c))
    return args


def main(argv=None) -> int:
    args = parse_args(build_parser(), argv)
    try:
        return args.run(args)
    except NetlangError as err:
        print(err.format(), file=sys.stderr)
        return EXIT_INPUT
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        print("netlang: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:                     # RecursionError and MemoryError included
        print("internal error: this is a bug in netlang, please report it", file=sys.stderr)
        traceback.print_exc()
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
