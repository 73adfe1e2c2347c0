"""`netlang summary --json` against its published schema (netlang/_schema/summary.schema.json,
docs/summary-json.md), over the zoo, at several depths and with the fusion passes."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

import netlang
from netlang.cli import main
from netlang.elaborate import template_params
from netlang.api import load_module

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "netlang" / "_schema" / "summary.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def summary_json(capsys, *argv) -> dict:
    assert main(["summary", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def zoo_networks():
    for path in sorted((ROOT / "architectures").glob("*.net")):
        module = load_module(path)
        for name in module.networks:
            if not template_params(module, name):
                yield path, name


def test_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("depth", [None, 2])
def test_every_zoo_network_validates(capsys, depth):
    depth_args = [] if depth is None else ["--depth", str(depth)]
    for path, name in zoo_networks():
        data = summary_json(capsys, str(path), "-n", name, *depth_args)
        errors = sorted(VALIDATOR.iter_errors(data), key=str)
        assert not errors, f"{path.name}:{name}: {errors[0].message} at {list(errors[0].path)}"


def test_fused_summary_validates(capsys):
    data = summary_json(capsys, str(ROOT / "architectures" / "resnet.net"), "-n", "resnet50", "--fuse")
    assert not list(VALIDATOR.iter_errors(data))


def test_rows_edges_and_op_text_are_the_graph(capsys):
    data = summary_json(capsys, str(ROOT / "architectures" / "resnet.net"), "-n", "resnet18")
    net = netlang.load(ROOT / "architectures" / "resnet.net", network="resnet18")
    G = net.graph
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["conv1"]["text"] == "conv 7x7/2, 64"
    assert rows["conv1"]["op"] == "conv" and rows["conv1"]["args"]["k"] == [7, 7]
    assert rows["conv1"]["macs"] == 64 * 3 * 7 * 7 * 112 * 112
    # at full depth every edge of the IR is one edge of the JSON, with its input position
    assert sorted((e["from"], e["to"], e["pos"]) for e in data["edges"]) == \
        sorted((u, v, k) for u, v, k in G.edges(keys=True))
    assert data["totals"]["params"] == net.params == 11_689_512


def test_a_wrong_document_fails_validation(capsys):
    # the schema is strict enough to catch what a consumer would trip on
    data = summary_json(capsys, str(ROOT / "architectures" / "resnet.net"), "-n", "resnet18")
    for spoil in (lambda d: d.pop("edges"), lambda d: d.update(schema=2),
                  lambda d: d["layers"][1].update(macs=-1), lambda d: d["layers"][1].pop("text"),
                  lambda d: d["edges"][0].update(extra=1)):
        bad = copy.deepcopy(data)
        spoil(bad)
        assert list(VALIDATOR.iter_errors(bad)), spoil
