# One entry point for every routine. Each target bootstraps the environment from uv.lock.
SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
RUN := $(UV) run --frozen
DEMO_DIR ?= demo

.PHONY: setup demo test test-fast test-scheduler lint bench suites airflow clean

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode

demo: setup
	rm -rf $(DEMO_DIR)
	$(RUN) trialpipe demo --study $(DEMO_DIR)/study.toml --landing $(DEMO_DIR)/landing --warehouse $(DEMO_DIR)/warehouse
	@echo "demo written to $(DEMO_DIR)/ (open $(DEMO_DIR)/warehouse/reports/outcome_report.html)"

test: setup
	$(RUN) pytest -n 2

test-fast: setup
	$(RUN) pytest -m "not slow and not scheduler"

test-scheduler: setup
	TRIALPIPE_SCHEDULER_TESTS=1 $(RUN) pytest tests/dags

lint: setup
	$(RUN) ruff check pipeline dags tests bench
	$(RUN) mypy pipeline dags

bench: setup
	$(RUN) python -m bench

suites: setup
	$(RUN) python -m pipeline.ingest.suites

airflow: setup
	bash deploy/airflow-local.sh

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
