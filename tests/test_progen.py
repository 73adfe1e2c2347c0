"""The random program generator (tests/progen.py): its programs elaborate, are small, cover every
construct of the language, and are deterministic. Its interpreter builds the same graph as the
elaborator (same layers and shapes, same outputs), which checks netlang's semantics as well.

A few seconds: 300 programs, all checked in one test so that one pytest-xdist worker makes them.
progen.generate(seed) feeds the backends' differential tests.
"""
from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import netlang
import progen
from netlang.backends.torchgen.names import MODULE_ATTRIBUTES
from netlang.ir import verify

N = 300
HERE = Path(__file__).resolve().parent


def test_generated_programs():
    stats: dict = {}
    progs = list(progen.valid_programs(0, N, stats=stats, with_net=True, with_gen=True))

    # Few misses (NetlangError); any other exception would have propagated: a netlang bug.
    misses = stats.get("misses", 0)
    assert misses + len(progs) == N
    shown = "\n\n".join(f"seed {s}: {e.format()}" for s, e in stats.get("missed", [])[:3])
    assert misses < 0.3 * N, f"{misses} of {N} programs do not elaborate:\n{shown}"

    seen: Counter = Counter()
    instances = 0
    for seed, text, net, gen in progs:
        G = net.graph
        verify(G)

        # The generator's interpreter expected exactly this graph: layers, shapes, outputs.
        ours = sorted((op, shape) for op, _, shape in gen.final.nodes)
        theirs = sorted((d["op"], tuple(d["shape"])) for _, d in G.nodes(data=True))
        assert ours == theirs, seed
        assert [o.shape for o in gen.final.outputs] == [tuple(G.nodes[o]["shape"]) for o in G.graph["outputs"]], seed

        # Cheap to run: small tensors, few layers (but for the rare deep nests); every name free
        # to be a PyTorch module (the torch backends refuse nn.Module's own attributes).
        deep = max(n.count(".") for n in G.nodes) >= 25
        assert G.number_of_nodes() <= (300 if deep else 110), seed
        for n, d in G.nodes(data=True):
            assert math.prod(d["shape"]) <= progen.CAP_ELEMS and d["shape"][0] <= progen.CAP_CH, (seed, n)
            for part in n.split("."):
                assert part not in MODULE_ATTRIBUTES and not part.startswith("__"), (seed, n)

        # The other arguments of an instance give a valid network too.
        if "\nnetwork m = n" in "\n" + text:
            instances += 1
            Gm = netlang.loads(text, network="m").graph
            verify(Gm)
            assert sorted((op, s) for op, _, s in gen.inst_final.nodes) == \
                sorted((d["op"], tuple(d["shape"])) for _, d in Gm.nodes(data=True)), seed

        seen.update(progen.features(text, net=net))

    assert instances >= 10
    missing = [f for f in progen.FEATURES if not seen[f]]
    assert not missing, f"not generated in {N} programs: {missing}"
    layers = {o for o, op in netlang.ops.LANGUAGE.items() if o != "input" and not op.merge}
    assert {f"op:{o}" for o in layers} | {f"merge:{m}" for m in progen.MERGE_NAMES} <= set(progen.FEATURES)


def test_deterministic():
    for seed in (0, 1, 7, 123, 299):
        assert progen.generate(seed) == progen.generate(seed)
    assert len({progen.generate(s) for s in range(30)}) == 30


def test_deterministic_across_processes():
    """Nothing depends on hash randomisation: another interpreter with another hash seed writes
    the same programs."""
    code = ("import hashlib, sys; sys.path.insert(0, %r); import progen; "
            "print(hashlib.sha256(''.join(progen.generate(s) for s in range(25)).encode()).hexdigest())" % str(HERE))
    here = hashlib.sha256("".join(progen.generate(s) for s in range(25)).encode()).hexdigest()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONHASHSEED="12345"), cwd=HERE.parent)
    assert out.stdout.strip() == here


def test_features_of_a_known_program():
    text = """
def pool = maxpool(2)
block inner(c, s=c * 2) {
    stem: conv(c, 3, pad=1) -> batchnorm -> relu
    add {
        identity
        a: conv(c, 1) -> relu
        @a
    }
}
network n(w=4) {
    input 3x8x8
    features: (conv0: conv(w, 3, pad="same") -> norm0: batchnorm) -> relu
    for i in range(2) {
        layer{i}: inner(w)
    }
    p: pool
    x: global_avgpool -> flatten -> linear(3)
    @features.conv0
    aux: global_avgpool -> flatten
    output x, aux
}
network m = n(w=2)
"""
    f = progen.features(text)
    for want in ("def:one_layer", "block:default_dep", "label:whole_pipeline", "label:group",
                 "label:group_then_more", "label:template", "merge:ref_earlier_branch", "merge:identity_branch",
                 "ref:dotted", "ref:statement_only", "output:multi", "linear:after_flatten", "conv:pad_same",
                 "network:params", "network:instance", "for:range", "block"):
        assert want in f, want
    assert "merge:mul" not in f and "deep:chain" not in f
