"""The exchange's maintenance windows: Kalshi's weekly trading pause, plus windows pinned by a test.

Kalshi documents a scheduled maintenance every Thursday from 03:00 to 05:00 ET: a trading pause (no
orders are placed or matched) during which WebSocket sessions may be disconnected, clients reconnecting
after it; `GET /exchange/schedule` lists maintenance windows (`start_datetime`/`end_datetime`) and the
weekly standard hours (sessions per weekday, `HH:MM` in ET), and `GET /exchange/status` reports
`trading_active: false` while trading is paused. The simulator models it so:

- `SimulatorConfig.maintenance` is the weekly window as `"<weekday> HH:MM-HH:MM"` in ET (default
  `"thu 03:00-05:00"`), or None for none; `SimulatorConfig.maintenance_windows` adds one-off windows
  (pinned instants, for tests).
- No trade prints inside a window: a trade the flow drew there waits for the window's end (see
  `market_model.flow`); quotes may still change (a trading pause allows cancels). The market data
  therefore shows candles without volume there.
- The WebSocket endpoint closes its sessions when a window begins (close code 1001) and refuses new
  handshakes during it with HTTP 503 (the docs say only that sessions may be disconnected; the status
  code of a refused handshake is not documented, 503 is this simulator's choice).
- The schedule's standard hours are open all week except the weekly window (`"00:00"` to `"24:00"`,
  the window cut out of its weekday). Whether Kalshi writes the end of day as `"24:00"` is not documented.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

ET = ZoneInfo("America/New_York")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_WEEKLY = "thu 03:00-05:00"
_SPEC = re.compile(r"^\s*([a-z]{3})[a-z]*\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")

Window = tuple[int, int]
"""A maintenance window as (start, end) Unix milliseconds, end exclusive."""


@dataclass(frozen=True)
class Maintenance:
    """The weekly window (weekday and minutes of the ET day, or none) and the pinned one-off windows."""

    weekday: int | None = None
    start_minute: int = 0
    end_minute: int = 0
    pinned: tuple[Window, ...] = ()

    @classmethod
    def parse(
        cls, weekly: str | None, pinned: Sequence[tuple[datetime, datetime]] = ()
    ) -> Maintenance:
        """Read `"thu 03:00-05:00"` (weekday, start and end in ET; None = no weekly window) and pins.

        Raises:
            ValueError: One line naming the bad spec or window.
        """
        windows: list[Window] = []
        for start, end in pinned:
            if start.tzinfo is None or end.tzinfo is None:
                raise ValueError(f"maintenance window {start}..{end} needs timezone-aware instants")
            if end <= start:
                raise ValueError(f"maintenance window {start}..{end} ends before it starts")
            windows.append((int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
        if weekly is None or weekly.strip().lower() in ("", "off", "none"):
            return cls(pinned=tuple(sorted(windows)))
        match = _SPEC.match(weekly.lower())
        days = [d[:3] for d in WEEKDAYS]
        if match is None or match.group(1) not in days:
            raise ValueError(
                f"maintenance must look like 'thu 03:00-05:00' (weekday, ET hours) or 'off', got {weekly!r}"
            )
        start_minute = int(match.group(2)) * 60 + int(match.group(3))
        end_minute = int(match.group(4)) * 60 + int(match.group(5))
        if not 0 <= start_minute < end_minute <= 24 * 60:
            raise ValueError(
                f"maintenance {weekly!r}: the window must start before it ends, same day"
            )
        return cls(days.index(match.group(1)), start_minute, end_minute, tuple(sorted(windows)))

    def _weekly_between(self, lo_ms: int, hi_ms: int) -> list[Window]:
        if self.weekday is None:
            return []
        first = datetime.fromtimestamp(lo_ms / 1000, ET).date() - timedelta(days=1)
        last = datetime.fromtimestamp(hi_ms / 1000, ET).date() + timedelta(days=1)
        day = first + timedelta(days=(self.weekday - first.weekday()) % 7)
        out: list[Window] = []
        while day <= last:
            out.append((_et_ms(day, self.start_minute), _et_ms(day, self.end_minute)))
            day += timedelta(days=7)
        return out

    def windows(self, lo_ms: int, hi_ms: int) -> list[Window]:
        """Every window overlapping `[lo_ms, hi_ms)`, in time order, overlapping ones merged."""
        found = sorted(
            w
            for w in [*self._weekly_between(lo_ms, hi_ms), *self.pinned]
            if w[0] < hi_ms and w[1] > lo_ms
        )
        merged: list[Window] = []
        for start, end in found:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def window_at(self, t_ms: int) -> Window | None:
        """The window in effect at `t_ms`, or None."""
        for start, end in self.windows(t_ms, t_ms + 1):
            if start <= t_ms < end:
                return start, end
        return None

    def standard_hours(self) -> dict[str, list[dict[str, str]]]:
        """Trading sessions per weekday (`HH:MM` in ET): all day, except the weekly window cut out."""
        hours: dict[str, list[dict[str, str]]] = {}
        for i, name in enumerate(WEEKDAYS):
            spans = [(0, 24 * 60)]
            if i == self.weekday:
                spans = [(0, self.start_minute), (self.end_minute, 24 * 60)]
            hours[name] = [
                {"open_time": _hhmm(a), "close_time": _hhmm(b)} for a, b in spans if b > a
            ]
        return hours


def _et_ms(day: date, minute: int) -> int:
    """Unix ms of the ET wall time `minute` minutes into `day` (24:00 is the next midnight)."""
    wall = datetime(day.year, day.month, day.day) + timedelta(minutes=minute)
    return int(wall.replace(tzinfo=ET).astimezone(UTC).timestamp() * 1000)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
