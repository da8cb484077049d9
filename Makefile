# aibridge: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup data repro demo test ea-parity lint bench ui clean

# A stamp file: reinstall only when the dependency pins change.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

# Materialise the bundled real sample byte-for-byte (it matches data.dvc) and cache it.
data: setup
	@if [ ! -e data/EURUSD60.csv ] && [ -z "$$(ls data/*.csv 2>/dev/null)" ]; then \
		aibridge sample-data && dvc commit -q -f data.dvc; fi

repro: data
	dvc repro

demo: repro
	aibridge summary
	aibridge demo-serve

test: setup
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory ea-parity

# The EA's own source, compiled against the MT4 stand-in (mt4_ea/standin), replayed against a
# real `aibridge serve` on the bundled sample and on a planted-edge series where the model
# trades; exits non-zero on any trade that differs from the backtest's.
ea-parity: setup
	$(BIN)/python -m aibridge.mt4.parity --out reports/ea_parity

lint: setup
	ruff check src tests pipelines benchmarks
	ruff format --check src tests pipelines benchmarks

bench: setup
	$(BIN)/python benchmarks/run_all.py

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

clean:
	rm -rf artifacts reports/plots mlflow.db mlartifacts
