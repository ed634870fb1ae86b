# nbparity — run `make` (or `make help`) for the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.nbparity-installed
CASE   ?= supervisor
# Pinned so that pip takes the CPU wheel (the one on disk, or TORCH_INDEX) and never a
# multi-GB CUDA build. On a machine without the wheel on disk, set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu (the CI workflow does).
TORCH_PIN   ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_WORKERS ?= auto
PYTEST_ARGS ?=
GATE_ARGS   ?=
FUZZ_GATE_ARGS ?=
BENCH_ARGS  ?= --cases all
FRESH_RECORDINGS ?= results/recordings-fresh

.DEFAULT_GOAL := help
.PHONY: help install test test-slow parity gate bench import clean lint c recordings-check ci-local docs-check test-faults

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo "  variables: CASE=$(CASE) (parity), NB_C_BIN=/path/to/nanoBragg (live C), NB_GOLDEN_DIR (recordings),"
	@echo "             GATE_ARGS='--tags small' (gate), FUZZ_GATE_ARGS (gate over cases/fuzz), PYTEST_ARGS, PYTEST_WORKERS=$(PYTEST_WORKERS), TORCH_INDEX"
	@echo "             NB_C_SOURCE_DIR=DIR (make c offline), FRESH_RECORDINGS=$(FRESH_RECORDINGS) (recordings-check)"

install: $(STAMP) ## create .venv and install nbparity with its pinned dependencies (CPU torch)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_PIN)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[test]"
	@$(BIN)/python -c "import sys, torch; sys.exit(torch.version.cuda and not '$(ALLOW_CUDA_TORCH)' and 'make install: torch ' + torch.__version__ + ' is a CUDA build; use the CPU wheel (TORCH_INDEX=https://download.pytorch.org/whl/cpu) or set ALLOW_CUDA_TORCH=1')"
	@touch $(STAMP)

test: install ## run the test suite (full-frame cases excluded; installs on first use)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q $(PYTEST_ARGS)

test-faults: install ## run only the fault suite (bad files, lying/crashing/hanging C, signals, ledger faults)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m faults $(PYTEST_ARGS)

test-slow: install ## run only the full-detector (slow) tests
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m slow $(PYTEST_ARGS)

docs-check: install ## run the README's printed examples again: their lines and exit codes must still match
	$(BIN)/python -m pytest -p no:xdist -q -m "slow or not slow" tests/docs

lint: install ## size/complexity limits (ruff, pylint) and layer contracts (import-linter)
	@$(BIN)/python -c "import ruff, importlinter, pylint" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[lint]"
	@status=0; \
	$(BIN)/ruff check engine harness tests || status=1; \
	$(BIN)/pylint --disable=all --enable=too-many-lines --max-module-lines=400 --score=n engine harness || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

parity: install ## compare engine and C on one case: make parity CASE=supervisor
	$(BIN)/nbparity run $(CASE)

gate: install ## parity gate over the whole registry, then the fuzzer's minimal cases (cases/fuzz; results/junit*.xml, gate_summary*.md)
	@status=0; \
	$(BIN)/nbparity gate --junit results/junit.xml --summary results/gate_summary.md $(GATE_ARGS) || status=$$?; \
	$(BIN)/nbparity --cases-dir cases/fuzz --golden-dir cases/fuzz/recordings gate --junit results/junit_fuzz.xml \
	  --summary results/gate_summary_fuzz.md $(FUZZ_GATE_ARGS) || status=$$?; \
	exit $$status

bench: install ## every case: overhead, render/C, process/C, floor, fuzz examples/min (BENCH_ARGS=--quick: CI's short run)
	$(BIN)/nbparity bench --fuzz-rate $(BENCH_ARGS)

c: install ## build the reference C binaries into golden_bin/ (sources from GitHub, or NB_C_SOURCE_DIR offline)
	$(BIN)/nbparity build-c

recordings-check: c ## re-record every case from golden_bin/ and compare with NB_GOLDEN_DIR, case by case
	$(BIN)/nbparity record --all --force --out $(FRESH_RECORDINGS)
	$(BIN)/nbparity recordings-check $(FRESH_RECORDINGS)

ci-local: ## the CI workflow's steps, in order, on a fresh clone of HEAD (offline: NB_C_SOURCE_DIR=...)
	.ci/local

import: install ## refresh cases/*.toml from the recordings (NB_GOLDEN_DIR)
	$(BIN)/nbparity import-recordings

clean: ## remove caches and build artefacts (keeps results/ and .venv)
	rm -rf .pytest_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +
