"""A run of both candle assets validates and checks each date as it stores it, as a clean-only run would.

A clean-only run afterwards finds those dates current and rewrites nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.candlesticks import ingest
from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, RAW_KEY
from kalshi_pipeline.defs.candlesticks.clean import GRID_DATES_PER_READ, read_checks
from kalshi_pipeline.defs.candlesticks.completeness import game_completeness
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.warehouse import open_warehouse, unix_seconds_column
from kalshi_pipeline_tests.defs.markets.helpers import (
    SimDates,
    checks_by_name,
    materialization_metadata,
    materialize,
    sim_dates,
    table,
)

pytestmark = pytest.mark.integration

#: What the clean step reports that must not depend on where the validation happened.
SAME_METADATA = ("dates", "games", "markets", "candles", "rejects", "raw_rows", "window", "preview")


@pytest.fixture(scope="module")
def dates(simulator: Any) -> SimDates:
    return sim_dates(simulator.base_url)


def _stable(df: pd.DataFrame) -> pd.DataFrame:
    """Without the ingestion time, times in one resolution (the two warehouses read back s and us)."""
    out = df.drop(columns=["ingested_at"]).reset_index(drop=True)
    out["end_period_ts"] = out["end_period_ts"].astype("datetime64[us, UTC]")
    return out


def _clean_outcome(result: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the clean asset reported: its metadata, and each check's outcome with its metadata."""
    meta = materialization_metadata(result, "kalshi/candlesticks")
    checks = {
        name: (e.passed, {k: v.value for k, v in e.metadata.items()})
        for (key, name), e in checks_by_name(result).items()
        if key == "kalshi/candlesticks"
    }
    return {k: meta[k] for k in SAME_METADATA}, checks


@pytest.mark.parametrize(
    ("backend", "read_every"),
    [("duckdb", GRID_DATES_PER_READ), ("postgres", GRID_DATES_PER_READ), ("duckdb", 1)],
)
def test_validating_along_writes_what_the_clean_step_writes(
    simulator: Any,
    dates: SimDates,
    tmp_path: Any,
    fresh_pg_url: str,
    backend: str,
    read_every: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whether the checks' read-backs happen as dates are stored (a read every `read_every` committed
    dates) or at the end (fewer dates than that), the clean asset reports what a clean-only run does."""
    monkeypatch.setattr(ingest, "GRID_DATES_PER_READ", read_every)
    read_along: list[list[date]] = []

    def counted(wh: Any, scope: Any, days: Any, **kwargs: Any) -> Any:
        read_along.append(list(days))
        return read_checks(wh, scope, days, **kwargs)

    monkeypatch.setattr(ingest, "read_checks", counted)
    days = dates.consecutive_live(2)
    span = (days[0].isoformat(), days[-1].isoformat())
    apart = f"duckdb:///{tmp_path}/apart.duckdb"
    along = f"duckdb:///{tmp_path}/along.duckdb" if backend == "duckdb" else fresh_pg_url

    # Apart: the raw step alone, then the clean step alone (which parses every raw row itself).
    materialize(simulator.base_url, apart, partition_range=span, selection=[MARKETS_KEY, RAW_KEY])
    separate = materialize(simulator.base_url, apart, partition_range=span, selection=[CANDLES_KEY])
    # Along: one run of all three, the raw step validating each date as it stores it.
    together = materialize(simulator.base_url, along, partition_range=span)

    assert (
        materialization_metadata(together, "kalshi/candlesticks_raw")["dates_validated_along"] == 2
    )
    # Read as they were stored (one date at a time, in the order stored), or all at the end.
    assert sorted(read_along) == ([[d] for d in days] if read_every == 1 else [])
    assert _clean_outcome(together) == _clean_outcome(separate)
    assert all(passed for passed, _ in _clean_outcome(together)[1].values())
    assert _clean_outcome(together)[1]["minute_grid"][1]["games"] > 0
    for name in ("candlesticks", "candlesticks_rejected"):
        pd.testing.assert_frame_equal(_stable(table(along, name)), _stable(table(apart, name)))

    # A clean-only re-run of unchanged raw rows finds both dates current: nothing is rewritten (the
    # clean rows are stamped an hour ahead first, so a rewrite, stamped now, would show).
    wh = open_warehouse(along)
    try:
        wh.execute("UPDATE kalshi.candlesticks SET ingested_at = ingested_at + INTERVAL '1 hour'")
    finally:
        wh.close()
    written = table(along, "candlesticks")
    again = materialize(simulator.base_url, along, partition_range=span, selection=[CANDLES_KEY])
    assert _clean_outcome(again) == _clean_outcome(together)
    pd.testing.assert_frame_equal(table(along, "candlesticks"), written)


def test_a_changed_raw_row_is_validated_again(
    simulator: Any, dates: SimDates, tmp_path: Any
) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    materialize(simulator.base_url, url, partition_key=day.isoformat())
    raw = table(url, "candlesticks_raw")
    victim = raw.iloc[len(raw) // 2]
    wh = open_warehouse(url)
    try:
        # What a new pull of a broken answer would leave: a payload without counts, stamped later.
        wh.execute(
            "UPDATE kalshi.candlesticks_raw SET payload = %s, "
            "ingested_at = ingested_at + INTERVAL 1 HOUR WHERE ticker = %s AND end_period_ts = %s",
            ['{"end_period_ts": 1}', victim["ticker"], victim["end_period_ts"].to_pydatetime()],
        )
    finally:
        wh.close()
    result = materialize(
        simulator.base_url, url, partition_key=day.isoformat(), selection=[CANDLES_KEY]
    )
    rejected = table(url, "candlesticks_rejected")
    assert list(rejected["ticker"]) == [victim["ticker"]]
    meta = materialization_metadata(result, "kalshi/candlesticks")
    assert meta["rejects"] == 1 and meta["candles"] == len(raw) - 1
    assert len(table(url, "candlesticks")) == len(raw) - 1


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_the_grid_summary_gives_the_completeness_of_the_stored_rows(
    simulator: Any, dates: SimDates, tmp_path: Any, fresh_pg_url: str, backend: str
) -> None:
    day = dates.finished_live()
    url = f"duckdb:///{tmp_path}/wh.duckdb" if backend == "duckdb" else fresh_pg_url
    materialize(simulator.base_url, url, partition_key=day.isoformat())
    wh = open_warehouse(url)
    try:
        # A gap and a minute without a trade, so both show in the counts.
        wh.execute(
            "DELETE FROM kalshi.candlesticks WHERE end_period_ts = (SELECT max(end_period_ts) - INTERVAL '30 minutes' FROM kalshi.candlesticks)"
        )
        wh.execute(
            "UPDATE kalshi.candlesticks SET price_close = NULL WHERE end_period_ts = (SELECT max(end_period_ts) - INTERVAL '31 minutes' FROM kalshi.candlesticks)"
        )
        markets = wh.markets([day])
        rows = wh.candles("candlesticks", [day])
        rows["end_period_ts"] = unix_seconds_column(rows["end_period_ts"])
        summary = wh.candle_grid([day])
    finally:
        wh.close()
    from_rows = game_completeness(markets, rows, now_ts=None)
    from_summary = game_completeness(markets, summary, now_ts=None)
    assert from_summary == from_rows
    assert sum(g.missing_minutes for g in from_rows) > 0
    assert sum(g.no_trade_minutes for g in from_rows) > 0
