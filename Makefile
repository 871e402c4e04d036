PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-unit lint format demo dev simulator bench clean

# Installed without bytecode, then compiled on every core (~65 s in all instead of ~100 s here). Where
# PYTHONDONTWRITEBYTECODE is set, as on CI's machine, an import writes no bytecode, so without it every
# process would compile all it imports from source (`make test` compiles the project's own modules too).
# Compiling only saves time: a file that does not compile is left to import time, where pytest or the
# import names the error, as pip's own compile step leaves it.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-compile -e ".[dev]"
	$(BIN)/python -m compileall -q -j 0 "$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" >/dev/null || true
	touch $(STAMP)

install: $(STAMP)

# Four workers, one test module each at a time: most integration tests wait on sockets, daemons and
# subprocesses (two workers kept two cores under half busy; four, about two thirds), so four share two
# cores well. kalshi_pipeline_tests/conftest.py deals the modules of the `slow` tests (a minute or so each)
# out first, so no worker ends the run alone with one of them. PYTEST_ARGS="-n 0" runs it serially.
test: $(STAMP)
	$(BIN)/python -m compileall -q -j 0 kalshi_pipeline kalshi_pipeline_tests >/dev/null || true
	$(BIN)/python -m pytest -n 4 --dist loadfile $(PYTEST_ARGS)

# Unit tests only: no Postgres, no sockets, no processes (a guard in kalshi_pipeline_tests/conftest.py fails
# any attempt); seconds, with Postgres stopped.
test-unit: $(STAMP)
	$(BIN)/python -m pytest -m unit -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright
	$(BIN)/hadolint Dockerfile

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(STAMP)
	$(BIN)/kalshi-pipeline demo $(DEMO_ARGS)

# `make dev`: the Dagster UI (http://127.0.0.1:3000) on a local simulator with live games in progress, so the
# live sensor (RUNNING by default) starts pulling them at once. DAGSTER_HOME is .dagster_home/ with a link to
# dagster.yaml, and the warehouse is the demo's data/kalshi.duckdb: one warehouse per Dagster instance, so the
# UI shows exactly the partitions this warehouse has (`kalshi-pipeline bind-instance` refuses a second one).
# Override DEV_WAREHOUSE_URL (e.g. a postgresql:// URL) together with DEV_HOME, or the ports, as needed.
DEV_HOME ?= $(CURDIR)/.dagster_home
DEV_SIM_PORT ?= 8765
DEV_UI_PORT ?= 3000
DEV_LIVE_GAMES ?= 2
DEV_GAME_MINUTES ?= 60
DEV_WAREHOUSE_URL ?= duckdb:///$(CURDIR)/data/kalshi.duckdb
DEV_LIVE_MODE ?= websocket
DEV_KEY := $(DEV_HOME)/dev-key.pem

dev: $(STAMP)
	mkdir -p $(DEV_HOME) data
	ln -sf $(CURDIR)/dagster.yaml $(DEV_HOME)/dagster.yaml
	$(BIN)/kalshi-pipeline bind-instance $(DEV_HOME) $(DEV_WAREHOUSE_URL)
	# A throwaway key pair that only the local simulator trusts: Kalshi's WebSocket requires signed handshakes.
	test -f $(DEV_KEY) || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $(DEV_KEY) 2>/dev/null
	openssl pkey -in $(DEV_KEY) -pubout -out $(DEV_HOME)/dev-key.pub
	# On exit, Ctrl-C or a SIGTERM to make, the whole `dagster dev` session is terminated, not just its
	# leader: Dagster's code server waits for in-flight runs before it exits, and a stream run only ends
	# when its games settle (hours), so it would otherwise outlive `dagster dev`. dagster dev runs in its
	# own session with SIGINT restored (a background job of sh inherits SIGINT ignored, and dagster maps
	# SIGTERM to the SIGINT handler, so it would ignore both); the run worker turns SIGTERM into a
	# failed run. Whatever is still alive after 30 s is killed.
	$(BIN)/kalshi-pipeline simulator --host 127.0.0.1 --port $(DEV_SIM_PORT) \
		--live-games $(DEV_LIVE_GAMES) --game-minutes $(DEV_GAME_MINUTES) \
		--auth-key dev=$(DEV_HOME)/dev-key.pub & SIM=$$!; \
	DAGSTER_HOME=$(DEV_HOME) KALSHI_API_BASE_URL=http://127.0.0.1:$(DEV_SIM_PORT)/trade-api/v2 \
	KALSHI_API_KEY_ID=dev KALSHI_PRIVATE_KEY_PATH=$(DEV_KEY) KALSHI_LIVE_MODE=$(DEV_LIVE_MODE) \
	KALSHI_WAREHOUSE_URL=$(DEV_WAREHOUSE_URL) \
	$(BIN)/python -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); \
		os.setsid(); os.chdir(os.environ["DAGSTER_HOME"]); os.execv(sys.argv[1], sys.argv[1:])' \
		$(CURDIR)/$(BIN)/dagster dev -w $(CURDIR)/workspace.yaml -h 127.0.0.1 -p $(DEV_UI_PORT) & DEV=$$!; \
	stop() { \
		trap - EXIT INT TERM HUP; kill -TERM -$$DEV $$SIM 2>/dev/null; i=0; \
		while [ $$i -lt 60 ] && ps -o stat= -s $$DEV | grep -qv Z; do sleep 0.5; i=$$((i + 1)); done; \
		kill -KILL -$$DEV $$SIM 2>/dev/null; wait; \
	}; \
	trap 'stop; exit 130' INT TERM HUP; trap stop EXIT; \
	wait $$DEV

simulator: $(STAMP)
	$(BIN)/kalshi-pipeline simulator --host 127.0.0.1 --port 8765 --live-games 2

clean:
	rm -rf $(VENV) data .pytest_cache
