# The two commands: `make demo` and `make test`. Everything they need is installed from here.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export CUSTODY_HOME ?= $(CURDIR)/var
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help demo test lint typecheck pytest faults bench profile softhsm chromium anvil venv clean migrations-check \
	lock audit test-audit docker-test

help:
	@echo "make demo   - set up and serve a seeded demo on http://127.0.0.1:8000"
	@echo "make test   - lint, type check and the whole test suite (SQLite and PostgreSQL)"
	@echo "make faults - the fault-injection tests alone (HSM, database, processes)"
	@echo "make bench  - benchmarks (SQLite and PostgreSQL on 127.0.0.1:5432), written to docs/benchmarks.md"
	@echo "make profile - where a signed request's CPU goes (py-spy under load), in docs/benchmarks.md"
	@echo "make lock   - regenerate requirements.lock and requirements-build.lock (pinned, hashed)"
	@echo "make audit  - pip-audit requirements.lock (fails when the vulnerability data cannot be had)"
	@echo "make docker-test - build the image, docker compose up deploy/, a signed withdrawal, /metrics"

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

softhsm:
	@if ! command -v softhsm2-util >/dev/null 2>&1; then \
		echo "installing SoftHSM2 (development HSM) with apt"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null; \
	fi

# Foundry's anvil, the development chain node (chain id 31337) that tests and the demo run:
# from npm, into .tools/ (git-ignored). Tests find it there (or CUSTODY_TEST_ANVIL).
ANVIL_PACKAGE := @foundry-rs/anvil-linux-amd64@1.7
ANVIL := .tools/anvil/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
anvil: $(ANVIL)
$(ANVIL):
	@echo "installing anvil (development chain node) with npm"
	npm install --prefix .tools/anvil --no-audit --no-fund --silent $(ANVIL_PACKAGE)
	@test -x $@

# The demo runs a local anvil beside the server (its chain kept in CUSTODY_HOME/anvil-state.json
# between runs) and seeds the connected chain `local` with a funded wallet `local-eth`.
DEMO_NODE_PORT ?= 8545
demo: venv softhsm anvil
	$(BIN)/custody init
	@mkdir -p "$(CUSTODY_HOME)"; \
	$(ANVIL) --host 127.0.0.1 --port $(DEMO_NODE_PORT) --silent \
		--state "$(CUSTODY_HOME)/anvil-state.json" & node=$$!; \
	trap 'kill $$node 2>/dev/null; wait $$node' EXIT; \
	$(BIN)/custody demo seed --node http://127.0.0.1:$(DEMO_NODE_PORT) && \
	$(BIN)/custody serve --host 127.0.0.1 --port 8000

lint: venv
	$(BIN)/ruff check custody tests bench
	$(BIN)/ruff format --check custody tests bench
	$(BIN)/lint-imports --no-cache

# requirements.lock: every package the service runs on (pyproject's dependencies and the `otel`
# extra, so the image can trace once OTEL_* switch it on; not `dev`), pinned with the hashes of
# every file PyPI has of each release, for `pip install --require-hashes` (the Dockerfile).
# pip-tools and pip-audit live in a venv of their own under .tools/, pinned here, so neither
# changes the project's environment.
TOOLS := .tools/py
TOOLS_PACKAGES := pip-tools==7.6.2 pip-audit==2.10.1
$(TOOLS)/.installed: Makefile
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS)/bin/python -m pip install --quiet $(TOOLS_PACKAGES)
	@touch $@

# Resolved against PyPI alone: PIP_CONFIG_FILE=/dev/null keeps a machine's own pip indexes,
# wheel folders and constraints out of the lock. Python 3.11 on Linux, as in the image.
# requirements-build.lock: what builds wheels from source (requirements-build.in), for the
# image's build stage, which builds without isolation so nothing unhashed is fetched there either.
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
	$(TOOLS)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	--no-emit-index-url --no-emit-trusted-host --no-emit-find-links
lock: $(TOOLS)/.installed
	$(PIP_COMPILE) --extra otel --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --output-file requirements-build.lock requirements-build.in

# `make audit` fails when pip-audit cannot get the vulnerability data; in `make test` that is a
# NOTICE that nothing was audited (TEST_AUDIT=required: a failure there too). See .ci/audit.
TEST_AUDIT ?= auto
audit: $(TOOLS)/.installed
	AUDIT=required .ci/audit $(TOOLS)/bin/python
test-audit: $(TOOLS)/.installed
	AUDIT=$(TEST_AUDIT) .ci/audit $(TOOLS)/bin/python

typecheck: venv
	$(BIN)/mypy

migrations-check: venv
	@tmp=$$(mktemp -d) && CUSTODY_DATABASE_URL=sqlite:///$$tmp/check.db $(BIN)/alembic upgrade head >/dev/null \
		&& CUSTODY_DATABASE_URL=sqlite:///$$tmp/check.db $(BIN)/alembic check; rc=$$?; rm -rf $$tmp; exit $$rc

chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Chromium (approver web app tests) with apt"; \
		$(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# One pytest-xdist worker per core, each with its own SoftHSM token, PostgreSQL databases and
# Chromium. PYTEST_WORKERS=0 runs everything in one process (e.g. to debug with pdb).
# Default `--dist load`, as tests/conftest.py schedules it (tests/support/scheduling.py): the tests
# of a module with module fixtures (a serve tree, a home of its own) go to one worker in one piece,
# the others one by one in collection order. (`loadgroup` would need marks on every such module,
# and with pytest 9.2 it silently stops grouping: pytest-xdist issue 1386.)
PYTEST_WORKERS ?= auto
pytest: venv softhsm chromium anvil
	$(BIN)/pytest -q -n $(PYTEST_WORKERS)

test: lint typecheck migrations-check test-audit pytest

# The image and deploy/compose.yaml end to end (tests/packaging/test_docker_compose.py): builds the
# image and starts containers, minutes, so not part of `make test` (there it is skipped with a
# notice). Needs a Docker daemon, the compose plugin and the images' registry.
docker-test: venv
	@docker info >/dev/null 2>&1 || { echo "make docker-test: FAIL: no Docker daemon answers (docker info)" >&2; exit 1; }
	@docker compose version >/dev/null 2>&1 || { echo "make docker-test: FAIL: no docker compose plugin" >&2; exit 1; }
	CUSTODY_DOCKER_TESTS=1 $(BIN)/pytest -v -rs -n 0 -m docker tests/packaging/test_docker_compose.py

# The fault-injection tests alone, verbose (they also run in `make test`): docs/reliability.md.
faults: venv softhsm
	$(BIN)/pytest -v -rP -n 0 tests/faults

bench: venv softhsm
	$(BIN)/python -m bench.run

# Where a signed request's CPU goes, sampled by py-spy under the bench's load (SQLite; see
# bench/profile.py for PostgreSQL): written to docs/benchmarks.md.
profile: venv softhsm
	$(BIN)/python -m bench.profile

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis .tools
