"""Benchmark: the candle ingest path alone, from recorded response bodies to committed rows.

Builds `--candles` candles of realistic batch answers (`GET /markets/candlesticks` bodies, 100 markets per
body, live wire format) in memory, then per warehouse, in one run and on the same rows:

1. `parse`: `json.loads` of every body and `Candlestick.from_payload` per candle (what the client does);
2. `raw`: `pull.raw_frame` and the upsert into `kalshi.candlesticks_raw` (what `candlesticks_raw` does);
3. `read_back`: reading the raw rows back (what `kalshi/candlesticks` starts with);
4. `clean`: `columnar.fast_split` (scaled integers, vectorized pandera rules) and the upsert into
   `kalshi.candlesticks` (what `kalshi/candlesticks` does per date, without the read-back and the checks);
   `clean_reference`: the same through the Decimal reference path alone (`clean.parse_raw` and
   `validation.validate_candles`), which the clean step used before, into the emptied table;
5. the baseline: the same clean rows written raw -- Postgres `COPY ... FROM STDIN` of the wire text into a
   bare table with the same columns (no staging, no conflict handling); DuckDB an `INSERT ... SELECT` from a
   registered pandas frame of the wire text (pyarrow is not installed here, so no Arrow baseline).

Reports rows/s per stage and the ratio pipeline (raw + read_back + clean) : baseline. The machine is shared
(2 cores, other agents' work running), so only ratios measured in one run mean much.

    .venv/bin/python bench/ingest_path.py [--candles 200000] [--pg-admin-url URL] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import platform
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from common import PG_ADMIN, temporary_database

from kalshi_pipeline.defs.candlesticks.clean import parse_raw
from kalshi_pipeline.defs.candlesticks.columnar import accepted_rows, fast_split
from kalshi_pipeline.defs.candlesticks.pull import GamePull, MarketWindow, raw_frame
from kalshi_pipeline.defs.candlesticks.validation import to_table, validate_candles
from kalshi_pipeline.kalshi import Candlestick
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline.warehouse.frames import prepare_frame
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


def parse_bodies(bodies: list[bytes], windows: dict[str, MarketWindow]) -> list[GamePull]:
    """What the client and `pull_game` do with the answers: one `GamePull` per 100 markets."""
    pulls = []
    for body in bodies:
        pull = GamePull(event_ticker="", windows=[])
        for entry in json.loads(body)["markets"]:
            w = windows[entry["market_ticker"]]
            pull.candles += [
                (
                    w,
                    Candlestick.from_payload(
                        c, ticker=w.ticker, period_interval=1, historical=False
                    ),
                )
                for c in entry["candlesticks"]
            ]
        pulls.append(pull)
    return pulls


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _baseline(url: str, clean_rows: pd.DataFrame) -> float:
    """Write the clean rows' wire text raw into a bare table of the same columns; return seconds."""
    prepared = prepare_frame(CANDLESTICKS, clean_rows).frame  # wire strings, untimed
    columns = list(prepared.columns)
    if url.startswith("duckdb"):
        import duckdb

        path = url.removeprefix("duckdb:///")
        conn = duckdb.connect(path.replace(".duckdb", "_baseline.duckdb"))
        conn.execute("CREATE TABLE bare AS SELECT * FROM prepared LIMIT 0")
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT INTO bare SELECT * FROM prepared")
        conn.execute("COMMIT")
        seconds = time.perf_counter() - start
        conn.close()
        return seconds
    text = prepared.copy()
    for c in columns:
        if isinstance(text[c].dtype, pd.DatetimeTZDtype):
            text[c] = text[c].dt.strftime("%Y-%m-%d %H:%M:%S+00")
    rows = list(zip(*(text[c].to_numpy(dtype=object) for c in columns), strict=True))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE bare (LIKE {CANDLESTICKS.qualified})"  # type: ignore[arg-type]
        )
        start = time.perf_counter()
        copy_sql = f"COPY bare ({', '.join(columns)}) FROM STDIN"
        with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as copy:  # type: ignore[arg-type]
            for row in rows:
                copy.write_row(row)
        return time.perf_counter() - start


def bench(url: str, bodies: list[bytes], tickers: list[str]) -> dict[str, Any]:
    """Time every stage on one warehouse, then the baseline on the same rows."""
    windows = _windows(tickers)
    ingested_at = pd.Timestamp(T0 + 86_400 * 2, unit="s", tz="UTC")
    wh = open_warehouse(url)
    wh.ensure_schema()
    try:
        parse_s, pulls = _timed(lambda: parse_bodies(bodies, windows))
        n = sum(len(p.candles) for p in pulls)

        def raw() -> None:
            df = raw_frame(pulls, ingested_at)
            with wh.transaction() as tx:
                tx.upsert(CANDLESTICKS_RAW.name, df)

        raw_s, _ = _timed(raw)
        read_s, stored = _timed(lambda: wh.candles(CANDLESTICKS_RAW.name, [GAME_DATE]))

        def clean() -> pd.DataFrame:
            split = fast_split(stored, set(tickers))
            assert not len(split.deferred)
            rows = to_table(accepted_rows(stored, split), CANDLESTICKS.column_names, ingested_at)
            with wh.transaction() as tx:
                tx.upsert(CANDLESTICKS.name, rows)
            return rows

        clean_s, rows = _timed(clean)
        wh.execute("DELETE FROM kalshi.candlesticks")

        def reference_clean() -> None:
            parsed, _bad = parse_raw(stored)
            valid, rejected = validate_candles(parsed, set(tickers))
            assert rejected.empty, rejected["reasons"].head()
            with wh.transaction() as tx:
                tx.upsert(
                    CANDLESTICKS.name, to_table(valid, CANDLESTICKS.column_names, ingested_at)
                )

        reference_s, _ = _timed(reference_clean)
    finally:
        wh.close()
    baseline_s = _baseline(url, rows)
    pipeline_s = raw_s + read_s + clean_s
    return {
        "candles": n,
        "parse_seconds": round(parse_s, 3),
        "raw_seconds": round(raw_s, 3),
        "read_back_seconds": round(read_s, 3),
        "clean_seconds": round(clean_s, 3),
        "clean_reference_seconds": round(reference_s, 3),
        "clean_speedup": round(reference_s / clean_s, 2),
        "pipeline_rows_per_s": round(n / (parse_s + pipeline_s)),
        "baseline_seconds": round(baseline_s, 3),
        "baseline_rows_per_s": round(n / baseline_s),
        "pipeline_vs_baseline": round(baseline_s / (parse_s + pipeline_s), 3),
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
        "command": "bench/ingest_path.py " + (f"--candles {args.candles}"),
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
        "response_bytes": sum(map(len, bodies)),
        "notes": (
            "pipeline = parse + raw + read_back + clean; baseline = the clean rows' wire text written "
            "raw (Postgres COPY into a bare table; DuckDB INSERT from a registered pandas frame, no "
            "pyarrow here); pipeline_vs_baseline = baseline seconds / pipeline seconds (target >= 0.6). "
            "2 shared cores with other agents' work: compare ratios of one run, not absolute numbers"
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
