"""One warehouse per Dagster instance, so the UI never shows partitions the warehouse does not have.

Dagster records materializations in its instance (DAGSTER_HOME); the data lives in the warehouse. If two
warehouses share one instance (say `make demo` wrote `data/kalshi.duckdb` and `make dev` pointed at
another file), the UI marks partitions materialized that the current warehouse lacks, and "backfill failed
and missing" skips them. `bind` records the instance's warehouse in `DAGSTER_HOME/warehouse.json` the
first time and refuses a different one afterwards with one line naming the fix. The record holds a digest
of the URL and its password-free rendering, never a password.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from kalshi_pipeline.warehouse import resolve_url

RECORD = "warehouse.json"


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

    Returns the warehouse's display form. Raises InstanceBindingError when `home` holds another's runs.
    """
    digest, display = identity(url)
    record = home / RECORD
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
    home.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"digest": digest, "warehouse": display}) + "\n")
    return display


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
    except (InstanceBindingError, ValueError) as exc:
        print(f"kalshi-pipeline bind-instance: {exc}", file=sys.stderr)
        return 2
    return 0
