# cable-ingest — every target sets up what it needs; CI calls the same targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck eval bench bench-soak chaos fuzz check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create the virtualenv and install the project with its dev tools

# The dev corpus when present; else 1,000 distinct cables renumbered from the project's sample.
GENERATED := var/generated
CABLES ?= $(firstword $(wildcard ../shared/cables/corpus) $(GENERATED))

run: $(STAMP)  ## the main job: ingest $(CABLES) end to end (embedded broker, SQLite under var/)
	@if [ "$(CABLES)" = "$(GENERATED)" ] && [ ! -d $(GENERATED) ]; then \
	  $(BIN)/cable-ingest generate $(GENERATED) --count 1000 --from tests/fixtures; fi
	$(BIN)/cable-ingest run $(CABLES)

test: $(STAMP)  ## the test suite (real cables from ../shared/cables when present)
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff, and the package's layering (import-linter contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

eval: $(STAMP)  ## parser accuracy against manifest.tsv
	$(BIN)/python -m bench.eval_parser

BENCH_ARGS ?= --cables 10000 --runs 3

bench: $(STAMP)  ## throughput figures, with baselines measured in the same run (Redis, PostgreSQL)
	$(BIN)/python -m bench.cli_startup
	$(BIN)/python -m bench.parse_speed
	$(BIN)/python -m bench.validators
	$(BIN)/python -m bench.storage_size
	$(BIN)/python -m bench.pipeline $(BENCH_ARGS)
	$(BIN)/python -m bench.run_exit
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.scrape

bench-soak: $(STAMP)  ## worker memory over a 250,000-cable run on Redis + SQLite
	$(BIN)/python -m bench.pipeline --only none --soak 250000

chaos: $(STAMP)  ## fault injection and hostile input on real processes; one reconciled row each
	$(BIN)/python -m chaos

FUZZ_SECONDS ?= 60

fuzz: $(STAMP)  ## coverage-guided fuzzing of the parser (atheris) for FUZZ_SECONDS
	mkdir -p var/fuzz && cp -n tests/fixtures/*.txt var/fuzz/
	$(BIN)/python -m chaos.fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=65536 var/fuzz

check: lint typecheck test

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
