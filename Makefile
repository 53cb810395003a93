# sslmem — the two commands that matter:
#   make book   reproduce every paper section and render the book (GPU: paper profile; CPU: smoke run)
#   make test   create .venv if missing, install the pinned set, run the test suite
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

# The book: execute every section notebook (paper profile on a CUDA GPU, tiny on CPU) with the
# runner, then render it with warnings as errors. `make html` only renders book/*.ipynb as they are.
.PHONY: book html
book: install
	$(BIN)/python -m sslmem.reproduce --profile auto
	$(MAKE) html

html: install
	MPLBACKEND= $(BIN)/jupyter-book build . -W -n --keep-going
	@echo "book: $(abspath _build/html/index.html)"
