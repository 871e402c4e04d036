"""The production instance config (deploy/dagster.yaml, Postgres storage) running the sensor and live runs.

Run, event-log and schedule storage live in a fresh Postgres database; the warehouse (schema `kalshi`)
shares it, as a small production deployment may. The simulator plays one live game and no seeded season, so
what the sensor sees does not depend on the time of day (at 22:11 ET the season's finished evening games
would take the tick with their final reconciles).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import dagster as dg
import pytest

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_OP, candle_assets
from kalshi_pipeline.defs.games.assets import game_probabilities, game_states
from kalshi_pipeline.defs.live.jobs import LIVE_DATE_TAG, LIVE_TAG, live_job
from kalshi_pipeline.defs.live.purge import purge_old_live_runs
from kalshi_pipeline.defs.live.sensor import live_games_sensor
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.simulated import todays_start

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def pg_instance(
    fresh_pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """A DagsterInstance loaded from deploy/dagster.yaml with DAGSTER_PG_* pointing at a fresh database."""
    url = urlparse(fresh_pg_url)
    monkeypatch.setenv("DAGSTER_PG_USERNAME", url.username or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", url.password or "")
    monkeypatch.setenv("DAGSTER_PG_HOST", url.hostname or "127.0.0.1")
    monkeypatch.setenv("DAGSTER_PG_PORT", str(url.port or 5432))
    monkeypatch.setenv("DAGSTER_PG_DB", url.path.lstrip("/"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()


def test_sensor_and_live_runs_on_a_postgres_instance(
    pg_instance: dg.DagsterInstance, fresh_pg_url: str, start_simulator
) -> None:
    from dagster_postgres import PostgresRunStorage

    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    sim = start_simulator(live_games=1, game_minutes=30, schedule=False, now=todays_start())
    resources = {
        "kalshi": KalshiApiResource(base_url=sim.base_url, rate_limit_tier="off"),
        "warehouse": WarehouseResource(url=fresh_pg_url),
        "live": LiveResource(mode="rest"),
    }
    defs = dg.Definitions(
        assets=[markets, candle_assets, game_states, game_probabilities],
        jobs=[live_job, purge_old_live_runs],
        sensors=[live_games_sensor],
        resources=resources,
    )
    job = defs.resolve_job_def("kalshi_live_job")

    def tick(cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=pg_instance, cursor=cursor, resources=resources)
        result = live_games_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return result

    def launch(result: dg.SensorResult) -> None:
        for req in result.run_requests or []:
            outcome = job.execute_in_process(
                instance=pg_instance,
                partition_key=req.partition_key,
                asset_selection=req.asset_selection,
                run_config=req.run_config,
                tags=req.tags,
            )
            assert outcome.success

    # Empty warehouse: the sensor asks for discovery of today and tomorrow.
    first = tick(None)
    assert first.run_requests and all(r.tags[LIVE_TAG] == "true" for r in first.run_requests)
    launch(first)
    # Now the live game is known: one live refresh of its date, from its live window.
    second = tick(first.cursor)
    live = [r for r in second.run_requests or [] if r.tags["kalshi/live_kind"] == "live"]
    assert len(live) == 1
    launch(second)

    # The game the simulator injected must be in the live request, and both its markets must have candles.
    (injected,) = [g for g in sim.app.state.world.games if g.injected]
    event_tickers = live[0].run_config["ops"][CANDLES_OP]["config"]["event_tickers"]
    assert injected.event_ticker in event_tickers
    wh = open_warehouse(fresh_pg_url)
    try:
        game_date = live[0].partition_key
        assert game_date is not None
        newest = wh.newest_candle_ts(list(injected.market_tickers))
        states = wh.game_states([injected.game_date], event_tickers=[injected.event_ticker])
        probs = wh.game_probabilities([injected.game_date], event_tickers=[injected.event_ticker])
    finally:
        wh.close()
    assert len(newest) == 2  # both markets of the live game have stored candles
    # The same run polled the live game's state (no play-by-play) and computed its minute probabilities
    # (the poll comes after the run's closed minutes, so the next refresh's minutes carry it).
    assert set(states["source"]) == {"live_data"} and len(states) == 1
    assert set(states["status"]) == {"live"}
    assert len(probs) and set(probs["source"]) == {"candles"}
    assert probs["probability"].notna().any()

    runs = pg_instance.get_runs(filters=dg.RunsFilter(tags={LIVE_DATE_TAG: game_date}))
    assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    materialized = pg_instance.get_latest_materialization_event(
        dg.AssetKey(["kalshi", "candlesticks"])
    )
    assert materialized is not None and materialized.dagster_event is not None
    assert materialized.dagster_event.partition == game_date

    # Housekeeping on the same Postgres instance: a tiny age purges every finished live run.
    purge = defs.resolve_job_def("purge_old_live_runs").execute_in_process(
        instance=pg_instance,
        run_config={"ops": {"purge_live_runs": {"config": {"older_than_hours": 1e-9}}}},
    )
    assert purge.success
    assert not pg_instance.get_runs(filters=dg.RunsFilter(tags={LIVE_TAG: "true"}))
