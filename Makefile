# `make demo` and `make test` set up whatever is missing (a venv in .venv), then run.
export OMP_WAIT_POLICY ?= PASSIVE
export MPLBACKEND ?= Agg
# without mkdocs-material's banner about MkDocs 2 on every build
export NO_MKDOCS_2_WARNING ?= 1
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.orirec-installed

.PHONY: setup demo test test-all lint typecheck bench clean cryodrgn-env

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,astra]'
	touch $(STAMP)

# cryoDRGN (the cryodrgn-abinit estimator) in its own venv: its pins may clash with orirec's. CPU torch first
# (the wheel of constraints.txt; CRYODRGN_TORCH_INDEX= to skip the CPU index where it is unreachable), then cryoDRGN.
CRYODRGN_VENV ?= .venv-cryodrgn
CRYODRGN_VERSION ?= 4.3.1
CRYODRGN_TORCH_INDEX ?= https://download.pytorch.org/whl/cpu

cryodrgn-env: $(CRYODRGN_VENV)/bin/cryodrgn

$(CRYODRGN_VENV)/bin/cryodrgn:
	test -x $(CRYODRGN_VENV)/bin/python || $(PYTHON) -m venv $(CRYODRGN_VENV)
	$(CRYODRGN_VENV)/bin/pip install -q -c constraints.txt $(if $(CRYODRGN_TORCH_INDEX),--extra-index-url $(CRYODRGN_TORCH_INDEX)) torch==2.13.0
	$(CRYODRGN_VENV)/bin/pip install -q -c constraints.txt cryodrgn==$(CRYODRGN_VERSION)
	$(CRYODRGN_VENV)/bin/cryodrgn --version

demo: setup
	$(BIN)/orirec demo --out runs/demo

lint: setup
	$(BIN)/ruff check orirec tests benchmarks
	$(BIN)/ruff format --check orirec tests benchmarks
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy orirec

test: setup lint
	$(BIN)/python -X faulthandler -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

.PHONY: docs
docs: setup
	$(BIN)/python benchmarks/docs.py --check
	$(BIN)/mkdocs build --strict -d build/site

clean:
	rm -rf runs .pytest_cache .ruff_cache
