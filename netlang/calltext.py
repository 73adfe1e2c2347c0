"""Call texts fit for a diagram's labels: arguments named where a bare value says nothing,
floats shortened, long lists elided, long calls wrapped at argument boundaries.

`inception(64, 96, 128, 16, 32, 32, false)` means nothing to a reader of a figure; the block's
own parameter names do: `inception(c1=64, c3r=96, c3=128, c5r=16, c5=32, pool=32, lrn=false)`.
A call passing one argument keeps it bare unless it is a bool (`bottleneck(256)` reads as a
width; `se(true)` reads as nothing). docs/render.md states the rule.
"""
from __future__ import annotations

import re

CALL_WIDTH = 56            # a box title longer than this is wrapped
CLUSTER_WIDTH = 64         # a cluster is wider than a box: its label may be longer
CALL_LINES = 3             # a call wrapped onto more lines than this is cut, with `…`

# A float written with five or more decimals (a drop rate 0.009259259259259259).
_FLOAT = re.compile(r"(?<![\w.])\d+\.\d{5,}(?:e-?\d+)?")


def _cuts(text: str, lists: bool) -> list[str]:
    """`text` cut after each `, ` outside quotes (and, unless `lists`, outside [...] too)."""
    out, start, quote, depth, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "," and text[i + 1:i + 2] == " " and (lists or depth == 0):
            out.append(text[start:i + 2])
            start = i + 2
        i += 1
    out.append(text[start:])
    return out


def named_call(info: dict) -> str | None:
    """A scope's call text (a block's or a labelled def call's) with its arguments named by the
    callee's parameters, as the rule above says."""
    call, given = info.get("call"), info.get("given")
    if not call or not given or not call.endswith(")"):
        return call
    name, _, rest = call.partition("(")
    args = [a.removesuffix(", ") for a in _cuts(rest[:-1], lists=False)]
    if len(args) != len(given) or (len(args) == 1 and args[0] not in ("true", "false")):
        return call
    return f"{name}(" + ", ".join(a if a.startswith(p + "=") else f"{p}={a}" for a, p in zip(args, given)) + ")"


def _tidy(text: str) -> str:
    return _FLOAT.sub(lambda m: f"{float(m.group()):.3g}", text).replace("<pipeline>", "…")


def short_call(text: str, width: int = CALL_WIDTH) -> str:
    """A call text on one line: floats keep three significant digits, long list arguments
    become `[…]`, then the rest is cut."""
    text = _tidy(text)
    if len(text) <= width:
        return text
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            if depth == 0:
                out.append(text[start:i])
                start = i
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
            if depth == 0:
                out.append("[…]")
                start = i + 1
    out.append(text[start:])
    text = "".join(out)
    return text if len(text) <= width else text[:width - 1] + "…"


def wrap_call(text: str, width: int = CALL_WIDTH, lines: int = CALL_LINES) -> list[str]:
    """A call text as lines of at most `width` characters, broken after an argument's comma;
    a list is never broken (a long one becomes `[…]`); past `lines` lines the rest is `…`."""
    text = _tidy(text)
    if len(text) <= width:
        return [text]
    out, cur = [], ""
    for piece in _cuts(text, lists=False):
        if len(piece.rstrip()) > width:
            piece = short_call(piece, width)
        if cur and len(cur + piece.rstrip()) > width:
            out.append(cur.rstrip())
            cur = ""
        cur += piece
    out.append(cur.rstrip())
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1][:width - 2] + " …"
    return out
