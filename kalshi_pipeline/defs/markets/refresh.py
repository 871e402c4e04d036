"""Refreshing `kalshi.markets` for some game dates: discover, upsert, read back, check the stored rows.

The checks: both teams' markets per game (`game_team_check`), and every settlement consistent with its
result (`settlement_check`: `yes` settles at 1, `no` at 0, `scalar` at a value in [0, 1], e.g. 0.50 for a
tied game, held exactly).

Discovery is in `discovery.py`; this stores what it found (markets found again are updated in place, none
is deleted) and reads the dates back, so the checks judge what the table holds, not what was sent. A date
whose lookups failed does not cost the others: their markets are stored, then `MarketDatesFailed` names
the dates to run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.markets.discovery import Discovery, discover_markets
from kalshi_pipeline.kalshi import KalshiClient
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.schema import MARKETS


class MarketDatesFailed(RuntimeError):
    """Some game dates' markets could not be looked up; every other date's markets were stored."""

    def __init__(self, failures: dict[date, str], stored_markets: int) -> None:
        self.failures = dict(sorted(failures.items()))
        first_day, first_error = next(iter(self.failures.items()))
        super().__init__(
            f"markets of {len(self.failures)} game date(s) could not be looked up: "
            f"{', '.join(str(d) for d in self.failures)} ({first_day}: {first_error}); the "
            f"{stored_markets} markets of the other dates were stored -- run only the failed dates again"
        )


@dataclass(frozen=True)
class MarketsRefresh:
    """What discovery found and what `kalshi.markets` holds afterwards for the dates."""

    discovery: Discovery
    #: The rows discovered and upserted, one per market.
    discovered: pd.DataFrame
    #: Every stored market of the dates, read back after the upsert.
    stored: pd.DataFrame
    #: Stored games with a market for the away team and one for the home team.
    complete_games: tuple[str, ...]
    #: One line per stored game missing a team's market (`EVENT: teams [...]`).
    team_problems: tuple[str, ...]
    #: One line per stored market whose settlement does not fit its result (`settlement_check`).
    settlement_problems: tuple[str, ...] = ()

    def markets_from(self, source: str) -> int:
        """How many discovered markets came from `source` (`live` or `historical`)."""
        if not len(self.discovered):
            return 0
        return int((self.discovered["source"] == source).sum())


async def refresh_markets(
    wh: Warehouse,
    client: KalshiClient,
    series_tickers: Sequence[str],
    dates: Sequence[date],
    *,
    now: datetime,
) -> MarketsRefresh:
    """Discover every market of the dates' games for each series and upsert them into `kalshi.markets`.

    `now` stamps `ingested_at` (see `discover_markets` for how games are found).
    """
    return store_markets(wh, await discover_markets(client, series_tickers, dates, now=now), dates)


def store_markets(wh: Warehouse, found: Discovery, dates: Sequence[date]) -> MarketsRefresh:
    """Upsert what discovery found for the dates into `kalshi.markets`, read the dates back and check them.

    Raises:
        MarketDatesFailed: Some dates' lookups failed (the other dates' markets are stored).
    """
    discovered = found.frame()
    if len(discovered):
        wh.upsert(MARKETS.name, discovered)
    if found.failed_dates:
        # The other dates' markets are stored: a re-run of the failed dates completes the range.
        raise MarketDatesFailed(found.failed_dates, len(discovered))
    stored = wh.markets(dates)
    complete, problems = game_team_check(stored)
    return MarketsRefresh(
        found,
        discovered,
        stored,
        tuple(complete),
        tuple(problems),
        tuple(settlement_check(stored)),
    )


#: The settlement value each binary result implies (a scalar result carries its own).
BINARY_SETTLEMENTS = {"yes": Decimal(1), "no": Decimal(0)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA


def settlement_check(markets: pd.DataFrame) -> list[str]:
    """One line per market whose result and `settlement_value_dollars` disagree (empty: all consistent).

    A market without a result (or an empty one) has nothing to check. `yes`/`no` settle at 1/0 (when the
    value is present); `scalar` needs a value in [0, 1]; any other result is unknown. Values must be exact
    decimals (a float would mean a lossy path).
    """
    problems: list[str] = []
    for row in markets[["ticker", "result", "settlement_value_dollars"]].itertuples(index=False):
        ticker, result, value = row
        if _missing(result) or result == "":
            continue
        if not _missing(value) and not isinstance(value, Decimal):
            problems.append(f"{ticker}: settlement value {value!r} is not an exact decimal")
            continue
        if result in BINARY_SETTLEMENTS:
            if not _missing(value) and value != BINARY_SETTLEMENTS[result]:
                problems.append(f"{ticker}: result {result!r} settled at {value}")
        elif result == "scalar":
            if _missing(value) or not Decimal(0) <= value <= Decimal(1):
                problems.append(f"{ticker}: scalar result settled at {value} (not in [0, 1])")
        else:
            problems.append(f"{ticker}: unknown result {result!r}")
    return problems


def game_team_check(markets: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split the games of some `kalshi.markets` rows into (complete, problems) by their teams' markets."""
    sides: dict[str, tuple[Any, Any]] = {}
    teams: dict[str, list[Any]] = {}
    columns = (markets[c].tolist() for c in ("event_ticker", "away_team", "home_team", "team"))
    for event_ticker, away, home, team in zip(*columns, strict=True):
        sides.setdefault(event_ticker, (away, home))
        teams.setdefault(event_ticker, []).append(team)
    complete: list[str] = []
    problems: list[str] = []
    for event_ticker in sorted(sides):
        if set(sides[event_ticker]) <= set(teams[event_ticker]):
            complete.append(str(event_ticker))
        else:
            problems.append(f"{event_ticker}: teams {sorted(teams[event_ticker])}")
    return complete, problems
