# Every target bootstraps .venv (python3 -m venv) with the versions pinned in constraints.txt,
# and reinstalls when a pyproject, the requirements or the constraints change.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.herald-installed
PACKAGES := -e libs/common -e services/gateway -e services/api -e services/bridge -e cli -e bench -e clients/python
INPUTS := constraints.txt requirements-dev.txt libs/common/pyproject.toml cli/pyproject.toml \
	services/gateway/pyproject.toml services/api/pyproject.toml services/bridge/pyproject.toml bench/pyproject.toml \
	clients/python/pyproject.toml

export PIP_CONSTRAINT := $(CURDIR)/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint fmt venv clean bench bench-quick

$(STAMP): $(INPUTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements-dev.txt $(PACKAGES)
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/herald up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/herald bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/herald bench --quick $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
