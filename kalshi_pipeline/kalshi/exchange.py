"""Typed models of the exchange-wide endpoints: `GET /exchange/status` and `GET /exchange/schedule`.

Kalshi documents (OpenAPI `ExchangeStatus`, `ExchangeIndexStatus`, `Schedule`, `WeeklySchedule`,
`DailySchedule`, `MaintenanceWindow`; the "Maintenance and Pauses" page):

- The status's top-level `exchange_active` / `trading_active` describe exchange index 0 (the default
  shard); `exchange_index_statuses` lists every index and is absent when the breakdown is unavailable.
  `exchange_estimated_resume_time` is set during maintenance ("not guaranteed and can be extended").
- The schedule's `standard_hours` are weekly schedules, each effective from `start_time` to `end_time`,
  with trading sessions per weekday as `open_time`/`close_time` in ET (`HH:MM`); outside them trading is
  unavailable. `maintenance_windows` are `start_datetime`/`end_datetime` instants during which the exchange
  may be unavailable. Every Thursday 03:00-05:00 ET is a scheduled trading pause, WebSocket sessions may be
  disconnected and clients reconnect after it.

Assumptions where the docs are silent: a session whose `close_time` is `24:00` ends at the next midnight,
and one whose close is not after its open runs past midnight; a weekly schedule's `end_time` is exclusive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.parsing import Fields

__all__ = [
    "ExchangeIndexStatus",
    "ExchangeSchedule",
    "ExchangeStatus",
    "MaintenanceWindow",
    "TradingSession",
    "WeeklySchedule",
]

EXCHANGE_TZ = ZoneInfo("America/New_York")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class ExchangeIndexStatus:
    """The status of one exchange index (shard)."""

    exchange_index: int
    description: str
    exchange_active: bool
    trading_active: bool
    intra_exchange_transfers_active: bool

    @classmethod
    def from_payload(cls, payload: Any) -> ExchangeIndexStatus:
        """Parse one entry of `exchange_index_statuses` (every field is required)."""
        f = Fields(payload, "exchange index status")
        return cls(
            exchange_index=f.required_integer("exchange_index"),
            description=f.text("description") or "",
            exchange_active=f.required_flag("exchange_active"),
            trading_active=f.required_flag("trading_active"),
            intra_exchange_transfers_active=f.required_flag("intra_exchange_transfers_active"),
        )


@dataclass(frozen=True)
class ExchangeStatus:
    """Whether the exchange is up and trading (the top-level flags describe exchange index 0)."""

    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: datetime | None
    intra_exchange_transfers_active: bool | None = None
    exchange_index_statuses: tuple[ExchangeIndexStatus, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> ExchangeStatus:
        """Parse `GET /exchange/status`."""
        f = Fields(payload, "exchange status")
        return cls(
            exchange_active=f.required_flag("exchange_active"),
            trading_active=f.required_flag("trading_active"),
            exchange_estimated_resume_time=f.time("exchange_estimated_resume_time"),
            intra_exchange_transfers_active=f.flag("intra_exchange_transfers_active"),
            exchange_index_statuses=tuple(
                ExchangeIndexStatus.from_payload(item)
                for item in f.items("exchange_index_statuses")
            ),
            raw=dict(f.obj),
        )

    def trading_active_on(self, exchange_index: int = 0) -> bool:
        """Whether trading is on for a market of `exchange_index` (both its shard and the exchange up).

        Without a per-index entry for it, the top-level flags decide (they describe index 0).
        """
        for entry in self.exchange_index_statuses:
            if entry.exchange_index == exchange_index:
                return entry.exchange_active and entry.trading_active
        return self.exchange_active and self.trading_active


@dataclass(frozen=True)
class TradingSession:
    """One trading session of a weekday: `open_time` to `close_time`, `HH:MM` in ET as Kalshi sends them."""

    open_time: str
    close_time: str

    @classmethod
    def from_payload(cls, payload: Any, where: str) -> TradingSession:
        """Parse a `DailySchedule` (`open_time`, `close_time`), checking the `HH:MM` form."""
        f = Fields(payload, where)
        session = cls(f.required_text("open_time"), f.required_text("close_time"))
        for key in ("open_time", "close_time"):
            _minute(getattr(session, key), key, where)
        return session

    @property
    def open_minute(self) -> int:
        """Minutes from midnight ET at which the session opens."""
        return _minute(self.open_time, "open_time", "trading session")

    @property
    def close_minute(self) -> int:
        """Minutes from midnight ET at which the session closes (1440 for `24:00`)."""
        return _minute(self.close_time, "close_time", "trading session")

    @property
    def wraps(self) -> bool:
        """Whether the session runs past midnight into the next day (its close is not after its open)."""
        return self.close_minute <= self.open_minute

    def contains(self, minute_of_day: int) -> bool:
        """Whether this session is open at `minute_of_day` of its own day (ET)."""
        if self.wraps:
            return minute_of_day >= self.open_minute
        return self.open_minute <= minute_of_day < self.close_minute


@dataclass(frozen=True)
class WeeklySchedule:
    """Standard trading hours effective from `start_time` (inclusive) to `end_time` (exclusive)."""

    start_time: datetime
    end_time: datetime
    sessions: dict[str, tuple[TradingSession, ...]]

    @classmethod
    def from_payload(cls, payload: Any) -> WeeklySchedule:
        """Parse a `WeeklySchedule`: its effective span and the sessions of each weekday."""
        f = Fields(payload, "weekly schedule")
        sessions = {
            day: tuple(
                TradingSession.from_payload(item, f"weekly schedule {day}") for item in f.items(day)
            )
            for day in WEEKDAYS
        }
        return cls(f.required_time("start_time"), f.required_time("end_time"), sessions)

    def effective_at(self, when: datetime) -> bool:
        """Whether this weekly schedule applies at `when`."""
        return self.start_time <= when < self.end_time

    def open_at(self, when: datetime) -> bool:
        """Whether one of the sessions of `when`'s weekday (in ET) is open at `when`."""
        local = when.astimezone(EXCHANGE_TZ)
        minute = local.hour * 60 + local.minute
        day = WEEKDAYS[local.weekday()]
        if any(s.contains(minute) for s in self.sessions[day]):
            return True
        previous = WEEKDAYS[(local.weekday() - 1) % 7]
        return any(s.wraps and minute < s.close_minute for s in self.sessions[previous])


@dataclass(frozen=True)
class MaintenanceWindow:
    """A scheduled maintenance window, `start` inclusive to `end` exclusive."""

    start: datetime
    end: datetime

    @classmethod
    def from_payload(cls, payload: Any) -> MaintenanceWindow:
        """Parse a `MaintenanceWindow` (`start_datetime`, `end_datetime`)."""
        f = Fields(payload, "maintenance window")
        window = cls(f.required_time("start_datetime"), f.required_time("end_datetime"))
        if window.end < window.start:
            raise KalshiProtocolError(f"maintenance window ends before it starts: {payload!r}")
        return window

    def contains(self, when: datetime) -> bool:
        """Whether `when` falls in this window."""
        return self.start <= when < self.end


@dataclass(frozen=True)
class ExchangeSchedule:
    """`GET /exchange/schedule`: standard hours and maintenance windows, with questions about an instant."""

    standard_hours: tuple[WeeklySchedule, ...]
    maintenance_windows: tuple[MaintenanceWindow, ...]
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> ExchangeSchedule:
        """Parse the response `{"schedule": {"standard_hours": [...], "maintenance_windows": [...]}}`."""
        outer = Fields(payload, "exchange schedule response")
        f = Fields(outer.mapping("schedule"), "exchange schedule")
        return cls(
            standard_hours=tuple(WeeklySchedule.from_payload(w) for w in f.items("standard_hours")),
            maintenance_windows=tuple(
                sorted(
                    (MaintenanceWindow.from_payload(w) for w in f.items("maintenance_windows")),
                    key=lambda w: w.start,
                )
            ),
            raw=dict(f.obj),
        )

    def maintenance_at(self, when: datetime) -> MaintenanceWindow | None:
        """The maintenance window in effect at `when`, or None."""
        return next((w for w in self.maintenance_windows if w.contains(when)), None)

    def next_maintenance(self, after: datetime) -> MaintenanceWindow | None:
        """The first maintenance window not over at `after` (the one in effect, else the next one)."""
        return next((w for w in self.maintenance_windows if w.end > after), None)

    def in_trading_hours(self, when: datetime) -> bool | None:
        """Whether `when` lies in the standard hours in effect (None when no weekly schedule covers it)."""
        for weekly in self.standard_hours:
            if weekly.effective_at(when):
                return weekly.open_at(when)
        return None

    def trading_expected(self, when: datetime) -> bool:
        """Whether trading should be on at `when`: in standard hours (or none known) and no maintenance.

        A stream can use this to tell a scheduled pause (disconnects expected, keep reconnecting) from an
        outage; `GET /exchange/status` remains the authority on the exchange's actual state.
        """
        return self.maintenance_at(when) is None and self.in_trading_hours(when) is not False


def _minute(text: str, key: str, where: str) -> int:
    match = _HHMM.match(text)
    minute = int(match.group(1)) * 60 + int(match.group(2)) if match else -1
    if match is None or int(match.group(2)) > 59 or minute > 1440:
        raise KalshiProtocolError(f"{where}: field {key!r} should be HH:MM (ET), got {text!r}")
    return minute
