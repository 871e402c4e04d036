"""What the Dagster UI shows of the candle assets after `make demo` and a live date, read from its GraphQL.

One DuckDB warehouse and its bound instance: the demo's two settled dates, then today's live games from a
second simulator. A real `dagster-webserver` over that instance answers the queries the UI's asset pages
make: which partitions are materialized (issue 13, point 2), what a `minute_grid` check evaluation says
about a missing minute and about a live game's newest minutes (point 1), and how `window` reads (point 8).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, candle_assets
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.simulated import todays_start
from kalshi_pipeline_tests.ui.webserver import METADATA, GraphQL, metadata, webserver

PORT = 18510
CANDLES = ["kalshi", "candlesticks"]

PARTITIONS = """
query Partitions($key: AssetKeyInput!) {
  assetNodes(assetKeys: [$key]) {
    partitionStats { numMaterialized numFailed }
    assetPartitionStatuses {
      __typename
      ... on TimePartitionStatuses { ranges { status startKey endKey } }
    }
  }
}
"""

# The checks are not partitioned (only their asset is): Dagster 1.13 stores the evaluation without a
# partition, so an evaluation is found by its run's partition tag.
CHECK_EXECUTIONS = f"""
query Executions($key: AssetKeyInput!, $check: String!) {{
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 50) {{
    status runId
    run {{ tags {{ key value }} }}
    evaluation {{ success severity {METADATA} }}
  }}
}}
"""

MATERIALIZATIONS = f"""
query Materializations($key: AssetKeyInput!) {{
  assetOrError(assetKey: $key) {{
    ... on Asset {{ assetMaterializations(limit: 50) {{ partition {METADATA} }} }}
  }}
}}
"""


@dataclass
class Shown:
    """The webserver over the instance, and what the test did to the warehouse before asking it."""

    graphql: GraphQL
    url: str
    settled_date: str
    removed: tuple[str, datetime]
    live_date: str
    unsettled: tuple[str, datetime, datetime]


def _materialize(
    assets: list[Any],
    day: str,
    url: str,
    instance: dg.DagsterInstance,
    base_url: str,
    selection: Sequence[dg.AssetKey] | None = None,
) -> None:
    resources = {
        "kalshi": KalshiApiResource(base_url=base_url, rate_limit_tier="off", shared_budget=False),
        "warehouse": WarehouseResource(url=url),
    }
    result = dg.materialize(
        assets, resources=resources, partition_key=day, instance=instance, selection=selection
    )
    assert result.success


def _remove_settled_minute(url: str, day: str) -> tuple[str, datetime]:
    """Delete one raw candle from the middle of a settled game, as if Kalshi never sent it."""
    wh = open_warehouse(url)
    try:
        rows = wh.query_df(
            "SELECT c.ticker, c.end_period_ts FROM kalshi.candlesticks_raw c "
            "JOIN kalshi.markets m ON m.ticker = c.ticker WHERE c.game_date = %s "
            "AND c.period_interval = 1 AND c.end_period_ts > m.scheduled_start + INTERVAL '20 minutes' "
            "AND c.end_period_ts < m.close_time - INTERVAL '20 minutes' "
            "ORDER BY c.ticker, c.end_period_ts",
            [date.fromisoformat(day)],
        )
        assert len(rows), f"no candle inside a game of {day}"
        ticker, minute = rows.iloc[len(rows) // 2][["ticker", "end_period_ts"]]
        minute = pd.Timestamp(minute).tz_convert(UTC).to_pydatetime()
        wh.execute(
            "DELETE FROM kalshi.candlesticks_raw WHERE ticker = %s AND period_interval = 1 "
            "AND end_period_ts = %s",
            [ticker, minute],
        )
    finally:
        wh.close()
    return str(ticker), minute


def _remove_newest_minute_of_one_market(url: str, day: str) -> tuple[str, datetime, datetime]:
    """Delete one market's newest minute of the longest-running live game while its sibling has it.

    That is the race the issue saw: one market's newest REST candle is stored a moment before its
    sibling's. Returns (ticker, minute, the game's scheduled start).
    """
    wh = open_warehouse(url)
    try:
        rows = wh.query_df(
            "SELECT c.ticker, c.end_period_ts, m.scheduled_start FROM kalshi.candlesticks_raw c "
            "JOIN kalshi.markets m ON m.ticker = c.ticker WHERE c.game_date = %s "
            "AND c.period_interval = 1 AND m.event_ticker = (SELECT event_ticker FROM kalshi.markets "
            "WHERE game_date = %s ORDER BY scheduled_start, event_ticker LIMIT 1)",
            [date.fromisoformat(day)] * 2,
        )
        newest = rows["end_period_ts"].max()
        at_newest = rows[rows["end_period_ts"] == newest].sort_values("ticker")
        assert len(at_newest) >= 2, "both markets of the game should have its newest minute"
        ticker = str(at_newest["ticker"].iloc[0])
        minute = pd.Timestamp(newest).tz_convert(UTC).to_pydatetime()
        start = pd.Timestamp(at_newest["scheduled_start"].iloc[0]).tz_convert(UTC).to_pydatetime()
        wh.execute(
            "DELETE FROM kalshi.candlesticks_raw WHERE ticker = %s AND period_interval = 1 "
            "AND end_period_ts = %s",
            [ticker, minute],
        )
    finally:
        wh.close()
    return ticker, minute, start


@pytest.fixture(scope="module")
def shown(
    tmp_path_factory: pytest.TempPathFactory, start_simulator_module: Callable[..., Any]
) -> Iterator[Shown]:
    """Demo dates plus today's live date in one warehouse, and a webserver over its instance."""
    tmp = tmp_path_factory.mktemp("ui_assets")
    home, url = tmp / "home", f"duckdb:///{tmp}/demo.duckdb"
    code = main(
        [
            "demo",
            "--warehouse-url",
            url,
            "--dagster-home",
            str(home),
            "--recent-dates",
            "1",
            "--archived-dates",
            "1",
            "--rate-limit",
            "off",
        ]
    )
    assert code == 0
    sim = start_simulator_module(live_games=2, game_minutes=120, now=todays_start(), schedule=False)
    live_date = next(g for g in sim.app.state.world.games if g.injected).game_date.isoformat()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        settled_date = min(instance.get_materialized_partitions(dg.AssetKey(CANDLES)))
        _materialize([markets, candle_assets], live_date, url, instance, sim.base_url)
        removed = _remove_settled_minute(url, settled_date)
        _materialize([candle_assets], settled_date, url, instance, sim.base_url, [CANDLES_KEY])
        unsettled = _remove_newest_minute_of_one_market(url, live_date)
        _materialize([candle_assets], live_date, url, instance, sim.base_url, [CANDLES_KEY])
    env = {"KALSHI_WAREHOUSE_URL": url, "KALSHI_API_BASE_URL": sim.base_url}
    with webserver(home, PORT, env, tmp / "webserver.log") as graphql:
        yield Shown(graphql, url, settled_date, removed, live_date, unsettled)


def _latest_check(shown: Shown, check: str, partition: str) -> dict[str, Any]:
    """The newest evaluated execution of `check` in a run of `partition`, as the UI lists it."""
    executions = shown.graphql(CHECK_EXECUTIONS, key={"path": CANDLES}, check=check)
    for execution in executions["assetCheckExecutions"]:
        tags = {t["key"]: t["value"] for t in execution["run"]["tags"]}
        if execution["evaluation"] and tags.get("dagster/partition") == partition:
            return execution
    raise AssertionError(f"no evaluated {check} execution of {partition} in the UI")


@pytest.mark.slow  # its module fixture materializes and serves the UI: about two minutes
def test_the_materialized_partitions_are_the_warehouses_game_dates(shown: Shown) -> None:
    node = shown.graphql(PARTITIONS, key={"path": CANDLES})["assetNodes"][0]
    shown_dates: set[str] = set()
    for r in node["assetPartitionStatuses"]["ranges"]:
        if r["status"] == "MATERIALIZED":
            day = date.fromisoformat(r["startKey"])
            while day <= date.fromisoformat(r["endKey"]):
                shown_dates.add(day.isoformat())
                day += timedelta(days=1)
    wh = open_warehouse(shown.url)
    try:
        stored = wh.query_df("SELECT DISTINCT game_date FROM kalshi.candlesticks")
    finally:
        wh.close()
    held = {pd.Timestamp(d).date().isoformat() for d in stored["game_date"]}
    assert len(held) == 3  # the demo's recent and archived dates and today's live date
    assert shown_dates == held
    assert node["partitionStats"] == {"numMaterialized": 3, "numFailed": 0}


def test_a_failing_minute_grid_names_the_missing_minute(shown: Shown) -> None:
    execution = _latest_check(shown, "minute_grid", shown.settled_date)
    evaluation = execution["evaluation"]
    assert execution["status"] == "FAILED"
    assert evaluation["success"] is False and evaluation["severity"] == "WARN"
    meta = metadata(evaluation["metadataEntries"])
    assert meta["missing_minutes"] == 1 and meta["games_incomplete"] == 1
    ticker, minute = shown.removed
    assert f"| {ticker} | {minute:%Y-%m-%dT%H:%M}Z |" in meta["missing"]
    assert ticker.rsplit("-", 1)[0] in meta["incomplete"]


def test_a_live_games_newest_minutes_do_not_fail_minute_grid(shown: Shown) -> None:
    _, minute, start = shown.unsettled
    # The removed minute lies inside the game's active window (after its first whole minute), so only
    # the settling rule keeps it from being counted missing.
    assert minute >= start + timedelta(minutes=2), (minute, start)
    execution = _latest_check(shown, "minute_grid", shown.live_date)
    evaluation = execution["evaluation"]
    meta = metadata(evaluation["metadataEntries"])
    assert execution["status"] == "SUCCEEDED" and evaluation["success"] is True, meta
    assert meta["missing_minutes"] == 0 and meta["missing"] == "none"
    assert meta["games"] == 2


def test_window_metadata_reads_as_times(shown: Shown) -> None:
    minute = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\dZ")
    for key in (["kalshi", "candlesticks_raw"], CANDLES):
        found = shown.graphql(MATERIALIZATIONS, key={"path": key})["assetOrError"]
        windows = [metadata(m["metadataEntries"])["window"] for m in found["assetMaterializations"]]
        assert len(windows) >= 3, key
        for window in windows:
            assert minute.search(window) and " .. " in window, (key, window)
            assert not re.search(r"\d{9,}", window), (key, window)


CHROMIUM = Path("/usr/bin/chromium")


def test_the_partitions_page_shows_as_many_materialized_dates_in_a_browser(shown: Shown) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"no {CHROMIUM} for the browser check: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(
                f"{shown.graphql.url}/assets/kalshi/candlesticks?view=partitions",
                wait_until="domcontentloaded",
            )
            page.get_by_text("Materialized (3)").first.wait_for(timeout=120_000)
            assert page.get_by_text("Failed (0)").count() >= 1
        finally:
            browser.close()
