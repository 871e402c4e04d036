"""A range run in which one game date fails: the others stay committed and only the failed date is re-run.

The exchange is the real simulator behind a proxy that answers 500 to every candle request of one date's
games, so that date's pulls exhaust their retries while the other date's succeed.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, RAW_KEY
from kalshi_pipeline.defs.partitions import game_date_partitions
from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource
from kalshi_pipeline_tests.defs.markets.helpers import ASSETS, sim_dates, table
from kalshi_pipeline_tests.exchange_proxy import ExchangeProxy, fail_candles_of


def _run(base_url: str, db_url: str, instance: dg.DagsterInstance, days: list[date]) -> Any:
    return dg.materialize(
        ASSETS,
        resources={
            "kalshi": KalshiApiResource(
                base_url=base_url, rate_limit_tier="off", max_retries=1, backoff_max_s=0.05
            ),
            "warehouse": WarehouseResource(url=db_url),
        },
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": str(days[0]),
            "dagster/asset_partition_range_end": str(days[-1]),
        },
        raise_on_error=False,
    )


def _status(instance: dg.DagsterInstance, key: dg.AssetKey, days: list[date]) -> dict[str, str]:
    statuses = instance.get_status_by_partition(key, [str(d) for d in days], game_date_partitions)
    assert statuses is not None
    return {k: v.value if v else "missing" for k, v in statuses.items()}


def test_a_failed_date_leaves_the_others_materialized_and_is_the_only_one_rerun(
    simulator: Any, tmp_path: Path
) -> None:
    days = sim_dates(simulator.base_url).consecutive_live(2)
    good_day, bad_day = days
    db_url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    with dg.instance_for_test() as instance:
        with ExchangeProxy(simulator.base_url, fail_candles_of(bad_day)) as proxy:
            failed = _run(proxy.base_url, db_url, instance, days)
            assert proxy.tampered > 0
        assert not failed.success
        failure = next(e for e in failed.all_events if e.is_step_failure)
        message = failure.step_failure_data.error.message if failure.step_failure_data.error else ""
        assert str(bad_day) in message and "run only the failed dates again" in message
        assert str(good_day) not in message.split("--")[0].split(":")[1]

        # What the UI shows: the committed date is materialized, only the other one failed.
        assert _status(instance, RAW_KEY, days) == {
            str(good_day): "MATERIALIZED",
            str(bad_day): "FAILED",
        }
        raw = table(db_url, "candlesticks_raw")
        assert set(raw["game_date"]) == {good_day}
        # The committed date was validated into the clean table by the failed run itself.
        assert _status(instance, CANDLES_KEY, days) == {
            str(good_day): "MATERIALIZED",
            str(bad_day): "FAILED",
        }
        clean = table(db_url, "candlesticks")
        assert len(clean) == len(raw) > 0

        # "Materialize failed and missing" for the raw asset: the failed date alone, on the healthy exchange.
        rerun = dg.materialize(
            ASSETS,
            resources={
                "kalshi": KalshiApiResource(base_url=simulator.base_url, rate_limit_tier="off"),
                "warehouse": WarehouseResource(url=db_url),
            },
            instance=instance,
            partition_key=str(bad_day),
        )
        assert rerun.success
        assert _status(instance, RAW_KEY, days) == {
            str(good_day): "MATERIALIZED",
            str(bad_day): "MATERIALIZED",
        }
        raw = table(db_url, "candlesticks_raw")
        assert set(raw["game_date"]) == {good_day, bad_day}
        assert _status(instance, CANDLES_KEY, days) == {
            str(good_day): "MATERIALIZED",
            str(bad_day): "MATERIALIZED",
        }
        assert len(table(db_url, "candlesticks")) == len(raw)
