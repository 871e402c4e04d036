"""Every documented `KALSHI_*` variable reaches the code through the resources and acts in a real Dagster run.

The runs materialize the real `kalshi/markets` asset against the local exchange with resources built by
`resources_from_env()`, the same function the code location uses; each test changes one variable and
checks what the run did (requests the exchange saw, the failure it reported, the files and rows it wrote).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import (
    KalshiApiResource,
    LiveResource,
    WarehouseResource,
    check_resources,
    kalshi_config_from_env,
    resources_from_env,
)
from kalshi_pipeline.defs.settings import SETTINGS, SettingError, resource_fields
from kalshi_pipeline.kalshi import DEMO_BASE_URL, PRODUCTION_BASE_URL
from kalshi_pipeline_tests.defs.markets.helpers import materialization_metadata, sim_dates

README = Path(__file__).parents[2] / "README.md"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
PUBLIC_PEM = (
    KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)

Env = dict[str, str]


# --------------------------------------------------------------------------- unit: the table itself


def test_the_settings_table_is_the_readme_table() -> None:
    text = README.read_text()
    section = text[text.index("| `KALSHI_API_BASE_URL`") :]
    section = section[: section.index("\n\n")]
    documented = set(re.findall(r"`(KALSHI_[A-Z_]+)`", section))
    assert documented == {s.env for s in SETTINGS}


def test_text_settings_are_env_vars_and_numbers_are_parsed() -> None:
    fields = resource_fields(
        {"KALSHI_API_KEY_ID": "k", "KALSHI_TIMEOUT_S": "2.5", "KALSHI_LIVE_REFRESH_SECONDS": "7"}
    )
    assert isinstance(fields["kalshi"]["api_key_id"], dg.EnvVar)
    assert fields["kalshi"]["timeout_s"] == 2.5
    assert fields["live"] == {"refresh_seconds": 7}
    assert fields["warehouse"] == {}


def test_base_url_wins_over_the_env_preset() -> None:
    fields = resource_fields(
        {"KALSHI_ENV": "demo", "KALSHI_API_BASE_URL": "http://h:1/trade-api/v2"}
    )
    assert fields["kalshi"]["base_url"].env_var_name == "KALSHI_API_BASE_URL"
    assert (
        resource_fields({"KALSHI_ENV": "demo"})["kalshi"]["base_url"].env_var_name == "KALSHI_ENV"
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("KALSHI_TIMEOUT_S", "soon", "KALSHI_TIMEOUT_S='soon' is not a number"),
        ("KALSHI_MAX_RETRIES", "2.5", "KALSHI_MAX_RETRIES='2.5' is not an integer"),
        ("KALSHI_MAX_RETRIES", "-1", "KALSHI_MAX_RETRIES='-1' must be at least 0"),
        ("KALSHI_MAX_CONCURRENCY", "0", "KALSHI_MAX_CONCURRENCY='0' must be at least 1"),
        ("KALSHI_LIVE_REFRESH_SECONDS", "soon", "KALSHI_LIVE_REFRESH_SECONDS='soon' is not an"),
        ("KALSHI_LIVE_MAX_HOURS", "0.1", "KALSHI_LIVE_MAX_HOURS='0.1' must be at least 0.5"),
        ("KALSHI_DUCKDB_LOCK_TIMEOUT", "x", "KALSHI_DUCKDB_LOCK_TIMEOUT='x' is not a number"),
    ],
)
def test_a_bad_number_is_one_line_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingError) as info:
        resources_from_env({name: value})
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KALSHI_RATE_LIMIT_TIER": "platinum"}, "KALSHI_RATE_LIMIT_TIER 'platinum' is unknown"),
        ({"KALSHI_API_BASE_URL": "ftp://x"}, "KALSHI_API_BASE_URL 'ftp://x' is not an http(s) URL"),
        ({"KALSHI_LIVE_MODE": "grpc"}, "KALSHI_LIVE_MODE='grpc' is not one of rest, websocket"),
        ({"KALSHI_WAREHOUSE_URL": "mysql://h/db"}, "(from KALSHI_WAREHOUSE_URL)"),
        ({"KALSHI_SERIES": " , "}, "KALSHI_SERIES is empty"),
        ({"KALSHI_API_KEY_ID": "k"}, "KALSHI_API_KEY_ID is set but no private key"),
    ],
)
def test_settings_are_checked_when_the_definitions_load(
    monkeypatch: pytest.MonkeyPatch, env: Env, message: str
) -> None:
    for name in {s.env for s in SETTINGS}:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingError, match=re.escape(message)):
        check_resources(resources_from_env())


def test_defaults_without_env() -> None:
    built = resources_from_env({})
    kalshi, warehouse, live = built["kalshi"], built["warehouse"], built["live"]
    assert kalshi.client_config().base_url == "https://external-api.kalshi.com/trade-api/v2"
    assert kalshi.series_tickers() == ["KXNBAGAME"]
    assert kalshi.api_key_id is None and not kalshi.has_credentials
    assert warehouse.url == "duckdb:///data/kalshi.duckdb"
    assert live.settings(has_credentials=False).mode == "rest"
    assert live.settings(has_credentials=True).mode == "websocket"
    check_resources(built)


def test_a_postgres_warehouse_also_holds_the_rate_budget() -> None:
    kalshi = resources_from_env({"KALSHI_WAREHOUSE_URL": "postgresql://u:pw@h/db"})["kalshi"]
    assert kalshi.rate_budget_url.env_var_name == "KALSHI_WAREHOUSE_URL"
    assert "pw" not in repr(kalshi)


# --------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def exchange(start_simulator_module: Callable[..., Any]) -> Any:
    """An exchange that knows key `k1` and answers a request signed by any other key with 401."""
    return start_simulator_module(auth_keys={"k1": PUBLIC_PEM})


@pytest.fixture(scope="module")
def game_date(exchange: Any) -> date:
    return sim_dates(exchange.base_url).archived()


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Materialize `kalshi/markets` with exactly these variables set (plus a DuckDB warehouse)."""

    def materialize(env: Env, partition: date) -> dg.ExecuteInProcessResult:
        for name in {s.env for s in SETTINGS}:
            monkeypatch.delenv(name, raising=False)
        env = {"KALSHI_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb", **env}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        resources = resources_from_env()
        return dg.materialize(
            [markets],
            resources=resources,
            partition_key=partition.isoformat(),
            raise_on_error=False,
        )

    yield materialize


def signed(exchange: Any, **extra: str) -> Env:
    return {
        "KALSHI_API_BASE_URL": exchange.base_url,
        "KALSHI_API_KEY_ID": "k1",
        "KALSHI_PRIVATE_KEY": PEM,
        "KALSHI_RATE_LIMIT_TIER": "off",
        **extra,
    }


def failure(result: dg.ExecuteInProcessResult) -> str:
    """The failed step's error and its causes, one message per line."""
    assert not result.success
    events = [e for e in result.all_events if e.is_step_failure]
    assert events, "the run failed outside its step"
    messages = []
    error = events[0].step_failure_data.error
    while error is not None:
        messages.append(error.message.strip())
        error = error.cause
    return "\n".join(messages)


def requests_seen(exchange: Any) -> int:
    with urllib.request.urlopen(exchange.base_url.split("/trade-api")[0] + "/_sim/stats") as resp:
        return int(json.load(resp)["totals"]["requests"])


def test_base_url_key_id_and_private_key_text_act(run: Any, exchange: Any, game_date: date) -> None:
    result = run(signed(exchange), game_date)
    assert result.success
    meta = materialization_metadata(result, "kalshi/markets")
    assert meta["games"] > 0
    assert meta["api"] == f"{exchange.base_url} (signed)"
    # Another key id, or another key under the right id, and the exchange refuses the signatures.
    assert "401" in failure(run(signed(exchange, KALSHI_API_KEY_ID="nobody"), game_date))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    assert "401" in failure(run(signed(exchange, KALSHI_PRIVATE_KEY=other_pem), game_date))


def test_an_escaped_one_line_pem_and_a_key_file_both_sign(
    run: Any, exchange: Any, game_date: date, tmp_path: Path
) -> None:
    one_line = PEM.strip().replace("\n", "\\n")
    assert run(signed(exchange, KALSHI_PRIVATE_KEY=one_line), game_date).success
    key_file = tmp_path / "key.pem"
    key_file.write_text(PEM)
    env = signed(exchange, KALSHI_PRIVATE_KEY_PATH=str(key_file))
    env.pop("KALSHI_PRIVATE_KEY")
    assert run(env, game_date).success


def test_series_acts(run: Any, exchange: Any, game_date: date) -> None:
    assert "KXNHLGAME" in failure(run(signed(exchange, KALSHI_SERIES="KXNHLGAME"), game_date))


def test_client_tuning_is_what_the_run_reports(run: Any, exchange: Any, game_date: date) -> None:
    env = signed(
        exchange,
        KALSHI_RATE_LIMIT_TIER="advanced",
        KALSHI_TIMEOUT_S="12.5",
        KALSHI_CONNECT_TIMEOUT_S="0.7",
        KALSHI_MAX_RETRIES="3",
        KALSHI_BACKOFF_MAX_S="1.5",
        KALSHI_MAX_CONCURRENCY="4",
    )
    meta = materialization_metadata(run(env, game_date), "kalshi/markets")
    assert meta["api_client"] == (
        "tier advanced, timeout 12.5 s, connect 0.7 s, retries 3, backoff cap 1.5 s, concurrency 4"
    )


def test_max_retries_acts(run: Any, start_simulator: Callable[..., Any], game_date: date) -> None:
    broken = start_simulator(faults="500=1.0")
    env = {"KALSHI_API_BASE_URL": broken.base_url, "KALSHI_RATE_LIMIT_TIER": "off"}
    seen = []
    for retries in ("0", "2"):
        before = requests_seen(broken)
        env = {**env, "KALSHI_MAX_RETRIES": retries, "KALSHI_BACKOFF_MAX_S": "0.01"}
        assert "500" in failure(run(env, game_date))
        seen.append(requests_seen(broken) - before)
    # Every request the run made was tried once, then three times: the first attempt and two retries.
    assert seen[0] > 0 and seen[1] == 3 * seen[0]


def test_timeout_acts(run: Any, start_simulator: Callable[..., Any], game_date: date) -> None:
    slow = start_simulator(faults="latency=1.0:1500")
    env = {
        "KALSHI_API_BASE_URL": slow.base_url,
        "KALSHI_RATE_LIMIT_TIER": "off",
        "KALSHI_MAX_RETRIES": "0",
    }
    assert "timeout" in failure(run({**env, "KALSHI_TIMEOUT_S": "0.2"}, game_date)).lower()


def test_kalshi_env_picks_the_demo_host(run: Any, game_date: date) -> None:
    env = {"KALSHI_ENV": "demo", "KALSHI_MAX_RETRIES": "0", "KALSHI_CONNECT_TIMEOUT_S": "1"}
    assert "external-api.demo.kalshi.co" in failure(run(env, game_date))


def test_warehouse_url_and_rate_budget_dir_act(
    run: Any, exchange: Any, game_date: date, tmp_path: Path
) -> None:
    budget_dir = tmp_path / "budgets"
    budget_dir.mkdir()
    warehouse = tmp_path / "elsewhere.duckdb"
    env = signed(
        exchange,
        KALSHI_RATE_LIMIT_TIER="basic",
        KALSHI_RATE_BUDGET_DIR=str(budget_dir),
        KALSHI_WAREHOUSE_URL=f"duckdb:///{warehouse}",
    )
    assert run(env, game_date).success
    assert list(budget_dir.glob("kalshi_rate_budget_*"))
    with WarehouseResource(url=f"duckdb:///{warehouse}").open() as wh:
        assert wh.table_counts()["markets"] > 0


def test_rate_budget_url_acts(run: Any, exchange: Any, game_date: date, pg_url: str) -> None:
    env = signed(exchange, KALSHI_RATE_LIMIT_TIER="basic", KALSHI_RATE_BUDGET_URL=pg_url)
    assert run(env, game_date).success
    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM kalshi.rate_budget").fetchall()]
    assert any(exchange.base_url in name for name in names)


def test_ws_url_reaches_the_stream_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KALSHI_WS_URL", "ws://127.0.0.1:9/trade-api/ws/v2")
    monkeypatch.setenv("KALSHI_API_BASE_URL", "http://127.0.0.1:9/trade-api/v2")

    @dg.asset
    def stream_url(kalshi: KalshiApiResource) -> str:
        return kalshi.client_config().websocket_url()

    result = dg.materialize([stream_url], resources={"kalshi": resources_from_env()["kalshi"]})
    assert result.output_for_node("stream_url") == "ws://127.0.0.1:9/trade-api/ws/v2"


_HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(120)
"""


def test_duckdb_lock_timeout_acts(run: Any, exchange: Any, game_date: date, tmp_path: Path) -> None:
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        env = signed(
            exchange, KALSHI_WAREHOUSE_URL=f"duckdb:///{path}", KALSHI_DUCKDB_LOCK_TIMEOUT="0.5"
        )
        message = failure(run(env, game_date))
        assert "locked" in message.lower() and "0.5" in message
    finally:
        holder.kill()
        holder.wait()


def test_live_settings_come_from_the_live_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "KALSHI_LIVE_MODE": "WebSocket",
        "KALSHI_LIVE_LEAD_MINUTES": "20",
        "KALSHI_LIVE_MAX_HOURS": "4",
        "KALSHI_LIVE_REFRESH_SECONDS": "7",
        "KALSHI_LIVE_MARKETS_REFRESH_SECONDS": "60",
        "KALSHI_LIVE_RECONCILE_SECONDS": "90",
        "KALSHI_LIVE_PROGRESS_SECONDS": "5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.build_resources({"live": resources_from_env()["live"]}) as built:
        live = built.live
    assert isinstance(live, LiveResource)
    settings = live.settings(has_credentials=True)
    assert settings.mode == "websocket"
    assert (settings.lead.total_seconds(), settings.max_live.total_seconds()) == (1200, 14400)
    assert (settings.refresh_seconds, settings.markets_refresh_seconds) == (7, 60)
    assert settings.reconcile_seconds == 90
    # How often a stream run reports what it wrote; the UI test sees its reports at this pace.
    assert live.progress_seconds == 5
    fallback = LiveResource(mode="websocket").settings(has_credentials=False)
    assert fallback.mode == "rest" and "rejects unsigned handshakes" in fallback.note
    with pytest.raises(SettingError, match="KALSHI_LIVE_MODE='grpc' is not one of rest, websocket"):
        LiveResource(mode="grpc").settings(has_credentials=True)


# --------------------------------------------------------------------------- the client settings the variables give
# (moved from the client's own tests when the client stopped reading the environment)


def test_no_variables_mean_production_unsigned() -> None:
    config = kalshi_config_from_env({})
    assert config.base_url == PRODUCTION_BASE_URL
    assert config.rate_limit_tier == "basic"
    assert not config.has_credentials and config.signer() is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KALSHI_ENV": "demo"}, DEMO_BASE_URL),
        ({"KALSHI_API_BASE_URL": "demo"}, DEMO_BASE_URL),
        ({"KALSHI_API_BASE_URL": "PROD"}, PRODUCTION_BASE_URL),
        (
            {"KALSHI_ENV": "demo", "KALSHI_API_BASE_URL": "http://127.0.0.1:8765/trade-api/v2/"},
            "http://127.0.0.1:8765/trade-api/v2",
        ),
    ],
)
def test_base_url_presets_and_override(env: Env, expected: str) -> None:
    assert kalshi_config_from_env(env).base_url == expected


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"KALSHI_API_BASE_URL": "external-api.kalshi.com"}, "KALSHI_API_BASE_URL"),
        ({"KALSHI_API_BASE_URL": "ftp://x/trade-api/v2"}, "KALSHI_API_BASE_URL"),
        ({"KALSHI_ENV": "staging"}, "KALSHI_ENV='staging' is unknown"),
        ({"KALSHI_RATE_LIMIT_TIER": "platinum"}, "KALSHI_RATE_LIMIT_TIER"),
        ({"KALSHI_MAX_RETRIES": "many"}, "KALSHI_MAX_RETRIES='many'"),
        ({"KALSHI_TIMEOUT_S": "-1"}, "KALSHI_TIMEOUT_S='-1'"),
        ({"KALSHI_API_KEY_ID": "key-1"}, "KALSHI_PRIVATE_KEY"),
        ({"KALSHI_PRIVATE_KEY_PATH": "/tmp/x.key"}, "KALSHI_API_KEY_ID"),
        ({"KALSHI_WS_URL": "ftp://nope"}, "KALSHI_WS_URL"),
    ],
)
def test_bad_client_settings_are_one_line_errors(env: Env, needle: str) -> None:
    with pytest.raises(SettingError) as info:
        kalshi_config_from_env(env)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_key_from_path_and_from_escaped_pem_text(tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(PEM)
    from_path = kalshi_config_from_env(
        {"KALSHI_API_KEY_ID": "key-1", "KALSHI_PRIVATE_KEY_PATH": str(key_file)}
    )
    assert from_path.signer() is not None
    pkcs1 = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    escaped = pkcs1.strip().replace("\n", "\\n")
    from_text = kalshi_config_from_env(
        {"KALSHI_API_KEY_ID": "key-1", "KALSHI_PRIVATE_KEY": escaped}
    )
    assert from_text.signer() is not None
    both = kalshi_config_from_env(
        {
            "KALSHI_API_KEY_ID": "key-1",
            "KALSHI_PRIVATE_KEY": PEM,
            "KALSHI_PRIVATE_KEY_PATH": "/does/not/exist.pem",
        }
    )
    assert both.private_key_path is None and both.signer() is not None
    tuned = kalshi_config_from_env(
        {"KALSHI_RATE_LIMIT_TIER": " Premier ", "KALSHI_MAX_RETRIES": "2"}
    )
    assert (tuned.rate_limit_tier, tuned.max_retries) == ("premier", 2)


def test_a_missing_or_malformed_key_fails_when_the_settings_are_read(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(SettingError, match="does not exist") as info:
        kalshi_config_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(missing)})
    assert str(missing) in str(info.value)
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(SettingError) as info:
        kalshi_config_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY_PATH": str(bad)})
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(SettingError, match="KALSHI_PRIVATE_KEY"):
        kalshi_config_from_env({"KALSHI_API_KEY_ID": "k", "KALSHI_PRIVATE_KEY": "garbage"})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "wss://external-api-ws.kalshi.com/trade-api/ws/v2"),
        ({"KALSHI_API_BASE_URL": "http://h:1/trade-api/v2"}, "ws://h:1/trade-api/ws/v2"),
        (
            {"KALSHI_WS_URL": "ws://x:2/trade-api/ws/v2", "KALSHI_API_BASE_URL": "demo"},
            "ws://x:2/trade-api/ws/v2",
        ),
        ({"KALSHI_API_BASE_URL": "demo"}, "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"),
    ],
)
def test_websocket_url_precedence(env: Env, expected: str) -> None:
    assert kalshi_config_from_env(env).websocket_url() == expected
