"""Kalshi's live sports data: typed models of `LiveData` and the game state read from its open `details`.

Kalshi serves live data without auth: `GET /live_data/milestone/{id}` (`{"live_data": LiveData}`),
`GET /live_data/batch?milestone_ids=A&milestone_ids=B` (`{"live_datas": [LiveData]}`, the parameter
repeated, at most 100 ids per request) and `GET /live_data/milestone/{id}/game_stats`
(`{"pbp": {"periods": [{"events": [...]}]}}`, `pbp` null for unsupported milestones). Sources: Kalshi's API
reference pages "Get Live Data", "Get Multiple Live Data" and "Get Game Stats" (docs.kalshi.com
`api-reference/live_data/*`, OpenAPI 3.22+).

`LiveData.details` is an open object (`additionalProperties: true`). Its team-sport keys are documented
only second-hand (pond.dflow.net "Live Data Response Details", which passes Kalshi's objects through):
`status` (`none` | `live` | `finished`), `home_points`, `away_points`, `round` (the period), `winner`,
`final_round_time_left` (the clock), `home_abbreviation`/`away_abbreviation`, `home_id`/`away_id`. So the
details are kept raw and `GameState.from_details` extracts what is there, listing the keys it could not
find or read instead of raising.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kalshi_pipeline.kalshi.errors import KalshiProtocolError

__all__ = [
    "LIVE_DATA_BATCH_MAX",
    "NOT_STARTED",
    "STATE_KEYS",
    "GameState",
    "GameStats",
    "LiveData",
    "parse_clock",
]

#: Milestone ids one `GET /live_data/batch` request may name.
LIVE_DATA_BATCH_MAX = 100

#: The game-state fields and the `details` keys each is read from, first match wins (documented name
#: first, then spellings seen in other sports feeds).
STATE_KEYS: dict[str, tuple[str, ...]] = {
    "status": ("status", "game_status"),
    "home_points": ("home_points", "home_score"),
    "away_points": ("away_points", "away_score"),
    "period": ("round", "period", "quarter"),
    "clock": ("final_round_time_left", "clock", "time_left"),
}

#: Statuses of a game that has not started: no period or clock is expected yet.
NOT_STARTED = frozenset({"none", "scheduled", "pre", "pregame"})

_CLOCK = re.compile(r"^\s*(\d{1,3}):(\d{1,2})(?:\.\d+)?\s*$")


def parse_clock(value: Any) -> int | None:
    """Seconds left in the period from a clock value: `"7:05"`, `"0:42.3"`, or a number of seconds.

    Returns None when the value is absent or unreadable (never raises).
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    if isinstance(value, str):
        m = _CLOCK.match(value)
        if m:
            return int(m.group(1)) * 60 + int(m.group(2))
        try:
            seconds = float(value)
        except ValueError:
            return None
        return int(seconds) if math.isfinite(seconds) and seconds >= 0 else None
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _winner_side(details: Mapping[str, Any]) -> str | None:
    """`home` / `away` from `winner`, which may name the side, the team id or the abbreviation."""
    winner = details.get("winner")
    if not isinstance(winner, str) or not winner:
        return None
    low = winner.lower()
    if low in ("home", "away"):
        return low
    for side in ("home", "away"):
        for key in (f"{side}_id", f"{side}_abbreviation", f"{side}_name"):
            if details.get(key) == winner:
                return side
    return None


@dataclass(frozen=True)
class GameState:
    """The state of a game read from live-data `details`; None wherever the key was absent or unreadable.

    `missing` names the fields (keys of `STATE_KEYS`) that could not be read, so a check can say which
    documented keys a feed lacks instead of failing on them; a game not started yet (`NOT_STARTED`) is not
    expected to have a period or clock.
    """

    status: str | None
    home_points: int | None
    away_points: int | None
    period: int | None
    clock: str | None
    clock_seconds: int | None
    winner: str | None
    missing: tuple[str, ...]

    @classmethod
    def from_details(cls, details: Mapping[str, Any]) -> GameState:
        """Extract the game state from a `details` object, tolerating absent or renamed keys."""
        found: dict[str, Any] = {}
        for name, keys in STATE_KEYS.items():
            found[name] = next((details[k] for k in keys if details.get(k) is not None), None)
        status = found["status"] if isinstance(found["status"], str) else None
        home, away, period = (_int(found[k]) for k in ("home_points", "away_points", "period"))
        raw_clock = found["clock"]
        clock_seconds = parse_clock(raw_clock)
        clock = None if raw_clock is None or clock_seconds is None else str(raw_clock)
        values = {
            "status": status,
            "home_points": home,
            "away_points": away,
            "period": period,
            "clock": clock,
        }
        return cls(
            status=status,
            home_points=home,
            away_points=away,
            period=period,
            clock=clock,
            clock_seconds=clock_seconds,
            winner=_winner_side(details),
            missing=tuple(
                k
                for k, v in values.items()
                if v is None and not (status in NOT_STARTED and k in ("period", "clock"))
            ),
        )


@dataclass(frozen=True)
class LiveData:
    """One milestone's live data: its `type`, `milestone_id` and the raw `details`, plus the parsed state."""

    type: str | None
    milestone_id: str | None
    details: dict[str, Any]
    state: GameState
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any, *, milestone_id: str | None = None) -> LiveData:
        """Parse one `LiveData` object; `milestone_id` fills in an id the object itself lacks.

        Raises:
            KalshiProtocolError: The payload is not an object, or its `details` is not an object.
        """
        if not isinstance(payload, Mapping):
            raise KalshiProtocolError(
                f"live data should be an object, got {type(payload).__name__}"
            )
        details = payload.get("details") or {}
        if not isinstance(details, Mapping):
            raise KalshiProtocolError(
                f"live data 'details' should be an object, got {type(details).__name__}"
            )
        own_id = payload.get("milestone_id")
        kind = payload.get("type")
        return cls(
            type=kind if isinstance(kind, str) else None,
            milestone_id=own_id if isinstance(own_id, str) and own_id else milestone_id,
            details=dict(details),
            state=GameState.from_details(details),
            raw=dict(payload),
        )


@dataclass(frozen=True)
class GameStats:
    """A milestone's play-by-play (`pbp.periods[].events[]`, events kept raw); `periods` empty when null."""

    milestone_id: str
    supported: bool
    periods: tuple[tuple[dict[str, Any], ...], ...]

    @classmethod
    def from_payload(cls, body: Mapping[str, Any], *, milestone_id: str) -> GameStats:
        """Parse a `GET /live_data/milestone/{id}/game_stats` answer.

        Raises:
            KalshiProtocolError: `pbp` or its periods are not shaped as documented.
        """
        pbp = body.get("pbp")
        if pbp is None:
            return cls(milestone_id, False, ())
        if not isinstance(pbp, Mapping):
            raise KalshiProtocolError("game_stats: 'pbp' should be an object or null")
        periods = []
        for i, period in enumerate(pbp.get("periods") or []):
            events = period.get("events") if isinstance(period, Mapping) else None
            if not isinstance(events, list):
                raise KalshiProtocolError(f"game_stats: pbp.periods[{i}] has no 'events' list")
            periods.append(tuple(dict(e) for e in events if isinstance(e, Mapping)))
        return cls(milestone_id, True, tuple(periods))
