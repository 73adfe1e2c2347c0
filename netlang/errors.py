"""Source locations and the NetlangError family.

Every error a user can cause is a NetlangError carrying a SourceLoc; `format()` renders it as
`file:line:col: kind: message`, the source line and a caret under the offending span.
"""
from __future__ import annotations

import re
from typing import NamedTuple

# Source text by file name, so an error raised far from the parser can still show its line.
_SOURCES: dict[str, str] = {}


def register_source(filename: str, text: str) -> None:
    _SOURCES[filename] = text


def source_line(filename: str, line: int) -> str | None:
    text = _SOURCES.get(filename)
    if text is None:
        if not filename.endswith(".net"):
            return None             # only netlang source is ever shown (see NetlangError.format)
        try:
            with open(filename, encoding="utf-8") as f:
                text = f.read(1 << 22)
        except (OSError, UnicodeDecodeError, ValueError):
            return None
    # Lines as the lexer counts them: only "\n" ends one ("\f", "\v" and "\x1c" do not).
    lines = text.split("\n")
    return lines[line - 1].rstrip("\r") if 1 <= line <= len(lines) else None


# Control characters (a newline would split a one-line message), and the lone surrogates that
# stand for the bytes of a file name that is not UTF-8 (stdout cannot encode them).
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")


def shown(text: str) -> str:
    """`text` as an error message may print it: on one line, encodable, escapes as in Python."""
    return _UNPRINTABLE.sub(_escape, text)


def printable(line: str) -> str:
    """A source line as an excerpt shows it: each unprintable character one replacement
    character (a terminal must not act on an escape sequence), so the caret still lines up."""
    return _UNPRINTABLE.sub("\ufffd", line)


def _escape(m) -> str:
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:           # os.fsdecode's stand-in for the byte c - 0xDC00
        return f"\\x{c - 0xDC00:02x}"
    return {"\n": "\\n", "\r": "\\r"}.get(m.group()) or (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}")


class SourceLoc(NamedTuple):
    """A span in a source file; lines and columns count from 1, end_col is exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{shown(self.file)}:{self.line}:{self.col}"


class NetlangError(Exception):
    """A user-caused error: bad syntax, bad names, bad shapes, bad sizes."""

    kind = "error"

    def __init__(self, message: str, loc: SourceLoc | None = None, hint: str | None = None,
                 notes: tuple[tuple[str, SourceLoc | None], ...] = ()):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint
        # Extra context lines, e.g. the call sites of the blocks an error happened in.
        self.notes = tuple(notes)
        # False for a file that is not netlang source: its text is not echoed (an import of
        # /etc/passwd shows where it failed, not the file's first line).
        self.show_source = True

    def with_note(self, text: str, loc: SourceLoc | None) -> "NetlangError":
        self.notes = self.notes + ((text, loc),)
        return self

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{where}{self.kind}: {shown(self.message)}"

    def to_json(self) -> dict:
        """The error as `netlang check --json` reports it (docs/cli.md): where, what, and the hint."""
        loc = self.loc
        out = {"file": loc.file if loc else None, "line": loc.line if loc else None,
               "col": loc.col if loc else None}
        if loc and loc.end_line:
            out.update(end_line=loc.end_line, end_col=loc.end_col)
        out.update(kind=self.kind, message=self.message, hint=self.hint,
                   notes=[{"message": text, "file": nl.file if nl else None, "line": nl.line if nl else None,
                           "col": nl.col if nl else None} for text, nl in self.notes])
        return out

    def format(self) -> str:
        out = [str(self)]
        out += _excerpt(self.loc) if self.show_source else []
        for text, loc in self.notes:
            out.append(f"{loc}: note: {shown(text)}" if loc else f"note: {shown(text)}")
        if self.hint:
            out.append(f"hint: {shown(self.hint)}")
        return "\n".join(out)


def did_you_mean(word: str, candidates) -> str | None:
    """`did you mean 'resnet18'?` for the candidate closest to a misspelt `word`, or None."""
    import difflib
    close = difflib.get_close_matches(word, sorted(candidates), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def _excerpt(loc: SourceLoc | None) -> list[str]:
    if loc is None:
        return []
    text = source_line(loc.file, loc.line)
    if text is None:
        return []
    width = 1
    if loc.end_line == loc.line and loc.end_col > loc.col:
        width = loc.end_col - loc.col
    # Tabs keep their width in the caret line so the caret lines up under them.
    pad = "".join(c if c == "\t" else " " for c in text[: loc.col - 1])
    return [f"    {printable(text)}", f"    {pad}{'^' * width}"]


class NetlangSyntaxError(NetlangError):
    kind = "syntax error"


class NetlangNameError(NetlangError):
    kind = "name error"


class NetlangTypeError(NetlangError):
    kind = "type error"


class NetlangValueError(NetlangError):
    kind = "value error"


class NetlangShapeError(NetlangError):
    kind = "shape error"


class NetlangImportError(NetlangError):
    kind = "import error"


class NetlangRecursionError(NetlangError):
    kind = "recursion error"


class NetlangDependencyError(NetlangError, ImportError):
    """An optional dependency (torch, triton) is not installed; also an ImportError, so code that
    guards an import with `except ImportError` still works."""

    kind = "missing dependency"


class paused_gc:
    """Pause the cyclic garbage collector around front-end work.

    Parsing and elaboration allocate many small objects and no reference cycles worth
    collecting; the collector's repeated full scans made them ~1.5x slower on large networks.
    """

    def __enter__(self):
        import gc
        self._was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        import gc
        if self._was:
            gc.enable()
        return False
