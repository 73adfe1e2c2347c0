# Two commands do all set-up on a fresh machine:
#   make demo   checks every network of the zoo, prints its cost table and draws every network
#               into diagrams/ (SVG; DOT source where Graphviz's dot is missing)
#   make test   runs the test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

# -c: the metadata declares ranges; the constraints file pins what is installed here (an open
# torch range would fetch a multi-GB CUDA build)
$(STAMP): pyproject.toml .ci/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c .ci/constraints.txt -e '.[test,torch,triton,render,onnx]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/netlang zoo architectures --render diagrams --format $$(command -v dot >/dev/null && echo svg || echo dot)

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 tests

bench: $(STAMP)
	$(BIN)/python benchmarks/frontend.py

clean:
	rm -rf $(VENV) build dist *.egg-info diagrams
