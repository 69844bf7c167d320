# The two commands:   make demo   (main job)    make test   (whole test suite)
# Everything else is set up on demand: Java and Maven (apt-get, when missing and root),
# a virtualenv in .venv with kappalake and its dependencies, the Kafka broker jars, and for
# `make test` Debian's Chromium (the dashboard's browser test).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kappalake-installed
PYTEST_ARGS ?=
# `make test` runs the suite on two pytest-xdist workers (WORKERS=0: in one process).
WORKERS ?= 2

.PHONY: demo test install prereqs browser broker-fetch clean

demo: install broker-fetch
	$(BIN)/kappalake demo

test: install broker-fetch browser
	$(BIN)/python -m pytest -n $(WORKERS) $(PYTEST_ARGS)

install: prereqs $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

prereqs:
	@missing=""; command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "kappalake needs:$$missing (e.g. sudo apt-get install -y$$missing)"; exit 1; fi; \
	fi

# Debian's Chromium, for the dashboard's end-to-end test (Playwright drives it; no browser download).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "the tests need Debian's Chromium at /usr/bin/chromium (sudo apt-get install -y chromium)"; exit 1; fi; \
	fi

broker-fetch: $(STAMP)
	$(BIN)/kappalake broker fetch

clean:
	-$(BIN)/kappalake broker stop
	rm -rf lake dist .kappalake/broker
