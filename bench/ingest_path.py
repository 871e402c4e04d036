"""Benchmark: the candle ingest path alone, from recorded response bodies to committed rows.

Builds `--candles` candles of realistic batch answers (`GET /markets/candlesticks` bodies, live wire format)
spread over game dates of `--per-date` candles each (a backfill date holds ~8.5k: 6 games, 12 markets), then
per warehouse, in one run and on the same rows:

1. `decode`: `candle_answers.read_batch_answer` of every body (each candle's text and end time, read
   without a Python object per candle) and a `PulledMarket` per market: what the client and `pull_game`
   do with the answers;
2. per date, one transaction that stores the raw rows and validates them into the clean table from the rows
   in hand (what a run of both candle assets does per date): `raw_rows` = `pull.raw_table` (Arrow),
   `raw_upsert` = `upsert_arrow` into `kalshi.candlesticks_raw`, `validate` = `clean.clean_day` on the
   Arrow rows in hand (fast split, deletes over the window, upsert of the accepted rows), `begin` = entering
   the transaction (on DuckDB: attaching the file, replaying its log), `commit` = leaving it (COMMIT,
   and on DuckDB the detach that lets other processes have the file, with a checkpoint when one is due);
   on DuckDB two more warehouses store the same dates, set up as at a63729d (`duckdb_as_a63729d`: a
   checkpoint at every detach, the candle tables' secondary indexes) and with only the checkpoint at every
   detach (`duckdb_checkpoint_every_detach`), and the current one writing its dates inside
   `DuckDBWarehouse.hold` (`duckdb_held`: attached across dates, its final detach counted as commit), all
   taking turns date by date (the order rotating) so they see the same machine load; they share one
   DuckDB buffer pool in this process, so `--duckdb-variant` runs one at a time for cleaner numbers;
3. as a run stores them (`duckdb_overlapped`, `postgres_overlapped`: the current warehouses, each into a
   fresh copy preloaded alike): decoding on one thread while earlier dates are stored in worker threads,
   `ingest.STORES_AT_ONCE` at a time (`overlapped`); its wall time against the same baseline;
4. the baselines: the same committed rows written raw into bare tables with the same columns (no staging,
   no conflict handling, no index), in one transaction: `baseline` = the raw and the clean rows (every row
   the pipeline commits), `baseline_clean_only` = the clean rows alone. Postgres: `COPY ... FROM STDIN
   (FORMAT csv)` of the rows pre-rendered as CSV (rendering untimed); DuckDB: `INSERT INTO bare SELECT *
   FROM` the Arrow table.

Reports seconds and rows/s per stage and the ratio baseline seconds : pipeline seconds. The machine is shared
(2 cores, other agents' work running), so only ratios measured in one run mean much.

    .venv/bin/python bench/ingest_path.py [--candles 200000] [--per-date 8500] [--preload-candles 1000000]
        [--pg-admin-url URL] [--profile]

`--preload-candles` first stores that many raw and clean rows of earlier dates in every warehouse (untimed),
so the dates are written into tables of a season's size (~1.2M rows), where DuckDB's checkpoints cost most.
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
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from common import PG_ADMIN, temporary_database

from kalshi_pipeline.defs.candlesticks.clean import clean_day
from kalshi_pipeline.defs.candlesticks.columnar import accepted_table, fast_split
from kalshi_pipeline.defs.candlesticks.ingest import STORES_AT_ONCE
from kalshi_pipeline.defs.candlesticks.pull import MarketWindow, PulledMarket, raw_table
from kalshi_pipeline.kalshi.candle_answers import read_batch_answer
from kalshi_pipeline.warehouse import Warehouse, open_warehouse
from kalshi_pipeline.warehouse.duck import DuckDBWarehouse
from kalshi_pipeline.warehouse.schema import (
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_REJECTED,
    create_table_sql,
)
from kalshi_pipeline.warehouse.urls import resolve_url

RESULTS = Path(__file__).parent / "results" / "ingest_path.json"
MARKETS_PER_BODY = 100
CANDLES_PER_MARKET = 700
FIRST_DATE = dt.date(2025, 10, 21)
#: 2025-10-21 00:00 UTC; each game date's candles start a day later than the previous date's.
T0 = 1_761_004_800


@dataclass
class RecordedDate:
    """One game date's recorded batch answers and the windows of its markets."""

    day: dt.date
    bodies: list[bytes]
    windows: dict[str, MarketWindow] = field(default_factory=dict)

    @property
    def tickers(self) -> list[str]:
        return list(self.windows)


def _dollars(pips: np.ndarray) -> list[str]:
    return [f"{p // 10000}.{p % 10000:04d}" for p in pips.tolist()]


def _market_candles(rng: np.random.Generator, n: int, t0: int) -> list[dict[str, Any]]:
    """`n` live-format candles of one market: a random walk in whole cents, as game markets quote."""
    mid = np.clip(5000 + np.cumsum(rng.integers(-1, 2, size=n)) * 100, 300, 9700)
    bid = mid - rng.integers(0, 3, size=n) * 100
    ask = mid + rng.integers(1, 3, size=n) * 100
    traded = rng.random(n) < 0.6
    vols = rng.integers(1, 500_00, size=n)
    ois = np.cumsum(rng.integers(0, 100_00, size=n))
    b, a, m = _dollars(bid), _dollars(ask), _dollars(mid)
    out = []
    for k in range(n):
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
        volume = f"{vols[k] // 100}.{vols[k] % 100:02d}" if traded[k] else "0.00"
        out.append(
            {
                "end_period_ts": t0 + 60 * (k + 1),
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
                "volume_fp": volume,
                "open_interest_fp": f"{ois[k] // 100}.{ois[k] % 100:02d}",
            }
        )
    return out


def recorded_dates(candles: int, per_date: int, seed: int = 7) -> list[RecordedDate]:
    """Batch answers holding `candles` candles, `per_date` per game date (two markets per game)."""
    rng = np.random.default_rng(seed)
    markets_per_date = max(2, 2 * round(per_date / CANDLES_PER_MARKET / 2))
    per_market = -(-per_date // markets_per_date)
    dates = []
    for d in range(max(1, round(candles / per_date))):
        day = FIRST_DATE + dt.timedelta(days=d)
        t0 = T0 + 86_400 * d
        code = day.strftime("%y%b%d").upper()
        windows = {}
        for i in range(markets_per_date):
            event = f"KXNBAGAME-{code}G{i // 2:02d}"
            ticker = f"{event}-T{i % 2}"
            windows[ticker] = MarketWindow(ticker, event, "KXNBAGAME", day, t0, t0 + 86_400, False)
        tickers = list(windows)
        bodies = []
        for lo in range(0, len(tickers), MARKETS_PER_BODY):
            entries = [
                {"market_ticker": t, "candlesticks": _market_candles(rng, per_market, t0)}
                for t in tickers[lo : lo + MARKETS_PER_BODY]
            ]
            bodies.append(json.dumps({"markets": entries}, separators=(",", ":")).encode())
        dates.append(RecordedDate(day, bodies, windows))
    return dates


def decode_bodies(recorded: RecordedDate) -> list[PulledMarket]:
    """What the client and `pull_game` do with one date's answers: one `PulledMarket` per market."""
    pulled = []
    for body in recorded.bodies:
        blocks = read_batch_answer(body, _refuse, _refuse, period_interval=1)
        assert not isinstance(blocks, str), blocks
        pulled.extend(PulledMarket(recorded.windows[b.ticker], b) for b in blocks)
    return pulled


def _refuse(_: Any) -> Any:
    raise AssertionError("a recorded answer is plain: the object decoder is never needed")


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


STAGES = ("decode", "raw_rows", "begin", "raw_upsert", "validate", "commit")
#: What the DuckDB warehouse did at a63729d: a checkpoint at every detach, the candle tables' secondary
#: indexes in place.
AS_BEFORE = "duckdb_as_a63729d"
#: The current DuckDB schema with a checkpoint at every detach (`wal_limit=0`), separating the two changes.
EVERY_DETACH = "duckdb_checkpoint_every_detach"
#: The current DuckDB warehouse writing every date inside one `hold` (the file stays attached).
HELD = "duckdb_held"
#: The current warehouses storing the dates as a run does (`overlapped`), each into its own fresh copy.
OVERLAPPED_DUCKDB = "duckdb_overlapped"
OVERLAPPED_POSTGRES = "postgres_overlapped"


def _duckdb_current(path: str) -> Warehouse:
    wh = open_warehouse(f"duckdb:///{path}")
    wh.ensure_schema()
    return wh


def _duckdb_every_detach(path: str) -> Warehouse:
    wh = DuckDBWarehouse(resolve_url(f"duckdb:///{path}"), wal_limit=0)
    wh.ensure_schema()
    return wh


def _duckdb_as_before(path: str) -> Warehouse:
    wh = DuckDBWarehouse(resolve_url(f"duckdb:///{path}"), wal_limit=0)
    wh.ensure_schema()
    for spec in (CANDLESTICKS_RAW, CANDLESTICKS, CANDLESTICKS_REJECTED):
        for statement in create_table_sql(spec, "duckdb")[1:]:
            wh.execute(statement)
    return wh


@dataclass
class _Timings:
    """One warehouse's seconds per stage over all dates, and each date's commit."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    commits: list[float] = field(default_factory=list)


def _store_date(
    wh: Warehouse, date: RecordedDate, raw_rows: pa.Table, ingested_at_ts: int, timings: _Timings
) -> None:
    """One date's transaction: store the raw rows, validate them into the clean table."""
    start = time.perf_counter()
    with wh.transaction() as tx:
        opened = time.perf_counter()
        tx.upsert_arrow(CANDLESTICKS_RAW.name, raw_rows)
        stored = time.perf_counter()
        day = clean_day(
            tx,
            raw_rows,
            day_tickers=date.tickers,
            allowed_tickers=date.tickers,
            window_start=0,
            ingested_at_ts=ingested_at_ts,
        )
        validated = time.perf_counter()
    closed = time.perf_counter()
    assert day.valid == raw_rows.num_rows and not day.rejected
    seconds = timings.seconds
    seconds["begin"] += opened - start
    seconds["raw_upsert"] += stored - opened
    seconds["validate"] += validated - stored
    seconds["commit"] += closed - validated
    timings.commits.append(closed - validated)


def overlapped(wh: Warehouse, recorded: list[RecordedDate], ingested_at_ts: int) -> float:
    """Wall seconds of every date stored as a run stores them; the warehouse is held across dates.

    Decoding and building each date's rows happen on this thread while earlier dates are stored in worker
    threads, at most `ingest.STORES_AT_ONCE` at a time, each its own transaction (`_store_date`), as
    `ingest_raw_candles` does while its next dates are pulled.
    """
    start = time.perf_counter()
    storing: list[Future[None]] = []
    with ExitStack() as stack:
        if isinstance(wh, DuckDBWarehouse):
            stack.enter_context(wh.hold(idle=600))
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=STORES_AT_ONCE))
        for date in recorded:
            rows = raw_table(decode_bodies(date), ingested_at_ts)
            while len(storing) >= STORES_AT_ONCE:
                done, _ = wait(storing, return_when=FIRST_COMPLETED)
                for future in done:
                    storing.remove(future)
                    future.result()
            storing.append(pool.submit(_store_date, wh, date, rows, ingested_at_ts, _Timings()))
        for future in storing:
            future.result()
    return time.perf_counter() - start


def _shifted(table: pa.Table, days: int) -> pa.Table:
    """`table`'s rows moved `days` days earlier: game date, end times and the date in the tickers."""
    first, day = FIRST_DATE, FIRST_DATE - dt.timedelta(days=days)
    old, new = first.strftime("%y%b%d").upper(), day.strftime("%y%b%d").upper()
    rename = pc.ReplaceSubstringOptions(old, new)
    back = pa.scalar(dt.timedelta(days=days))
    columns = {
        "ticker": pc.call_function("replace_substring", [table["ticker"]], rename),
        "event_ticker": pc.call_function("replace_substring", [table["event_ticker"]], rename),
        "game_date": pa.array([day] * table.num_rows, pa.date32()),
        "end_period_ts": pc.call_function("subtract", [table["end_period_ts"], back]),
    }
    for name, column in columns.items():
        table = table.set_column(table.schema.get_field_index(name), name, column)
    return table


def preload(
    warehouses: dict[str, Warehouse], recorded: list[RecordedDate], candles: int
) -> dict[str, float]:
    """Fill each warehouse with `candles` raw and clean rows of earlier dates (untimed); return seconds.

    The rows are the first recorded date's, moved one day back per copy, written 20 dates per transaction.
    """
    ingested_at_ts = T0
    raw_rows = raw_table(decode_bodies(recorded[0]), ingested_at_ts)
    clean_rows = accepted_table(raw_rows, fast_split(raw_rows, recorded[0].tickers), ingested_at_ts)
    days = round(candles / raw_rows.num_rows)
    spent = dict.fromkeys(warehouses, 0.0)
    for lo in range(1, days + 1, 20):
        span = range(lo, min(days, lo + 19) + 1)
        raw_batch = pa.concat_tables([_shifted(raw_rows, k) for k in span])
        clean_batch = pa.concat_tables([_shifted(clean_rows, k) for k in span])
        for name, wh in warehouses.items():
            start = time.perf_counter()
            with wh.transaction() as tx:
                tx.upsert_arrow(CANDLESTICKS_RAW.name, raw_batch)
                tx.upsert_arrow(CANDLESTICKS.name, clean_batch)
            spent[name] += time.perf_counter() - start
    return spent


def bench(
    warehouses: dict[str, Warehouse], baseline_url: str, recorded: list[RecordedDate]
) -> dict[str, dict[str, Any]]:
    """Time every stage, one transaction per date on each warehouse in turn, then the baselines.

    The warehouses take turns date by date (the order rotating), so they share the machine's load. The
    `HELD` warehouse writes its dates inside `DuckDBWarehouse.hold` (idle bound raised past the other
    warehouses' turns, as if its dates came back to back); the detach ending the hold counts as its commit.
    """
    shared = {"decode": 0.0, "raw_rows": 0.0}
    timings = {name: _Timings() for name in warehouses}
    holds = ExitStack()
    held = warehouses.get(HELD)
    if isinstance(held, DuckDBWarehouse):
        holds.enter_context(held.hold(idle=600))
    ingested_at_ts = T0 + 86_400 * (len(recorded) + 1)
    raw_tables: list[pa.Table] = []
    clean_tables: list[pa.Table] = []
    for i, date in enumerate(recorded):
        spent, pulled = _timed(lambda date=date: decode_bodies(date))
        shared["decode"] += spent
        spent, raw_rows = _timed(lambda pulled=pulled: raw_table(pulled, ingested_at_ts))
        shared["raw_rows"] += spent
        names = list(warehouses)
        names = names[i % len(names) :] + names[: i % len(names)]
        for name in names:
            _store_date(warehouses[name], date, raw_rows, ingested_at_ts, timings[name])
        # The clean rows the transactions wrote, rebuilt untimed for the baselines.
        raw_tables.append(raw_rows)
        clean_tables.append(
            accepted_table(raw_rows, fast_split(raw_rows, date.tickers), ingested_at_ts)
        )
    spent, _ = _timed(holds.close)
    if HELD in timings:
        timings[HELD].seconds["commit"] += spent
    n = sum(t.num_rows for t in raw_tables)
    raw_all, clean_all = pa.concat_tables(raw_tables), pa.concat_tables(clean_tables)
    both = [(CANDLESTICKS_RAW.qualified, raw_all), (CANDLESTICKS.qualified, clean_all)]
    baseline_s = _baseline(baseline_url, both)
    clean_only_s = _baseline(baseline_url, both[1:])
    results = {}
    for name, timing in timings.items():
        seconds = timing.seconds | shared
        pipeline_s = sum(seconds.values())
        result: dict[str, Any] = {"candles": n, "dates": len(recorded)}
        for stage in STAGES:
            result[f"{stage}_seconds"] = round(seconds[stage], 3)
        result["commit_ms_per_date_median"] = round(1000 * float(np.median(timing.commits)), 1)
        result["commit_ms_per_date_last_quarter_median"] = round(
            1000 * float(np.median(timing.commits[-max(1, len(timing.commits) // 4) :])), 1
        )
        result |= {
            "store_seconds": round(pipeline_s - seconds["decode"] - seconds["raw_rows"], 3),
            "pipeline_seconds": round(pipeline_s, 3),
            "pipeline_rows_per_s": round(n / pipeline_s),
            "baseline_seconds": round(baseline_s, 3),
            "baseline_rows_per_s": round(n / baseline_s),
            "pipeline_vs_baseline": round(baseline_s / pipeline_s, 3),
            "baseline_clean_only_seconds": round(clean_only_s, 3),
            "pipeline_vs_baseline_clean_only": round(clean_only_s / pipeline_s, 3),
        }
        results[name] = result
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--candles", type=int, default=200_000)
    parser.add_argument("--per-date", type=int, default=8_500)
    parser.add_argument(
        "--preload-candles",
        type=int,
        default=0,
        help="raw and clean rows of earlier dates stored first, untimed (a season: ~1.2M)",
    )
    parser.add_argument("--pg-admin-url", default=PG_ADMIN)
    parser.add_argument("--only", choices=["duckdb", "postgres"], default=None)
    parser.add_argument(
        "--duckdb-variant",
        action="append",
        choices=["duckdb", HELD, EVERY_DETACH, AS_BEFORE],
        help="run only these DuckDB warehouses (repeatable; default all, in one process sharing "
        "DuckDB's buffer pool, so a held file's memory weighs on the others)",
    )
    parser.add_argument("--profile", action="store_true", help="print the top functions per run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    recorded = recorded_dates(args.candles, args.per_date)
    results: dict[str, Any] = {
        "benchmark": (
            "candle ingest path: recorded batch answers -> raw and clean rows committed per game date"
        ),
        "command": ".venv/bin/python bench/ingest_path.py " + " ".join(sys.argv[1:]),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.system()}, python {platform.python_version()}",
        "response_bytes": sum(len(b) for date in recorded for b in date.bodies),
        "notes": (
            "pipeline = decode + raw_rows + begin + raw_upsert + validate + commit, one transaction per "
            "date that stores the raw rows and validates them into the clean table from the rows in "
            "hand (store = begin + raw_upsert + validate + commit; begin includes DuckDB's attach and "
            "commit its detach); baseline = the same raw and clean rows written raw into bare tables in "
            "one transaction (Postgres COPY csv of pre-rendered rows; DuckDB INSERT from the Arrow "
            "tables); baseline_clean_only = the clean rows alone; pipeline_vs_baseline = baseline "
            f"seconds / pipeline seconds. {AS_BEFORE} = the DuckDB warehouse as at a63729d (a "
            f"checkpoint at every detach, the candle tables' secondary indexes); {EVERY_DETACH} = the "
            f"current schema with a checkpoint at every detach; {HELD} = the current warehouse inside "
            "hold() (attached across dates); the DuckDB warehouses take turns date by "
            "date in the same run (decode and raw_rows shared); *_overlapped = the same dates into a fresh "
            "copy, decoded on one thread while earlier dates are stored by ingest.STORES_AT_ONCE worker "
            "threads, as a run does (wall_vs_baseline = baseline seconds / its wall). 2 shared cores with other agents' work: "
            "compare ratios of one run, not absolute numbers"
        ),
    }

    def run(
        warehouses: dict[str, Warehouse],
        baseline_url: str,
        overlap: tuple[str, Warehouse] | None = None,
    ) -> None:
        preloaded = preload(warehouses, recorded, args.preload_candles)
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        try:
            measured = bench(warehouses, baseline_url, recorded)
        finally:
            for wh in warehouses.values():
                wh.close()
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        for name, result in measured.items():
            results[name] = result | {
                "preloaded_candles_per_table": args.preload_candles,
                "preload_seconds_untimed": round(preloaded[name], 1),
            }
            print(name, results[name], flush=True)
        if overlap is None:
            return
        # The same dates again, into a fresh warehouse preloaded alike, stored as a run stores them.
        name, wh = overlap
        try:
            preload({name: wh}, recorded, args.preload_candles)
            wall = overlapped(wh, recorded, T0 + 86_400 * (len(recorded) + 1))
        finally:
            wh.close()
        reference = results[next(iter(measured))]
        results[name] = {
            "candles": reference["candles"],
            "dates": reference["dates"],
            "stores_at_once": STORES_AT_ONCE,
            "wall_seconds": round(wall, 3),
            "rows_per_s": round(reference["candles"] / wall),
            "baseline_seconds": reference["baseline_seconds"],
            "wall_vs_baseline": round(reference["baseline_seconds"] / wall, 3),
            "preloaded_candles_per_table": args.preload_candles,
        }
        print(name, results[name], flush=True)

    if args.only in (None, "duckdb"):
        with tempfile.TemporaryDirectory() as tmp:
            makers: dict[str, Callable[[str], Warehouse]] = {
                "duckdb": _duckdb_current,
                HELD: _duckdb_current,
                EVERY_DETACH: _duckdb_every_detach,
                AS_BEFORE: _duckdb_as_before,
            }
            chosen = args.duckdb_variant or list(makers)
            variants = {name: makers[name](f"{tmp}/{name}.duckdb") for name in chosen}
            run(
                variants,
                f"duckdb:///{tmp}/bench.duckdb",
                None
                if args.duckdb_variant
                else (OVERLAPPED_DUCKDB, _duckdb_current(f"{tmp}/o.duckdb")),
            )
        for name in (HELD, EVERY_DETACH, AS_BEFORE):
            if name not in results or "duckdb" not in results:
                continue
            ratio = results["duckdb"]["store_seconds"] / results[name]["store_seconds"]
            results[f"duckdb_store_seconds_vs_{name.removeprefix('duckdb_')}"] = round(ratio, 3)
    if args.only in (None, "postgres"):
        with temporary_database("kalshi_ingest_bench", args.pg_admin_url) as url:
            wh = open_warehouse(url)
            wh.ensure_schema()
            with temporary_database("kalshi_ingest_overlap", args.pg_admin_url) as overlap_url:
                overlap = open_warehouse(overlap_url)
                overlap.ensure_schema()
                run({"postgres": wh}, url, (OVERLAPPED_POSTGRES, overlap))
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.only is None and not args.duckdb_variant:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
