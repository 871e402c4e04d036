"""One warehouse per Dagster instance, so the UI never shows partitions the warehouse does not have.

Dagster records materializations in its instance (DAGSTER_HOME); the data lives in the warehouse. If two
warehouses share one instance (say `make demo` wrote `data/kalshi.duckdb` and `make dev` pointed at
another file), the UI marks partitions materialized that the current warehouse lacks, and "backfill failed
and missing" skips them. `bind` records the instance's warehouse in `DAGSTER_HOME/warehouse.json` the
first time and refuses a different one afterwards with one line naming the fix. The record holds a digest
of the URL and its password-free rendering, never a password.

An instance made before this record existed (an old `.dagster_home/`) may already hold another warehouse's
materializations. Before recording a first binding, `bind` compares the game dates whose `kalshi/markets`
materializations reported markets with the dates the warehouse holds: a run whose dates the warehouse
lacks entirely came from another warehouse, and the binding is refused in one line. (Dagster's SQLite
event log cannot wipe single partitions, so the fix is a fresh instance, not an edit of this one.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

from kalshi_pipeline.warehouse import resolve_url
from kalshi_pipeline.warehouse.errors import WarehouseError

RECORD = "warehouse.json"
#: The asset every game date starts from: its materialization says how many markets the date had.
MARKETS_PATH = ("kalshi", "markets")
#: Foreign dates named in the refusal at most.
NAMED_DATES = 3


class InstanceBindingError(RuntimeError):
    """The Dagster instance already records another warehouse's materializations."""


def identity(url: str) -> tuple[str, str]:
    """Return (digest, display) of a warehouse URL; a DuckDB file by its absolute path."""
    parsed = resolve_url(url, source="KALSHI_WAREHOUSE_URL")
    if parsed.duckdb_path is not None and parsed.duckdb_path != ":memory:":
        path = str(Path(parsed.duckdb_path).resolve())
        return hashlib.sha256(f"duckdb:{path}".encode()).hexdigest(), f"duckdb file {path}"
    return hashlib.sha256(parsed.raw.encode()).hexdigest(), parsed.redacted


def bind(home: Path, url: str) -> str:
    """Record `url` as the warehouse of the instance at `home`, or check it is the recorded one.

    Returns the warehouse's display form. Raises InstanceBindingError when `home` holds another's runs:
    a different recorded warehouse, or (no record yet) materializations of game dates the warehouse does
    not hold.
    """
    digest, display = identity(url)
    record = home / RECORD
    known: dict[str, Any] = {}
    if record.is_file():
        try:
            known = json.loads(record.read_text())
        except json.JSONDecodeError:
            known = {}
        if known.get("digest") not in (None, digest):
            raise InstanceBindingError(
                f"the Dagster instance {home} records runs of {known.get('warehouse')}, not {display}: "
                f"use another DAGSTER_HOME (make dev: DEV_HOME=...) for this warehouse, or delete {home} "
                "to start over"
            )
    if known.get("digest") is None and _has_instance(home):
        foreign = foreign_dates(home, url)
        if foreign:
            named = ", ".join(str(d) for d in foreign[:NAMED_DATES])
            more = f" and {len(foreign) - NAMED_DATES} more" if len(foreign) > NAMED_DATES else ""
            raise InstanceBindingError(
                f"the Dagster instance {home} already records materializations of game dates that "
                f"{display} does not hold ({named}{more}), so the UI would show them as materialized: "
                "use a fresh DAGSTER_HOME for this warehouse (make dev: DEV_HOME=/path/to/new/home), "
                f"or delete {home} to start over"
            )
    home.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"digest": digest, "warehouse": display}) + "\n")
    return display


def _has_instance(home: Path) -> bool:
    """Whether `home` may hold Dagster history (a fresh or missing directory holds none)."""
    return (home / "history").is_dir() or (home / "dagster.yaml").is_file()


def foreign_dates(home: Path, url: str) -> list[date]:
    """Game dates the instance at `home` shows with markets that the warehouse at `url` does not hold.

    A `kalshi/markets` run that reported markets but none of whose dates the warehouse holds wrote to
    another warehouse. (A date of a run that found no market holds nothing anywhere, so it is no sign.)
    """
    import dagster as dg

    key = dg.AssetKey(list(MARKETS_PATH))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        partitions = instance.get_materialized_partitions(key)
        if not partitions:
            return []
        latest: dict[str, tuple[str, int]] = {}
        cursor = None
        while True:
            page = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key), limit=1000, cursor=cursor
            )
            for rec in page.records:
                materialization = rec.asset_materialization
                if materialization is None or materialization.partition is None:
                    continue
                if materialization.partition not in latest:
                    markets = materialization.metadata.get("markets")
                    count = markets.value if markets is not None else 0
                    latest[materialization.partition] = (
                        rec.run_id,
                        count if isinstance(count, int) else 0,
                    )
            if not page.has_more:
                break
            cursor = page.cursor
    runs: dict[str, list[date]] = defaultdict(list)
    for partition, (run_id, markets) in latest.items():
        if markets > 0:
            runs[run_id].append(date.fromisoformat(partition))
    if not runs:
        return []
    held = warehouse_dates(url)
    foreign = {d for dates in runs.values() if not held & set(dates) for d in dates}
    return sorted(foreign)


def warehouse_dates(url: str) -> set[date]:
    """The game dates of the warehouse's markets (none for a warehouse not created yet)."""
    from kalshi_pipeline.warehouse import open_warehouse

    parsed = resolve_url(url, source="KALSHI_WAREHOUSE_URL")
    if parsed.duckdb_path is not None and (
        parsed.duckdb_path == ":memory:" or not Path(parsed.duckdb_path).is_file()
    ):
        return set()
    wh = open_warehouse(url)
    try:
        exists = wh.query_df(
            "SELECT count(*) AS n FROM information_schema.tables "
            "WHERE table_schema = 'kalshi' AND table_name = 'markets'"
        )
        if not int(exists["n"].iloc[0]):
            return set()
        frame = wh.query_df("SELECT DISTINCT game_date FROM kalshi.markets")
    finally:
        wh.close()
    return {
        d if isinstance(d, date) else date.fromisoformat(str(d)[:10]) for d in frame["game_date"]
    }


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments (`kalshi-pipeline bind-instance HOME URL`)."""
    parser.add_argument("home", help="The Dagster instance directory (DAGSTER_HOME).")
    parser.add_argument(
        "warehouse_url", help="The warehouse its runs write (KALSHI_WAREHOUSE_URL)."
    )


def run(args: argparse.Namespace) -> int:
    """Bind the instance to the warehouse; exit code 2 with one line when it records another one."""
    try:
        bind(Path(args.home).resolve(), args.warehouse_url)
    except (InstanceBindingError, ValueError, WarehouseError) as exc:
        print(f"kalshi-pipeline bind-instance: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    return 0
