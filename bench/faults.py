"""Fault suite: the fault campaign's experiments, repeated against the simulator and Postgres.

Every experiment backfills the same game dates with `dagster asset materialize` (a real process, the
project's dagster.yaml, the three pipeline assets) into a fresh Postgres database, injects one fault, then
compares `kalshi.candlesticks` with a clean reference run of the same seeded exchange:

- `kill -9 mid-backfill`: SIGKILL of the command once candles are being written; afterwards no process of
  it may remain and no connection of it may stay open in the database (the rate budget's included);
- `database cut mid-run`: `pg_terminate_backend` of every connection of the run's database mid-run;
- `storm 50%`: the exchange answers half of all requests with 500/503 (`--faults 500=0.25,503=0.25`);
- `malformed answers`: a proxy drops the `markets` list from 30% of candle answers;
- `one date down`: a proxy answers 500 to every candle request of the range's last date; the run must
  commit the other dates, fail naming that date, and the re-run covers only that date (`--partition`);
- `bad input`: a partition key outside the range (must change nothing and say so in one line).

After the fault, one plain re-run (no fault) must repair everything. The table reads: experiment, rows
expected, stored after the fault, missing, duplicated, wrong (values differing from the reference), what
the re-run (if one was needed) left missing/duplicated/wrong, and seconds. It measures the code as it is; a
row that is not repaired is a finding, not a failure of the suite. Results: `bench/results/faults.json`.

    .venv/bin/python bench/faults.py [--start 2026-01-10] [--days 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from common import PG_ADMIN, create_database, drop_database, free_port

from kalshi_pipeline_tests.exchange_proxy import ExchangeProxy, drop_candle_lists, fail_candles_of
from kalshi_pipeline_tests.processes import descendants, running, wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "faults.json"
SEED = 42
NOW = "2026-01-15T12:00:00-05:00"
ASSETS = "kalshi/markets,kalshi/candlesticks_raw,kalshi/candlesticks"
KEY = "ticker, period_interval, end_period_ts"
VALUES = "price_close, yes_bid_close, yes_ask_close, volume, open_interest"


@dataclass
class Row:
    """One line of the results table."""

    experiment: str
    expected: int
    stored: int
    missing: int
    duplicated: int
    wrong: int
    repaired: bool
    rerun_needed: bool
    seconds: float
    note: str = ""
    #: Missing, duplicated and wrong rows after the re-run (after the fault when none was needed).
    final: tuple[int, int, int] = (0, 0, 0)


class Simulator:
    """`kalshi-pipeline simulator` in a process of its own (seeded, clock pinned)."""

    def __init__(self, faults: str | None = None, rate_limit: str = "basic") -> None:
        self.port = free_port()
        args = [str(BIN / "kalshi-pipeline"), "simulator", "--port", str(self.port)]
        args += ["--seed", str(SEED), "--now", NOW, "--rate-limit", rate_limit]
        args += ["--log-level", "warning"] + (["--faults", faults] if faults else [])
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL)
        self.base_url = f"http://127.0.0.1:{self.port}/trade-api/v2"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/_sim/health").status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("the simulator did not start within 60 s")

    def stop(self) -> None:
        """Stop the simulator process."""
        self.proc.terminate()
        self.proc.wait(timeout=30)


def materialize(
    base_url: str, db_url: str, start: str, end: str, home: Path
) -> subprocess.Popen[str]:
    """Start `dagster asset materialize` of the three assets over [start, end]."""
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KALSHI_API_BASE_URL": base_url,
        "KALSHI_WAREHOUSE_URL": db_url,
        "KALSHI_RATE_LIMIT_TIER": "basic",
        "PYTHONPATH": str(ROOT),
    }
    args = [str(BIN / "dagster"), "asset", "materialize", "-m", "kalshi_pipeline.definitions"]
    args += ["--select", ASSETS, "--partition-range", f"{start}...{end}"]
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def candles(db_url: str) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], int]:
    """Return the stored candles by key (values) and the raw row count (0 when nothing is stored)."""
    with psycopg.connect(db_url) as conn:
        exists = conn.execute("SELECT to_regclass('kalshi.candlesticks')").fetchone()
        if exists is None or exists[0] is None:
            return {}, 0
        rows = conn.execute(f"SELECT {KEY}, {VALUES} FROM kalshi.candlesticks").fetchall()
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}, len(rows)


def compare(reference: dict[tuple[Any, ...], tuple[Any, ...]], db_url: str) -> dict[str, int]:
    """Count stored, missing, duplicated and wrong candles against the reference run."""
    stored, count = candles(db_url)
    return {
        "stored": count,
        "missing": sum(1 for k in reference if k not in stored),
        "duplicated": count - len(stored),
        "wrong": sum(1 for k, v in stored.items() if k in reference and reference[k] != v),
    }


def candles_by_date(db_url: str) -> list[tuple[Any, ...]]:
    """Return the game dates that hold candles in `kalshi.candlesticks_raw`."""
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT DISTINCT game_date FROM kalshi.candlesticks_raw").fetchall()


def connections(db_url: str) -> int:
    """Return how many sessions are connected to the database (besides this one)."""
    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        ).fetchone()
    return int(row[0]) if row else 0


def verdict(code: int, out: str) -> str:
    """Return `succeeded`, or the failed command's last output line."""
    lines = out.strip().splitlines()
    return "succeeded" if code == 0 else (lines[-1][:200] if lines else "no output")


class Suite:
    """Shared state of one suite run: the date range, a clean exchange and the reference candles."""

    def __init__(self, start: str, end: str, workdir: Path) -> None:
        self.start, self.end, self.workdir = start, end, workdir
        self.clean = Simulator()
        self.reference: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def home(self, name: str) -> Path:
        """A fresh DAGSTER_HOME with the project's dagster.yaml."""
        home = self.workdir / name
        home.mkdir()
        shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
        return home

    def run(
        self, base_url: str, db_url: str, home: Path, dates: tuple[str, str] | None = None
    ) -> tuple[int, str]:
        """Materialize the range (or `dates`) to the end; return the exit code and the last line."""
        start, end = dates or (self.start, self.end)
        proc = materialize(base_url, db_url, start, end, home)
        out, _ = proc.communicate(timeout=1800)
        return proc.returncode, verdict(proc.returncode, out)

    def experiment(
        self,
        name: str,
        fault: Callable[[str, Path], str],
        rerun_dates: tuple[str, str] | None = None,
    ) -> Row:
        """Run one experiment on a fresh database: the fault, a measurement, a plain re-run, again.

        The re-run covers the whole range, or `rerun_dates` when the fault's run named what failed.
        """
        db_url = create_database("kalshi_faults")
        try:
            t0 = time.monotonic()
            note = fault(db_url, self.home(f"{name.split()[0]}-{int(t0 * 1000)}"))
            after = compare(self.reference, db_url)
            final = (after["missing"], after["duplicated"], after["wrong"])
            rerun_needed = final != (0, 0, 0)
            if rerun_needed:
                home = self.home(f"rerun-{int(t0 * 1000)}")
                code, _ = self.run(self.clean.base_url, db_url, home, rerun_dates)
                again = compare(self.reference, db_url)
                final = (again["missing"], again["duplicated"], again["wrong"])
                covered = "{}..{}".format(*rerun_dates) if rerun_dates else "the whole range"
                note += f"; re-run of {covered}: exit {code}"
            return Row(
                experiment=name,
                expected=len(self.reference),
                seconds=round(time.monotonic() - t0, 1),
                repaired=final == (0, 0, 0),
                rerun_needed=rerun_needed,
                note=note,
                final=final,
                **after,
            )
        finally:
            drop_database(db_url)


def _repaired(row: Row) -> str:
    if not row.rerun_needed:
        return "not needed"
    return "yes" if row.repaired else "NO"


def main() -> int:
    """Run every experiment, print the table and write bench/results/faults.json."""
    parser = argparse.ArgumentParser(description="Run the fault suite and print its table.")
    parser.add_argument("--start", default="2026-01-10")
    parser.add_argument("--days", type=int, default=2)
    args = parser.parse_args()
    end = (date.fromisoformat(args.start) + timedelta(days=args.days - 1)).isoformat()
    workdir = Path(tempfile.mkdtemp(prefix="kalshi-faults-"))
    suite = Suite(args.start, end, workdir)
    rows: list[Row] = []
    try:
        ref_db = create_database("kalshi_faults_ref")
        try:
            t0 = time.monotonic()
            code, last = suite.run(suite.clean.base_url, ref_db, suite.home("reference"))
            if code != 0:
                print(f"the clean reference run failed: {last}", file=sys.stderr)
                return 1
            suite.reference, _ = candles(ref_db)
            rows.append(
                Row(
                    "clean run (reference)",
                    *(len(suite.reference), len(suite.reference), 0, 0, 0),
                    repaired=True,
                    rerun_needed=False,
                    seconds=round(time.monotonic() - t0, 1),
                )
            )
        finally:
            drop_database(ref_db)

        def kill9(db_url: str, home: Path) -> str:
            proc = materialize(suite.clean.base_url, db_url, suite.start, suite.end, home)
            wait_for(lambda: candles(db_url)[1] > 0, 600)
            kids = descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            # Dagster's compute-log tailers poll their parent and exit on their own within seconds.
            gone = wait_for(lambda: not [p for p in kids if running(p)], 30)
            closed = wait_for(lambda: connections(db_url) == 0, 30)
            before = candles(db_url)[1]
            time.sleep(5)
            grew = candles(db_url)[1] - before
            return (
                f"processes below the command at the kill: {len(kids)}, all gone within 30 s: {gone}; "
                f"its database sessions all closed within 30 s: {closed}; rows written after: {grew}"
            )

        def db_cut(db_url: str, home: Path) -> str:
            proc = materialize(suite.clean.base_url, db_url, suite.start, suite.end, home)
            wait_for(lambda: candles(db_url)[1] > 0, 600)
            name = db_url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                cut = conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    [name],
                ).fetchone()
            out, _ = proc.communicate(timeout=1800)
            return (
                f"{cut[0] if cut else 0} backends terminated; run exit {proc.returncode}: "
                f"{verdict(proc.returncode, out)}"
            )

        def storm(db_url: str, home: Path) -> str:
            sim = Simulator(faults="500=0.25,503=0.25")
            try:
                code, last = suite.run(sim.base_url, db_url, home)
            finally:
                sim.stop()
            return f"run exit {code}: {last[:160]}"

        def malformed(db_url: str, home: Path) -> str:
            proxy = ExchangeProxy(suite.clean.base_url, drop_candle_lists(0.3, SEED))
            try:
                code, last = suite.run(proxy.base_url, db_url, home)
            finally:
                proxy.stop()
            return (
                f"{proxy.tampered} candle answers without their list; run exit {code}: {last[:160]}"
            )

        def one_date_down(db_url: str, home: Path) -> str:
            down = date.fromisoformat(suite.end)
            proxy = ExchangeProxy(suite.clean.base_url, fail_candles_of(down))
            try:
                code, last = suite.run(proxy.base_url, db_url, home)
            finally:
                proxy.stop()
            committed = sorted({str(k[0]) for k in candles_by_date(db_url)})
            return (
                f"{proxy.tampered} candle answers of {down} failed; run exit {code}: {last[:200]}; "
                f"dates with candles after the run: {', '.join(committed) or 'none'}"
            )

        def bad_input(db_url: str, home: Path) -> str:
            # First a clean run, then a bad key: the stored rows must stay exactly as they were.
            suite.run(suite.clean.base_url, db_url, home)
            proc = materialize(suite.clean.base_url, db_url, "2030-01-15", "2030-01-16", home)
            out, _ = proc.communicate(timeout=600)
            return f"exit {proc.returncode}, last line: {out.strip().splitlines()[-1][:200]}"

        for name, fault, rerun_dates in [
            ("kill -9 mid-backfill", kill9, None),
            ("database cut mid-run", db_cut, None),
            ("storm 50% (500/503)", storm, None),
            ("malformed answers 30%", malformed, None),
            ("one date down (500s)", one_date_down, (suite.end, suite.end)),
            ("bad input (2030 partition)", bad_input, None),
        ]:
            print(f"running: {name} ...", file=sys.stderr, flush=True)
            rows.append(suite.experiment(name, fault, rerun_dates))
    finally:
        suite.clean.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        "| experiment | expected | stored | missing | duplicated | wrong | repaired by re-run "
        "| after re-run: missing / duplicated / wrong | s |"
    )
    print("|---|---:|---:|---:|---:|---:|---|---|---:|")
    for r in rows:
        print(
            f"| {r.experiment} | {r.expected} | {r.stored} | {r.missing} | {r.duplicated} | "
            f"{r.wrong} | {_repaired(r)} | {' / '.join(map(str, r.final))} | {r.seconds} |"
        )
    for r in rows:
        if r.note:
            print(f"- {r.experiment}: {r.note}")
    RESULTS.write_text(
        json.dumps(
            {
                "command": f".venv/bin/python bench/faults.py --start {args.start} --days {args.days}",
                "dates": [args.start, end],
                "seed": SEED,
                "now": NOW,
                "rows": [asdict(r) for r in rows],
            },
            indent=2,
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
