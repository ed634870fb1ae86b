# nbparity — run `make` (or `make help`) for the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nbparity-installed
CASE   ?= supervisor
# Pinned so pip takes the CPU wheel on disk instead of a multi-GB CUDA build.
TORCH_PIN ?= torch==2.13.0
PYTEST_WORKERS ?= auto

.DEFAULT_GOAL := help
.PHONY: help install test test-slow parity gate bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CASE=$(CASE) (for parity), NB_C_BIN=/path/to/nanoBragg (live C), NB_GOLDEN_DIR (recordings)"

install: $(STAMP) ## create .venv and install nbparity with its pinned dependencies

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $(STAMP)

test: install ## run the test suite (fast cases; installs on first use)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test-slow: install ## run the full-detector (slow) parity cases
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m slow

parity: install ## compare engine and C on one case: make parity CASE=supervisor
	$(BIN)/nbparity run $(CASE)

gate: install ## parity gate over the case registry (junit.xml + summary under results/)
	$(BIN)/nbparity gate --junit results/junit.xml

bench: install ## benchmark the engine (and the C when NB_C_BIN is set)
	$(BIN)/nbparity bench

clean: ## remove caches and build artefacts (keeps results/ and .venv)
	rm -rf .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
