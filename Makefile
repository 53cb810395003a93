# sslmem — the two commands that matter:
#   make book   render the book from the committed results store (trains nothing; minutes on a CPU)
#   make test   create .venv if missing, install the pinned set, run the test suite
# and, explicitly, recomputing a profile into a fresh store:
#   make reproduce PROFILE=tiny|paper   (sslmem plan --run --fresh, then the book from it)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
# The offline data root: ../shared/data beside the checkout when present (override with SSLMEM_DATA=...).
SSLMEM_DATA ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
export SSLMEM_DATA
export TQDM_DISABLE ?= 1

.PHONY: install test lint clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[book,test]'
	rm -f $(VENV)/.installed-* && touch $@

# pytest exits 5 when it collects nothing: treat that as a failure, never as a pass.
test: install
	$(BIN)/ruff check sslmem tests benchmarks
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

clean-runs:
	rm -rf runs

# The book: execute every section notebook against the best profile the results store holds
# completely (results only: a missing result is an error, nothing trains), then render it with
# warnings as errors. A page from a better profile is never replaced by a lesser one.
# `make html` only renders book/*.ipynb as they are.
.PHONY: book html reproduce
book: install
	$(BIN)/python -m sslmem.book.reproduce --profile stored
	$(MAKE) html

# Recompute a profile from scratch into a fresh store (resumable; swapped in when complete),
# then execute the book against it. Encoders cached in runs/ are reused: `make clean-runs` first
# to retrain them too.
PROFILE ?= tiny
# units in parallel processes: on a CPU two single-threaded trainings use 2 cores best
JOBS ?= $(if $(filter paper,$(PROFILE)),1,2)
reproduce: install
	$(BIN)/sslmem plan --profile $(PROFILE) --run --fresh --jobs $(JOBS)
	$(BIN)/python -m sslmem.book.reproduce --profile $(PROFILE) --results-only
	$(MAKE) html

html: install
	MPLBACKEND= $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "book: $(abspath _build/html/index.html)"
