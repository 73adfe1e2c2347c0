"""The inputs of tools/fuzz_frontend.py that are not generated programs: mutations of zoo files
(token by token, byte by byte) and hostile files. Each function takes a random.Random, so a
case is made again from its number."""
from __future__ import annotations

import os
import re

KEYWORDS = ("import", "def", "block", "network", "let", "if", "else", "for", "in", "input", "output",
            "true", "false", "and", "or", "not", "concat", "add", "mean", "mul", "split", "init", "aux")
POOL = KEYWORDS + (
    "(", ")", "{", "}", "[", "]", ",", "->", ":", "@", ".", "=", "*", "+", "-", "/", "//", "%", "==", "<",
    "\n", "\n\n", "x:", "{i}:", "{'a\\nb'}:", "relu", "conv", "linear", "identity", "in.channels", "range(100000)",
    "0", "1", "-1", "3x224x224", "0x0x0", "1e999", "99999999999999999999", "9223372036854775808",
    "9" * 200, '"s"', '"\\x00"', '"\\n"', "'", '"', "\\", "#", "\t", "\f", "\r", "é", "\u202e", "\x00",
    "[] * 99999999999999999999", "16777216", "4294967296", "sum([9223372036854775807, 1])",
)
TOKEN = re.compile(r'\s+|\w+|"(?:[^"\\\n]|\\.)*"|->|//|==|!=|<=|>=|.', re.S)
BAD_BYTES = (b"\xff", b"\xfe", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\r", b"\x1b[2J", b"\xef\xbb\xbf")


def mutate_tokens(rng, text: str) -> str:
    toks = TOKEN.findall(text)
    for _ in range(rng.randint(1, 4)):
        if not toks:
            break
        i = rng.randrange(len(toks))
        how = rng.randrange(5)
        if how == 0:
            del toks[i]
        elif how == 1:
            toks.insert(i, toks[i] * rng.choice((2, 3, 50)))
        elif how == 2:
            toks[i] = rng.choice(POOL)
        elif how == 3:
            toks.insert(i, " " + rng.choice(POOL) + " ")
        else:
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
    return "".join(toks)


def mutate_bytes(rng, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not b:
            break
        i = rng.randrange(len(b))
        how = rng.randrange(6)
        if how == 0:
            b[i] ^= 1 << rng.randrange(8)
        elif how == 1:
            b[i:i] = rng.choice(BAD_BYTES)
        elif how == 2:
            del b[i:i + rng.randint(1, 40)]
        elif how == 3:
            b[i:i] = b[i:i + rng.randint(1, 200)] * rng.randint(2, 20)
        elif how == 4:
            del b[i:]
        else:
            b[i] = rng.randrange(256)
    return bytes(b)


def _net(body: str, input: str = "3x8x8") -> str:
    return f"network n {{\n    input {input}\n{body}\n}}\n"


def _fifo(d):
    os.mkfifo(d / "fifo.net")


def _loop(d):
    os.symlink(d / "b.net", d / "a.net")
    os.symlink(d / "a.net", d / "b.net")


def _folder(d):
    (d / "dir.net").mkdir()


def _sparse(d):
    with open(d / "big.net", "wb") as f:
        f.truncate(3 << 20)


def _deep(rng) -> str:
    n = rng.choice((50, 500, 5000, 20000))
    form = rng.randrange(6)
    if form == 0:
        return _net("    let x = " + "(" * n + "1" + ")" * n + "\n    relu")
    if form == 1:
        return _net("    let x = " + "[" * n + "]" * n + "\n    relu")
    if form == 2:
        return _net("    " + "add {\n" * min(n, 2000) + "relu\nidentity\n" + "}\n" * min(n, 2000))
    if form == 3:
        return _net("    " + " -> ".join(["relu"] * n))
    if form == 4:
        return _net("    " + "if true {\n" * n + "relu\n" + "}\n" * n)
    return "block b(k) {\n    b(k + 1)\n}\n" + _net("    b(0)")


def _huge(rng) -> str:
    digits = "9" * rng.choice((19, 20, 100, 5000, 100000))
    return _net(rng.choice((
        f"    conv({digits}, 3)", f"    let x = [] * {digits}\n    relu", f"    let x = {digits} / 2\n    relu",
        "    let x = sum([9223372036854775807, 9223372036854775807]) / 2\n    relu",
        "    let x = pow(10, 30)\n    relu", "    conv(int(1e999), 3)", "    let x = [1] * -5\n    relu",
        "    conv(round(1e300), 3)", "    let x = -9223372036854775807 - 9223372036854775807\n    relu",
        "    maxpool(9223372036854775807)", "    linear(16777216)")))


def _long(rng) -> str:
    n = rng.choice((10_000, 100_000, 1_100_000))      # (the last past the file limit)
    return rng.choice((
        _net("    let x = [" + ",".join(["1"] * (n // 2)) + "]\n    relu"),
        _net("    " + "a" * n + ": relu"),
        _net('    let s = "' + "x" * n + '"\n    relu'),
        "#" + "c" * n + "\n" + _net("    relu"),
        _net("    relu" + " " * n + "-> relu"),
    ))


def _work(rng) -> str:
    blocks = ["block b0 { relu }"] + [f"block b{i} {{ b{i - 1} -> b{i - 1} }}" for i in range(1, 30)]
    return rng.choice((
        _net("    for i in range(100000) {\n        for j in range(100000) {\n            let x = i\n        }\n    }\n"
             "    relu"),
        _net('    let s = "ab"\n    for i in range(64) {\n        let s = s + s\n    }\n    relu'),
        _net("    let s = [1]\n    for i in range(64) {\n        let s = s + s\n    }\n    relu"),
        "\n".join(blocks) + "\n" + _net("    b29"),
        _net("    conv(8192, 3, pad=1) * 200", input="8192x1x1"),
        "def f(n) = f(n + 1)\n" + _net("    conv(f(0), 3)"),
        "def fib(n) = n if n < 2 else fib(n - 1) + fib(n - 2)\n" + _net("    conv(fib(40), 3)"),
        _net("    conv(16, 3) * 100000"),
    ))


def _text(rng) -> str:
    return _net(rng.choice(("    relu", "    conv(8, 3) -> relu", '    {"a\\nb"}: relu', "    x: relu -> x: relu")))


def hostile(rng):
    """(kind, the file's bytes, Case's other arguments) of one hostile case."""
    kind = rng.choice(("deep", "huge", "long", "work", "special", "encoding", "name"))
    if kind == "deep":
        return kind, _deep(rng).encode(), {}
    if kind == "huge":
        return kind, _huge(rng).encode(), {}
    if kind == "long":
        return kind, _long(rng).encode(), {}
    if kind == "work":
        return kind, _work(rng).encode(), {}
    if kind == "special":
        body = _net("    relu").encode()
        path, setup = rng.choice((("/dev/zero", None), ("/dev/urandom", None), ("/dev/null", None),
                                  ("/etc/passwd", None), ("/proc/self/status", None), ("/", None),
                                  ("fifo.net", _fifo), ("a.net", _loop), ("dir.net", _folder),
                                  ("big.net", _sparse), ("missing.net", None), ("a\\nb.net", None),
                                  ("a\\x00b.net", None), ("x" * 5000 + ".net", None)))
        if rng.random() < 0.5 and "\\" not in path and len(path) < 300:
            return kind, body, {"setup": setup, "target": path}     # the file on the command line
        return kind, f'import "{path}"\n'.encode() + body, {"setup": setup}
    if kind == "encoding":
        text = _text(rng)
        return kind, rng.choice((
            text.encode("utf-16"), b"\xef\xbb\xbf" + text.encode(), text.replace("relu", "r\xe9lu").encode("latin-1"),
            text.replace("\n", "\r\n").encode(), text.replace("\n", "\r").encode(), text.replace(" ", "\f").encode(),
            text.replace("\n", "\v\n").encode(), text.replace("relu", "re\x00lu").encode(),
            text.replace("relu", "r\u200belu").encode(), text.encode() + b"\xed\xa0\x80",
            text.replace("n {", "n\u202e {").encode())), {}
    name = rng.choice(("x\udcff.net", "no-suffix", "a\nb.net", ".net", "-x.net", "x y.net", "é.net"))
    return kind, _text(rng).encode(), {"name": name}
