"""Source text -> AST (netlang.ast), with a SourceLoc on every node.

The grammar lives in grammars/netlang.lark; this module adds the post-lexer that decides which
newlines end a statement, turns Lark's parse tree into AST nodes, and turns Lark's exceptions
into NetlangSyntaxErrors that say what was expected, in words.
"""
from __future__ import annotations

import functools
from pathlib import Path

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .errors import NetlangError, NetlangSyntaxError, SourceLoc, paused_gc, register_source

_OPEN = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSE = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}


def grammar_path() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "netlang.lark", here.parent / "grammars" / "netlang.lark"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("netlang.lark not found beside the netlang package")


class _BracketError(Exception):
    def __init__(self, message: str, tok: Token, hint: str | None = None):
        super().__init__(message)
        self.message, self.tok, self.hint = message, tok, hint


class _Newlines:
    """Post-lexer: keeps only the newlines that separate statements, and checks brackets."""

    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[Token] = []
        pending: Token | None = None
        prev: str | None = None
        for tok in stream:
            kind = tok.type
            if kind == "_NL":
                if (stack and stack[-1].type != "LBRACE") or prev in (None, "LBRACE", "_ARROW"):
                    continue
                pending = pending or tok
                continue
            if pending is not None:
                if kind not in ("RBRACE", "_ARROW", "ELSE"):
                    yield pending
                pending = None
            if kind in _OPEN:
                stack.append(tok)
            elif kind in _CLOSE:
                if not stack:
                    raise _BracketError(f"'{tok.value}' has no matching opening bracket", tok)
                opened = stack.pop()
                if opened.type != _CLOSE[kind]:
                    raise _BracketError(f"'{tok.value}' closes '{opened.value}' opened at line "
                                        f"{opened.line}, column {opened.column}", tok)
            prev = kind
            yield tok
        if stack:
            opened = stack[-1]
            raise _BracketError(f"'{opened.value}' is never closed", opened,
                                f"add the matching '{_match(opened.value)}'")


def _match(bracket: str) -> str:
    return {"(": ")", "[": "]", "{": "}"}[bracket]


def _tok_loc(filename: str, tok: Token) -> SourceLoc:
    return SourceLoc(filename, tok.line, tok.column, tok.end_line or tok.line,
                     tok.end_column or tok.column + len(tok.value))


@functools.lru_cache(maxsize=None)
def _lark() -> lark.Lark:
    return lark.Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr", lexer="basic", strict=True,
                     propagate_positions=True, maybe_placeholders=True, start=["start", "pipe"],
                     postlex=_Newlines(), cache=_cache_file())


def _cache_file() -> str | bool:
    # Lark caches the LALR tables keyed by the grammar; keep them in a private file per user.
    import os
    import tempfile
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netlang"
        base.mkdir(parents=True, exist_ok=True)
        return str(base / f"lark-{lark.__version__}.cache")
    except OSError:
        return str(Path(tempfile.gettempdir()) / f"netlang-lark-{lark.__version__}.cache")


# Terminal names as a user would say them.
_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "SHAPE": "a shape like 3x224x224", "LABEL": "a label", "_NL": "end of line",
    "$END": "end of file", "COMP_OP": "a comparison", "ADD_OP": "'+' or '-'",
    "MUL_OP": "'*', '/', '//' or '%'", "_ARROW": "'->'",
}


def _describe(terminal: str) -> str:
    if terminal in _WORDS:
        return _WORDS[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"'{pattern.value}'"
    return terminal.lower()


def _expected(names) -> str:
    words = sorted({_describe(n) for n in names if not n.startswith("__")})
    if len(words) > 6:
        words = words[:6] + ["…"]
    return ", ".join(words)


def _syntax_error(err: UnexpectedInput, filename: str, text: str) -> NetlangSyntaxError:
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            line = text.count("\n") + 1
            loc = SourceLoc(filename, line, len(text.rsplit("\n", 1)[-1]) + 1)
            return NetlangSyntaxError(f"unexpected end of file; expected {_expected(err.accepts or err.expected)}", loc)
        loc = _tok_loc(filename, tok)
        what = "end of line" if tok.type == "_NL" else f"'{tok.value}'"
        if tok.type == "_NL":
            loc = SourceLoc(filename, tok.line, tok.column, tok.line, tok.column + 1)
        hint = None
        if tok.type == "LABEL":
            hint = "a label names the item that follows it; it cannot follow an operator"
        elif tok.type == "_NL" and "RPAR" in (err.accepts or err.expected):
            hint = "an argument list or tuple is not finished"
        return NetlangSyntaxError(f"unexpected {what}; expected {_expected(err.accepts or err.expected)}",
                                  loc, hint=hint)
    if isinstance(err, UnexpectedCharacters):
        ch = text[err.pos_in_stream] if err.pos_in_stream < len(text) else "?"
        loc = SourceLoc(filename, err.line, err.column, err.line, err.column + 1)
        hint = None
        if ch == ":":
            hint = "a label is a name followed by ':' at the start of an item, e.g. conv1: conv(64, 3)"
        elif ch in "\"'":
            hint = "strings end on the line they start"
        return NetlangSyntaxError(f"unexpected character {ch!r}", loc, hint=hint)
    if isinstance(err, UnexpectedEOF):
        line = text.count("\n") + 1
        return NetlangSyntaxError("unexpected end of file", SourceLoc(filename, line, 1))
    return NetlangSyntaxError(str(err), SourceLoc(filename, getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1))


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse a whole .net file."""
    register_source(filename, text)
    with paused_gc():
        tree = _run(text, filename, "start")
        return _Build(filename, text).transform_module(tree)


def parse_expr(text: str, filename: str = "<string>") -> ast.Expr:
    """Parse one pipeline expression (used for label templates and -p overrides)."""
    tree = _run(text, filename, "pipe")
    return _Build(filename, text).transform(tree)


def _run(text: str, filename: str, start: str):
    try:
        return _lark().parse(text, start=start)
    except _BracketError as err:
        raise NetlangSyntaxError(err.message, _tok_loc(filename, err.tok), hint=err.hint) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, filename, text) from None


def _loc(filename: str, meta) -> SourceLoc:
    return SourceLoc(filename, meta.line, meta.column, meta.end_line, meta.end_column)


@v_args(meta=True)
class _Build(Transformer):
    """Parse tree -> AST. Only construction happens here; meaning comes later."""

    def __init__(self, filename: str, text: str):
        super().__init__()
        self.file = filename
        self.text = text

    def transform_module(self, tree) -> ast.Module:
        try:
            decls = self.transform(tree)
        except VisitError as err:
            if isinstance(err.orig_exc, NetlangError):
                raise err.orig_exc from None
            raise
        return ast.Module(SourceLoc(self.file, 1, 1), self.file, tuple(decls))

    def L(self, meta) -> SourceLoc:
        return _loc(self.file, meta)

    # ------------------------------------------------------------ top level
    def start(self, meta, children):
        return [c for c in children if c is not None]

    def import_stmt(self, meta, c):
        return ast.Import(self.L(meta), _unquote(c[0]))

    def def_stmt(self, meta, c):
        name, params, body = c
        return ast.DefDecl(self.L(meta), str(name), params or (), body)

    def block_def(self, meta, c):
        name, params, body = c
        return ast.BlockDecl(self.L(meta), str(name), params or (), body)

    def network_def(self, meta, c):
        name, params, body = c
        return ast.NetworkDecl(self.L(meta), str(name), params or (), body)

    def network_inst(self, meta, c):
        name, target, args = c
        return ast.NetworkInst(self.L(meta), str(name), str(target), _tok_loc(self.file, target), args or ())

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        return ast.Param(self.L(meta), str(c[0]), c[1])

    def block_param(self, meta, c):
        return ast.Param(self.L(meta), "block", c[0])

    def body(self, meta, c):
        return tuple(s for s in c if s is not None)

    # ------------------------------------------------------------ statements
    def let_stmt(self, meta, c):
        return ast.Let(self.L(meta), str(c[0]), c[1])

    def if_stmt(self, meta, c):
        test, then, orelse = c
        if isinstance(orelse, ast.If):
            orelse = (orelse,)
        return ast.If(self.L(meta), test, then, orelse)

    def for_stmt(self, meta, c):
        return ast.For(self.L(meta), str(c[0]), c[1], c[2])

    def input_stmt(self, meta, c):
        return ast.InputStmt(self.L(meta), c[0])

    def output_stmt(self, meta, c):
        return ast.OutputStmt(self.L(meta), tuple(c))

    def outref(self, meta, c):
        return ast.Ref(self.L(meta), c[-1])

    def dotted(self, meta, c):
        return tuple(str(t) for t in c)

    # ------------------------------------------------------------ pipelines
    def pipe(self, meta, c):
        # A one-item pipeline is that item.
        return c[0] if len(c) == 1 else ast.Pipe(self.L(meta), tuple(c))

    def labelled(self, meta, c):
        tok, expr = c
        return ast.Labelled(self.L(meta), self._template(tok), expr)

    def _template(self, tok: Token) -> ast.Template:
        raw = tok.value.rstrip()[:-1].rstrip()      # drop the ':'
        loc = SourceLoc(self.file, tok.line, tok.column, tok.line, tok.column + len(raw))
        parts: list = []
        i = 0
        while i < len(raw):
            j = raw.find("{", i)
            if j < 0:
                parts.append(raw[i:])
                break
            if j > i:
                parts.append(raw[i:j])
            k = raw.index("}", j)
            inner = raw[j + 1:k]
            if not inner.strip():
                raise NetlangSyntaxError("empty {} in a label", SourceLoc(self.file, tok.line, tok.column + j,
                                                                           tok.line, tok.column + k + 1))
            # Pad the expression so that its locations come out where it stands in the file.
            padded = "\n" * (tok.line - 1) + " " * (tok.column + j) + inner
            parts.append(parse_expr(padded, self.file))
            i = k + 1
        return ast.Template(loc, tuple(parts))

    def cond(self, meta, c):
        return ast.Cond(self.L(meta), c[1], c[0], c[2])

    def or_(self, meta, c):
        return ast.BinOp(self.L(meta), "or", c[0], c[1])

    def and_(self, meta, c):
        return ast.BinOp(self.L(meta), "and", c[0], c[1])

    def not_(self, meta, c):
        return ast.Unary(self.L(meta), "not", c[0])

    def compare(self, meta, c):
        return ast.BinOp(self.L(meta), str(c[1]), c[0], c[2])

    def binop(self, meta, c):
        return ast.BinOp(self.L(meta), str(c[1]), c[0], c[2])

    def unary(self, meta, c):
        return ast.Unary(self.L(meta), str(c[0]), c[1])

    def call(self, meta, c):
        func, args = c
        return ast.Call(self.L(meta), func, args)

    def index(self, meta, c):
        return ast.Index(self.L(meta), c[0], c[1])

    def args(self, meta, c):
        out = []
        for a in c:
            if a is None:
                continue
            out.append(a if isinstance(a, ast.Arg) else ast.Arg(a.loc, None, a))
        return tuple(out)

    def kwarg(self, meta, c):
        return ast.Arg(self.L(meta), str(c[0]), c[1])

    def block_kwarg(self, meta, c):
        return ast.Arg(self.L(meta), "block", c[0])

    # ------------------------------------------------------------ atoms
    def block_name(self, meta, c):
        return ast.Name(self.L(meta), "block")

    def name(self, meta, c):
        return ast.Name(self.L(meta), str(c[0]))

    def int(self, meta, c):
        return ast.Const(self.L(meta), int(c[0]))

    def float(self, meta, c):
        return ast.Const(self.L(meta), float(c[0]))

    def string(self, meta, c):
        return ast.Const(self.L(meta), _unquote(c[0]))

    def shape(self, meta, c):
        return ast.Const(self.L(meta), tuple(int(p) for p in str(c[0]).split("x")))

    def true(self, meta, c):
        return ast.Const(self.L(meta), True)

    def false(self, meta, c):
        return ast.Const(self.L(meta), False)

    def paren(self, meta, c):
        return c[0]

    def tuple(self, meta, c):
        return ast.TupleExpr(self.L(meta), tuple(x for x in c if x is not None))

    def list(self, meta, c):
        return ast.ListExpr(self.L(meta), tuple(x for x in c if x is not None))

    def ref(self, meta, c):
        return ast.Ref(self.L(meta), c[0])

    def in_attr(self, meta, c):
        return ast.InAttr(self.L(meta), str(c[0]))

    def merge(self, meta, c):
        op, args, *branches = c
        return ast.Merge(self.L(meta), op, args or (), tuple(b for b in branches if b is not None))

    def merge_op(self, meta, c):
        return str(c[0])


def _unquote(tok) -> str:
    s = str(tok)[1:-1]
    return s.encode("utf-8").decode("unicode_escape") if "\\" in s else s
