"""Refreshing `kalshi.markets` for some game dates: discover, upsert, read back, check both teams per game.

Discovery is in `discovery.py`; this stores what it found (markets found again are updated in place, none
is deleted) and reads the dates back, so the checks judge what the table holds, not what was sent. A date
whose lookups failed does not cost the others: their markets are stored, then `MarketDatesFailed` names
the dates to run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

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
    found = await discover_markets(client, series_tickers, dates, now=now)
    discovered = found.frame()
    if len(discovered):
        wh.upsert(MARKETS.name, discovered)
    if found.failed_dates:
        # The other dates' markets are stored: a re-run of the failed dates completes the range.
        raise MarketDatesFailed(found.failed_dates, len(discovered))
    stored = wh.markets(dates)
    complete, problems = game_team_check(stored)
    return MarketsRefresh(found, discovered, stored, tuple(complete), tuple(problems))


def game_team_check(markets: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split the games of some `kalshi.markets` rows into (complete, problems) by their teams' markets."""
    complete: list[str] = []
    problems: list[str] = []
    for event_ticker, group in markets.groupby("event_ticker"):
        away, home = group["away_team"].iloc[0], group["home_team"].iloc[0]
        if {away, home} <= set(group["team"]):
            complete.append(str(event_ticker))
        else:
            problems.append(f"{event_ticker}: teams {sorted(group['team'])}")
    return complete, problems
