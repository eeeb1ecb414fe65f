# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv and install what they need, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install browser sandbox run demo test lint typecheck unit bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,aws]"
	touch $(STAMP)

install: $(STAMP) browser sandbox

## Debian's chromium for the browser tests (tests/ui), installed when missing and we are root with apt-get
CHROMIUM ?= /usr/bin/chromium
browser:
	@[ -x $(CHROMIUM) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     chromium fonts-dejavu-core >/dev/null; } \
	  || echo "chromium not installed (not root or no apt-get): the browser tests will be skipped"

## Debian's bubblewrap, the namespaces custom tools run in (CHORUS_TOOL_EXECUTOR=sandbox), installed the same way
BWRAP ?= /usr/bin/bwrap
sandbox:
	@[ -x $(BWRAP) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     bubblewrap >/dev/null; } \
	  || echo "bubblewrap not installed (not root or no apt-get): custom tools run unsandboxed, single tenant only"

## Run Chorus locally: uvicorn on 127.0.0.1:8283, SQLite at ./.chorus/chorus.db
run: $(STAMP) sandbox
	$(BIN)/uvicorn chorus.api:app --host 127.0.0.1 --port 8283

demo: $(STAMP)
	$(BIN)/chorus demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) browser sandbox
	$(BIN)/pytest -q

## The whole test suite: formatting, lint, strict types, every test
test: lint typecheck unit

## Every benchmark, one JSON report (benchmarks/results/latest.json) and a table
bench: $(STAMP)
	$(BIN)/python benchmarks/report.py

## The full-size fault campaign and fuzz (benchmarks/results/soak.json)
soak: $(STAMP)
	$(BIN)/python benchmarks/report.py --soak

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
