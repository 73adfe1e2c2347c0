"""Long lines of generated code broken as a person breaks them: one argument per line inside the
outermost brackets, recursively, so every line fits in LINE characters where it can."""
from __future__ import annotations

LINE = 100
_OPEN, _CLOSE = "([{", ")]}"


def _groups(text: str):
    """(open index, close index) of the top-level bracket pairs of text, skipping strings."""
    out, stack, quote, i = [], [], None, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in _OPEN:
            stack.append(i)
        elif c in _CLOSE and stack:
            start = stack.pop()
            if not stack:
                out.append((start, i))
        i += 1
    return out


def _split_commas(text: str) -> list[str]:
    parts, depth, quote, cur, i = [], 0, None, [], 0
    while i < len(text):
        c = text[i]
        cur.append(c)
        if quote:
            if c == "\\" and i + 1 < len(text):
                cur.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c in _OPEN:
            depth += 1
        elif c in _CLOSE:
            depth -= 1
        elif c == "," and depth == 0:
            cur.pop()
            parts.append("".join(cur).strip())
            cur = []
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def wrap(line: str, indent: str, width: int = LINE) -> list[str]:
    if len(indent) + len(line) <= width or line.lstrip().startswith("#"):
        return [indent + line]
    # only argument lists and displays with several items are broken up
    groups = [g for g in _groups(line) if g[1] > g[0] + 1 and len(_split_commas(line[g[0] + 1:g[1]])) > 1
              or (g[1] - g[0] > 40 and line[g[0]] == "(" and g[0] > 0 and (line[g[0] - 1].isalnum() or line[g[0] - 1] in "_)"))]
    if not groups:
        return [indent + line]
    # the group that holds most of the line
    start, end = max(groups, key=lambda g: g[1] - g[0])
    head, inner, tail = line[:start + 1], line[start + 1:end], line[end:]
    parts = _split_commas(inner)
    out = [indent + head]
    for p in parts:
        out += wrap(p + ",", indent + "    ", width)
    out.append(indent + tail)
    return out
