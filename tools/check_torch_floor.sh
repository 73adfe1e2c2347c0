#!/usr/bin/env bash
# The tests that run on torch, on the oldest torch netlang declares (pyproject: torch>=2.3), in a
# venv of their own:   bash tools/check_torch_floor.sh [VENV]   (default /tmp/netlang-torch-floor)
#
# PyPI's torch 2.3.1 is a CUDA build (about 5 GB with its nvidia packages; it runs on the CPU).
# It was built against numpy 1, and brings triton 2.3.1, below the Triton backend's floor of 3.4:
# so the Triton, ONNX (onnx needs numpy 2) and packaging tests are left out, and what is left runs
# with the test extra only (test_the_comparison_can_fail ends in a Triton kernel). The main venv
# is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-/tmp/netlang-torch-floor}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q "torch==2.3.1" "numpy<2"
"$VENV/bin/pip" install -q -e ".[test]" "torch==2.3.1" "numpy<2"
"$VENV/bin/python" -c "import torch; print('torch', torch.__version__)"
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests -k "not triton and not test_the_comparison_can_fail" \
    --ignore=tests/test_onnx_backend.py --ignore=tests/test_packaging.py --ignore=tests/test_fuzz_frontend.py \
    $(printf -- '--ignore=%s ' tests/test_triton_*.py)
