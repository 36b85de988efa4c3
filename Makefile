# Two commands matter (README): `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-e2e bench venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Create the virtualenv, install, migrate, seed the sandbox demo, start web + worker.
run: venv
	./scripts/run

## Run the whole test suite (SQLite unless DATABASE_URL is set).
test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The end-to-end sync tests only: both simulators over real HTTP, and the Redis path
## (skipped without REDIS_URL). .ci/run runs them again with REDIS_URL set.
E2E_SYNC_TESTS := tests/syncengine/test_redis_path.py tests/syncengine/test_sync.py \
	tests/syncengine/test_end_to_end.py tests/syncengine/test_tenant_webhooks.py \
	tests/syncengine/test_reconcile.py tests/syncengine/test_sparse_payloads.py
test-e2e: venv
	$(BIN)/python -m pytest $(E2E_SYNC_TESTS) $(PYTEST_ARGS)

## Benchmarks (speed and memory targets live here, not in the tests).
bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
