"""Value functions (a def whose body is a value) and the numeric and text built-ins: their values
against Python's, how they tell themselves from layer defs, and their limits."""
from __future__ import annotations

import math
import sys

import pytest

import netlang
from netlang.elaborate import MAX_DEPTH, Elaborator, load_text
from netlang.errors import NetlangError, NetlangRecursionError, NetlangTypeError, NetlangValueError
from netlang.parser import parse_expr

PRELUDE = """
def half(c) = c // 2
def clamp(x, lo=1, hi=x) = max(lo, min(x, hi))
def fact(n) = 1 if n <= 1 else n * fact(n - 1)
def conv_bn(c) = conv(c, 1, bias=false) -> batchnorm
def shortcut(c) = conv(c, 1) if in.channels != c else identity
def twice(f, x) = f(f(x))
"""


def value(text: str, prelude: str = PRELUDE):
    module = load_text(prelude, "<prelude>")
    return Elaborator("values").eval(parse_expr(text, "<test>"), module.env, None)


def shapes(body: str, prelude: str = PRELUDE, **params) -> dict:
    net = netlang.loads(prelude + "network n(p=1) {\n    input 3x16x16\n" + body + "\n}\n", **params)
    return {n: d["shape"] for n, d in net.graph.nodes(data=True)}


# ---------------------------------------------------------------- built-ins against Python

NUMBERS = [0.001, 0.5, 1, 1.5, 2, 2.5, 3, 7.25, 10, 100, 1000, 12345.678, 1e10]


@pytest.mark.parametrize("x", NUMBERS + [-x for x in NUMBERS] + [0])
def test_ceil_floor_abs_float_against_python(x):
    for name, want in (("ceil", math.ceil(x)), ("floor", math.floor(x)), ("abs", abs(x)), ("float", float(x))):
        got = value(f"{name}({x!r})" if x >= 0 else f"{name}(-{-x!r})")
        assert got == want and type(got) is type(want), (name, x)


@pytest.mark.parametrize("x", NUMBERS)
def test_logarithms_against_python(x):
    assert value(f"log({x!r})") == math.log(x)
    assert value(f"log2({x!r})") == math.log2(x)
    for base in (2, 10, 0.5, 2.09):
        assert value(f"log({x!r}, {base!r})") == math.log(x, base)


def test_pow_against_python():
    for a in (0, 1, 2, 3, 10, 0.5, 2.09, -2, -1.5):
        for b in (0, 1, 2, 3, 10, 0.5, -1, -2, 2.5):
            if (a == 0 and b < 0) or (a < 0 and not float(b).is_integer()):
                with pytest.raises(NetlangValueError):
                    value(f"pow({a!r}, {b!r})".replace("(-", "(0 - "))
                continue
            want = a ** b if isinstance(a, int) and isinstance(b, int) and b >= 0 else math.pow(a, b)
            got = value(f"pow({a!r}, {b!r})".replace("(-", "(0 - "))
            assert got == want and type(got) is type(want), (a, b)


def test_str_writes_values_as_netlang_does():
    assert value('str(8) + "," + str(0.5) + "," + str(true) + "," + str("x")') == "8,0.5,true,x"
    assert value("str(1e20)") == "1e+20" and value("len(str(27.89))") == 5
    with pytest.raises(NetlangTypeError, match="got a list"):
        value("str([1])")


@pytest.mark.parametrize("text,error,message", [
    ("log(0)", NetlangValueError, "log of 0: the logarithm needs a number above 0"),
    ("log(2, 1)", NetlangValueError, "log base 1 is not a base"),
    ("log(2, 0 - 3)", NetlangValueError, "log base of -3"),
    ("log2(0.0)", NetlangValueError, "log2 of 0.0"),
    ("log()", NetlangTypeError, "log takes one number, or a number and a base, got 0 arguments"),
    ("ceil(1, 2)", NetlangTypeError, "ceil takes one number, got 2 arguments"),
    ("floor(true)", NetlangTypeError, "floor takes a number, got a bool"),
    ("pow(2)", NetlangTypeError, "pow takes two numbers, got 1 arguments"),
    ("pow(2, 64)", NetlangValueError, "integer overflow"),
    ("pow(10.0, 400)", NetlangValueError, "pow overflows"),
    ("ceil(1e308 * 10)", NetlangValueError, "ceil of inf has no integer value"),
    ("str(relu)", NetlangTypeError, "str takes a number, a boolean or a string, got a layer"),
    ("abs(conv)", NetlangTypeError, "abs takes a number, got a layer"),
])
def test_builtin_errors(text, error, message):
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        value(text)
    assert info.value.loc is not None and info.value.loc.file == "<test>"


def test_pow_2_63_is_the_largest_int():
    assert value("pow(2, 63)") == 2 ** 63 and value("pow(0 - 2, 63)") == -2 ** 63
    assert value("pow(1, 1000000000)") == 1 and value("pow(0 - 1, 1000000001)") == -1


# ---------------------------------------------------------------- value functions

def test_value_functions_give_values():
    assert value("half(64)") == 32
    assert value("clamp(0)") == 1 and value("clamp(5, hi=3)") == 3 and value("clamp(x=5, lo=7)") == 7
    assert value("fact(10)") == math.factorial(10)
    assert value("twice(half, 64)") == 16               # a value function passed as a value
    assert value("[half(2), half(4)] + [fact(3)]") == [1, 2, 6]


def test_value_functions_in_layers_lets_tests_and_counts():
    got = shapes("""
    let w = half(32)
    a: conv(w, 3, pad=1)
    b: conv(clamp(in.channels * 4, hi=48), 1)
    if fact(3) == 6 { c: conv(half(in.channels), 1) }
    d: conv(8, 1) * half(4)
    """)
    assert got["a"] == (16, 16, 16) and got["b"] == (48, 16, 16) and got["c"] == (24, 16, 16)
    assert got["d.1"] == (8, 16, 16) and "d.2" not in got


def test_a_value_function_reads_in_at_its_call():
    got = shapes("a: conv(8, 1)\n    b: conv(wider(), 1)\n    c: conv(wider(), 1)",
                 prelude=PRELUDE + "def wider() = in.channels * 2\n")
    assert got["b"] == (16, 16, 16) and got["c"] == (32, 16, 16)


def test_layer_defs_stay_pipeline_values():
    got = shapes("""
    a: conv(8, 1)
    let p = conv_bn(16)
    p
    let s = shortcut(16)
    s
    """)
    assert got["1"] == (16, 16, 16) and got["2"] == (16, 16, 16) and got["3"] == (16, 16, 16)


def test_a_layer_def_that_reads_in_is_a_default_before_the_input():
    # shortcut reads in.channels, which has no value in a network's parameter list: it stays a
    # pipeline value, worked out where it is placed
    net = netlang.loads(PRELUDE + "network n(s=shortcut(8)) {\n    input 3x16x16\n    s\n    s\n}\n")
    assert [d["op"] for _, d in net.graph.nodes(data=True)] == ["input", "conv", "identity"]


def test_a_network_parameter_through_a_value_function():
    for p in (1, 2, 5):
        assert shapes("a: conv(fact(p + 1), 1)", p=p)["a"] == (math.factorial(p + 1), 16, 16)


def test_recursion_is_bounded_and_located():
    prelude = "def down(n) = down(n + 1)\n"
    with pytest.raises(NetlangRecursionError, match=f"calls nest more than {MAX_DEPTH} deep") as info:
        shapes("conv(down(0), 1)", prelude=prelude)
    assert (info.value.loc.line, info.value.loc.col) == (1, 15)
    assert len(info.value.notes) == 1        # only where the recursion was entered


def test_a_value_function_at_the_depth_limit_inside_blocks_does_not_blow_the_python_stack():
    prelude = ("def count(n) = 0 if n == 0 else 1 + count(n - 1)\n"
               "block nest(d, n) {\n    if d == 0 { conv(count(n), 1) } else { nest(d - 1, n) }\n}\n")
    old = sys.getrecursionlimit()
    # 101 block calls (d = 100 ... 0) and 99 calls of count (n = 98 ... 0): 200, the limit
    got = shapes("a: nest(100, 98)", prelude=prelude)
    assert [v for k, v in got.items() if k != "input"] == [(98, 16, 16)]
    with pytest.raises(NetlangRecursionError):
        shapes("a: nest(150, 60)", prelude=prelude)
    assert sys.getrecursionlimit() == old


def test_runaway_work_stops():
    with pytest.raises(NetlangRecursionError, match="value functions were called more than 100000 times"):
        shapes("conv(fib(30), 1)", prelude="def fib(n) = n if n < 2 else fib(n - 1) + fib(n - 2)\n")


def test_which_kind_of_def_errors_say():
    with pytest.raises(NetlangTypeError, match=r"def half is a value function: it gives an int \(4\), not a layer"):
        shapes("half(8)")
    with pytest.raises(NetlangTypeError, match="conv: 'out' must be an int") as info:
        shapes("conv(conv_bn(8), 1)")
    assert info.value.hint.startswith("def conv_bn places layers")
    with pytest.raises(NetlangError, match="is a built-in"):
        shapes("let ceil = 2\n    conv(ceil, 1)")


def test_outside_elaborate_a_deep_recursion_is_still_a_located_error():
    # Python's own stack limit (1000 frames) runs out before MAX_DEPTH here
    if sys.getrecursionlimit() > 2000:
        pytest.skip("the Python stack is deeper here than this test needs")
    with pytest.raises(NetlangRecursionError, match="def count nests too deeply to evaluate") as info:
        value("count(199)", "def count(n) = 0 if n == 0 else 1 + count(n - 1)\n")
    assert info.value.loc.file == "<prelude>"


def test_a_layer_def_that_reads_the_height_can_be_bound_where_a_vector_flows():
    # binding it evaluates nothing that needs a map: it is placed (and evaluated) where used
    prelude = "def down() = maxpool(2) if in.height > 4 else identity\n"
    got = shapes("a: flatten\n    let d = down()\n    b: linear(8)", prelude=prelude)
    assert got["b"] == (8,)


def test_the_call_budget_is_per_outermost_call():
    # fan(15) makes 65,535 calls: twice is 131,070 in all, but each call is within the budget
    deep = "def fan(n) = 1 if n == 0 else fan(n - 1) + fan(n - 1)\n"
    got = shapes("a: conv(fan(15), 1)\n    b: conv(fan(15) // 2, 1)", prelude=deep)
    assert got["a"] == (2 ** 15, 16, 16) and got["b"] == (2 ** 14, 16, 16)
    with pytest.raises(NetlangRecursionError, match="more than 100000 times"):
        shapes("a: conv(fan(17), 1)", prelude=deep)                                 # 262,143


def test_the_work_of_a_whole_network_is_bounded(monkeypatch):
    # 2,047 calls each, within the budget of one call, a hundred times over (the limit lowered
    # so that the test is quick)
    from netlang import elaborate
    monkeypatch.setattr(elaborate, "MAX_VALUE_WORK", 20_000)
    prelude = ("def fan(n) = 1 if n == 0 else fan(n - 1) + fan(n - 1)\n"
               "block heavy(i) { conv(fan(10) // 64 + i, 1) }\n")
    with pytest.raises(NetlangRecursionError, match="more than 20000 times in this network") as info:
        shapes("for i in range(100) {\n        heavy(i)\n    }", prelude=prelude)
    assert "compute it once, in a let" in info.value.hint
    assert (info.value.loc.line, info.value.loc.col) == (1, 44)     # the call that went past it


def test_a_value_function_without_parentheses_is_the_function():
    assert shapes("a: conv(eight(), 1)", prelude="def eight() = 8\n")["a"] == (8, 16, 16)
    with pytest.raises(NetlangTypeError, match="must be an int, got def eight") as info:
        shapes("a: conv(eight, 1)", prelude="def eight() = 8\n")
    assert info.value.hint == "a def gives a value where it is called: eight(…)"
