# Parley: `make serve` and `make test` do all set-up themselves (Python 3.11+ and make; the tests and
# benchmarks also need Node.js 18+ with npm, for the official phoenix client).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
STAMP := $(VENV)/.synced
NODE_STAMP := tests/conformance/node_modules/.installed

.PHONY: serve demo cluster test test-slow lint migrate clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==0.13.8

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet --python $(BIN)/python
	touch $@

NEED_NODE = @command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
	echo "This needs Node.js 18+ with npm (the suites drive Parley with the official phoenix"; \
	echo "client). Install them (Debian/Ubuntu: apt-get install nodejs npm) and run make again."; \
	exit 2; }

$(NODE_STAMP): tests/conformance/package.json tests/conformance/package-lock.json
	$(NEED_NODE)
	cd tests/conformance && npm ci --silent --no-audit --no-fund
	touch $@

serve: $(STAMP)
	$(BIN)/parley serve

# Three nodes on ports 4001-4003 sharing one embedded PostgreSQL (the data dir is shared, and
# with it the development JWT secret) over LISTEN/NOTIFY (docs/cluster.md). Ctrl-C stops all
# three in order; the last one out stops the database.
CLUSTER_NODES ?= 1 2 3
cluster: $(STAMP)
	@trap 'wait' INT TERM; \
	for n in $(CLUSTER_NODES); do \
		PORT=$$((4000 + n)) PARLEY_CLUSTER_ADAPTER=postgres PARLEY_CLUSTER_NODE_NAME=node$$n \
			$(BIN)/parley serve & \
	done; \
	wait

# Seeds a demo marketplace and chat (accounts printed once) into the database, then serves it.
demo: $(STAMP)
	$(BIN)/parley demo

migrate: $(STAMP)
	$(BIN)/parley migrate

test: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -m "not slow" -q

# Long drills marked `slow`; pytest's exit code 5 means none are marked, which is not a failure.
test-slow: $(STAMP) $(NODE_STAMP)
	$(BIN)/pytest -m slow -q || [ $$? -eq 5 ]

# No module over 500 lines (DESIGN §2): tools/check_module_size.py names any that is.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/check_module_size.py --max-lines 500 src/parley

# `make bench` (bench/run.py): BENCH_ARGS="--quick", "--large", "--only W2" or "--only P".
.PHONY: bench
BENCH_NODE_STAMP := bench/node/node_modules/.installed
$(BENCH_NODE_STAMP): bench/node/package.json bench/node/package-lock.json
	$(NEED_NODE)
	cd bench/node && npm ci --silent --no-audit --no-fund
	touch $@

# soketi 1.6.1, the peer of the Pusher workloads P1-P4: installed here, never vendored (AGPL; its
# uWebSockets.js git dependency is overridden by the npm build, see bench/soketi/package.json).
BENCH_SOKETI_STAMP := bench/soketi/node_modules/.installed
$(BENCH_SOKETI_STAMP): bench/soketi/package.json bench/soketi/package-lock.json
	$(NEED_NODE)
	cd bench/soketi && npm ci --silent --no-audit --no-fund
	touch $@

bench: $(STAMP) $(BENCH_NODE_STAMP) $(BENCH_SOKETI_STAMP)
	$(UV) sync --frozen --quiet --group bench --python $(BIN)/python
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .parley .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
