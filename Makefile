# cable-ingest — every target sets up what it needs; CI calls the same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck eval bench check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv and install the project with its dev tools

CABLES ?= $(firstword $(wildcard ../shared/cables/corpus) tests/fixtures)

run: $(STAMP)  ## the main job: ingest $(CABLES) end to end (embedded broker, SQLite under var/)
	$(BIN)/cable-ingest run $(CABLES)

test: $(STAMP)  ## the test suite (real cables from ../shared/cables when present)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

eval: $(STAMP)  ## parser accuracy against manifest.tsv
	$(BIN)/python -m bench.eval_parser

bench: $(STAMP)  ## throughput figures, with baselines measured in the same run
	$(BIN)/python -m bench.parse_speed
	$(BIN)/python -m bench.validators

check: lint typecheck test

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
