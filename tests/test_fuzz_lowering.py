"""Random valid programs (tests/progen.py) through the PyTorch lowering, against the reference
interpreter: eval outputs, training outputs where nothing random acts, and a backward pass
(tests/lowering_check.py says exactly what is compared). 3,000 programs here, in chunks so that
pytest-xdist spreads them; `tools/fuzz_lowering.py --count 50000` is the long run."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import progen  # noqa: E402
from lowering_check import check  # noqa: E402

CHUNK, CHUNKS = 100, 30


@pytest.fixture(autouse=True, scope="module")
def one_thread(torch_one_thread):
    yield


@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_random_programs_agree_with_the_reference(chunk):
    failures = []
    for seed in range(chunk * CHUNK, (chunk + 1) * CHUNK):
        text = progen.generate(seed)
        got = check(text, seed=seed, timeout=60)
        if got is not None:
            failures.append(f"seed {seed}: {got[0]}: {got[1]}")
    assert not failures, "\n".join(failures[:10]) + f"\n({len(failures)} of {CHUNK} programs)"


def test_the_check_can_fail():
    # a program the lowering gets right, and the same program with a reference that disagrees
    text = "network n {\n    input 2x4x4\n    c: conv(3, 1) -> relu\n}\n"
    assert check(text) is None
    import lowering_check
    real = lowering_check.run
    try:
        lowering_check.run = lambda G, state, x, training=False: tuple(t + 1 for t in real(G, state, x, training))
        assert check(text)[0] == "mismatch"
    finally:
        lowering_check.run = real
