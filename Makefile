# Two commands for a fresh machine:
#   make run   create the virtual environment, install, create the store, serve
#   make test  install with test dependencies, run the suite, ruff and mypy
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench conformance clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/gateway migrate
	$(BIN)/gateway serve

test: $(VENV)/.installed-test
	$(BIN)/pytest
	$(MAKE) lint

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway tests bench
	$(BIN)/ruff format --check gateway tests bench
	$(BIN)/mypy gateway

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench.run --postgres "$${GATEWAY_BENCH_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"

conformance: $(VENV)/.installed
	$(BIN)/python ../shared/conformance/score.py --gateway $(BIN)/gateway ../shared/cases ../shared/corpus

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
