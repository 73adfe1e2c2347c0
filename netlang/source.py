"""Reading a source file: a regular file, of bounded size, in UTF-8.

A path may name a device (/dev/zero, /dev/urandom), a FIFO, a directory or a symlink loop;
each is refused before it is read, so nothing can read forever. The same checks apply to the
file named on the command line, to netlang.load() and to every import.
"""
from __future__ import annotations

import os
import stat

from .errors import NetlangError, NetlangImportError, NetlangSyntaxError, SourceLoc, register_source
from .limits import MAX_FILE_BYTES


def resolved(path) -> str:
    """The absolute, symlink-free form of `path`: the key a file is loaded once under."""
    try:
        return os.path.realpath(path, strict=True)
    except FileNotFoundError:
        return os.path.realpath(path)
    except (OSError, RuntimeError, ValueError):
        # a symlink loop (ELOOP; RuntimeError before Python 3.13), a name too long, a NUL:
        # reported when the file is read
        return os.path.abspath(path)


def read_source(path, loc: SourceLoc | None = None) -> str:
    """The text of the file at `path`, or a NetlangImportError at `loc` (the import statement)."""
    name = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise NetlangImportError(f"no such file: {name}", loc) from None
    except (OSError, ValueError) as err:
        raise NetlangImportError(f"cannot read {name}: {_reason(err)}", loc) from None
    if not stat.S_ISREG(st.st_mode):
        raise NetlangImportError(f"cannot read {name}: it is {_kind(st.st_mode)}, not a regular file", loc)
    if st.st_size > MAX_FILE_BYTES:
        raise NetlangImportError(f"{name} is {st.st_size:,} bytes, more than the limit of {MAX_FILE_BYTES:,}", loc)
    try:
        with open(path, "rb") as f:
            # (a /proc file says it is empty and is not: read no more than the limit either way)
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise NetlangImportError(f"cannot read {name}: {_reason(err)}", loc) from None
    if len(data) > MAX_FILE_BYTES:
        raise NetlangImportError(f"{name} is more than the limit of {MAX_FILE_BYTES:,} bytes", loc)
    return decode(data, os.fspath(path))


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text of `data`; a bad byte is a syntax error at its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        col = len(data[start:err.start].decode("utf-8", "replace")) + 1
        # the text as shown: each bad byte one replacement character, so the caret lines up
        text = data.decode("utf-8", "replace")
        register_source(filename, text)
        error = NetlangSyntaxError(f"byte 0x{data[err.start]:02x} is not valid UTF-8",
                                   SourceLoc(filename, line, col, line, col + 1), hint="netlang source is UTF-8 text")
        hide_foreign_text(error, text, filename)
        raise error from None


def hide_foreign_text(err: NetlangError, text: str, filename: str) -> None:
    """Keep an error from echoing a file that is not netlang source (an import of /etc/passwd).

    A file is taken as netlang source when its name ends in .net, when it is text given
    directly (a name in <angle brackets>, as netlang.loads gives), or when its error lies past
    the first line that holds anything but blanks and comments; otherwise the error shows its
    location only.
    """
    if filename.endswith(".net") or filename.startswith("<") or err.loc is None or err.loc.file != filename:
        return
    first = next((i for i, line in enumerate(text.split("\n"), 1)
                  if line.strip() and not line.lstrip().startswith("#")), 1)
    if err.loc.line <= first:
        err.show_source = False


def check_size(text: str, filename: str) -> None:
    """The limit for source given as text (netlang.loads), in characters; the error points at
    the first character past it."""
    if len(text) > MAX_FILE_BYTES:
        line = text.count("\n", 0, MAX_FILE_BYTES) + 1
        col = MAX_FILE_BYTES - text.rfind("\n", 0, MAX_FILE_BYTES)
        register_source(filename, text)
        raise NetlangImportError(f"{filename} is {len(text):,} characters, more than the limit of "
                                 f"{MAX_FILE_BYTES:,}", SourceLoc(filename, line, col, line, col + 1))


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return str(err)
