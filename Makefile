# Farm Resilience: `make test` and `make demo` do all their own set-up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYENV_ROOT ?= $(shell pyenv root 2>/dev/null || echo $$HOME/.pyenv)
# A python3.13 on PATH may be a pyenv shim that fails: take it only if it runs.
PY313 ?= $(shell for p in python3.13 $(PYENV_ROOT)/versions/3.13*/bin/python3.13; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys' >/dev/null 2>&1 && { command -v $$p; break; }; done)
PY311 ?= $(shell for p in python3.11 $(PYENV_ROOT)/versions/3.11*/bin/python3.11; do \
            command -v $$p >/dev/null 2>&1 && $$p -c 'import sys' >/dev/null 2>&1 && { command -v $$p; break; }; done)

VENV := .venv
VENV311 := .venv311
PGMQ := pgmq==1.1.4
DEBIAN_PACKAGES := mosquitto pgbouncer postgresql-15 chromium
PACKAGES := agent/farm_agent custom_components/farm_resilience
PYTEST_ARGS ?= --durations=5
# Some machines' pip configuration names package folders that do not exist; pip warns
# about each one for every package. Keep the output readable, keep pip's exit status.
PIP_QUIET := 2>&1 | { grep -v '^WARNING: Location' || true; }; test $${PIPESTATUS[0]} -eq 0

.PHONY: help venv system-deps lint test test-311 test-agent test-ha test-e2e test-ha-e2e demo bench soak clean

help:
	@echo "make test    set up everything, lint, run the whole suite on throwaway services"
	@echo "make demo    run the agent, a farm simulator and Home Assistant on throwaway services"
	@echo "make bench   run the benchmarks and write bench/RESULTS.md"
	@echo "make soak    the long chaos run (not part of make test)"
	@echo "make clean   remove the virtual environments"

system-deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$$missing pgbouncer"; \
	[ -x /usr/lib/postgresql/15/bin/postgres ] || missing="$$missing postgresql-15"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; } || exit 1; \
	  else \
	    echo "Missing:$$missing. Install them (sudo apt-get install$$missing) or run make as root." >&2; exit 1; \
	  fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@[ -n "$(PY313)" ] || { echo "Python 3.13 not found: install it (pyenv install 3.13.0) or pass PY313=/path/to/python3.13" >&2; exit 1; }
	@[ -x $(VENV)/bin/python ] || $(PY313) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[ha]' $(PIP_QUIET)
	@# pgmq's client pins an orjson newer than Home Assistant's; only its SQL is used.
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps '$(PGMQ)' $(PIP_QUIET)
	@touch $@

$(VENV311)/.installed: pyproject.toml
	@[ -n "$(PY311)" ] || { echo "Python 3.11 not found: the agent's tests run on it too (pyenv install 3.11) or pass PY311=..." >&2; exit 1; }
	@[ -x $(VENV311)/bin/python ] || $(PY311) -m venv $(VENV311)
	$(VENV311)/bin/pip install -q --disable-pip-version-check -e '.[test]' $(PIP_QUIET)
	$(VENV311)/bin/pip install -q --disable-pip-version-check --no-deps '$(PGMQ)' $(PIP_QUIET)
	@touch $@

venv: $(VENV)/.installed $(VENV311)/.installed

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy --strict $(PACKAGES)

# The agent's own tests on Python 3.11, the oldest it supports.
test-311: system-deps $(VENV311)/.installed
	$(VENV311)/bin/python -m pytest tests/agent $(PYTEST_ARGS)

# The agent on Python 3.13, without the Home Assistant plugin (it blocks sockets
# and polices threads for every test in its session).
test-agent: system-deps $(VENV)/.installed
	$(VENV)/bin/python -m pytest -p no:homeassistant -p no:sugar tests/agent $(PYTEST_ARGS)

# Home Assistant core with the integration (pytest-homeassistant-custom-component).
test-ha: system-deps $(VENV)/.installed
	$(VENV)/bin/python -m pytest -p no:sugar tests/integration $(PYTEST_ARGS)

# The end-to-end runs (chaos, the demo's dashboard), without the Home Assistant plugin.
test-e2e: system-deps $(VENV)/.installed
	$(VENV)/bin/python -m pytest -p no:homeassistant -p no:sugar tests/e2e $(PYTEST_ARGS)

# Home Assistant's tests take about half as long as the agent's: the end-to-end runs follow them.
test-ha-e2e: test-ha
	@$(MAKE) --no-print-directory test-e2e

# The three runs use their own throwaway services and mostly wait on them: run them
# side by side (output shown per run as each finishes).
test: system-deps venv lint
	@$(MAKE) --no-print-directory -j3 --output-sync=target test-311 test-agent test-ha-e2e

demo: system-deps $(VENV)/.installed
	$(VENV)/bin/python -m tools.demo

bench: system-deps $(VENV)/.installed
	$(VENV)/bin/python -m bench

soak: system-deps $(VENV)/.installed
	FARM_SOAK=1 $(VENV)/bin/python -m pytest -p no:homeassistant -p no:sugar tests/e2e $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) $(VENV311) .mypy_cache .pytest_cache .ruff_cache
