"""Source locations and the NetlangError family.

Every error a user can cause is a NetlangError carrying a SourceLoc; `format()` renders it as
`file:line:col: kind: message`, the source line and a caret under the offending span.
"""
from __future__ import annotations

from typing import NamedTuple

# Source text by file name, so an error raised far from the parser can still show its line.
_SOURCES: dict[str, str] = {}


def register_source(filename: str, text: str) -> None:
    _SOURCES[filename] = text


def source_line(filename: str, line: int) -> str | None:
    text = _SOURCES.get(filename)
    if text is None:
        try:
            with open(filename, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            return None
    # Lines as the lexer counts them: only "\n" ends one ("\f", "\v" and "\x1c" do not).
    lines = text.split("\n")
    return lines[line - 1].rstrip("\r") if 1 <= line <= len(lines) else None


class SourceLoc(NamedTuple):
    """A span in a source file; lines and columns count from 1, end_col is exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


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

    def with_note(self, text: str, loc: SourceLoc | None) -> "NetlangError":
        self.notes = self.notes + ((text, loc),)
        return self

    def __str__(self) -> str:
        where = f"{self.loc}: " if self.loc else ""
        return f"{where}{self.kind}: {self.message}"

    def format(self) -> str:
        out = [str(self)]
        out += _excerpt(self.loc)
        for text, loc in self.notes:
            out.append(f"{loc}: note: {text}" if loc else f"note: {text}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


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
    return [f"    {text}", f"    {pad}{'^' * width}"]


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
