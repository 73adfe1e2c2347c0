"""The Python face of an analysed network in a REPL or a notebook: one-line reprs, the summary
table as text and as HTML, the diagram as a graphviz.Source (netlang/api.py, netlang/summary.py,
netlang/render.py)."""
from __future__ import annotations

import importlib
import os
import pickle
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

import netlang
from netlang import render as R
from netlang.cli import main

GOLDEN = Path(__file__).parent / "golden" / "dot"
# CI (.ci/run) installs Graphviz and, through the Makefile, the graphviz package: there a missing
# one fails these tests instead of skipping them.
REQUIRED = bool(os.environ.get("NETLANG_REQUIRE_DOT"))


def _graphviz():
    return importlib.import_module("graphviz") if REQUIRED else pytest.importorskip("graphviz")

SRC = """\
block tagged(c, note) { conv(c, 3, pad=1, bias=false) -> batchnorm -> relu }
network t {
    input 3x8x8
    a: tagged(4, '<&>')
    fc: global_avgpool -> flatten -> linear(2)
}
"""

# `netlang summary` of SRC at depth 1, as the command printed it before the table became an
# object: the object's text must stay these bytes.
TABLE = """\
netlang summary: t  (input 3x8x8)
---------------------------------------------------------------
Layer  Op                    Output  Params   MACs  Activations
---------------------------------------------------------------
input  input                  3x8x8       -      -          192
a      tagged(4, '<&>') [3]   4x8x8     116  6.91K          512
fc     seq [3]                    2      10      8            6
---------------------------------------------------------------
Parameters:      126 trainable, 9 in buffers (540 B as float32)
MACs:            6,920 (6.92K);  FLOPs = 2 x MACs = 13.84K;  element-wise ops 1.03K
Activations:     710 elements = 2.8 KiB forward, ~5.5 KiB training (x2);  peak at inference 2.0 KiB
Layers:          6   outputs: fc.2
---------------------------------------------------------------
Convention: """


def small():
    return netlang.loads(SRC, filename="t.net")


def test_reprs_are_one_line_with_name_input_params_and_macs():
    net = netlang.load(GOLDEN / "resnet.net", network="resnet50")
    assert repr(net) == "<Network resnet50: input 3x224x224, 25.56M params, 4.09G MACs>"
    assert repr(net.cost) == "<CostReport resnet50: input 3x224x224, 25.56M params, 4.09G MACs, float32>"
    assert (net.params, net.macs) == (25_557_032, 4_089_184_256)        # torchvision's figures
    half = netlang.load(GOLDEN / "resnet.net", network="resnet18", dtype="float16", input=(3, 64, 64))
    # torchvision's 1,814,073,344 MACs at 224x224: every feature map halves exactly from 64x64,
    # so the convolutions' MACs scale by (64/224)^2 and the classifier's 512,000 stay.
    assert half.macs == (1_814_073_344 - 512_000) * 64 * 64 // (224 * 224) + 512_000 == 148_557_824
    assert repr(half.cost) == "<CostReport resnet18: input 3x64x64, 11.69M params, 148.56M MACs, float16>"
    assert "\n" not in repr(half) and len(repr(half)) < 100


def test_summary_prints_as_the_table_did():
    # The figures, by hand: conv 3*4*9 = 108 weights, 108 * 64 = 6,912 MACs; batchnorm 8
    # parameters and 9 buffers; linear 4*2 + 2; bytes (126 + 9) * 4 = 540; element-wise
    # bn 2*256 + relu 256 + pool 256 + bias 2 = 1,026.
    table = small().summary(1)
    assert isinstance(table, str) and str(table).startswith(TABLE)
    assert repr(table) == str(table)           # a REPL shows the table, not an escaped string
    again = pickle.loads(pickle.dumps(table))
    assert type(again) is type(table) and again == table and again._repr_html_() == table._repr_html_()


def test_summary_text_equals_the_cli_output(tmp_path, capsys):
    src = tmp_path / "t.net"
    src.write_text(SRC)
    for depth in (None, 1):
        assert main(["summary", str(src)] + (["--depth", str(depth)] if depth else [])) == 0
        out = capsys.readouterr().out
        assert out == str(netlang.load(src).summary(depth)) + "\n"
    assert out.startswith(TABLE)


class _Cells(HTMLParser):
    """The text of each table row's cells, the caption and the text after the table."""

    def __init__(self):
        super().__init__()
        self.rows, self.caption, self.after, self._in, self._table = [], "", [], None, False

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th", "caption"):
            self._in = tag
            if tag != "caption":
                self.rows[-1].append("")
        elif tag == "table":
            self._table = True

    def handle_endtag(self, tag):
        if tag in ("td", "th", "caption"):
            self._in = None
        elif tag == "table":
            self._table = False

    def handle_data(self, data):
        if self._in == "caption":
            self.caption += data
        elif self._in:
            self.rows[-1][-1] += data
        elif not self._table and data.strip():
            self.after.append(data)


def test_summary_is_an_html_table_in_a_notebook_with_text_escaped():
    net = small()
    table = net.summary(1)
    page = table._repr_html_()
    assert "<&>" not in page and "&lt;&amp;&gt;" in page
    cells = _Cells()
    cells.feed(page)
    assert cells.caption == "netlang summary: t  (input 3x8x8)"
    text_rows = [re.split(r"\s{2,}", line.strip()) for line in str(table).splitlines()[2:3] + str(table).splitlines()[4:7]]
    assert cells.rows == text_rows                    # the same cells as the text, unescaped
    assert cells.rows[2] == ["a", "tagged(4, '<&>') [3]", "4x8x8", "116", "6.91K", "512"]
    assert cells.after[0].startswith("Parameters:      126 trainable")
    # The diagram's display stays beside it.
    assert callable(net._repr_svg_) and not hasattr(net, "_repr_html_")


def test_graphviz_source_holds_netlangs_dot():
    graphviz = _graphviz()
    net = small()
    src = net.graphviz()
    assert isinstance(src, graphviz.Source)
    assert src.source == net.to_dot()
    assert net.graphviz(depth=1, color="macs", rankdir="LR").source == net.to_dot(depth=1, color="macs",
                                                                                   rankdir="LR")
    assert src.filename == "t.gv"


@pytest.mark.skipif(shutil.which("dot") is None and not REQUIRED, reason="Graphviz's dot is not installed")
def test_graphviz_source_pipes_renders_and_displays(tmp_path):
    _graphviz()
    net = small()
    src = net.graphviz()
    svg = ET.fromstring(src.pipe(format="svg"))
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    titles = {g.find("{http://www.w3.org/2000/svg}title").text
              for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "node"}
    assert titles == {"n:input", "n:a.0", "n:fc.0", "n:fc.2"}
    out = Path(src.render(directory=tmp_path, format="png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "image/svg+xml" in src._repr_mimebundle_()


def test_graphviz_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)          # import graphviz -> ImportError
    with pytest.raises(R.RenderError) as err:
        small().graphviz()
    text = err.value.format()
    assert "`graphviz` Python package" in text and "install netlang[render]" in text
