"""Measure warehouse upsert throughput for 1-minute candles on DuckDB and PostgreSQL.

Usage: `.venv/bin/python bench/warehouse.py [--rows 200000] [--pg-admin-url postgresql://postgres@127.0.0.1:5432/postgres]`
Writes `bench/results/warehouse.json`. For each dialect: validation/normalization alone, a first upsert into
an empty table (inserts), the same upsert again (every row conflicts and is updated), and reading it all back.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from common import PG_ADMIN, temporary_database

from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.frames import prepare_frame
from kalshi_pipeline.warehouse.schema import CANDLESTICKS

PRICE_COLUMNS = [c.name for c in CANDLESTICKS.columns if c.type == "price"]


def candle_frame(rows: int, seed: int = 1) -> pd.DataFrame:
    """`rows` realistic candles: 100 markets x N minutes, prices in 1/100 of a cent, fractional counts."""
    rng = np.random.default_rng(seed)
    markets = 100
    minutes = -(-rows // markets)
    tickers = np.repeat([f"KXNBAGAME-25DEC19G{i:03d}-T{i % 2}" for i in range(markets)], minutes)[
        :rows
    ]
    ts = np.tile(1766188800 + 60 * np.arange(minutes), markets)[:rows]
    prices = [Decimal(int(p)).scaleb(-4) for p in rng.integers(1, 10000, size=2000)]
    data: dict[str, Any] = {
        "ticker": tickers,
        "event_ticker": [t.rsplit("-", 1)[0] for t in tickers],
        "series_ticker": "KXNBAGAME",
        "game_date": dt.date(2025, 12, 19),
        "period_interval": 1,
        "end_period_ts": pd.to_datetime(ts, unit="s", utc=True),
    }
    for name in PRICE_COLUMNS:
        picks = rng.integers(0, len(prices), size=rows)
        data[name] = [prices[i] for i in picks]
    data["volume"] = [Decimal(int(v)).scaleb(-2) for v in rng.integers(0, 10_000_00, size=rows)]
    data["open_interest"] = [
        Decimal(int(v)).scaleb(-2) for v in rng.integers(0, 100_000_00, size=rows)
    ]
    data["source"] = "historical"
    return pd.DataFrame(data)


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def bench_dialect(url: str, df: pd.DataFrame) -> dict[str, Any]:
    wh = open_warehouse(url)
    wh.ensure_schema()
    n = len(df)
    insert_s, written = timed(lambda: wh.upsert("candlesticks", df))
    assert written == n, (written, n)
    update_s, _ = timed(lambda: wh.upsert("candlesticks", df))
    read_s, back = timed(lambda: wh.query_df("SELECT * FROM kalshi.candlesticks"))
    assert len(back) == n
    assert isinstance(back["price_close"].iloc[0], Decimal)
    return {
        "rows": n,
        "insert_seconds": round(insert_s, 3),
        "insert_rows_per_s": round(n / insert_s),
        "update_seconds": round(update_s, 3),
        "update_rows_per_s": round(n / update_s),
        "read_seconds": round(read_s, 3),
        "read_rows_per_s": round(n / read_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "warehouse.json"
    )
    args = parser.parse_args()

    df = candle_frame(args.rows)
    prepare_s, _ = timed(lambda: prepare_frame(CANDLESTICKS, df))
    results: dict[str, Any] = {
        "benchmark": "warehouse upsert of 1-minute candles (kalshi.candlesticks, 24 columns)",
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
        "rows": args.rows,
        "prepare_seconds": round(prepare_s, 3),
        "prepare_rows_per_s": round(args.rows / prepare_s),
        "notes": (
            "insert/update include validation (prepare); update = same rows again, every key conflicts; "
            "read = SELECT * into a DataFrame with Decimal objects; machine shared with other work"
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["duckdb"] = bench_dialect(f"duckdb:///{tmp}/bench.duckdb", df)
        print("duckdb", results["duckdb"], flush=True)

    with temporary_database("kalshi_bench", args.pg_admin_url) as url:
        results["postgres"] = bench_dialect(url, df)
        print("postgres", results["postgres"], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
