"""Shared fixtures, and the Triton interpreter where there is no GPU."""
import importlib.util
import os
import sys

import pytest

# Triton reads TRITON_INTERPRET when it is first imported, and torch may import it early (for
# torch.compile), so it is set here, before any test runs: without a GPU the Triton backend's
# kernels run in the interpreter.
if "TRITON_INTERPRET" not in os.environ and importlib.util.find_spec("torch") is not None:
    import torch
    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


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
