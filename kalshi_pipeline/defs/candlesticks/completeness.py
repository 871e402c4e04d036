"""The per-game minute-grid completeness check (pure pandas, no Dagster).

Definitions, per market, on the grid of 1-minute candle end times (multiples of 60 s):

- active window: the game's live trading. It starts with the first whole minute after the scheduled
  start (and after the run's `start_ts`) and ends `CLOSE_GRACE_S` before the market's last candle, the one
  holding the earliest of `close_time` and `settlement_ts` (a close mid-minute ends in the candle after it,
  as the pull's window does: the closing partial minute counts; Kalshi closes a game market a few minutes
  after the final buzzer and the market is quiet in between), and never after the newest stored candle of
  the game (for a game in progress: what the last pull reached). Game markets quote every few seconds while the game is
  played, so every minute of that window must have a candle.
- traded minute: a stored candle with a trade (price OHLC present, volume > 0).
- no-trade minute: a stored candle without a trade (Kalshi sends only `price.previous`, quotes may move),
  or a grid minute without a candle *outside* the active window (the market was quiet: before tip-off
  or after the result, Kalshi emits no candle for a period without activity). Both are fine.
- settling minute: for a market still open at `now`, the newest `SETTLING_S` of the game's pulled minutes.
  Kalshi and the stream may still deliver them (one market's newest minute is often stored a moment before
  its sibling's), so they are not counted yet; the next run counts them.
- missing minute: a grid minute *inside* the active window without a candle: data we should have and
  do not. Each is named (ticker, minute) so a user can verify it. The check fails when missing minutes
  exceed `max_missing_fraction` of the active minutes.

A game with no scheduled start, or whose active window is empty (not started yet), has nothing to check.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kalshi_pipeline.kalshi.live_candles import period_end
from kalshi_pipeline.warehouse import unix_seconds, unix_seconds_column

#: Quiet time allowed between the final buzzer and the market's early close.
CLOSE_GRACE_S = 300
#: Newest minutes of a still-open market that may still arrive, so are not yet counted as missing.
SETTLING_S = 120


@dataclass(frozen=True)
class GameCompleteness:
    """Minute-grid counts of one game (summed over its markets)."""

    event_ticker: str
    active_minutes: int
    candle_minutes: int
    traded_minutes: int
    no_trade_minutes: int
    missing_minutes: int
    first_missing_ts: int | None
    #: Every missing minute as (ticker, end_period_ts in Unix s), by minute then ticker.
    missing: tuple[tuple[str, int], ...] = ()

    @property
    def missing_fraction(self) -> float:
        """Missing minutes as a fraction of active minutes (0 when nothing is active)."""
        return self.missing_minutes / self.active_minutes if self.active_minutes else 0.0


def game_completeness(
    markets: pd.DataFrame,
    candles: pd.DataFrame,
    *,
    window_start_ts: int = 0,
    now_ts: int | None = None,
) -> list[GameCompleteness]:
    """Compute the completeness of each game in `markets` from its stored 1-minute `candles`.

    `markets` are `kalshi.markets` rows; `candles` are either `kalshi.candlesticks` rows (ticker,
    period_interval, end_period_ts as Unix seconds or timestamps, price_close null for a minute without a
    trade) or their per-market summary as `Warehouse.candle_grid` reads it.
    `window_start_ts` is where the run's pull started (Unix s; 0 = open time). `now_ts` (Unix s) is when
    the check runs: a market still open then has its settling minutes left out (None: every market is
    treated as final).
    """
    by_ticker = _by_ticker(candles)
    games: dict[str, list[dict[Hashable, Any]]] = {}
    for market in markets.to_dict("records"):
        games.setdefault(str(market["event_ticker"]), []).append(market)
    out: list[GameCompleteness] = []
    for event_ticker, group in sorted(games.items()):
        active = stored = traded = no_trade = 0
        named: list[tuple[str, int]] = []
        held = [by_ticker[str(m["ticker"])] for m in group if str(m["ticker"]) in by_ticker]
        pulled_until = max((m.last for m in held if m.last is not None), default=0)
        for market in group:
            start = unix_seconds(market.get("scheduled_start"))
            closes = [
                ts
                for ts in (
                    unix_seconds(market.get("close_time")),
                    unix_seconds(market.get("settlement_ts")),
                )
                if ts is not None
            ]
            end = min([pulled_until, *(period_end(c * 1000) - CLOSE_GRACE_S for c in closes)])
            still_open = now_ts is not None and (not closes or min(closes) > now_ts)
            if still_open:
                end = min(end, (pulled_until - SETTLING_S) // 60 * 60)
            minutes = by_ticker.get(str(market["ticker"]), _NO_MINUTES)
            stored += len(minutes.present)
            traded += minutes.traded
            no_trade += minutes.rows - minutes.traded
            if start is None:
                continue
            first = max(-(-start // 60) * 60 + 60, -(-window_start_ts // 60) * 60 + 60)
            grid = np.arange(first, end + 1, 60, dtype=np.int64)
            active += len(grid)
            gaps = grid[~np.isin(grid, minutes.present, assume_unique=True)]
            named += [(str(market["ticker"]), int(m)) for m in gaps.tolist()]
        named.sort(key=lambda tm: (tm[1], tm[0]))
        out.append(
            GameCompleteness(
                event_ticker=str(event_ticker),
                active_minutes=active,
                candle_minutes=stored,
                traded_minutes=traded,
                no_trade_minutes=no_trade,
                missing_minutes=len(named),
                first_missing_ts=named[0][1] if named else None,
                missing=tuple(named),
            )
        )
    return out


def _by_ticker(candles: pd.DataFrame) -> dict[str, _Minutes]:
    """Each market's stored minutes, from candle rows or from `Warehouse.candle_grid`'s summary."""
    if not len(candles):
        return {}
    if "minutes" not in candles.columns:
        return {str(t): _Minutes.of(g) for t, g in candles.groupby("ticker")}
    return {
        str(ticker): _Minutes(
            present=np.unique(np.asarray(minutes, dtype=np.int64)),
            last=int(last),
            rows=int(rows),
            traded=int(traded),
        )
        for ticker, minutes, last, rows, traded in zip(
            candles["ticker"],
            candles["minutes"],
            candles["last_end"],
            candles["n_rows"],
            candles["traded"],
            strict=True,
        )
    }


@dataclass(frozen=True)
class _Minutes:
    """One market's stored candles: its distinct 1-minute end times and how many rows traded."""

    #: Distinct end times (Unix s) of the 1-minute candles, sorted.
    present: np.ndarray
    #: The newest end time of any stored candle (None without candles).
    last: int | None
    rows: int
    traded: int

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _Minutes:
        ends = rows["end_period_ts"]
        seconds = (
            ends.to_numpy(dtype=np.int64)
            if pd.api.types.is_integer_dtype(ends.dtype)
            else np.asarray(unix_seconds_column(ends), dtype=np.int64)
        )
        one_minute = rows["period_interval"].to_numpy(dtype=np.int64) == 1
        traded = sum(
            v is not None and not (isinstance(v, float) and pd.isna(v))
            for v in rows["price_close"].tolist()
        )
        return cls(
            present=np.unique(seconds[one_minute]),
            last=int(seconds.max()) if len(seconds) else None,
            rows=len(rows),
            traded=traded,
        )


_NO_MINUTES = _Minutes(np.zeros(0, dtype=np.int64), None, 0, 0)
