"""Where the active window of `game_completeness` starts and ends, called directly on small frames.

`test_completeness.py` covers a complete game, a gap, a game in progress and one not started; here: the
run's `window_start_ts`, a settlement before the close, a game without a start, a market with no candle,
and candles of other periods.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from kalshi_pipeline.defs.candlesticks.completeness import CLOSE_GRACE_S, game_completeness

EVENT = "KXNBAGAME-25DEC19SASATL"
TIP = 1_766_190_600  # 2025-12-20T00:30:00Z
CLOSE = TIP + 40 * 60 + 30


def ts(seconds: int) -> pd.Timestamp:
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def markets(
    start: int | None = TIP, close: int = CLOSE, settlement: int | None = None
) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "ticker": f"{EVENT}-{team}",
                "event_ticker": EVENT,
                "game_date": date(2025, 12, 19),
                "scheduled_start": None if start is None else ts(start),
                "close_time": ts(close),
                "settlement_ts": None if settlement is None else ts(settlement),
            }
            for team in ("ATL", "SAS")
        ]
    )


def candles(minutes: list[int], teams: tuple[str, ...] = ("ATL", "SAS"), period: int = 1):
    return pd.DataFrame(
        [
            {
                "ticker": f"{EVENT}-{team}",
                "period_interval": period,
                "end_period_ts": ts(m),
                "price_close": 0.5,
            }
            for team in teams
            for m in minutes
        ]
    )


def grid(first_end: int, last_end: int) -> list[int]:
    return list(range(first_end, last_end + 1, 60))


ACTIVE_END = -(-CLOSE // 60) * 60 - CLOSE_GRACE_S
FIRST = TIP // 60 * 60 + 60  # the first whole minute after tip-off ends here


def test_the_window_starts_at_the_runs_start_ts_when_later_than_tip_off() -> None:
    start_ts = TIP + 10 * 60 + 5
    # The first whole minute after start_ts (the minute start_ts falls in was partly before it).
    pulled = grid(TIP + 12 * 60, ACTIVE_END)
    (game,) = game_completeness(markets(), candles(pulled), window_start_ts=start_ts)
    assert game.missing_minutes == 0 and game.active_minutes == 2 * len(pulled)
    # Without the run's start the minutes before it are missing.
    (whole,) = game_completeness(markets(), candles(pulled))
    assert whole.missing_minutes == 2 * (len(grid(FIRST, ACTIVE_END)) - len(pulled))
    assert whole.first_missing_ts == FIRST


def test_a_settlement_before_the_close_ends_the_window() -> None:
    settled = TIP + 20 * 60
    end = -(-settled // 60) * 60 - CLOSE_GRACE_S
    (game,) = game_completeness(markets(settlement=settled), candles(grid(FIRST, ACTIVE_END)))
    assert game.active_minutes == 2 * len(grid(FIRST, end)) and game.missing_minutes == 0


def test_a_game_without_a_scheduled_start_has_nothing_to_check() -> None:
    (game,) = game_completeness(markets(start=None), candles([FIRST, FIRST + 60]))
    assert (game.active_minutes, game.missing_minutes, game.candle_minutes) == (0, 0, 4)
    assert game.traded_minutes == 4 and game.first_missing_ts is None


def test_a_market_without_candles_misses_what_its_partner_reached() -> None:
    pulled = grid(FIRST, FIRST + 9 * 60)
    (game,) = game_completeness(markets(), candles(pulled, teams=("ATL",)))
    assert game.active_minutes == 2 * len(pulled)
    assert game.missing_minutes == len(pulled) and game.first_missing_ts == FIRST
    assert game.missing_fraction == 0.5


def test_candles_of_other_periods_do_not_fill_the_minute_grid() -> None:
    pulled = grid(FIRST, FIRST + 4 * 60)
    frame = pd.concat([candles(pulled[:1]), candles(pulled[1:], period=60)], ignore_index=True)
    (game,) = game_completeness(markets(), frame)
    assert game.active_minutes == 2 * len(pulled)
    assert game.missing_minutes == 2 * (len(pulled) - 1)


def test_a_close_mid_minute_ends_the_window_with_the_candle_holding_it() -> None:
    # CLOSE is 30 s into a minute: its last candle ends at the next minute, as the pull's window does.
    last_candle = CLOSE // 60 * 60 + 60
    pulled = grid(FIRST, last_candle)
    (mid,) = game_completeness(markets(close=CLOSE), candles(pulled))
    (on_end,) = game_completeness(markets(close=last_candle), candles(pulled))
    expected = 2 * len(grid(FIRST, last_candle - CLOSE_GRACE_S))
    assert mid.active_minutes == on_end.active_minutes == expected
    # A close on the minute before it ends one candle earlier (nothing of the next minute traded).
    (earlier,) = game_completeness(markets(close=last_candle - 60), candles(pulled))
    assert earlier.active_minutes == expected - 2
    # The closing candle's grid minute is required: without it the minute is missing and named.
    end = last_candle - CLOSE_GRACE_S
    (holed,) = game_completeness(markets(), candles([m for m in pulled if m != end]))
    assert {m for _, m in holed.missing} == {end}
