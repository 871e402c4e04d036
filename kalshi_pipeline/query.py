"""`kalshi-pipeline query "SQL"`: read the warehouse the code location uses, safely beside running jobs.

The same query works on both warehouses: tables are `kalshi.<table>` in Postgres and in the embedded
DuckDB file alike (the file is attached under its own alias, so `data/kalshi.duckdb` does not make
`kalshi` ambiguous as it does in the `duckdb` shell). An embedded DuckDB file admits one writer process at
a time and a reader blocks it; this command attaches the file read-only for the one query and detaches it
at once, waiting (up to `KALSHI_DUCKDB_LOCK_TIMEOUT`) while a run writes. Only read statements are run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: First keywords of the statements this command runs (reads only; the warehouse belongs to the pipeline).
READ_KEYWORDS = ("select", "with", "show", "describe", "explain", "values", "table")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the command's arguments."""
    parser.add_argument("sql", help='One read query, e.g. "SELECT count(*) FROM kalshi.markets".')
    parser.add_argument(
        "--warehouse-url",
        default=None,
        help="Warehouse to read (default: KALSHI_WAREHOUSE_URL or duckdb:///data/kalshi.duckdb).",
    )
    parser.add_argument("--csv", action="store_true", help="Print CSV instead of a table.")


def is_read_query(sql: str) -> bool:
    """Return whether `sql` is one read statement (by its first keyword; no second statement)."""
    text = sql.strip().rstrip(";").strip()
    if not text or ";" in text:
        return False
    return text.split(None, 1)[0].lower() in READ_KEYWORDS


def run(args: argparse.Namespace) -> int:
    """Run the query and print its rows; return the process exit code (2 for a bad query or setting)."""
    from kalshi_pipeline.defs.resources import WarehouseResource, resources_from_env
    from kalshi_pipeline.defs.settings import SettingError, resolved_text
    from kalshi_pipeline.warehouse import open_warehouse
    from kalshi_pipeline.warehouse.errors import WarehouseError

    if not is_read_query(args.sql):
        print(
            "kalshi-pipeline query: only one read statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) "
            "is run; the pipeline owns the warehouse's writes",
            file=sys.stderr,
        )
        return 2
    try:
        configured: WarehouseResource = resources_from_env()["warehouse"]
        url = args.warehouse_url or resolved_text(configured.url)
        wh = open_warehouse(
            url,
            lock_timeout=configured.duckdb_lock_timeout_s,
            duckdb_memory_limit_mb=configured.duckdb_memory_limit_mb,
        )
    except (SettingError, WarehouseError) as exc:
        print(f"kalshi-pipeline query: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    path = wh.url.duckdb_path
    if path is not None and path != ":memory:" and not Path(path).is_file():
        # Reading must not create an empty warehouse where the user expected one.
        print(
            f"kalshi-pipeline query: no warehouse file {Path(path).resolve()} (from "
            f"{'--warehouse-url' if args.warehouse_url else 'KALSHI_WAREHOUSE_URL'}); run `make demo` "
            "or materialize a game date first, or point KALSHI_WAREHOUSE_URL at your warehouse",
            file=sys.stderr,
        )
        wh.close()
        return 2
    try:
        frame = wh.query_df(args.sql.strip().rstrip(";"))
    except WarehouseError as exc:
        print(f"kalshi-pipeline query: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    finally:
        wh.close()
    if args.csv:
        frame.to_csv(sys.stdout, index=False)
    else:
        print(frame.to_string(index=False) if len(frame) else "(no rows)")
    return 0
