"""`kalshi-pipeline demo`: materialize recent game dates offline against the bundled simulator.

Starts the local Kalshi exchange on a free port, picks the most recent dates whose games are all settled
plus one archived date (before the historical cutoff), materializes `kalshi/markets`,
`kalshi/candlesticks_raw` and `kalshi/candlesticks` for each through Dagster with the real resources, and
prints a per-game summary. Runs are recorded in a local Dagster instance (`.dagster_home`), so
`dagster dev` shows them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to its subcommand parser."""
    parser.add_argument(
        "--warehouse-url",
        default=None,
        help="Warehouse to fill (default: KALSHI_WAREHOUSE_URL or duckdb:///data/kalshi.duckdb).",
    )
    parser.add_argument("--recent-dates", type=int, default=2, help="Recent settled dates (2).")
    parser.add_argument(
        "--archived-dates", type=int, default=1, help="Dates before the historical cutoff (1)."
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="Simulator seed (42, as make simulator)."
    )
    parser.add_argument(
        "--rate-limit", default="basic", help="Simulator and client rate-limit tier (basic)."
    )
    parser.add_argument(
        "--dagster-home",
        default=".dagster_home",
        help="Dagster instance directory to record the runs in (.dagster_home).",
    )


def _pick_dates(
    base_url: str, tier: str, recent: int, archived: int
) -> tuple[list[date], list[date]]:
    """Return (recent fully settled dates, archived dates), newest first, from the exchange."""
    from kalshi_pipeline.defs.partitions import GAME_TZ
    from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig, parse_game_event
    from kalshi_pipeline.warehouse import SETTLED_STATUSES

    async def run() -> tuple[list[date], list[date]]:
        async with KalshiClient(KalshiConfig(base_url=base_url, rate_limit_tier=tier)) as client:
            cutoff = (await client.get_historical_cutoff()).market_settled_ts
            statuses: dict[date, set[str]] = defaultdict(set)
            today = datetime.now(GAME_TZ).date()
            since = int((datetime.now(GAME_TZ) - timedelta(days=20)).timestamp())
            async for event in client.iter_events(
                series_ticker="KXNBAGAME", with_nested_markets=True, min_close_ts=since
            ):
                day = parse_game_event(event.event_ticker).game_date
                if day < today:
                    statuses[day] |= {m.status for m in event.markets} or {"missing"}
            settled = sorted(
                (d for d, s in statuses.items() if s <= set(SETTLED_STATUSES)), reverse=True
            )
            cutoff_day = cutoff.astimezone(GAME_TZ).date()
            old: list[date] = []
            if archived:
                counts: dict[date, int] = defaultdict(int)
                async for event in client.iter_events(series_ticker="KXNBAGAME"):
                    day = parse_game_event(event.event_ticker).game_date
                    if day < cutoff_day - timedelta(days=1):
                        counts[day] += 1
                old = sorted(counts, reverse=True)[:archived]
            return settled[:recent], old

    return asyncio.run(run())


def _fmt(value: Decimal | None) -> str:
    return "  -  " if value is None else f"{float(value) * 100:4.1f}%"


def dev_command(home: Path, warehouse_url: str) -> str:
    """Return the README's `make dev`, with overrides when the demo used another instance or warehouse."""
    from kalshi_pipeline.instance_binding import identity

    overrides = []
    if home != Path(".dagster_home").resolve():
        overrides.append(f"DEV_HOME={home}")
    if identity(warehouse_url)[0] != identity("duckdb:///data/kalshi.duckdb")[0]:
        overrides.append(f"DEV_WAREHOUSE_URL={warehouse_url}")
    return " ".join(["make dev", *overrides])


def _tier(source: object) -> str:
    """Name the Kalshi data tier a game came from: `archived` (/historical) or `recent` (the live API).

    The stored `source` says which endpoint served the market, not whether the game is in progress.
    """
    return "archived" if str(source) == "historical" else "recent"


def _summary(wh: Any, dates: list[date]) -> list[str]:
    """Per-game lines: teams, candles, rejects, home win probability at open, tip-off and last trade."""
    import pandas as pd

    markets = wh.query_df(
        "SELECT * FROM kalshi.markets WHERE game_date = ANY(%s) ORDER BY game_date, event_ticker",
        [list(dates)],
    )
    candles = wh.query_df(
        "SELECT ticker, end_period_ts, price_close FROM kalshi.candlesticks "
        "WHERE game_date = ANY(%s) AND price_close IS NOT NULL ORDER BY ticker, end_period_ts",
        [list(dates)],
    )
    counts = wh.query_df(
        "SELECT event_ticker, count(*) AS n FROM kalshi.candlesticks WHERE game_date = ANY(%s) "
        "GROUP BY event_ticker",
        [list(dates)],
    )
    rejects = wh.query_df(
        "SELECT event_ticker, count(*) AS n FROM kalshi.candlesticks_rejected "
        "WHERE game_date = ANY(%s) GROUP BY event_ticker",
        [list(dates)],
    )
    n_candles = dict(zip(counts["event_ticker"], counts["n"], strict=True))
    n_rejects = dict(zip(rejects["event_ticker"], rejects["n"], strict=True))
    by_ticker = {t: g for t, g in candles.groupby("ticker")}
    header = (
        f"{'date':10}  {'game':24}  {'tier':8}  {'candles':>7}  {'rej':>3}  "
        f"{'home open':>9}  {'at tip':>7}  {'last':>6}  winner"
    )
    lines = [header, "-" * len(header)]
    for event_ticker, group in markets.groupby("event_ticker", sort=False):
        first = group.iloc[0]
        home = group[group["team"] == first["home_team"]]
        winner = group[group["result"] == "yes"]["team"].tolist()
        opening = at_tip = last = None
        if len(home):
            prices = by_ticker.get(home.iloc[0]["ticker"])
            if prices is not None and len(prices):
                opening = prices["price_close"].iloc[0]
                last = prices["price_close"].iloc[-1]
                start = home.iloc[0]["scheduled_start"]
                if start is not None and not pd.isna(start):
                    before = prices[prices["end_period_ts"] <= start]
                    at_tip = before["price_close"].iloc[-1] if len(before) else None
        game = f"{first['away_team']} @ {first['home_team']}"
        lines.append(
            f"{first['game_date']!s:10}  {game:24}  {_tier(first['source']):8}  "
            f"{int(n_candles.get(event_ticker, 0)):>7}  {int(n_rejects.get(event_ticker, 0)):>3}  "
            f"{_fmt(opening):>9}  {_fmt(at_tip):>7}  {_fmt(last):>6}  "
            f"{winner[0] if winner else '?'}"
        )
    return lines


def _game_table(wh: Any, dates: list[date], chart_dir: Path) -> list[str]:
    """Per-game win probabilities (home team: tip-off, halftime, final minute) and each game's chart file."""
    from kalshi_pipeline.defs.games.report import game_summaries, write_chart

    header = (
        f"{'game':24}  {'final':>7}  {'home @tip':>9}  {'@half':>6}  {'@final':>6}  winner  chart"
    )
    lines = ["Win probability of the home team (kalshi.game_probabilities):", header]
    lines.append("-" * len(header))
    for game in game_summaries(wh, dates):
        score = (
            f"{game.away_points}-{game.home_points}"
            if game.away_points is not None and game.home_points is not None
            else "?"
        )
        try:
            chart = str(write_chart(wh, game.event_ticker, chart_dir / f"{game.event_ticker}.png"))
        except ValueError:
            chart = "-"
        lines.append(
            f"{game.away_team + ' at ' + game.home_team:24}  {score:>7}  {_fmt(game.at_tipoff):>9}  "
            f"{_fmt(game.at_halftime):>6}  {_fmt(game.final_minute):>6}  {game.winner or '?':6}  {chart}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the process exit code."""
    import dagster as dg

    from kalshi_pipeline.defs.candlesticks.assets import candle_assets
    from kalshi_pipeline.defs.games.assets import game_probabilities, game_states
    from kalshi_pipeline.defs.markets.assets import markets
    from kalshi_pipeline.defs.resources import (
        KalshiApiResource,
        LiveResource,
        WarehouseResource,
        resources_from_env,
    )
    from kalshi_pipeline.defs.settings import resolved_text
    from kalshi_pipeline.instance_binding import InstanceBindingError, bind
    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread
    from kalshi_pipeline.warehouse import open_warehouse

    # The demo runs against its own exchange; of the settings only the warehouse (and its lock timeout)
    # applies, read the same way as by the code location.
    configured: WarehouseResource = resources_from_env()["warehouse"]
    warehouse_url = args.warehouse_url or resolved_text(configured.url)
    home = Path(args.dagster_home).resolve()
    try:
        # One warehouse per Dagster instance: the UI then shows only partitions this warehouse has.
        warehouse_name = bind(home, warehouse_url)
    except InstanceBindingError as exc:
        print(f"kalshi-pipeline demo: {exc}", file=sys.stderr)
        return 2
    if not (home / "dagster.yaml").exists():
        # The project's instance settings (telemetry off, run queue) when run from the repository.
        project_yaml = Path("dagster.yaml")
        if project_yaml.is_file():
            shutil.copyfile(project_yaml, home / "dagster.yaml")
        else:
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    started = time.monotonic()
    sim_config = SimulatorConfig(
        host="127.0.0.1", port=0, seed=args.seed, rate_limit=args.rate_limit
    )
    print(
        f"Starting the simulated Kalshi exchange (seed {args.seed}, rate limit {args.rate_limit})..."
    )
    with serve_in_thread(sim_config) as sim:
        print(f"  REST at {sim.base_url}")
        recent, archived = _pick_dates(
            sim.base_url, args.rate_limit, args.recent_dates, args.archived_dates
        )
        dates = recent + archived
        if not dates:
            print("No settled game dates found on the exchange.", file=sys.stderr)
            return 1
        resources = {
            "kalshi": KalshiApiResource(base_url=sim.base_url, rate_limit_tier=args.rate_limit),
            "warehouse": WarehouseResource(
                url=warehouse_url,
                duckdb_lock_timeout_s=configured.duckdb_lock_timeout_s,
                duckdb_memory_limit_mb=configured.duckdb_memory_limit_mb,
            ),
            "live": LiveResource(),
        }
        instance = dg.DagsterInstance.from_config(str(home))
        for day in dates:
            kind = "archived" if day in archived else "recent"
            t0 = time.monotonic()
            result = dg.materialize(
                [markets, candle_assets, game_states, game_probabilities],
                resources=resources,
                partition_key=day.isoformat(),
                instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
            if not result.success:
                print(f"Materializing {day} failed; see the run in dagster dev.", file=sys.stderr)
                return 1
            failed = [
                f"{e.asset_key.to_user_string()}:{e.check_name}"
                for e in result.get_asset_check_evaluations()
                if not e.passed
            ]
            print(
                f"  {day} ({kind}) materialized in {time.monotonic() - t0:.1f}s"
                + (f"; failed checks: {', '.join(failed)}" if failed else "; all checks passed")
            )
    wh = open_warehouse(warehouse_url)
    try:
        lines = _summary(wh, dates)
        game_lines = _game_table(wh, dates, home / "charts")
    finally:
        wh.close()
    print()
    print(f"Warehouse: {warehouse_name} (Dagster instance {home})")
    print("\n".join(lines))
    print()
    print("\n".join(game_lines))
    print(f"\nDone in {time.monotonic() - started:.1f}s. Next, explore it in Dagster:")
    print(f"  {dev_command(home, warehouse_url)}")
    print(
        "      # the Dagster UI on http://127.0.0.1:3000 over this warehouse and Dagster instance, with a"
    )
    print("      # simulator playing live games that the live sensor keeps fresh")
    print('  .venv/bin/kalshi-pipeline query "SELECT count(*) FROM kalshi.candlesticks"')
    return 0
