# stockflow task runner. Every target sets up what it needs first (uv, the locked venv).
SHELL := bash
.DEFAULT_GOAL := help

# uv: the one on PATH, else ~/.local/bin/uv, else a private copy bootstrapped with pip.
UV ?= $(or $(shell command -v uv 2>/dev/null),$(wildcard $(HOME)/.local/bin/uv),.tools/bin/uv)
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# The suite runs on this many pytest-xdist workers, a file per worker at a time: first the
# tests that need no real process (unit, component, contract: most of the suite), then the
# slow ones (real processes, crashes, brokers, browsers; `make test-fast` leaves them out).
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= 2
PARALLEL := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
export UV_PYTHON_PREFERENCE ?= system
# Trust the system's certificate store (corporate or sandbox CAs live there), not only uv's
# bundled roots.
export UV_NATIVE_TLS ?= 1
export PACT_DO_NOT_TRACK ?= true

.PHONY: help sync fmt lint chromium promtool test test-browser-cluster test-fast test-unit test-integration run bench bench-claims-smoke audit chaos clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

.tools/bin/uv:
	@echo ">> uv not found: installing it into .tools/ with pip"
	python3 -m venv .tools && .tools/bin/pip install --quiet uv

$(VENV)/.synced: uv.lock pyproject.toml packages/kit/pyproject.toml | $(UV)
	$(UV) sync --locked --all-packages --all-extras
	@touch $@

sync: $(VENV)/.synced ## create/refresh the locked virtualenv

fmt: sync ## format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: sync ## ruff, format check, mypy --strict, import contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

chromium: ## Debian's Chromium for the browser tests: installed when missing (needs root and apt-get)
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y chromium >/dev/null 2>&1 \
			|| { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }; }; } \
		|| echo "chromium not installed (needs root and apt-get): the browser tests skip"

promtool: ## Debian's prometheus and prometheus-alertmanager (the alert-rule tests, the real alerting test): installed when missing (needs root and apt-get)
	@{ test -x /usr/bin/promtool && test -x /usr/bin/prometheus-alertmanager; } \
		|| { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y prometheus prometheus-alertmanager >/dev/null 2>&1 \
			|| { apt-get update >/dev/null \
				&& apt-get install -y prometheus prometheus-alertmanager >/dev/null; }; }; } \
		|| echo "promtool/alertmanager not installed (needs root and apt-get): the alerting tests skip"

test: lint promtool ## lint + the whole test suite but the browser and cluster suites (integration tests skip if a server is down, fail when CI=true)
	$(BIN)/pytest -m "not chaos and not slow" $(PARALLEL) $(PYTEST_ARGS)
	$(BIN)/pytest -m "slow and not chaos and not claims and not browser and not cluster" $(PARALLEL) $(PYTEST_ARGS)

test-browser-cluster: sync chromium ## the browser suite (Playwright on Chromium) and the three-node NATS cluster in network namespaces (about 2 min; .ci/run runs them after make test)
	$(BIN)/pytest -m "(browser or cluster) and not chaos" $(PARALLEL) $(PYTEST_ARGS)

test-fast: lint ## lint + the suite without the slow tests (real processes, crash, hostile, brokers)
	$(BIN)/pytest -m "not chaos and not slow" $(PARALLEL) $(PYTEST_ARGS)

test-unit: sync ## fast tests only (no servers)
	$(BIN)/pytest -m "not integration and not chaos" $(PYTEST_ARGS)

test-integration: sync ## tests against the real PostgreSQL and NATS JetStream
	STOCKFLOW_REQUIRE_SERVICES=1 $(BIN)/pytest -m "integration and not claims" $(PYTEST_ARGS)

chaos: sync ## the ChaosToolkit experiments of chaos/ (about 4.5 min; .ci/run runs them after make test)
	$(BIN)/pytest -m chaos $(PYTEST_ARGS)

bench-claims-smoke: sync ## stockflow bench claims at its smallest: it runs, every audit passes, the report is written (about 3 min; .ci/run runs it after make chaos)
	$(BIN)/pytest -m claims $(PYTEST_ARGS)

run: sync ## start the whole system, embedded (SQLite + embedded bus)
	$(BIN)/stockflow up

bench: sync ## benchmarks: bus throughput, end-to-end events/s and orders/s, the cost of an HTTP hop
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get install -y wrk >/dev/null; } \
		|| echo "wrk not installed (needs root and apt-get): bench http uses its built-in client"
	$(BIN)/stockflow bench bus
	$(BIN)/stockflow bench events --backend embedded
	$(BIN)/stockflow bench orders --backend embedded
	$(BIN)/stockflow bench http

audit: sync ## check the invariants on the embedded data dir
	$(BIN)/stockflow audit

clean: ## remove the venv and caches
	rm -rf $(VENV) .tools .mypy_cache .ruff_cache .hypothesis
