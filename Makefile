# Two commands matter (README): `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench venv clean

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

## Benchmarks (speed and memory targets live here, not in the tests).
bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
