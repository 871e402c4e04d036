"""Benchmark: the candle ingest path alone, from recorded response bodies to committed rows.

Builds `--candles` candles of realistic batch answers (`GET /markets/candlesticks` bodies, 100 markets per
body, live wire format) in memory, then per warehouse, in one run and on the same rows:

1. `decode`: `orjson.loads` of every body, `CandlePayloads.from_items` per market and the payloads
   serialized once (`PulledMarket.of`): what the client and `pull_game` do with the answers;
2. `raw`: `pull.raw_table` (Arrow) and `upsert_arrow` into `kalshi.candlesticks_raw` (what
   `candlesticks_raw` does per date);
3. `read_back`: reading the raw rows back (what `kalshi/candlesticks` starts with);
4. `clean`: `columnar.fast_split` (payloads read in bulk by pyarrow, scaled integers, vectorized pandera
   rules) and `upsert_arrow` of `columnar.accepted_table` into `kalshi.candlesticks` (what
   `kalshi/candlesticks` does per date, without the read-back and the checks);
5. the baselines: the same committed rows written raw into bare tables with the same columns (no staging,
   no conflict handling, no index): `baseline` = the raw and the clean rows (every row the pipeline
   commits), `baseline_clean_only` = the clean rows alone. Postgres: `COPY ... FROM STDIN (FORMAT csv)`
   of the rows pre-rendered as CSV (rendering untimed); DuckDB: `INSERT INTO bare SELECT * FROM` the
   Arrow table.

Reports rows/s per stage and the ratio baseline seconds : pipeline seconds. The machine is shared
(2 cores, other agents' work running), so only ratios measured in one run mean much.

    .venv/bin/python bench/ingest_path.py [--candles 200000] [--pg-admin-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from common import PG_ADMIN, temporary_database

from kalshi_pipeline.defs.candlesticks.columnar import accepted_table, fast_split
from kalshi_pipeline.defs.candlesticks.pull import MarketWindow, PulledMarket, raw_table
from kalshi_pipeline.kalshi.candles import CandlePayloads
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS, CANDLESTICKS_RAW

RESULTS = Path(__file__).parent / "results" / "ingest_path.json"
MARKETS_PER_BODY = 100
GAME_DATE = dt.date(2025, 12, 19)
T0 = 1_766_188_800


def _dollars(pips: np.ndarray) -> list[str]:
    return [f"{p // 10000}.{p % 10000:04d}" for p in pips.tolist()]


def recorded_bodies(candles: int, seed: int = 7) -> tuple[list[bytes], list[str]]:
    """Batch answers holding `candles` candles over 100-market bodies, and every ticker."""
    rng = np.random.default_rng(seed)
    markets = max(MARKETS_PER_BODY, candles // 700)
    per_market = -(-candles // markets)
    tickers = [f"KXNBAGAME-25DEC19G{i // 2:04d}-T{i % 2}" for i in range(markets)]
    bodies = []
    for lo in range(0, markets, MARKETS_PER_BODY):
        entries = []
        for ticker in tickers[lo : lo + MARKETS_PER_BODY]:
            # A random walk in whole cents, as game markets quote (fixed-point strings, 4 decimals).
            mid = np.clip(5000 + np.cumsum(rng.integers(-1, 2, size=per_market)) * 100, 300, 9700)
            bid = mid - rng.integers(0, 3, size=per_market) * 100
            ask = mid + rng.integers(1, 3, size=per_market) * 100
            traded = rng.random(per_market) < 0.6
            vols = rng.integers(1, 500_00, size=per_market)
            ois = np.cumsum(rng.integers(0, 100_00, size=per_market))
            b, a, m = _dollars(bid), _dollars(ask), _dollars(mid)
            out = []
            for k in range(per_market):
                price: dict[str, str] = {"previous_dollars": m[k - 1] if k else m[k]}
                if traded[k]:
                    price = {
                        "open_dollars": m[k],
                        "low_dollars": m[k],
                        "high_dollars": m[k],
                        "close_dollars": m[k],
                        "mean_dollars": m[k],
                        **price,
                    }
                out.append(
                    {
                        "end_period_ts": T0 + 60 * (k + 1),
                        "yes_bid": {
                            "open_dollars": b[k],
                            "low_dollars": b[k],
                            "high_dollars": b[k],
                            "close_dollars": b[k],
                        },
                        "yes_ask": {
                            "open_dollars": a[k],
                            "low_dollars": a[k],
                            "high_dollars": a[k],
                            "close_dollars": a[k],
                        },
                        "price": price,
                        "volume_fp": f"{vols[k] // 100 if traded[k] else 0}.{vols[k] % 100 if traded[k] else 0:02d}",
                        "open_interest_fp": f"{ois[k] // 100}.{ois[k] % 100:02d}",
                    }
                )
            entries.append({"market_ticker": ticker, "candlesticks": out})
        bodies.append(json.dumps({"markets": entries}, separators=(",", ":")).encode())
    return bodies, tickers


def _windows(tickers: list[str]) -> dict[str, MarketWindow]:
    return {
        t: MarketWindow(t, t.rsplit("-", 1)[0], "KXNBAGAME", GAME_DATE, T0, T0 + 86_400, False)
        for t in tickers
    }


def decode_bodies(bodies: list[bytes], windows: dict[str, MarketWindow]) -> list[PulledMarket]:
    """What the client and `pull_game` do with the answers: one `PulledMarket` per market."""
    pulled = []
    for body in bodies:
        for entry in orjson.loads(body)["markets"]:
            w = windows[entry["market_ticker"]]
            block = CandlePayloads.from_items(
                entry["candlesticks"], ticker=w.ticker, period_interval=1, historical=False
            )
            pulled.append(PulledMarket.of(w, block))
    return pulled


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _baseline(url: str, tables: list[tuple[str, pa.Table]]) -> float:
    """Write Arrow tables raw into bare tables of the same columns, in one transaction; return seconds."""
    if url.startswith("duckdb"):
        import duckdb

        path = url.removeprefix("duckdb:///")
        conn = duckdb.connect(path.replace(".duckdb", f"_baseline_{len(tables)}.duckdb"))
        for i, (_, table) in enumerate(tables):
            conn.register(f"rows_{i}", table)
            conn.execute(f"CREATE TABLE bare_{i} AS SELECT * FROM rows_{i} LIMIT 0")
        start = time.perf_counter()
        conn.execute("BEGIN")
        for i in range(len(tables)):
            conn.execute(f"INSERT INTO bare_{i} SELECT * FROM rows_{i}")
        conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        conn.close()
        return seconds
    rendered = []
    for _, table in tables:
        buffer = pa.BufferOutputStream()
        pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False))
        rendered.append(buffer.getvalue().to_pybytes())
    with psycopg.connect(url, autocommit=True) as conn:
        for i, (qualified, _) in enumerate(tables):
            conn.execute(f"DROP TABLE IF EXISTS bare_{i}")  # type: ignore[arg-type]
            conn.execute(f"CREATE TABLE bare_{i} (LIKE {qualified})")  # type: ignore[arg-type]
        start = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            for i, ((_, table), data) in enumerate(zip(tables, rendered, strict=True)):
                columns = ", ".join(table.column_names)
                copy_sql = f"COPY bare_{i} ({columns}) FROM STDIN (FORMAT csv)"
                with cur.copy(copy_sql) as copy:  # type: ignore[arg-type]
                    for lo in range(0, len(data), 1 << 20):
                        copy.write(data[lo : lo + (1 << 20)])
        return time.perf_counter() - start


def bench(url: str, bodies: list[bytes], tickers: list[str]) -> dict[str, Any]:
    """Time every stage on one warehouse, then the baselines on the same rows."""
    windows = _windows(tickers)
    ingested_at_ts = T0 + 86_400 * 2
    wh = open_warehouse(url)
    wh.ensure_schema()
    try:
        decode_s, pulled = _timed(lambda: decode_bodies(bodies, windows))
        n = sum(len(p) for p in pulled)

        def raw() -> pa.Table:
            rows = raw_table(pulled, ingested_at_ts)
            with wh.transaction() as tx:
                tx.upsert_arrow(CANDLESTICKS_RAW.name, rows)
            return rows

        raw_s, raw_rows = _timed(raw)
        read_s, stored = _timed(lambda: wh.candles(CANDLESTICKS_RAW.name, [GAME_DATE]))

        def clean() -> pa.Table:
            split = fast_split(stored, set(tickers))
            assert not len(split.deferred)
            rows = accepted_table(stored, split, ingested_at_ts)
            with wh.transaction() as tx:
                tx.upsert_arrow(CANDLESTICKS.name, rows)
            return rows

        clean_s, clean_rows = _timed(clean)
    finally:
        wh.close()
    both = [(CANDLESTICKS_RAW.qualified, raw_rows), (CANDLESTICKS.qualified, clean_rows)]
    baseline_s = _baseline(url, both)
    clean_only_s = _baseline(url, both[1:])
    pipeline_s = decode_s + raw_s + read_s + clean_s
    return {
        "candles": n,
        "decode_seconds": round(decode_s, 3),
        "raw_seconds": round(raw_s, 3),
        "read_back_seconds": round(read_s, 3),
        "clean_seconds": round(clean_s, 3),
        "pipeline_seconds": round(pipeline_s, 3),
        "pipeline_rows_per_s": round(n / pipeline_s),
        "baseline_seconds": round(baseline_s, 3),
        "baseline_rows_per_s": round(n / baseline_s),
        "pipeline_vs_baseline": round(baseline_s / pipeline_s, 3),
        "baseline_clean_only_seconds": round(clean_only_s, 3),
        "pipeline_vs_baseline_clean_only": round(clean_only_s / pipeline_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--candles", type=int, default=200_000)
    parser.add_argument("--pg-admin-url", default=PG_ADMIN)
    parser.add_argument("--only", choices=["duckdb", "postgres"], default=None)
    parser.add_argument("--profile", action="store_true", help="print the top functions per run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    bodies, tickers = recorded_bodies(args.candles)
    results: dict[str, Any] = {
        "benchmark": "candle ingest path: recorded batch answers -> committed raw and clean rows",
        "command": ".venv/bin/python bench/ingest_path.py " + " ".join(sys.argv[1:]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
        "response_bytes": sum(map(len, bodies)),
        "notes": (
            "pipeline = decode + raw + read_back + clean; baseline = the same raw and clean rows written "
            "raw into bare tables (Postgres COPY csv of pre-rendered rows; DuckDB INSERT from the Arrow "
            "tables); baseline_clean_only = the clean rows alone; pipeline_vs_baseline = baseline "
            "seconds / pipeline seconds (target >= 0.6). 2 shared cores with other agents' work: "
            "compare ratios of one run, not absolute numbers"
        ),
    }

    def run(name: str, url: str) -> None:
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        results[name] = bench(url, bodies, tickers)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        print(name, results[name], flush=True)

    if args.only in (None, "duckdb"):
        with tempfile.TemporaryDirectory() as tmp:
            run("duckdb", f"duckdb:///{tmp}/bench.duckdb")
    if args.only in (None, "postgres"):
        with temporary_database("kalshi_ingest_bench", args.pg_admin_url) as url:
            run("postgres", url)
    if args.only is None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
