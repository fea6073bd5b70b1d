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

# The TypeScript SDK (clients/typescript) is built with npm for its tests and linted with tsc
# (as are the benchmark's Node load processes, bench/src/herald_bench/node, checked as JS);
# `make run` needs none of it. Without npm it is skipped with a notice (an error under CI=true).
TS := clients/typescript
TS_INSTALLED := $(TS)/node_modules/.herald-installed
TS_BUILT := $(TS)/dist/.herald-built
TS_SOURCES := $(wildcard $(TS)/src/*.ts) $(TS)/tsconfig.json $(TS)/scripts/build.mjs
NO_NPM := echo "npm not found: the TypeScript SDK is not built, linted or tested"; \
	case "$${CI:-}" in 1|true|TRUE|yes) echo "CI=true: failing instead" >&2; exit 1;; esac

.PHONY: run test lint fmt venv clean bench bench-quick ts-sdk ts-lint

$(STAMP): $(INPUTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -r requirements-dev.txt $(PACKAGES)
	@touch $(STAMP)

venv: $(STAMP)

$(TS_INSTALLED): $(TS)/package.json $(TS)/.npmrc
	cd $(TS) && npm install --no-audit --no-fund
	@touch $@

$(TS_BUILT): $(TS_INSTALLED) $(TS_SOURCES)
	cd $(TS) && npm run build
	@touch $@

ts-sdk:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(TS_BUILT); else $(NO_NPM); fi

ts-lint:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(TS_INSTALLED) && \
		cd $(TS) && ./node_modules/.bin/tsc --noEmit --strict -p tsconfig.json && \
		./node_modules/.bin/tsc --noEmit --strict -p tsconfig.test.json && \
		./node_modules/.bin/tsc --noEmit --strict -p ../../bench/src/herald_bench/node/tsconfig.json; else $(NO_NPM); fi

run: $(STAMP)
	$(BIN)/herald up

test: $(STAMP) ts-sdk
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/herald bench $(BENCH_ARGS)

bench-quick: $(STAMP)
	$(BIN)/herald bench --quick $(BENCH_ARGS)

lint: $(STAMP) ts-lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var $(TS)/node_modules $(TS)/dist
