"""`kalshi-pipeline chart EVENT_TICKER [-o file.png]`: one game's win-probability chart from the warehouse.

The warehouse is the one `KALSHI_WAREHOUSE_URL` names (as for the code location), or `--warehouse-url`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the chart command's arguments."""
    parser.add_argument("event_ticker", metavar="EVENT_TICKER", help="e.g. KXNBAGAME-26JAN15BOSLAL")
    parser.add_argument(
        "-o", "--output", type=Path, default=None, help="PNG path (default: EVENT_TICKER.png)"
    )
    parser.add_argument(
        "--warehouse-url", default=None, help="default: KALSHI_WAREHOUSE_URL or the DuckDB default"
    )


def run(args: argparse.Namespace) -> int:
    """Write the chart; return the exit code (1 with one line on stderr when it cannot)."""
    from kalshi_pipeline.defs.games.report import write_chart
    from kalshi_pipeline.defs.resources import resources_from_env
    from kalshi_pipeline.defs.settings import SettingError, resolved_text
    from kalshi_pipeline.kalshi import TickerError
    from kalshi_pipeline.warehouse import WarehouseError, open_warehouse

    try:
        url = args.warehouse_url or resolved_text(resources_from_env()["warehouse"].url)
        wh = open_warehouse(url)
    except (SettingError, WarehouseError) as exc:
        print(f"kalshi-pipeline chart: {exc}", file=sys.stderr)
        return 1
    output = args.output or Path(f"{args.event_ticker}.png")
    try:
        path = write_chart(wh, args.event_ticker, output)
    except (TickerError, ValueError) as exc:
        print(f"kalshi-pipeline chart: {exc}", file=sys.stderr)
        return 1
    finally:
        wh.close()
    print(path)
    return 0
