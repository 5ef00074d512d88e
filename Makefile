# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install clean-data bench-data bench bench-ratelimit bench-linking bench-workers bench-postgraphile bench-replicas bench-explorer fuzz

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "conflictkb needs Python 3.11 or newer (PYTHON=$(PYTHON))")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

install: $(STAMP)

# Starts embedded PostgreSQL + Redis (unless DATABASE_URL / REDIS_URL are set),
# migrates, loads seeds/ and serves on http://$(HOST):$(PORT).
run: $(STAMP)
	$(BIN)/conflictkb serve

test: $(STAMP)
	$(BIN)/pytest

# schemathesis over the OpenAPI document and the GraphQL schema, longer than the suite's
# bounded run (tests/test_fuzz.py): FUZZ_EXAMPLES examples per operation, seed FUZZ_SEED.
FUZZ_EXAMPLES ?= 100
FUZZ_SEED     ?= 13
fuzz: $(STAMP)
	CONFLICTKB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CONFLICTKB_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest tests/test_fuzz.py -n 1

# Deletes the local database and cache (./var or CONFLICTKB_DATA_DIR).
clean-data:
	rm -rf $${CONFLICTKB_DATA_DIR:-var}

# Benchmarks (bench/README.md): a million generated events in var/bench, then the
# query table through HTTP next to raw SQL, then cached answers under wrk.
# BENCH_EVENTS=100000 for a quicker run.
BENCH_EVENTS ?= 1000000
BENCH_DIR    ?= var/bench

bench-data: $(STAMP)
	@if [ -f $(BENCH_DIR)/generated ]; then echo "$(BENCH_DIR) already holds generated events"; else \
	  CONFLICTKB_DATA_DIR=$(BENCH_DIR) $(BIN)/conflictkb --log-level warning generate --events $(BENCH_EVENTS) && \
	  echo $(BENCH_EVENTS) > $(BENCH_DIR)/generated; fi

bench: bench-data
	$(BIN)/python bench/query_latency.py --data-dir $(BENCH_DIR)
	$(BIN)/python bench/cache_throughput.py --data-dir $(BENCH_DIR)

# The rate limiter's added latency and the list's throughput with limits on and off
# (bench/README.md); needs no generated data (installs wrk with apt-get if missing).
bench-ratelimit: $(STAMP)
	$(BIN)/python bench/ratelimit.py

# Requests per second with one worker and with two (serve --workers N), on the shipped
# data: cached and uncached event list, GraphQL event list (bench/README.md; wrk).
bench-workers: $(STAMP)
	$(BIN)/python bench/workers.py

# Our GraphQL next to PostGraphile 5's on the same database, three questions under wrk
# (bench/README.md). Installs Node 22 and PostGraphile with npm into var/postgraphile the
# first time. POSTGRAPHILE_DATA=var/bench for the million events (after make bench-data).
POSTGRAPHILE_DATA ?= var/bench-workers
# Reads per second on the primary alone and with a local streaming replica, and the p50
# that routing adds (bench/README.md).
bench-replicas: $(STAMP)
	$(BIN)/python bench/replicas.py

# The explorer's first view in headless Chromium (cold and warm), a province, one event;
# and the map's request narrowed against whole (bench/README.md; Chromium from apt-get).
bench-explorer: $(STAMP)
	$(BIN)/python bench/explorer.py

bench-postgraphile: $(STAMP)
	$(BIN)/python bench/graphql_vs_postgraphile.py --data-dir $(POSTGRAPHILE_DATA)

# Cross-source linking against a labelled ACLED re-report of the UCDP extract: precision,
# recall, top-1 per perturbation, and linking's share of import time (bench/README.md).
# LINKING_PAIRS / LINKING_SEED to change the labelled set.
LINKING_PAIRS ?= 1200
LINKING_SEED  ?= 14
bench-linking: $(STAMP)
	$(BIN)/python bench/linking_eval.py --pairs $(LINKING_PAIRS) --seed $(LINKING_SEED)
