# Two commands from a fresh clone: `make demo` (set up + reproduce U-DiT at smoke scale) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Development and CI pin the CPU torch wheel and the only torchvision that accepts it; the package's own
# ranges stay open for users. Naming both in the same pip call (and as constraints) keeps pip from pulling a
# multi-GB CUDA build.
PIN    := torch==2.13.0 torchvision==0.28.0
export HF_HUB_OFFLINE=1
export HF_DATASETS_OFFLINE=1
export TRANSFORMERS_OFFLINE=1

.PHONY: setup demo test test-fast bench check-env clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt tools/_tv_cpu_shim.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=constraints.txt $(BIN)/pip install --quiet -e ".[dev]" $(PIN)
	$(MAKE) --no-print-directory check-env
	touch $@

# After setup no nvidia-* (or other CUDA runtime) package may be installed.
check-env:
	@if $(BIN)/pip list 2>/dev/null | grep -i -E '^(nvidia-|triton )'; then \
		echo "error: CUDA packages were installed into $(VENV); reinstall with the pins in constraints.txt"; exit 1; fi
	@$(BIN)/python -c "import torch, torchvision; assert torch.__version__.startswith('2.13.0'), torch.__version__"

# U-DiT-S vs DiT-S/2 at smoke scale (~3 CPU-minutes): reproduce prints each entry's sanity floor standing and the
# path of a PNG grid of their samples beside real digits, and ends with the headline comparison (one screen):
# U-DiT-S vs DiT-S/2, by how much, at what cost, and the claim's verdict.
demo: setup
	$(BIN)/bench reproduce u-dit

test: setup
	$(BIN)/pytest -q

test-fast: setup
	$(BIN)/pytest -q -m "not slow"

# Benchmarks (pytest-benchmark): measurements, never asserted speeds.
bench: setup
	$(BIN)/pytest -q tests/bench_*.py --benchmark-enable --benchmark-only --benchmark-columns=min,median,iqr,rounds

clean:
	rm -rf $(VENV) results/runs
