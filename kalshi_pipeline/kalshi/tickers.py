"""Parsing of Kalshi game tickers: `{SERIES}-{YY}{MON}{DD}[HHMM]{AWAY}{HOME}` and `{event}-{TEAM}`.

Team codes have variable length (`SAS`, `KU`, `DUKE`), so the away/home split uses the market tickers'
team suffixes when they are given; without them only a 6-letter pair is split (evenly, 3 + 3).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from kalshi_pipeline.kalshi.errors import TickerError

MONTHS = {
    "JAN": 1,
    "FEB": 2,
    "MAR": 3,
    "APR": 4,
    "MAY": 5,
    "JUN": 6,
    "JUL": 7,
    "AUG": 8,
    "SEP": 9,
    "OCT": 10,
    "NOV": 11,
    "DEC": 12,
}

_EVENT_RE = re.compile(
    r"^(?P<series>[A-Z][A-Z0-9]*)-(?P<yy>\d{2})(?P<mon>[A-Z]{3})(?P<dd>\d{2})"
    r"(?P<hhmm>\d{4})?(?P<teams>[A-Z][A-Z0-9]*)$"
)
_TEAM_RE = re.compile(r"^[A-Z0-9]+$")


@dataclass(frozen=True)
class GameEvent:
    """The parts of a game event ticker: series, date (local game date), away and home team codes."""

    series_ticker: str
    event_ticker: str
    game_date: date
    away: str
    home: str
    start_hhmm: str | None


def event_date_code(game_date: date) -> str:
    """Return the date part of a game date's event tickers, e.g. `26NOV15` for 2026-11-15."""
    month = next(code for code, number in MONTHS.items() if number == game_date.month)
    return f"{game_date:%y}{month}{game_date:%d}"


def market_team(market_ticker: str) -> str:
    """Return the team code of a game market ticker (`KXNBAGAME-25DEC19SASATL-ATL` -> `ATL`).

    Raises:
        TickerError: The ticker is not `{SERIES}-{EVENT}-{TEAM}`.
    """
    parts = market_ticker.strip().split("-")
    if len(parts) < 3 or not _TEAM_RE.match(parts[-1]) or not all(parts):
        raise TickerError(
            f"market ticker {market_ticker!r} is not '{{SERIES}}-{{DATE}}{{AWAY}}{{HOME}}-{{TEAM}}' "
            "(example: KXNBAGAME-25DEC19SASATL-ATL)"
        )
    return parts[-1]


def _split_teams(event_ticker: str, teams: str, suffixes: set[str]) -> tuple[str, str]:
    for away in sorted(suffixes, key=len, reverse=True):
        home = teams[len(away) :]
        if teams.startswith(away) and home in suffixes:
            return away, home
    for team in sorted(suffixes, key=len, reverse=True):
        if len(team) < len(teams):
            if teams.startswith(team):
                return team, teams[len(team) :]
            if teams.endswith(team):
                return teams[: -len(team)], team
    if len(teams) == 6:
        return teams[:3], teams[3:]
    hint = (
        f"market team codes {sorted(suffixes)} do not split it"
        if suffixes
        else "pass its market tickers (e.g. get the event's markets) to split away/home"
    )
    raise TickerError(
        f"event ticker {event_ticker!r}: cannot tell away from home team in {teams!r}; {hint}"
    )


def parse_game_event(event_ticker: str, market_tickers: Iterable[str] = ()) -> GameEvent:
    """Parse a game event ticker such as `KXNBAGAME-25DEC19SASATL` or `KXMLBGAME-26JUN141920TEXBOS`.

    Args:
        event_ticker: The event ticker (away team first, then home team).
        market_tickers: The event's market tickers (`{event_ticker}-{TEAM}`); their team suffixes decide
            where the away code ends. Without them only 6-letter team pairs can be split.

    Raises:
        TickerError: The ticker does not parse, the date is invalid or the teams cannot be split.
    """
    ticker = event_ticker.strip()
    match = _EVENT_RE.match(ticker)
    if match is None:
        raise TickerError(
            f"event ticker {event_ticker!r} is not '{{SERIES}}-{{YY}}{{MON}}{{DD}}[HHMM]{{AWAY}}{{HOME}}' "
            "(example: KXNBAGAME-25DEC19SASATL)"
        )
    month = MONTHS.get(match["mon"])
    if month is None:
        raise TickerError(f"event ticker {event_ticker!r}: unknown month {match['mon']!r}")
    try:
        game_date = date(2000 + int(match["yy"]), month, int(match["dd"]))
    except ValueError:
        raise TickerError(
            f"event ticker {event_ticker!r}: {match['yy']}{match['mon']}{match['dd']} is not a valid date"
        ) from None
    hhmm = match["hhmm"]
    if hhmm is not None and (int(hhmm[:2]) > 23 or int(hhmm[2:]) > 59):
        raise TickerError(f"event ticker {event_ticker!r}: {hhmm!r} is not a valid HHMM start time")
    prefix = ticker + "-"
    suffixes = set()
    for market in market_tickers:
        if market.startswith(prefix):
            suffixes.add(market_team(market))
    away, home = _split_teams(ticker, match["teams"], suffixes)
    return GameEvent(
        series_ticker=match["series"],
        event_ticker=ticker,
        game_date=game_date,
        away=away,
        home=home,
        start_hhmm=hhmm,
    )
