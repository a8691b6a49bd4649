# Two entry points for a fresh machine: `make demo` and `make test` (see README).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench system-deps

setup: system-deps $(STAMP)

system-deps:
	bash scripts/install_system_deps.sh

# torch first, pinned: it comes from the local CPU wheel; an unpinned torch would
# pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,robotics,cluster]"
	touch $(STAMP)

demo: setup
	$(BIN)/activegen demo

test: setup
	$(BIN)/python -m pytest -q -n 2

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
