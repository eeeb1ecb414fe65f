# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv and install what they need, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
## what serving needs (the model providers' SDKs, boto3 for Bedrock and DynamoDB), and on top of it the test tools
SERVE_STAMP := $(VENV)/.serve-stamp
STAMP := $(VENV)/.installed-stamp
SAM_VENV ?= .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed-stamp

.PHONY: install browser sandbox doctools run demo test lint typecheck unit bench soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(SERVE_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[aws,openai,anthropic,mcp,otel]"
	touch $(SERVE_STAMP)

$(STAMP): pyproject.toml $(SERVE_STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev,aws]"
	touch $(STAMP)

install: $(STAMP) browser sandbox doctools $(SAM_STAMP)

## aws-sam-cli in a venv of its own (its pins are not ours), for the `sam validate` / `sam build` tests (tests/sam)
$(SAM_STAMP):
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet aws-sam-cli
	touch $(SAM_STAMP)

## Debian's chromium for the browser tests (tests/ui), installed when missing and we are root with apt-get
CHROMIUM ?= /usr/bin/chromium
browser:
	@[ -x $(CHROMIUM) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     chromium fonts-dejavu-core >/dev/null; } \
	  || echo "chromium not installed (not root or no apt-get): the browser tests will be skipped"

## curl and jq, which the README's and docs' shell examples use (tests/docs runs them)
doctools:
	@command -v curl >/dev/null && command -v jq >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     curl jq >/dev/null; } \
	  || echo "curl or jq missing (not root or no apt-get): the docs' shell examples will fail"

## Debian's bubblewrap, the namespaces custom tools run in (CHORUS_TOOL_EXECUTOR=sandbox), installed the same way
BWRAP ?= /usr/bin/bwrap
sandbox:
	@[ -x $(BWRAP) ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	     bubblewrap >/dev/null; } \
	  || echo "bubblewrap not installed (not root or no apt-get): custom tools run unsandboxed, single tenant only"

## Run Chorus locally: uvicorn on 127.0.0.1:8283, SQLite at ./.chorus/chorus.db
run: $(SERVE_STAMP) sandbox
	$(BIN)/uvicorn chorus.api:app --host 127.0.0.1 --port 8283

demo: $(SERVE_STAMP)
	$(BIN)/chorus demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) browser sandbox doctools $(SAM_STAMP)
	$(BIN)/pytest -q -rs -n 2 --dist loadfile

## The whole test suite: formatting, lint, strict types, every test
test: lint typecheck unit

## Every benchmark, one JSON report (benchmarks/results/latest.json) and a table
bench: $(STAMP)
	$(BIN)/python benchmarks/report.py

## The full-size fault campaign and fuzz (benchmarks/results/soak.json)
soak: $(STAMP)
	$(BIN)/python benchmarks/report.py --soak

clean:
	rm -rf $(VENV) $(SAM_VENV) .pytest_cache .mypy_cache .ruff_cache
