"""Source text -> AST (netlang.ast), with a SourceLoc on every node.

The grammar lives in grammars/netlang.lark; this module adds the post-lexer that decides which
newlines end a statement, turns Lark's parse tree into AST nodes, and turns Lark's exceptions
into NetlangSyntaxErrors that say what was expected, in words.
"""
from __future__ import annotations

import functools
from pathlib import Path

import lark
from lark import Token, Transformer_NonRecursive
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import LexerThread

from . import ast, lalr
from .errors import NetlangError, NetlangSyntaxError, NetlangValueError, SourceLoc, paused_gc, register_source
from .limits import MAX_INT

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
        indent: dict[int, int] = {}         # line -> column of its first token
        stolen: Token | None = None         # first '{' closed by a '}' indented like an outer one
        stream = iter(stream)
        ahead: list[Token] = []
        in_output = False                   # within an output statement

        def followed_by(kinds) -> bool:
            """Whether the next token is of one of `kinds` (it is read ahead, and kept)."""
            nxt = next(stream, None)
            if nxt is None:
                return False
            ahead.append(nxt)
            return nxt.type in kinds
        while True:
            tok = ahead.pop() if ahead else next(stream, None)
            if tok is None:
                break
            kind = tok.type
            if kind == "OUTPUT":
                in_output = True
            elif kind in ("_NL", "RBRACE"):
                in_output = False
            # the two words that are statements' words only where they start one: `output fc,
            # aux aux1` (aux1 is auxiliary) and `init conv = ...` (the init statement)
            if (kind == "NAME" and tok.value == "aux" and in_output and prev in ("OUTPUT", "COMMA")
                    and followed_by(("NAME", "AT"))):
                tok, kind = Token.new_borrow_pos("AUX", tok.value, tok), "AUX"
            elif (kind == "NAME" and tok.value == "init" and stack and stack[-1].type == "LBRACE"
                    and (pending is not None or prev == "LBRACE") and followed_by(("NAME", "STRING"))):
                tok, kind = Token.new_borrow_pos("_INIT", tok.value, tok), "_INIT"
            if kind != "_NL":
                indent.setdefault(tok.line, tok.column)
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
                if (stolen is None and indent[tok.line] == tok.column and tok.line != opened.line
                        and tok.column != indent[opened.line]):
                    stolen = opened
            prev = kind
            yield tok
        if stack:
            # When a '}' is missing, the outer braces close the inner ones; the first '}' that
            # lines up with a different line than its '{' shows which one lost its partner.
            opened = stolen if stolen is not None and stack[-1].type == "LBRACE" else stack[-1]
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
    # (AUX and _INIT are names the post-lexer retypes: the user sees them as names)
    words = sorted({_describe("NAME" if n in ("AUX", "_INIT") else n) for n in names if not n.startswith("__")})
    if len(words) > 6:
        words = words[:6] + ["…"]
    return ", ".join(words)


def _syntax_error(err: UnexpectedInput, filename: str, text: str, end: str = "end of file") -> NetlangSyntaxError:
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            if tok.end_line is not None:
                # Lark's $END borrows the last token's position: point just after that token.
                loc = SourceLoc(filename, tok.end_line, tok.end_column, tok.end_line, tok.end_column + 1)
            else:
                line = text.count("\n") + 1
                loc = SourceLoc(filename, line, len(text.rsplit("\n", 1)[-1]) + 1)
            return NetlangSyntaxError(f"unexpected {end}; expected {_expected(err.accepts or err.expected)}", loc)
        prev, unclosed = _context(text, tok)
        if unclosed is not None:
            # Newlines inside ( ) and [ ] are ignored, so a missing ')' shows up lines later.
            return NetlangSyntaxError(f"'{unclosed.value}' is never closed", _tok_loc(filename, unclosed),
                                      hint=f"add the matching '{_match(unclosed.value)}'")
        loc = _tok_loc(filename, tok)
        what = "end of line" if tok.type == "_NL" else f"'{tok.value}'"
        if tok.type == "_NL":
            loc = SourceLoc(filename, tok.line, tok.column, tok.line, tok.column + 1)
        elif tok.type == "RBRACE" and prev is not None and prev.end_line < tok.line:
            # The newline before '}' is dropped; what is unfinished is the line before it.
            what = "end of line"
            loc = SourceLoc(filename, prev.end_line, prev.end_column, prev.end_line, prev.end_column + 1)
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
            return NetlangSyntaxError("unterminated string", loc, hint="strings end on the line they start")
        return NetlangSyntaxError(f"unexpected character {ch!r}", loc, hint=hint)
    if isinstance(err, UnexpectedEOF):
        line = text.count("\n") + 1
        return NetlangSyntaxError(f"unexpected {end}", SourceLoc(filename, line, 1))
    return NetlangSyntaxError(str(err), SourceLoc(filename, getattr(err, "line", 1) or 1, getattr(err, "column", 1) or 1))


@functools.lru_cache(maxsize=None)
def _raw_lexer():
    return _lark()._build_lexer()


def _context(text: str, at: Token) -> tuple[Token | None, Token | None]:
    """Re-lex `text` without the post-lexer, up to the token `at` of a syntax error.

    Returns the token before `at`, and the innermost '(' or '[' around `at` if it was opened on an
    earlier line and is never properly closed (so the error is really that bracket's).
    """
    stack: list[Token] = []
    prev = watch = None
    try:
        for tok in LexerThread.from_text(_raw_lexer(), text).lex(None):
            if watch is None:
                if tok.start_pos >= at.start_pos:
                    if not stack or stack[-1].type == "LBRACE" or stack[-1].line >= at.line:
                        return prev, None
                    watch = stack[-1]
                elif tok.type != "_NL":
                    prev = tok
            if tok.type in _OPEN:
                stack.append(tok)
            elif tok.type in _CLOSE and stack:
                opened = stack.pop()
                if opened is watch:
                    return prev, None if _CLOSE[tok.type] == opened.type else watch
    except UnexpectedInput:
        return prev, None
    return prev, watch


def parse(text: str, filename: str = "<string>") -> ast.Module:
    """Parse a whole .net file."""
    register_source(filename, text)
    with paused_gc():
        return _Build(filename, text).module(_parse(text, filename, "start"))


def parse_expr(text: str, filename: str = "<string>") -> ast.Expr:
    """Parse one pipeline expression (used for label templates and -p overrides)."""
    return _parse(text, filename, "pipe", end="end of the expression")


def _parse(text: str, filename: str, start: str, end: str = "end of file"):
    """The lean driver (netlang/lalr.py) first; Lark's parse tree and the transformer where it
    rejects the input or building fails, so that errors come out as Lark's path gives them."""
    tab = _tables()
    if tab is not None:
        try:
            return lalr.run(tab, _Newlines().process(LexerThread.from_text(_raw_lexer(), text).lex(None)),
                            start, _Build(filename, text))
        except (lalr.Rejected, NetlangError, UnexpectedInput, _BracketError):
            pass
    return _slow_parse(text, filename, start, end)


def _slow_parse(text: str, filename: str, start: str, end: str = "end of file"):
    """Lark's own path: its parse tree, then the tree to the AST (the lean driver's oracle)."""
    tree = _run(text, filename, start, end)
    try:
        return _FromTree(_Build(filename, text)).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, NetlangError):
            raise err.orig_exc from None
        raise


@functools.lru_cache(maxsize=None)
def _tables():
    try:
        return lalr.Tables(_lark())
    except (AttributeError, ImportError, KeyError, TypeError):      # (a Lark whose internals moved)
        return None


def _run(text: str, filename: str, start: str, end: str = "end of file"):
    try:
        return _lark().parse(text, start=start)
    except _BracketError as err:
        raise NetlangSyntaxError(err.message, _tok_loc(filename, err.tok), hint=err.hint) from None
    except UnexpectedInput as err:
        raise _syntax_error(err, filename, text, end) from None


class _FromTree(Transformer_NonRecursive):
    """Lark's parse tree -> AST, through the same builder as the lean driver. Non-recursive, so
    that a deeply nested expression cannot overflow Python's stack here."""

    def __init__(self, build: "_Build"):
        super().__init__()
        self.build = build

    def __default__(self, data, children, meta):
        span = None if meta.empty else (meta.line, meta.column, meta.end_line, meta.end_column)
        return getattr(self.build, str(data))(span, children)


class _Build:
    """Rules -> AST nodes: each method takes a rule's span (line, column, end line, end column)
    and its children, as Lark's tree builder shapes them. Only construction happens here;
    meaning comes later.
    """

    def __init__(self, filename: str, text: str):
        self.file = filename
        self.text = text

    def module(self, decls) -> ast.Module:
        return ast.Module(SourceLoc(self.file, 1, 1), self.file, tuple(decls))

    def L(self, span) -> SourceLoc:
        return SourceLoc(self.file, *span)

    # ------------------------------------------------------------ top level
    def start(self, span, children):
        return [c for c in children if c is not None]

    def import_stmt(self, span, c):
        return ast.Import(self.L(span), _unquote(c[0], self.file))

    def def_stmt(self, span, c):
        name, params, body = c
        return ast.DefDecl(self.L(span), str(name), params or (), body, _tok_loc(self.file, name))

    def block_def(self, span, c):
        name, params, body = c
        return ast.BlockDecl(self.L(span), str(name), params or (), body, _tok_loc(self.file, name))

    def network_def(self, span, c):
        name, params, body = c
        return ast.NetworkDecl(self.L(span), str(name), params or (), body, _tok_loc(self.file, name))

    def network_inst(self, span, c):
        name, target, args = c
        return ast.NetworkInst(self.L(span), str(name), str(target), _tok_loc(self.file, target), args or (),
                               _tok_loc(self.file, name))

    def params(self, span, c):
        return tuple(p for p in c if p is not None)

    def param(self, span, c):
        return ast.Param(self.L(span), str(c[0]), c[1])

    def block_param(self, span, c):
        return ast.Param(self.L(span), "block", c[0])

    def body(self, span, c):
        return tuple(s for s in c if s is not None)

    # ------------------------------------------------------------ statements
    def let_stmt(self, span, c):
        return ast.Let(self.L(span), str(c[0]), c[1])

    def if_stmt(self, span, c):
        test, then, orelse = c
        if isinstance(orelse, ast.If):
            orelse = (orelse,)
        return ast.If(self.L(span), test, then, orelse)

    def for_stmt(self, span, c):
        return ast.For(self.L(span), str(c[0]), c[1], c[2])

    def input_stmt(self, span, c):
        return ast.InputStmt(self.L(span), c[0])

    def output_stmt(self, span, c):
        return ast.OutputStmt(self.L(span), tuple(r for r, _ in c), tuple(a for _, a in c))

    def init_stmt(self, span, c):
        return ast.InitStmt(self.L(span), tuple(r for r in c if r is not None))

    def init_rule(self, span, c):
        target = c[0]
        if not isinstance(target, tuple):           # a string: "classifier.1", "features.0.0.bias"
            target = tuple(_unquote(target, self.file).split("."))
        return ast.InitRule(self.L(span), target, c[1])

    def outref(self, span, c):
        # (the AUX placeholder is None where the reference is not marked: maybe_placeholders)
        return ast.Ref(self.L(span), self._ref_path(c[-1])), len(c) > 1 and c[0] is not None

    def _ref_path(self, target) -> tuple:
        # a string names a label with number parts: @"fpn.inner_blocks.0.0"
        return target if isinstance(target, tuple) else tuple(_unquote(target, self.file).split("."))

    def dotted(self, span, c):
        return tuple(str(t) for t in c)

    # ------------------------------------------------------------ pipelines
    def pipe(self, span, c):
        # A one-item pipeline is that item.
        return c[0] if len(c) == 1 else ast.Pipe(self.L(span), tuple(c))

    def labelled(self, span, c):
        tok, expr = c
        return ast.Labelled(self.L(span), self._template(tok), expr)

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

    def cond(self, span, c):
        return ast.Cond(self.L(span), c[1], c[0], c[2])

    def or_(self, span, c):
        return ast.BinOp(self.L(span), "or", c[0], c[1])

    def and_(self, span, c):
        return ast.BinOp(self.L(span), "and", c[0], c[1])

    def not_(self, span, c):
        return ast.Unary(self.L(span), "not", c[0])

    def compare(self, span, c):
        return ast.BinOp(self.L(span), str(c[1]), c[0], c[2])

    def binop(self, span, c):
        return ast.BinOp(self.L(span), str(c[1]), c[0], c[2])

    def unary(self, span, c):
        return ast.Unary(self.L(span), str(c[0]), c[1])

    def call(self, span, c):
        func, args = c
        return ast.Call(self.L(span), func, args)

    def index(self, span, c):
        return ast.Index(self.L(span), c[0], c[1])

    def args(self, span, c):
        out = []
        for a in c:
            if a is None:
                continue
            out.append(a if isinstance(a, ast.Arg) else ast.Arg(a.loc, None, a))
        return tuple(out)

    def kwarg(self, span, c):
        return ast.Arg(self.L(span), str(c[0]), c[1])

    def block_kwarg(self, span, c):
        return ast.Arg(self.L(span), "block", c[0])

    # ------------------------------------------------------------ atoms
    def block_name(self, span, c):
        return ast.Name(self.L(span), "block")

    def name(self, span, c):
        return ast.Name(self.L(span), str(c[0]))

    def int(self, span, c):
        return ast.Const(self.L(span), _int(c[0], c[0], self.file))

    def float(self, span, c):
        return ast.Const(self.L(span), float(c[0]))

    def string(self, span, c):
        return ast.Const(self.L(span), _unquote(c[0], self.file))

    def shape(self, span, c):
        return ast.Const(self.L(span), tuple(_int(p, c[0], self.file) for p in str(c[0]).split("x")))

    def true(self, span, c):
        return ast.Const(self.L(span), True)

    def false(self, span, c):
        return ast.Const(self.L(span), False)

    def paren(self, span, c):
        return c[0]

    def tuple(self, span, c):
        return ast.TupleExpr(self.L(span), tuple(x for x in c if x is not None))

    def list(self, span, c):
        return ast.ListExpr(self.L(span), tuple(x for x in c if x is not None))

    def ref(self, span, c):
        return ast.Ref(self.L(span), self._ref_path(c[0]))

    def in_attr(self, span, c):
        return ast.InAttr(self.L(span), str(c[0]))

    def merge(self, span, c):
        op, args, *branches = c
        return ast.Merge(self.L(span), op, args or (), tuple(b for b in branches if b is not None))

    def merge_op(self, span, c):
        return str(c[0])


def _unquote(tok: Token, filename: str) -> str:
    s = str(tok)[1:-1]
    if "\\" not in s:
        return s
    try:
        # Escapes as in Python; backslashreplace keeps non-ASCII text intact through the codec.
        return s.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as err:
        raise NetlangSyntaxError(f"bad escape in string: {err.reason}", _tok_loc(filename, tok),
                                 hint="a backslash starts an escape such as \\n, \\t, \\\\ or \\\"") from None


def _int(text: str, tok: Token, filename: str) -> int:
    # Compared by length first: Python refuses to convert digit strings of thousands of digits.
    if len(text) > len(str(MAX_INT)):
        raise NetlangValueError(f"a number with {len(text)} digits is too large (the integer limit is 2**63)",
                                _tok_loc(filename, tok))
    if int(text) > MAX_INT:
        raise NetlangValueError(f"the number {text} is beyond the integer limit of 2**63", _tok_loc(filename, tok))
    return int(text)
