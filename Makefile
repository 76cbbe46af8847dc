# Each target installs what it needs into .venv (Python 3.11+ is all a fresh machine needs).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo tour test lint bench bench-quick stress docs docs-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# setup.py builds the C fast path (bucketcore/_fastpath.c): a change rebuilds it.
$(VENV)/.dev: pyproject.toml setup.py bucketcore/_fastpath.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

$(VENV)/.bench: pyproject.toml setup.py bucketcore/_fastpath.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	touch $@ $(VENV)/.dev

# The README's next commands run the demo on rocksdb:// and redis:// and
# under gunicorn: install those too.
demo: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[web,rocksdb,redis]' gunicorn
	$(BIN)/python examples/web_app.py

tour: | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python examples/demo.py

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests run every benchmark once (so none can rot), which needs the pinned
# peers: they live in the bench extra, never in what users install.
test: $(VENV)/.bench lint
	$(BIN)/python -m pytest

# The documentation site, strict (a broken link or reference fails), into site/.
$(VENV)/.docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(VENV)/.docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict --site-dir site

# Opens the built site in headless Chromium (Debian's package) and saves
# screenshots under site/_screens/.
docs-check: docs $(VENV)/.dev
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -p no:cacheprovider -m docs_check tests/test_docs_render.py

stress: $(VENV)/.dev
	$(BIN)/python -m pytest -m slow

# The side-by-side runner starts its own redis-server and 3-master cluster on
# free loopback ports, prints progress on stderr, and writes
# benchmarks/results/<date>.json, docs/benchmarks.md and its charts; then the
# pytest-benchmark suites (bench_*.py) run with benchmarking on.
bench: $(VENV)/.bench
	$(BIN)/python -m benchmarks.compare
	$(BIN)/python -m pytest benchmarks -p no:cacheprovider --benchmark-enable --benchmark-only \
		--benchmark-group-by=group --benchmark-columns=min,median,ops,rounds

# A subset in under 3 minutes: <date>-quick.json and docs/benchmarks-quick.md.
bench-quick: $(VENV)/.bench
	$(BIN)/python -m benchmarks.compare --quick

clean:
	rm -rf $(VENV) site build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .benchmarks .bench-data
