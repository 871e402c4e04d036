"""Shared helpers of the Dagster asset tests: pick simulator dates, materialize, read tables."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.candlesticks.assets import candle_assets
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.partitions import GAME_TZ
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, parse_game_event
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.warehouse import open_warehouse

ASSETS = [markets, candle_assets]


@dataclass(frozen=True)
class SimDates:
    """Game dates of a simulated world: games per date and the historical cutoff."""

    games: dict[date, int]
    cutoff: datetime

    def finished_live(self) -> date:
        """The date with the fewest games among recent finished dates after the cutoff."""
        today = datetime.now(GAME_TZ).date()
        cutoff_day = self.cutoff.astimezone(GAME_TZ).date()
        candidates = [
            d
            for d, n in self.games.items()
            if cutoff_day + timedelta(days=3) < d < today - timedelta(days=1) and n > 0
        ]
        return min(candidates, key=lambda d: (self.games[d], -d.toordinal()))

    def archived(self) -> date:
        """The date with the fewest games among dates well before the cutoff."""
        cutoff_day = self.cutoff.astimezone(GAME_TZ).date()
        candidates = [
            d for d, n in self.games.items() if d < cutoff_day - timedelta(days=3) and n > 0
        ]
        return min(candidates, key=lambda d: (self.games[d], -d.toordinal()))

    def consecutive_live(self, days: int) -> list[date]:
        """`days` consecutive finished live dates, all with games, with the fewest games in total."""
        today = datetime.now(GAME_TZ).date()
        cutoff_day = self.cutoff.astimezone(GAME_TZ).date()
        best: list[date] | None = None
        d = cutoff_day + timedelta(days=3)
        while d + timedelta(days=days) < today - timedelta(days=1):
            run = [d + timedelta(days=i) for i in range(days)]
            if all(self.games.get(x, 0) > 0 for x in run) and (
                best is None or sum(self.games[x] for x in run) < sum(self.games[x] for x in best)
            ):
                best = run
            d += timedelta(days=1)
        assert best is not None, "no run of consecutive game dates in the simulated world"
        return best


def sim_dates(base_url: str, series: str = "KXNBAGAME") -> SimDates:
    """List the simulator's events over REST and count games per date."""

    async def run() -> SimDates:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            cutoff = (await client.get_historical_cutoff()).market_settled_ts
            counts: Counter[date] = Counter()
            async for event in client.iter_events(series_ticker=series):
                counts[parse_game_event(event.event_ticker).game_date] += 1
            return SimDates(dict(counts), cutoff)

    return asyncio.run(run())


def resources(base_url: str, warehouse_url: str, series: str = "KXNBAGAME") -> dict[str, Any]:
    """The real resources pointed at a simulator and a warehouse."""
    return {
        "kalshi": KalshiApiResource(base_url=base_url, rate_limit_tier="off", series=series),
        "warehouse": WarehouseResource(url=warehouse_url),
    }


def materialize(
    base_url: str,
    warehouse_url: str,
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
    selection: list[dg.AssetKey] | None = None,
    series: str = "KXNBAGAME",
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    """Materialize the three assets (or a selection) for one partition or a partition range."""
    tags = None
    if partition_range is not None:
        tags = {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
    return dg.materialize(
        ASSETS,
        resources=resources(base_url, warehouse_url, series),
        partition_key=partition_key,
        tags=tags,
        run_config=run_config,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def table(warehouse_url: str, name: str, order: str = "ticker, end_period_ts") -> pd.DataFrame:
    """Read a whole `kalshi.<name>` table, ordered."""
    wh = open_warehouse(warehouse_url)
    try:
        return wh.query_df(f"SELECT * FROM kalshi.{name} ORDER BY {order}")
    finally:
        wh.close()


def checks_by_name(
    result: dg.ExecuteInProcessResult,
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Map (asset key, check name) to the evaluation of every check the run executed."""
    out = {}
    for evaluation in result.get_asset_check_evaluations():
        out[(evaluation.asset_key.to_user_string(), evaluation.check_name)] = evaluation
    return out


def materialization_metadata(result: dg.ExecuteInProcessResult, key: str) -> dict[str, Any]:
    """The metadata values of the asset's materialization in the run."""
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        if mat.asset_key.to_user_string() == key:
            return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {key}")


def now_utc() -> datetime:
    """The current instant (UTC)."""
    return datetime.now(UTC)
