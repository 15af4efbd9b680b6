# The two commands of the README: `make demo` and `make test`. Both create the virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA ?= $(abspath ../shared/data)
# One BLAS thread: the many small Huber/L-BFGS fits (baseline, calibration, diagnostics) run
# ~10x slower with OpenBLAS's thread pool on a busy 2-core machine; NUTS (JAX) is unaffected.
export OPENBLAS_NUM_THREADS ?= 1

.PHONY: demo test test-quick lint bench clean-venv

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/.installed
	$(BIN)/bayes-scaling demo --out reports/demo
	$(BIN)/bayes-scaling report reports/examples/chinchilla70b.toml --out reports/chinchilla70b

# Two pytest workers (pytest-xdist), one per core, each test file on one worker (its
# module-level fixtures, e.g. the example report's fits, are built once).
test: $(BIN)/.installed
	./scripts/ensure-chromium
	BAYES_SCALING_DATA=$(SHARED_DATA) $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadfile

test-quick: $(BIN)/.installed
	BAYES_SCALING_DATA=$(SHARED_DATA) $(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check bayes_scaling tests benchmarks

bench: $(BIN)/.installed
	BAYES_SCALING_DATA=$(SHARED_DATA) $(BIN)/python benchmarks/bench_fit.py

clean-venv:
	rm -rf $(VENV)
