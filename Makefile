# Two commands on a fresh machine: `make run` and `make test`. Everything else is a detail.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# uv must use the machine's Python, never download one.
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)
export UV_PROJECT_ENVIRONMENT := $(VENV)
PG_TEST_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: help run test lint typecheck unit postgres-tests chromium bench audit clean

help:
	@echo "make run    set up and start the panel against the MaxContact simulator"
	@echo "make test   set up and run every test, lint and type check included"

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --quiet
	@touch $@

run: $(VENV)/.synced
	$(PY) scripts/devstack.py

chromium:
	@bash scripts/ensure-chromium.sh

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# django-stubs imports the settings: give it a throwaway key (nothing is encrypted here).
typecheck: $(VENV)/.synced
	MAXCONTACT_ENCRYPTION_KEYS=$$($(PY) -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())') \
	ENV_FILE=/dev/null DEBUG=true $(VENV)/bin/mypy .

unit: $(VENV)/.synced chromium
	$(PY) -m pytest -m "not bench"

# The database-touching tests again, on PostgreSQL.
postgres-tests: $(VENV)/.synced
	@$(PY) scripts/wait-for-postgres.py "$(PG_TEST_URL)"
	DATABASE_URL="$(PG_TEST_URL)" $(PY) -m pytest -m "postgres and not bench" -p no:cacheprovider

test: lint typecheck unit postgres-tests

clean:
	rm -rf $(VENV) .tools staticfiles .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Known vulnerabilities in the locked dependencies (needs PyPI's JSON API or api.osv.dev).
audit: $(VENV)/.synced
	$(UV) export --frozen --no-emit-project --format requirements-txt > .run-audit-requirements.txt
	$(VENV)/bin/pip-audit --strict --disable-pip -r .run-audit-requirements.txt; \
	  status=$$?; rm -f .run-audit-requirements.txt; exit $$status

# Benchmarks (docs/performance.md): real processes on loopback, minutes, never in `make test`.
bench: $(VENV)/.synced chromium
	$(PY) scripts/bench.py
	$(PY) -m pytest -m bench -q -p no:cacheprovider
