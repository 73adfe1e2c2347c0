"""Shared fixtures."""
import sys

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one intra-op thread: the tests run thousands of tiny ops,
    where threads only add start-up cost, and on a two-core machine shared with another pytest
    worker their spin-waits make tiny ops many times slower."""
    torch = sys.modules.get("torch") or pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
