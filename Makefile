# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv and install what they need, so a fresh machine needs only python3 and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run demo test lint typecheck unit bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,aws]"
	touch $(STAMP)

install: $(STAMP)

## Run Chorus locally: uvicorn on 127.0.0.1:8283, SQLite at ./.chorus/chorus.db
run: $(STAMP)
	$(BIN)/uvicorn chorus.api:app --host 127.0.0.1 --port 8283

demo: $(STAMP)
	$(BIN)/chorus demo

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
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
