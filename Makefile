# Two commands for a newcomer: `make run` (the whole system, embedded) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
# The first Python >= 3.11 that actually runs (pyenv shims may exist for versions not enabled).
PYTHON ?= $(shell for p in python3.12 $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3) python3.13 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: install lock upgrade-check guard-check run cluster test test-fast test-cluster lint format bench soak clean

install: $(VENV)/.installed

# Exact versions from the lock, the ones CI tested; then the project itself, adding nothing
# (editable as a path, so PYTHONPATH can put another checkout first: bench/tracing.py).
$(VENV)/.installed: pyproject.toml requirements-dev.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is needed (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	touch $@

# Re-resolve the lock files after a change to pyproject.toml's dependencies (uv from PyPI).
# requirements.lock: the service alone (the Docker image); requirements-dev.lock: the same
# versions plus the dev and embedded extras.
UV_VENV := .venv-uv
lock:
	test -x $(UV_VENV)/bin/uv || { $(PYTHON) -m venv $(UV_VENV) && $(UV_VENV)/bin/pip install --quiet uv; }
	$(UV_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
		--custom-compile-command 'make lock' pyproject.toml -o requirements.lock
	$(UV_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
		--custom-compile-command 'make lock' --extra dev --extra embedded \
		-c requirements.lock pyproject.toml -o requirements-dev.lock

# Try the newest releases of the pinned stream stack in a scratch venv: the contract test,
# the loss-path tests and the guard check, without touching the lock or .venv.
UPGRADE_VENV := .venv-upgrade
upgrade-check:
	rm -rf $(UPGRADE_VENV)
	$(PYTHON) -m venv $(UPGRADE_VENV)
	$(UPGRADE_VENV)/bin/pip install --quiet --upgrade pip uv
	printf '%s\n' faust-streaming mode-streaming aiokafka asyncpg databases > $(UPGRADE_VENV)/newest.txt
	VIRTUAL_ENV=$(UPGRADE_VENV) $(UPGRADE_VENV)/bin/uv pip install --quiet --upgrade \
		--override $(UPGRADE_VENV)/newest.txt -e '.[dev,embedded]'
	$(UPGRADE_VENV)/bin/pip list 2>/dev/null | grep -iE '^(faust-streaming|mode-streaming|aiokafka|asyncpg|databases) '
	$(UPGRADE_VENV)/bin/pytest -q -p no:cacheprovider tests/stream/delivery
	$(UPGRADE_VENV)/bin/python -m tools.remove_guards

# Each guard of the delivery contract removed in a scratch copy must fail its tests.
guard-check: install
	$(BIN)/python -m tools.remove_guards

run: install
	$(BIN)/streamapp dev $(ARGS)

# The whole system spread over hosts of its own (network namespaces; needs root, iproute2,
# iptables, Java and Maven): three brokers, PostgreSQL, the API and workers; Ctrl-C stops it.
cluster: install
	$(BIN)/python -m tools.stack.cluster $(ARGS)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The fault tests on that cluster alone (tests/cluster/, about 8 minutes).
test-cluster: install
	$(BIN)/pytest -m cluster $(PYTEST_ARGS)

# The inner loop: no broker and no streamapp processes (tests marked kafka or e2e are left out).
test-fast: install
	$(BIN)/pytest -m 'not kafka and not e2e' $(PYTEST_ARGS)

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
	$(BIN)/python -m tools.migration_lint

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(UV_VENV) $(UPGRADE_VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
