# Every target installs what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test test-slow lint type check run bench clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]'
	touch $@

# The everyday suite; the heavy multi-process tests (marked slow) have a target of their own.
test: install
	$(PY) -m pytest -m "not slow"

test-slow: install
	$(PY) -m pytest -m slow

lint: install
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/ruff check src tests benchmarks

type: install
	$(VENV)/bin/mypy

check: lint type test

run: install
	$(PY) -m minos.networks demo

bench: install
	$(PY) -m benchmarks --plot benchmarks/results.png --json benchmarks/results.json

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
