PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format demo dev simulator bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

demo: $(STAMP)
	$(BIN)/kalshi-pipeline demo $(DEMO_ARGS)

# `make dev`: the Dagster UI (http://127.0.0.1:3000) on a local simulator with live games in progress, so the
# live sensor (RUNNING by default) starts pulling them at once. DAGSTER_HOME is .dagster_home/ with a link to
# dagster.yaml; override DEV_WAREHOUSE_URL (e.g. a postgresql:// URL) or the ports as needed.
DEV_HOME ?= $(CURDIR)/.dagster_home
DEV_SIM_PORT ?= 8765
DEV_UI_PORT ?= 3000
DEV_LIVE_GAMES ?= 2
DEV_GAME_MINUTES ?= 60
DEV_WAREHOUSE_URL ?= duckdb:///$(CURDIR)/data/dev.duckdb
DEV_LIVE_MODE ?= websocket
DEV_KEY := $(DEV_HOME)/dev-key.pem

dev: $(STAMP)
	mkdir -p $(DEV_HOME) data
	ln -sf $(CURDIR)/dagster.yaml $(DEV_HOME)/dagster.yaml
	# A throwaway key pair that only the local simulator trusts: Kalshi's WebSocket requires signed handshakes.
	test -f $(DEV_KEY) || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $(DEV_KEY) 2>/dev/null
	openssl pkey -in $(DEV_KEY) -pubout -out $(DEV_HOME)/dev-key.pub
	$(BIN)/kalshi-pipeline simulator --host 127.0.0.1 --port $(DEV_SIM_PORT) \
		--live-games $(DEV_LIVE_GAMES) --game-minutes $(DEV_GAME_MINUTES) \
		--auth-key dev=$(DEV_HOME)/dev-key.pub & SIM=$$!; \
	trap 'kill $$SIM 2>/dev/null' EXIT; \
	DAGSTER_HOME=$(DEV_HOME) KALSHI_API_BASE_URL=http://127.0.0.1:$(DEV_SIM_PORT)/trade-api/v2 \
	KALSHI_API_KEY_ID=dev KALSHI_PRIVATE_KEY_PATH=$(DEV_KEY) KALSHI_LIVE_MODE=$(DEV_LIVE_MODE) \
	KALSHI_WAREHOUSE_URL=$(DEV_WAREHOUSE_URL) \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(DEV_UI_PORT)

simulator: $(STAMP)
	$(BIN)/kalshi-pipeline simulator --host 127.0.0.1 --port 8765 --live-games 2

clean:
	rm -rf $(VENV) data .pytest_cache
