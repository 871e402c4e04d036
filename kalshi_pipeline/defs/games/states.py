"""Observing the games of some dates: their live data (and replayed play-by-play) into `kalshi.game_states`.

A game's milestone is the one `GET /milestones?related_event_ticker=` ties to its event. One poll reads every
milestone's live data through the batch endpoint (`KalshiClient.get_live_datas`, at most 100 ids per
request) and stores one row per game observed at `now`. Games that have started also get their
play-by-play (`get_game_stats`) replayed as rows observed at each basket, when its events carry a wall
clock time and both scores (the simulator's do; Kalshi's event keys are not documented, so events without
them are counted, not guessed). Status comes from live data, never from the milestone's own
`details.status`, which Kalshi documents as possibly stale.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd

from kalshi_pipeline.kalshi import GameState, KalshiClient, LiveData
from kalshi_pipeline.kalshi.live_data import STATE_KEYS, parse_clock
from kalshi_pipeline.kalshi.parsing import parse_timestamp
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.games import known_milestones, upsert_game_states
from kalshi_pipeline.warehouse.schema import GAME_STATES

STATE_ROW_COLUMNS = tuple(c for c in GAME_STATES.column_names if c != "ingested_at")
_PBP_TIME_KEYS = ("wall_clock", "wall_clock_ts", "created_at", "updated_at")


@dataclass(frozen=True)
class GameStates:
    """What one observation of a set of games found and stored."""

    games: int
    #: Event tickers without a milestone (no live data can be asked for them).
    without_milestone: tuple[str, ...]
    #: Event tickers whose milestone had no live data.
    without_live_data: tuple[str, ...]
    #: How many live-data observations lacked each game-state field (see `STATE_KEYS`).
    missing_fields: dict[str, int]
    live_rows: int
    pbp_rows: int
    #: Play-by-play events skipped because they carry no wall-clock time or scores.
    pbp_skipped: int
    rows: pd.DataFrame
    observed_at: datetime


def state_row(
    event_ticker: str,
    milestone_id: str,
    game_date: Any,
    observed_at: datetime,
    source: str,
    state: GameState,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """One `kalshi.game_states` row."""
    return {
        "event_ticker": event_ticker,
        "observed_at": pd.Timestamp(observed_at),
        "milestone_id": milestone_id,
        "game_date": game_date,
        "source": source,
        "status": state.status,
        "period": state.period,
        "clock": state.clock,
        "clock_seconds": state.clock_seconds,
        "home_points": state.home_points,
        "away_points": state.away_points,
        "winner": state.winner,
        "missing_keys": ",".join(state.missing),
        "details": json.dumps(dict(details), sort_keys=True, default=str),
    }


def pbp_rows(
    event_ticker: str,
    milestone_id: str,
    game_date: Any,
    periods: Sequence[Sequence[Mapping[str, Any]]],
) -> tuple[list[dict[str, Any]], int]:
    """Rows replayed from play-by-play events that carry a wall-clock time and both scores."""
    rows, skipped = [], 0
    for number, events in enumerate(periods, start=1):
        for event in events:
            when = next((event[k] for k in _PBP_TIME_KEYS if isinstance(event.get(k), str)), None)
            home, away = event.get("home_points"), event.get("away_points")
            if when is None or not isinstance(home, int) or not isinstance(away, int):
                skipped += 1
                continue
            clock = event.get("clock")
            state = GameState(
                status="live",
                home_points=home,
                away_points=away,
                period=number,
                clock=str(clock) if parse_clock(clock) is not None else None,
                clock_seconds=parse_clock(clock),
                winner=None,
                missing=(),
            )
            observed = parse_timestamp(when, "wall_clock", "play-by-play event")
            rows.append(
                state_row(event_ticker, milestone_id, game_date, observed, "pbp", state, event)
            )
    return rows, skipped


async def find_milestones(
    client: KalshiClient, event_tickers: Sequence[str], known: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each game's milestone id: from `known` (ids stored before) else `GET /milestones?related_event_ticker=`.

    Games without a milestone are left out.
    """
    known = dict(known or {})

    async def milestone_of(event_ticker: str) -> str | None:
        if event_ticker in known:
            return known[event_ticker]
        async for m in client.iter_milestones(related_event_ticker=event_ticker, page_size=10):
            if m.concerns(event_ticker):
                return m.id
        return None

    found = await asyncio.gather(*(milestone_of(e) for e in event_tickers))
    return {e: m for e, m in zip(event_tickers, found, strict=True) if m is not None}


@dataclass(frozen=True)
class LivePoll:
    """One batch poll of some games' live data: their rows and parsed states (by event ticker)."""

    rows: list[dict[str, Any]]
    live: dict[str, LiveData]


async def poll_live_states(
    client: KalshiClient,
    milestones: Mapping[str, str],
    game_dates: Mapping[str, Any],
    now: datetime,
) -> LivePoll:
    """Read the live data of these games' milestones (one batch request per 100) as rows observed at `now`."""
    by_milestone = {m: e for e, m in milestones.items()}
    live = await client.get_live_datas(list(milestones.values())) if milestones else []
    rows: list[dict[str, Any]] = []
    seen: dict[str, LiveData] = {}
    for data in live:
        event = by_milestone.get(data.milestone_id or "")
        if event is None or event in seen:
            continue
        seen[event] = data
        rows.append(
            state_row(
                event,
                data.milestone_id or "",
                game_dates.get(event),
                now,
                "live_data",
                data.state,
                data.details,
            )
        )
    return LivePoll(rows, seen)


async def observe_games(
    wh: Warehouse,
    client: KalshiClient,
    game_dates: Sequence[date],
    *,
    now: datetime,
    replay_pbp: bool = True,
    event_tickers: Sequence[str] | None = None,
) -> GameStates:
    """Poll the live data of the games of `game_dates` once (plus play-by-play) and store the rows.

    `event_tickers` limits the poll to some games (a live refresh polls only the live ones, reusing the
    milestone ids stored before and skipping the play-by-play when `replay_pbp` is false).
    """
    games = wh.games(game_dates)
    tickers = [str(e) for e in games["event_ticker"]]
    if event_tickers is not None:
        wanted = set(event_tickers)
        tickers = [t for t in tickers if t in wanted]
    dates = dict(zip((str(e) for e in games["event_ticker"]), games["game_date"], strict=True))
    known = known_milestones(wh, tickers) if event_tickers is not None else {}
    milestones = await find_milestones(client, tickers, known)
    poll = await poll_live_states(client, milestones, dates, now)
    rows = list(poll.rows)
    missing: Counter[str] = Counter()
    for data in poll.live.values():
        missing.update(data.state.missing)
    live_rows = len(rows)
    skipped = 0
    if replay_pbp:
        started = [e for e, d in poll.live.items() if d.state.status not in (None, "none")]
        stats = await asyncio.gather(*(client.get_game_stats(milestones[e]) for e in started))
        for event, game_stats in zip(started, stats, strict=True):
            replayed, lost = pbp_rows(event, milestones[event], dates[event], game_stats.periods)
            rows.extend(replayed)
            skipped += lost
    frame = pd.DataFrame(rows, columns=list(STATE_ROW_COLUMNS))
    frame = frame.drop_duplicates(["event_ticker", "observed_at"], keep="first")
    with wh.transaction() as tx:
        upsert_game_states(tx, frame)
    return GameStates(
        games=len(tickers),
        without_milestone=tuple(e for e in tickers if e not in milestones),
        without_live_data=tuple(e for e in milestones if e not in poll.live),
        missing_fields={k: missing.get(k, 0) for k in STATE_KEYS},
        live_rows=live_rows,
        pbp_rows=len(frame) - live_rows,
        pbp_skipped=skipped,
        rows=frame,
        observed_at=now,
    )
