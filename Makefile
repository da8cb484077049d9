# aibridge: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export MPLBACKEND := Agg
export OMP_WAIT_POLICY := PASSIVE
# No usage telemetry from the project's own tools (also set in .dvc/config and aibridge/__init__).
export MLFLOW_DISABLE_TELEMETRY := true
export DVC_NO_ANALYTICS := true

.PHONY: setup setup-dev data repro demo test test-fast ea-parity lint lint-style typecheck bench ui exp-show plots clean clean-registry

# Stamp files: reinstall only when the dependency pins change. `.installed` = the runtime
# (what `make demo` needs); `.installed-dev` = plus the test stack (the `[dev]` extra), which
# `make test` adds on top, so demo-then-test installs only the difference.
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "==> [1/3] virtualenv $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "==> [2/3] pip"
	$(BIN)/python -m pip install --upgrade pip
	@echo "==> [3/3] aibridge + runtime dependencies, pinned by constraints.txt (~1.2 GB, a few minutes)"
	$(BIN)/python -m pip install -c constraints.txt -e .
	@touch $@
	@echo "==> runtime installed in $(VENV); commands: $(VENV)/bin/aibridge, $(VENV)/bin/dvc, $(VENV)/bin/mlflow"

$(VENV)/.installed-dev: $(VENV)/.installed
	@echo "==> test stack: the [dev] extra (pytest, hypothesis, backtesting, moto, ...)"
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	@touch $@

# `.venv/bin/dvc repro` without an activated venv: dvc.yaml's stages run `python ...`, which
# must be this venv's. A one-line .pth puts $(VENV)/bin first on PATH for processes the venv's
# Python starts (src/aibridge/paths.py: install_venv_path_hook).
$(VENV)/.path-hook: $(VENV)/.installed
	@$(BIN)/python -c "from aibridge.paths import install_venv_path_hook as h; print('==> PATH hook:', h())"
	@touch $@

setup: $(VENV)/.installed $(VENV)/.path-hook
setup-dev: $(VENV)/.installed-dev $(VENV)/.path-hook

# Materialise the bundled real sample byte-for-byte (it matches data.dvc) and cache it.
data: setup
	@if [ ! -e data/EURUSD60.csv ] && [ -z "$$(ls data/*.csv 2>/dev/null)" ]; then \
		aibridge sample-data && dvc commit -q -f data.dvc; fi

repro: data
	dvc repro

demo: repro
	aibridge summary
	aibridge demo-serve
	@echo "next (README, First run): .venv/bin/aibridge doctor | .venv/bin/dvc repro | make ui | .venv/bin/aibridge serve"

test: setup-dev
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory ea-parity

# The edit-test loop: everything but the `slow` tests (the session `dvc repro`, PostgreSQL,
# Chromium, soak and whole-EA builds; tests/conftest.py marks the fixture-bound ones itself).
# About 1-2 minutes on 2 cores; `make test` runs all of it.
test-fast: setup-dev
	$(BIN)/python -m pytest -q -m "not slow"

# The EA's own source, compiled against the MT4 stand-in (mt4_ea/standin), replayed against a
# real `aibridge serve` on the bundled sample and on a planted-edge series where the model
# trades; exits non-zero on any trade that differs from the backtest's.
ea-parity: setup
	$(BIN)/python -m aibridge.mt4.parity --out reports/ea_parity

# Style (ruff: rules, complexity C901, formatting) and types (mypy, config in mypy.ini).
lint: lint-style typecheck

lint-style: setup-dev
	ruff check src tests pipelines benchmarks
	ruff format --check src tests pipelines benchmarks

typecheck: setup-dev
	mypy src/aibridge

bench: setup-dev
	$(BIN)/python benchmarks/run_all.py

ui: setup
	mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db --port 5000

# `dvc exp show` narrowed to what fits a terminal: the experiment, two LightGBM parameters and the
# walk-forward's Sharpe and trade count (metrics of reports/backtest/metrics.json). EXP_KEEP=regex.
EXP_KEEP ?= Experiment|model\.(num_leaves|learning_rate|sharpe|trade_count)$$
exp-show: setup
	dvc exp show --drop '.*' --keep '$(EXP_KEEP)'

# `dvc plots show` with Vega from .vega/ instead of a CDN, so the page renders offline. The three
# files are fetched once (the only download); copy them into .vega/ by hand on an offline box.
VEGA_LIBS := vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
plots: setup
	@mkdir -p .vega
	@for lib in $(VEGA_LIBS); do f=".vega/$${lib%@*}.js"; [ -s "$$f" ] && continue; \
		echo "fetching $$lib into $$f (once)"; \
		curl -fsSL -o "$$f" "https://cdn.jsdelivr.net/npm/$$lib" || { rm -f "$$f"; \
		echo "could not download $$lib: put it in $$f (https://cdn.jsdelivr.net/npm/$$lib)"; exit 1; }; done
	@printf '%s\n' '<!DOCTYPE html>' '<html><head><meta charset="utf-8"><title>aibridge plots</title>' \
		'<script src="../.vega/vega.js"></script>' '<script src="../.vega/vega-lite.js"></script>' \
		'<script src="../.vega/vega-embed.js"></script>' '</head><body>' '{plot_divs}' '</body></html>' \
		> .vega/offline.html
	dvc plots show --html-template .vega/offline.html

# Pipeline outputs only; `dvc repro` rebuilds them. The MLflow store (runs, registered versions,
# the champion alias) is kept: `make clean-registry` removes it, after asking.
clean:
	rm -rf artifacts reports/plots dvc_plots
	@echo "kept the MLflow store (mlflow.db, mlartifacts/); \`make clean-registry\` deletes it"

REGISTRY_FILES := mlflow.db mlartifacts mlruns reports/promotions.jsonl
clean-registry:
	@echo "This deletes the local MLflow store: every run, every registered model version and"
	@echo "alias (champion included) and the promotion journal:"
	@for f in $(REGISTRY_FILES); do [ -e "$$f" ] && echo "  $(CURDIR)/$$f"; done; true
	@if [ "$(CONFIRM)" != 1 ]; then \
		if [ -t 0 ]; then \
			read -r -p "Type 'delete' to go on: " answer; \
			[ "$$answer" = delete ] || { echo "nothing deleted"; exit 1; }; \
		else echo "nothing deleted: run \`make clean-registry CONFIRM=1\` to confirm"; exit 1; fi; \
	fi
	rm -rf $(REGISTRY_FILES)
