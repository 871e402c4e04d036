"""Telling the exchange's maintenance from an outage when the stream drops.

Kalshi pauses trading in scheduled maintenance windows (every Thursday early morning ET, listed by
`GET /exchange/schedule`) and drops WebSocket sessions in them; clients reconnect after. When the stream
loses its connection (or a handshake is refused with 503), the runner asks `GET /exchange/status`, the
authority on the exchange's state: with trading paused, the pause is an `exchange maintenance` row in
`kalshi.stream_events` naming the window (the schedule's window in effect, else Kalshi's estimated resume
time), and the stream keeps reconnecting. The trades the window hid are repaired like any gap's once the
stream is back (`repair.py`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from kalshi_pipeline.kalshi.client import KalshiClient

__all__ = ["ExchangePause", "exchange_pause", "pause_row"]

#: The `kalshi.stream_events` kind of a maintenance row.
MAINTENANCE_KIND = "maintenance"


@dataclass(frozen=True)
class ExchangePause:
    """Trading paused on the exchange: the maintenance window's start and end, when known."""

    start: datetime | None
    end: datetime | None
    scheduled: bool

    def describe(self) -> str:
        """One line for logs and the stream event row."""
        start = "?" if self.start is None else f"{self.start:%Y-%m-%d %H:%M:%SZ}"
        end = "unknown" if self.end is None else f"{self.end:%Y-%m-%d %H:%M:%SZ}"
        kind = "scheduled window" if self.scheduled else "unscheduled pause"
        return (
            f"exchange maintenance ({kind} {start} to {end}): trading paused and WebSocket sessions "
            "dropped; reconnecting after it, then repairing its trades from REST"
        )


async def exchange_pause(client: KalshiClient, now: datetime | None = None) -> ExchangePause | None:
    """The pause in effect per `GET /exchange/status` (None while trading), with its scheduled window.

    The window is the schedule's one in effect at `now` (default: the wall clock), else the one ending
    at Kalshi's estimated resume time; without either, the pause's end is the estimated resume time.
    """
    status = await client.get_exchange_status()
    if status.trading_active_on(0):
        return None
    now = now or datetime.now(UTC)
    resume = status.exchange_estimated_resume_time
    schedule = await client.get_exchange_schedule()
    window = schedule.maintenance_at(now) or next(
        (
            w
            for w in schedule.maintenance_windows
            if resume is not None and w.start < resume <= w.end
        ),
        None,
    )
    if window is not None:
        return ExchangePause(window.start, window.end, scheduled=True)
    return ExchangePause(None, resume, scheduled=False)


def pause_row(pause: ExchangePause, run_id: str, connection: int) -> dict[str, Any]:
    """The `kalshi.stream_events` row of a pause (its window as `since_ts`/`until_ts`)."""
    return {
        "event_id": str(uuid.uuid4()),
        "run_id": run_id,
        "event_at": pd.Timestamp.now(tz="UTC"),
        "kind": MAINTENANCE_KIND,
        "connection": connection,
        "channel": None,
        "sid": None,
        "market_tickers": None,
        "since_ts": None if pause.start is None else pd.Timestamp(pause.start),
        "until_ts": None if pause.end is None else pd.Timestamp(pause.end),
        "code": None,
        "detail": pause.describe(),
    }
