# LoLa: `make demo` and `make test` do all the set-up on a fresh machine (Python >= 3.10 + pip).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

# torch is pinned to the CPU build first, so that the profile extra is satisfied by it instead
# of pulling the newest release with several GB of CUDA packages.
TORCH  ?= torch==2.13.0

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet '$(TORCH)'
	$(BIN)/python -m pip install --quiet -e '.[test,profile,scip,dask,flower]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lola solve

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)   # BENCH_ARGS=--quick for a few minutes

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
