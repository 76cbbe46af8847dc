# Each target installs what it needs into .venv (Python 3.11+ is all a fresh machine needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo tour test lint bench bench-quick stress clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.dev

demo: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[web]'
	$(BIN)/python examples/web_app.py

tour: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python examples/demo.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

stress: $(VENV)/.dev
	$(BIN)/python -m pytest -m slow

bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks.compare

bench-quick: $(VENV)/.bench
	$(BIN)/python -m benchmarks.compare --quick

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .benchmarks
