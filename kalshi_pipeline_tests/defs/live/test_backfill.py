"""A backfill over a range of game dates: one run pulls every date of the range (BackfillPolicy.single_run)."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from kalshi_pipeline.defs.candlesticks.assets import candle_assets
from kalshi_pipeline.defs.live.jobs import ALL_KEYS, sweep_job
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline.warehouse import open_warehouse


def test_policy_runs_a_season_in_few_runs() -> None:
    from kalshi_pipeline.definitions import defs

    graph = defs().get_repository_def().asset_graph
    for key in ALL_KEYS:
        policy = graph.get(key).backfill_policy
        assert policy is not None
        # single_run (max None) or multi_run with a large chunk: a 180-day season in <= 13 runs.
        assert policy.max_partitions_per_run is None or policy.max_partitions_per_run >= 14


def test_a_range_of_dates_in_one_run(start_simulator, fresh_pg_url: str) -> None:
    sim = start_simulator(live_games=0)
    first = date.today() - timedelta(days=12)
    last = first + timedelta(days=2)
    defs = dg.Definitions(
        assets=[markets, candle_assets],
        jobs=[sweep_job],
        resources={
            "kalshi": KalshiApiResource(base_url=sim.base_url, rate_limit_tier="off"),
            "warehouse": WarehouseResource(url=fresh_pg_url),
        },
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = defs.resolve_job_def("kalshi_sweep_job").execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first.isoformat(),
                "dagster/asset_partition_range_end": last.isoformat(),
            },
        )
        assert result.success
        materialized = instance.get_materialized_partitions(dg.AssetKey(["kalshi", "candlesticks"]))
        assert {
            first.isoformat(),
            (first + timedelta(days=1)).isoformat(),
            last.isoformat(),
        } <= set(materialized)
        assert len(instance.get_runs()) == 1
    wh = open_warehouse(fresh_pg_url)
    try:
        with_candles = set(
            wh.query_df("SELECT DISTINCT game_date FROM kalshi.candlesticks")["game_date"]
        )
        scheduled = set(wh.games(game_dates=[first, first + timedelta(days=1), last])["game_date"])
    finally:
        wh.close()
    # Every date of the range that has games got its candles in the same run.
    assert scheduled and scheduled <= with_candles
