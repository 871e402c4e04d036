"""Discovery of every game market of some game dates, live or archived (no Dagster here).

How a date's games are found, per configured series:

1. `GET /historical/cutoff` once per run: markets settled before `market_settled_ts` exist only under
   `/historical/markets`.
2. `GET /series/{series}` once per series: its `categories` are stored with each market, and when a
   series lists no events at all a 404 tells an unknown series (a clear error naming it) from one without
   games yet (an exchange without that endpoint still has its listed games found, without categories).
3. `GET /events?series_ticker=S&with_nested_markets=true&with_milestones=true` (200 events a page) and keep
   the events whose ticker date (`KXNBAGAME-25DEC19SASATL` -> 2025-12-19) is one of the run's dates. Events are
   never archived, so this finds archived games too. When every date of the run lies after the cutoff,
   `min_close_ts` = start of the first date (ET) is added: a game's markets close after its tip-off, so no
   game of the run can be filtered out while older events are skipped server-side.
4. Nested markets are the live ones. An event with no live market, or whose date is within a day of the
   cutoff (the archive edge), is also looked up with `GET /historical/markets?event_ticker=E`; a ticker found
   live wins over its archived copy. An event that still has no market (an exchange that ignored
   `with_nested_markets`) is looked up live with `GET /markets?event_ticker=E`.
5. Scheduled start: the event's milestone `start_date` when Kalshi has one, else
   `expected_expiration_time` minus the sport's typical game length (`TYPICAL_GAME_LENGTH`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.partitions import day_bounds
from kalshi_pipeline.kalshi import (
    Event,
    KalshiClient,
    KalshiError,
    KalshiNotFound,
    Market,
    market_team,
    parse_game_event,
)
from kalshi_pipeline.warehouse.schema import MARKETS

log = logging.getLogger(__name__)

#: Typical scheduled length of a game per series (tip-off to expected result), used to derive the start
#: from `expected_expiration_time` when Kalshi has no milestone. NBA: ~3 h (observed: LAL@SAS 2026-01-07
#: tipped 02:30Z, expected expiration 05:30Z).
TYPICAL_GAME_LENGTH: dict[str, timedelta] = {
    "KXNBAGAME": timedelta(hours=3),
    "KXWNBAGAME": timedelta(hours=3),
    "KXNCAAMBGAME": timedelta(hours=3),
    "KXNCAAWBGAME": timedelta(hours=3),
    "KXNFLGAME": timedelta(hours=3, minutes=30),
    "KXNCAAFGAME": timedelta(hours=3, minutes=30),
    "KXNHLGAME": timedelta(hours=3),
    "KXMLBGAME": timedelta(hours=3),
}
DEFAULT_GAME_LENGTH = timedelta(hours=3)


class UnknownSeriesError(ValueError):
    """A configured series ticker does not exist on the exchange."""


@dataclass
class Discovery:
    """What discovery found: one row per market plus how it was found."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    cutoff: datetime | None = None
    historical_lookups: int = 0
    skipped_events: list[str] = field(default_factory=list)
    #: Dates whose market lookups failed (their games have no rows here), with the first error, one line.
    failed_dates: dict[date, str] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """Return the rows as a `kalshi.markets` frame (exact column names, Decimal money)."""
        return pd.DataFrame(self.rows, columns=list(MARKETS.column_names))


def _utc(value: datetime | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _opt_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _milestone_start(event: Event) -> datetime | None:
    """Return the start date of the event's game milestone, if Kalshi attached one."""
    ticker = event.event_ticker
    best: datetime | None = None
    for milestone in event.milestones:
        start = milestone.start_date
        related = (*milestone.related_event_tickers, *milestone.primary_event_tickers)
        if related and ticker not in related:
            continue
        if best is None or start < best:
            best = start
    return best


def market_row(
    market: Market,
    *,
    series_ticker: str,
    source: str,
    milestone_start: datetime | None,
    now: datetime,
    series_categories: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Turn a client `Market` into a `kalshi.markets` row (parsed event fields, scheduled start).

    `series_categories` are the series' categories (None: unknown), stored as a JSON array.
    """
    game = parse_game_event(market.event_ticker, (market.ticker,))
    expected = market.expected_expiration_time
    if milestone_start is not None:
        start, start_source = milestone_start, "milestone"
    elif expected is not None:
        length = TYPICAL_GAME_LENGTH.get(series_ticker, DEFAULT_GAME_LENGTH)
        start, start_source = expected - length, "expected_expiration"
    else:
        start, start_source = None, None
    return {
        "ticker": market.ticker,
        "event_ticker": market.event_ticker,
        "series_ticker": series_ticker,
        "game_date": game.game_date,
        "away_team": game.away,
        "home_team": game.home,
        "team": market_team(market.ticker),
        "title": market.title,
        "yes_sub_title": market.yes_sub_title,
        "status": market.status,
        "result": market.result,
        "open_time": _utc(market.open_time),
        "close_time": _utc(market.close_time),
        "expected_expiration_time": _utc(expected),
        "scheduled_start": _utc(start),
        "scheduled_start_source": start_source,
        "settlement_ts": _utc(market.settlement_ts),
        "settlement_value_dollars": _opt_decimal(market.settlement_value_dollars),
        "last_price_dollars": _opt_decimal(market.last_price_dollars),
        "volume": _opt_decimal(market.volume_fp) or Decimal(0),
        "open_interest": _opt_decimal(market.open_interest_fp) or Decimal(0),
        "source": source,
        "updated_time": _utc(market.updated_time),
        "ingested_at": _utc(now),
        "settlement_bounds_type": market.settlement_bounds_type,
        "settlement_floor_dollars": _opt_decimal(market.settlement_floor_dollars),
        "series_categories": None
        if series_categories is None
        else json.dumps(list(series_categories)),
    }


def _event_ticker_of(game: tuple[Event, date]) -> str:
    return game[0].event_ticker


def _event_date(event_ticker: str) -> date | None:
    try:
        return parse_game_event(event_ticker).game_date
    except (ValueError, KalshiError):
        return None


async def _series_categories(
    client: KalshiClient, series_ticker: str, *, listed: bool
) -> tuple[str, ...] | None:
    """The series' categories; a series that is not found is unknown unless it listed events."""
    try:
        return (await client.get_series(series_ticker)).categories
    except KalshiNotFound:
        if listed:
            return None  # an exchange without `/series/{ticker}`: its listed games still count
        raise UnknownSeriesError(
            f"unknown series {series_ticker!r}: the exchange has no such series "
            "(check KALSHI_SERIES, e.g. KXNBAGAME)"
        ) from None


async def discover_markets(
    client: KalshiClient,
    series_tickers: Sequence[str],
    dates: Iterable[date],
    *,
    now: datetime | None = None,
    event_tickers: Iterable[str] = (),
) -> Discovery:
    """Find every market of every game on `dates` for each series (see the module docstring).

    `event_tickers`, when given, restricts discovery to those games.
    """
    wanted_dates = set(dates)
    if not wanted_dates:
        return Discovery()
    wanted_events = {e.strip().upper() for e in event_tickers if e.strip()}
    now = now or datetime.now(UTC)
    cutoff = (await client.get_historical_cutoff()).market_settled_ts
    result = Discovery(cutoff=cutoff)
    first_start, _ = day_bounds(min(wanted_dates))
    edge_dates = {
        (cutoff.astimezone(first_start.tzinfo).date() + timedelta(days=d)) for d in (-1, 0, 1)
    }

    for series in series_tickers:
        filters: dict[str, Any] = {
            "series_ticker": series,
            "with_nested_markets": True,
            "with_milestones": True,
        }
        if first_start > cutoff:
            filters["min_close_ts"] = int(first_start.timestamp())
        games: list[tuple[Event, date]] = []
        listed = 0
        for event in await client.list_events(**filters):
            listed += 1
            game_date = _event_date(event.event_ticker)
            if game_date is None:
                result.skipped_events.append(event.event_ticker)
                continue
            if game_date in wanted_dates and (
                not wanted_events or event.event_ticker in wanted_events
            ):
                games.append((event, game_date))
        categories = await _series_categories(client, series, listed=bool(listed))

        async def archived(event_ticker: str) -> list[Market]:
            result.historical_lookups += 1
            return await client.list_historical_markets(event_ticker=event_ticker)

        async def day_rows(
            day_games: list[tuple[Event, date]],
            series_ticker: str,
            categories: tuple[str, ...] | None,
        ) -> list[dict[str, Any]]:
            """The market rows of one date's games (its lookups run concurrently)."""
            lookups = [e for e, game_date in day_games if not e.markets or game_date in edge_dates]
            archived_lists = await asyncio.gather(*(archived(e.event_ticker) for e in lookups))
            archived_by_event = {
                e.event_ticker: ms for e, ms in zip(lookups, archived_lists, strict=True)
            }
            unnested = [
                e
                for e, _ in day_games
                if not e.markets and not archived_by_event.get(e.event_ticker)
            ]
            live_lists = await asyncio.gather(
                *(client.list_markets(event_ticker=e.event_ticker) for e in unnested)
            )
            live_by_event = {e.event_ticker: ms for e, ms in zip(unnested, live_lists, strict=True)}
            rows: list[dict[str, Any]] = []
            for event, _game_date in sorted(day_games, key=_event_ticker_of):
                start = _milestone_start(event)
                seen: set[str] = set()
                for source, markets in (
                    ("live", event.markets or live_by_event.get(event.event_ticker, ())),
                    ("historical", archived_by_event.get(event.event_ticker, ())),
                ):
                    for market in markets:
                        if market.ticker in seen or market.event_ticker != event.event_ticker:
                            continue
                        seen.add(market.ticker)
                        rows.append(
                            market_row(
                                market,
                                series_ticker=series_ticker,
                                source=source,
                                milestone_start=start,
                                now=now,
                                series_categories=categories,
                            )
                        )
            return rows

        # Dates are looked up independently: a date whose lookups fail is named in `failed_dates`
        # while every other date's rows are kept.
        days = sorted({game_date for _, game_date in games})
        by_day = await asyncio.gather(
            *(day_rows([g for g in games if g[1] == day], series, categories) for day in days),
            return_exceptions=True,
        )
        series_events: list[str] = []
        series_rows: list[dict[str, Any]] = []
        for day, got in zip(days, by_day, strict=True):
            if isinstance(got, BaseException) and not isinstance(got, Exception):
                raise got  # a cancellation or an interrupt stops the run
            if isinstance(got, BaseException):
                text = str(got).strip().splitlines()
                result.failed_dates.setdefault(
                    day, f"{series}: {type(got).__name__}: {text[0] if text else ''}"
                )
                continue
            series_events += (e.event_ticker for e, d in games if d == day)
            series_rows += got
        result.events += sorted(series_events)
        # By game, as one lookup of every date would give them (a stable sort keeps each game's order).
        result.rows += sorted(series_rows, key=lambda row: str(row["event_ticker"]))
    return result
