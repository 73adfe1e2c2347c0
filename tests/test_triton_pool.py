"""The Triton backend's pooling kernel against torch, through Triton's interpreter without a GPU
(see test_triton_conv.py). Tolerance: exact for max; 1e-6 of the largest value for averages."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")     # (without a GPU, conftest.py has set TRITON_INTERPRET=1)
import torch.nn.functional as F  # noqa: E402

from netlang.backends.triton.pool import pool2d  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

POOLS = [
    # h, w, k, stride, pad, ceil, count_include_pad
    (7, 7, 3, 2, 0, True, True),      # GoogLeNet's maxpool 3/2 ceil
    (8, 8, 3, 2, 1, False, True),     # ResNet's stem maxpool
    (6, 9, 2, 2, 0, False, True),
    (9, 9, 3, 1, 1, False, True),     # Inception's 3x3/1 branch pool
    (9, 9, 3, 1, 1, False, False),    # ... with count_include_pad=False (Inception v3's avg pool)
    (10, 7, 3, 2, 1, True, True),
    (5, 5, 5, 3, 2, True, False),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("h,w,k,stride,pad,ceil,cip", POOLS)
def test_pool_matches_torch(mode, h, w, k, stride, pad, ceil, cip):
    x = torch.randn(2, 20, h, w, generator=torch.Generator().manual_seed(h * w + k))
    if mode == "max":
        want = F.max_pool2d(x, k, stride, pad, ceil_mode=ceil)
    else:
        want = F.avg_pool2d(x, k, stride, pad, ceil_mode=ceil, count_include_pad=cip)
    got = pool2d(x.permute(0, 2, 3, 1).contiguous().to(DEVICE), kernel=(k, k), stride=(stride, stride),
                 padding=(pad, pad), ceil=ceil, mode=mode, count_include_pad=cip)
    got = got.cpu().permute(0, 3, 1, 2)
    assert got.shape == want.shape
    tol = 0.0 if mode == "max" else 1e-6 * want.abs().max().item()
    assert (got - want).abs().max().item() <= tol
