# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install clean-data

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

# Deletes the local database and cache (./var or CONFLICTKB_DATA_DIR).
clean-data:
	rm -rf $${CONFLICTKB_DATA_DIR:-var}
