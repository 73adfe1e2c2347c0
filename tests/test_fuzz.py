"""Fuzzing the front end: whatever the text, parsing and elaboration either succeed or raise a
NetlangError located inside the text; never another exception.

Inputs: random sequences of the language's tokens (on their own, and inside a network body so
that elaboration gets to run), and valid programs (the LANGUAGE.md examples and a few small
networks) with tokens or characters deleted, duplicated, swapped, inserted or replaced, or a
token repeated up to thousands of times (deep nesting, long numbers, long operator chains).

The example count per strategy is small enough for CI; set NETLANG_FUZZ_EXAMPLES to run longer,
e.g. `NETLANG_FUZZ_EXAMPLES=5000 .venv/bin/pytest -q tests/test_fuzz.py`.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from netlang.elaborate import elaborate, load_text
from netlang.errors import NetlangError, printable
from netlang.ir import verify
from netlang.passes.cost import analyse

FILE = "fuzz.net"
_OVERRIDE = int(os.environ.get("NETLANG_FUZZ_EXAMPLES", "0"))


def fuzz_settings(default: int):
    return settings(max_examples=_OVERRIDE or default, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ------------------------------------------------------------------ the property

def text_lines(text: str) -> list[str]:
    # The lexer counts lines by "\n" only (a form feed is whitespace, not a line break).
    return [line.rstrip("\r") for line in text.split("\n")]


def assert_located(err: NetlangError, text: str) -> None:
    assert err.loc is not None, f"{err.kind} without a location: {err.message}"
    assert err.loc.file == FILE, err.loc
    lines = text_lines(text)
    assert 1 <= err.loc.line <= len(lines), f"line {err.loc.line} outside 1..{len(lines)}: {err}"
    assert 1 <= err.loc.col <= len(lines[err.loc.line - 1]) + 1, f"column outside its line: {err}"
    formatted = err.format()
    assert str(err.loc) in formatted
    shown = "    " + printable(lines[err.loc.line - 1])
    assert shown in formatted.split("\n"), f"wrong source line shown:\n{formatted}"


def check(text: str) -> None:
    try:
        module = load_text(text, FILE)
    except NetlangError as err:
        assert_located(err, text)
        return
    for name in module.networks:
        try:
            G = elaborate(module, name)
        except NetlangError as err:
            assert_located(err, text)
            continue
        verify(G)
        analyse(G)


# ------------------------------------------------------------------ random token soup

FRAGMENTS = (
    # keywords and built-ins
    "network", "block", "def", "import", "input", "output", "let", "if", "else", "for", "in",
    "concat", "add", "mean", "mul", "true", "false", "and", "or", "not", "range", "len",
    "conv", "conv_t", "linear", "relu", "batchnorm", "maxpool", "avgpool", "global_avgpool",
    "flatten", "identity", "dropout", "upsample", "center_crop", "adaptive_avgpool", "softmax",
    # names, attributes, labels
    "n", "x", "c", "k", "b", "i", "stride", "pad", "groups", "bias", "in.channels", "in.height",
    "in.width", "a:", "b:", "c1:", "layer{i}:", "{i}:", "x{", "@a", "@b", "@", ".",
    # numbers and shapes
    "0", "1", "2", "3", "7", "16", "0.5", "1e3", "3x32x32", "1x7", "16x8x8", "2x",
    # strings, with escapes good and bad
    '"same"', '"nearest"', '"x"', '"', "'", '"\\n"', '"\\x"', '"\\N"', '"\\0"', '"é"',
    # punctuation and operators
    "(", ")", "[", "]", "{", "}", "->", ":", ",", "=", "+", "-", "*", "/", "//", "%",
    "==", "!=", "<", ">=",
    # layout
    "\n", "\n", "\n    ", "    ", "\t", "#", "# note\n", "\\\n", "\r\n", "\f", "\v",
)
SEPARATORS = ("", "", " ", " ", "\n")

token_soup = st.lists(st.tuples(st.sampled_from(FRAGMENTS), st.sampled_from(SEPARATORS)), max_size=50).map(
    lambda parts: "".join(a + b for a, b in parts))


@fuzz_settings(1000)
@given(token_soup)
def test_random_tokens(text):
    check(text)


@fuzz_settings(1000)
@given(token_soup)
def test_random_tokens_in_a_network_body(body):
    check("network n {\n    input 3x16x16\n" + body + "\n}\n")


@fuzz_settings(500)
@given(st.text(alphabet="nc(){}[]->:@x0123#\n \"=,*+./", max_size=60))
def test_random_characters(text):
    check(text)


# ------------------------------------------------------------------ mutated valid programs

EXAMPLES = (Path(__file__).parent / "data" / "language_examples.net").read_text(encoding="utf-8")

SMALL = (
    """network tiny(width=8, depth=2) {
    input 3x16x16
    stem: conv(width, 3, pad=1) -> batchnorm -> relu
    for i in range(depth) {
        block{i}: add {
            conv(width, 3, pad=1) -> relu
            identity
        }
    }
    head: global_avgpool -> flatten -> linear(10)
    aux: @stem -> global_avgpool -> flatten -> linear(2)
    output head, aux
}
""",
    """def conv_relu(c, k, pad=0) = conv(c, k, pad=pad) -> relu

block unit(c, stride=1) {
    let mid = c // 2
    if stride != 1 or in.channels != c {
        conv(c, 1, stride=stride)
    } else {
        conv_relu(mid, 1) -> conv_relu(c, 3, pad=1)
    }
}

network g(widths=[8, 16], classes=3) {
    input 3x8x8
    unit(widths[0]) * 2
    unit(widths[1], stride=2)
    concat { identity
             maxpool(3, stride=1, pad=1) }
    global_avgpool
    flatten
    fc: linear(classes)
}

network h = g(widths=[4, 4], classes=2)
""",
    """network v {
    input 16
    linear(8) -> relu -> dropout(0.5) -> linear(4)
    softmax
}
""",
)
SEEDS = (EXAMPLES,) + SMALL

# Every character belongs to one token, so joining the tokens gives the text back.
TOKEN = re.compile(r"[ \t]+|\n|\w+|->|//|==|!=|<=|>=|[\s\S]")


@st.composite
def mutated(draw, seeds=SEEDS):
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 4))):
        toks = TOKEN.findall(text)
        op = draw(st.sampled_from(("delete", "duplicate", "swap", "insert", "replace", "repeat",
                                   "delete_chars", "duplicate_chars", "insert_char")))
        i = draw(st.integers(0, len(toks) - 1))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == "insert":
            toks.insert(i, draw(st.sampled_from(FRAGMENTS)))
        elif op == "replace":
            toks[i] = draw(st.sampled_from(FRAGMENTS))
        elif op == "repeat":
            # Pathological sizes: deep nesting, long numbers, long chains of operators.
            toks.insert(i, toks[i] * draw(st.integers(2, 3000)))
        text = "".join(toks)
        if op.endswith("chars") or op == "insert_char":
            a = draw(st.integers(0, len(text)))
            b = min(len(text), a + draw(st.integers(1, 8)))
            if op == "delete_chars":
                text = text[:a] + text[b:]
            elif op == "duplicate_chars":
                text = text[:b] + text[a:b] + text[b:]
            else:
                text = text[:a] + draw(st.characters(codec="utf-8")) + text[a:]
        if not text:
            break
    return text


@fuzz_settings(150)
@given(mutated(SEEDS[:1]))
def test_mutated_language_examples(text):
    check(text)


@fuzz_settings(600)
@given(mutated(SMALL))
def test_mutated_small_programs(text):
    check(text)


# ------------------------------------------------------------------ inputs found while fuzzing

@pytest.mark.parametrize("text", [
    "network n {\n    input 3x8x8\n    conv(" + "(" * 3000 + "8" + ")" * 3000 + ", 1)\n}\n",
    "network n {\n    input 3x8x8\n    " + "add { identity\n" * 500 + "relu" + " }" * 500 + "\n}\n",
    "network n(x=1) {\n    input 3x8x8\n    conv(" + "1 + " * 3000 + "8, 1)\n}\n",
], ids=["parentheses", "merges", "sum"])
def test_deep_nesting_elaborates(text):
    # The parse tree is built without recursion, and elaboration has room for this much.
    module = load_text(text, FILE)
    verify(elaborate(module, "n"))


def test_too_deep_nesting_is_a_located_error():
    text = "network n {\n    input 3x8x8\n    conv(" + "-" * 30000 + "8, 1)\n}\n"
    module = load_text(text, FILE)
    with pytest.raises(NetlangError) as info:
        elaborate(module, "n")
    assert info.value.kind == "recursion error"
    assert (info.value.loc.line, info.value.loc.col) == (1, 1)


@pytest.mark.parametrize("text, kind, message", [
    ("network n {\n    input 3x8x8\n    conv(" + "9" * 5000 + ", 1)\n}\n", "value error", "5000 digits"),
    ("network n {\n    input 3x" + "9" * 5000 + "x8\n    relu\n}\n", "value error", "5000 digits"),
    ('network n {\n    input 3x8x8\n    upsample(2, mode="\\x")\n}\n', "syntax error", "bad escape"),
    ("network n {\n    input 3x8x8\n    conv(round(1e308 * 10 - 1e308 * 10), 1)\n}\n", "value error",
     "round of nan"),
    ("network n {\n    input 3x8x8\n    conv(int(1e308 // 1e-308), 1)\n}\n", "value error", "int of inf"),
    # (a literal beyond the integer limit is refused where it is written, before range sees it)
    ("network n {\n    input 3x8x8\n    for i in range(" + "9" * 90 + ") { relu }\n}\n", "value error",
     "90 digits is too large"),
    ("network n {\n    input 3x8x8\n    let x = 10\n    for i in range(16) {\n        let x = x * x\n    }\n"
     "    a{x}: relu\n}\n", "value error", "integer overflow"),
    ('import "' + "a" * 5000 + '"\nnetwork n {\n    input 3x8x8\n    relu\n}\n', "import error", "cannot read"),
], ids=["long-int", "long-shape", "bad-escape", "round-nan", "int-inf", "huge-range", "int-overflow",
        "long-import"])
def test_found_by_fuzzing(text, kind, message):
    with pytest.raises(NetlangError) as info:
        check_raises(text)
    assert info.value.kind == kind and message in info.value.message, info.value.format()
    assert_located(info.value, text)


def check_raises(text: str) -> None:
    module = load_text(text, FILE)
    for name in module.networks:
        elaborate(module, name)


def test_escapes_keep_non_ascii_text():
    module = load_text('network n {\n    input 3x8x8\n    upsample(2, mode="\\u00e9\\té")\n}\n', FILE)
    with pytest.raises(NetlangError, match="got 'é\\\\té'"):
        elaborate(module, "n")


def test_seeds_are_valid():
    # Mutations start from programs that elaborate, so what they find is the mutation's doing.
    for seed in SEEDS:
        module = load_text(seed, FILE)
        assert module.networks
        for name in module.networks:
            verify(elaborate(module, name))
