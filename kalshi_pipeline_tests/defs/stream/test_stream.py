"""Tests of the stream job (in process, against the simulator and a real Postgres) and the audit check."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import psutil
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.defs.stream.checks import stream_vs_rest
from kalshi_pipeline.defs.stream.jobs import STREAM_JOB_NAME, stream_job, stream_run_request
from kalshi_pipeline.executor import run_executor
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.stream import StreamWriter

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
#: Longest a stream test waits for the events it provokes (a budget, not an expected duration).
OUTAGE_BUDGET_S = 90.0


def test_stream_run_request_targets_the_stream_job() -> None:
    req = stream_run_request(
        "2026-11-24", ["KXNBAGAME-26NOV24BOSUTA", "KXNBAGAME-26NOV24AAABBB", ""]
    )
    assert req.job_name == STREAM_JOB_NAME
    config = req.run_config["ops"]["stream_live_games"]["config"]
    assert config == {
        "game_date": "2026-11-24",
        "event_tickers": ["KXNBAGAME-26NOV24AAABBB", "KXNBAGAME-26NOV24BOSUTA"],
    }
    assert req.tags["kalshi/stream_game_date"] == "2026-11-24"
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        stream_run_request("24/11/2026", ["X"])
    with pytest.raises(ValueError, match="at least one event ticker"):
        stream_run_request("2026-11-24", [])
    assert stream_job.executor_def is run_executor


def test_stream_job_writes_rows_survives_a_disconnect_and_reconciles_with_rest(
    start_simulator: Any, fresh_pg_url: str
) -> None:
    # The first connection drops after two market messages: the initial ticker snapshot (one message per
    # subscribed market, sent on subscribe) triggers it at once, whatever the markets' message rate.
    sim = start_simulator(auth_keys={"key-1": PEM}, ws_faults="disconnect_after=2")
    world = sim.app.state.world
    games = [g for g in world.games if g.injected]
    game_date = games[0].game_date.isoformat()
    events = [g.event_ticker for g in games if g.game_date.isoformat() == game_date]
    resources = {
        "kalshi": KalshiApiResource(
            base_url=sim.base_url,
            api_key_id="key-1",
            private_key=PEM,
            rate_limit_tier="off",
            shared_budget=False,
        ),
        "warehouse": WarehouseResource(url=fresh_pg_url),
        "live": LiveResource(),
    }
    config = {
        "ops": {
            "stream_live_games": {
                "config": {
                    "game_date": game_date,
                    "event_tickers": events,
                    "max_seconds": 6.0,
                    "reconcile_every_s": 1.0,
                }
            }
        }
    }
    result = stream_job.execute_in_process(run_config=config, resources=resources)
    assert result.success
    output = result.output_for_node("stream_live_games")
    assert output["stop_reason"].startswith("max_seconds") and output["mismatched_minutes"] == 0
    meta = result.get_step_success_events()[0].step_success_data  # step succeeded
    assert meta is not None

    wh = open_warehouse(fresh_pg_url)
    try:
        counts = wh.query_df(
            "SELECT (SELECT count(*) FROM kalshi.ticks) AS ticks, (SELECT count(*) FROM kalshi.trades) AS trades, "
            "(SELECT count(*) FROM kalshi.candlesticks_ws) AS ws, (SELECT count(*) FROM kalshi.candlesticks) AS c"
        ).iloc[0]
        assert counts["ticks"] > 0 and counts["ws"] > 0 and counts["c"] > 0
        kinds = list(wh.query_df("SELECT kind FROM kalshi.stream_events ORDER BY event_at")["kind"])
        assert kinds.count("connect") >= 2 and "disconnect" in kinds and "gap" in kinds
        # The final reconcile replaced every minute the stream touched with REST's candle.
        sources = set(wh.query_df("SELECT DISTINCT source FROM kalshi.candlesticks")["source"])
        assert sources == {"live"}
        raw = wh.query_df("SELECT count(*) AS n FROM kalshi.candlesticks_raw")["n"].iloc[0]
        assert raw == counts["c"]
    finally:
        wh.close()


def _ws_and_rest(wh: Any, end: pd.Timestamp, rest_close: str) -> None:
    base = {
        "ticker": "KXNBAGAME-25DEC19SASATL-ATL",
        "event_ticker": "KXNBAGAME-25DEC19SASATL",
        "series_ticker": "KXNBAGAME",
        "game_date": dt.date(2025, 12, 19),
        "period_interval": 1,
        "end_period_ts": end,
        **{f"price_{k}": Decimal("0.5") for k in ("open", "high", "low", "close", "mean")},
        "price_previous": None,
        **{f"yes_bid_{k}": Decimal("0.4") for k in ("open", "high", "low", "close")},
        **{f"yes_ask_{k}": Decimal("0.6") for k in ("open", "high", "low", "close")},
        "volume": Decimal("3"),
        "open_interest": Decimal("10"),
    }
    writer = StreamWriter(wh)
    writer.add_candle({**base, "complete": True, "last_event_ts": end})
    writer.flush()
    rest = pd.DataFrame([{**base, "price_close": Decimal(rest_close), "source": "live"}])
    rest["ingested_at"] = end + pd.Timedelta(seconds=5)
    with wh.transaction() as tx:
        tx.upsert("candlesticks", rest)


def test_stream_vs_rest_check_flags_differences(fresh_pg_url: str) -> None:
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()
    end = pd.Timestamp.now(tz="UTC").floor("min") - pd.Timedelta(minutes=5)
    resource = WarehouseResource(url=fresh_pg_url)
    try:
        _ws_and_rest(wh, end, "0.5")
        ok = stream_vs_rest(warehouse=resource)
        assert isinstance(ok, dg.AssetCheckResult)
        assert ok.passed and ok.metadata["compared_minutes"].value == 1
        _ws_and_rest(wh, end - pd.Timedelta(minutes=1), "0.51")
        bad = stream_vs_rest(warehouse=resource)
        assert isinstance(bad, dg.AssetCheckResult)
        assert not bad.passed and bad.metadata["mismatched_minutes"].value == 1
        assert bad.severity == dg.AssetCheckSeverity.ERROR
    finally:
        wh.close()


def test_runner_keeps_rows_while_the_database_is_away(
    start_simulator: Any, fresh_pg_url: str
) -> None:
    import asyncio
    import threading

    import psycopg

    from kalshi_pipeline.defs.stream.runner import StreamRunner, StreamSettings
    from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
    from kalshi_pipeline.kalshi.ws import KalshiWebSocket

    sim = start_simulator(auth_keys={"key-1": PEM})
    games = [g for g in sim.app.state.world.games if g.injected]
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()
    config = KalshiConfig(
        base_url=sim.base_url, api_key_id="key-1", private_key_pem=PEM, rate_limit_tier="off"
    )
    restored = threading.Event()
    outage_log: list[str] = []

    def caught_up() -> bool:
        # The run ends once the outage is over and everything it buffered has been written.
        return restored.is_set() and runner.writer.buffered == 0

    runner = StreamRunner(
        client_factory=lambda: KalshiClient(config),
        ws_factory=lambda **kw: KalshiWebSocket.from_config(config, url=sim.ws_url, **kw),
        warehouse=wh,
        game_date=games[0].game_date,
        event_tickers=[g.event_ticker for g in games if g.game_date == games[0].game_date],
        # max_seconds is only the budget; the run stops as soon as it caught up after the outage.
        settings=StreamSettings(max_seconds=OUTAGE_BUDGET_S, reconcile_every_s=60.0),
        should_stop=caught_up,
    )

    def outage() -> None:
        # The ticks table disappears (a database that goes away for these writes) once ticks are being
        # written, and comes back once a write has failed: conditions, not a schedule the stream's message
        # rate or the machine's load could miss.
        deadline = time.monotonic() + OUTAGE_BUDGET_S
        with psycopg.connect(fresh_pg_url, autocommit=True) as conn:

            def wait_for(what: str, condition: Callable[[], bool]) -> bool:
                while not condition():
                    if time.monotonic() > deadline:
                        outage_log.append(f"gave up waiting for {what}")
                        return False
                    time.sleep(0.05)
                return True

            def ticks_stored() -> bool:
                row = conn.execute("SELECT count(*) FROM kalshi.ticks").fetchone()
                return row is not None and row[0] > 0

            if not wait_for("stored ticks", ticks_stored):
                return
            conn.execute("ALTER TABLE kalshi.ticks RENAME TO ticks_away")
            try:
                wait_for("a failed write", lambda: runner.summary.write_errors > 0)
            finally:
                conn.execute("ALTER TABLE kalshi.ticks_away RENAME TO ticks")
                restored.set()

    thread = threading.Thread(target=outage)
    thread.start()
    summary = asyncio.run(runner.run())
    thread.join()
    try:
        assert not outage_log, outage_log
        assert summary.stop_reason == "stop requested"  # it caught up within the budget
        assert summary.write_errors > 0, "the outage must have been hit"
        stored = wh.query_df("SELECT count(*) AS n FROM kalshi.trades")["n"].iloc[0]
        ticks = wh.query_df("SELECT count(*) AS n FROM kalshi.ticks")["n"].iloc[0]
        assert stored == summary.trades and ticks > 0, (
            "every trade received was written after the outage"
        )
        assert runner.writer.buffered == 0
    finally:
        wh.close()


def test_stream_run_ends_on_sigterm_and_leaves_no_process(
    start_simulator: Any, fresh_pg_url: str, tmp_path: Any
) -> None:
    """A stream run (no end of its own) stops on SIGTERM, ends CANCELED (an operator's stop) and leaves no child behind."""
    sim = start_simulator(auth_keys={"key-1": PEM})
    games = [g for g in sim.app.state.world.games if g.injected]
    game_date = games[0].game_date.isoformat()
    events = [g.event_ticker for g in games if g.game_date.isoformat() == game_date]
    # The run as an operator starts it: the CLI on the code location, settings from the environment.
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "KALSHI_API_BASE_URL": sim.base_url,
        "KALSHI_API_KEY_ID": "key-1",
        "KALSHI_PRIVATE_KEY": PEM,
        "KALSHI_RATE_LIMIT_TIER": "off",
        "KALSHI_WAREHOUSE_URL": fresh_pg_url,
    }
    config = tmp_path / "stream.yaml"
    config.write_text(
        json.dumps(
            {
                "ops": {
                    "stream_live_games": {
                        "config": {"game_date": game_date, "event_tickers": events}
                    }
                }
            }
        )
    )
    command = [
        str(Path(sys.executable).parent / "dagster"),
        *("job", "execute", "-m", "kalshi_pipeline.definitions", "-j", STREAM_JOB_NAME),
        *("-c", str(config)),
    ]
    proc = subprocess.Popen(
        command,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wh = open_warehouse(fresh_pg_url)
        try:
            deadline = time.monotonic() + 120
            connected = False
            while not connected and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.5)
                try:
                    connected = bool(
                        wh.query_df(
                            "SELECT count(*) AS n FROM kalshi.stream_events WHERE kind = 'connect'"
                        )["n"].iloc[0]
                    )
                except Exception:  # the schema is created by the child; not there yet
                    connected = False
        finally:
            wh.close()
        assert connected and proc.poll() is None, "the stream run did not start streaming"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=90)
        left = [
            p.pid
            for p in psutil.process_iter(["status"])
            if p.info["status"] != psutil.STATUS_ZOMBIE and _sid(p.pid) == proc.pid
        ]
        assert left == [], f"processes of the stream run still alive after SIGTERM: {left}"
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            runs = instance.get_runs()
            assert [r.status for r in runs] == [dg.DagsterRunStatus.CANCELED]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _sid(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None
