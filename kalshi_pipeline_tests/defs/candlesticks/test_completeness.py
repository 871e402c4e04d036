"""Unit tests of the minute-grid completeness definition."""

from datetime import date

import pandas as pd

from kalshi_pipeline.defs.candlesticks.completeness import CLOSE_GRACE_S, game_completeness

TIP = 1_766_190_600  # 2025-12-20T00:30:00Z
CLOSE = TIP + 40 * 60 + 30


def markets() -> pd.DataFrame:
    rows = []
    for team in ("ATL", "SAS"):
        rows.append(
            {
                "ticker": f"KXNBAGAME-25DEC19SASATL-{team}",
                "event_ticker": "KXNBAGAME-25DEC19SASATL",
                "game_date": date(2025, 12, 19),
                "scheduled_start": pd.Timestamp(TIP, unit="s", tz="UTC"),
                "close_time": pd.Timestamp(CLOSE, unit="s", tz="UTC"),
                "settlement_ts": None,
            }
        )
    return pd.DataFrame(rows)


def candles(minutes: list[int], traded: bool = True) -> pd.DataFrame:
    rows = []
    for team in ("ATL", "SAS"):
        for m in minutes:
            rows.append(
                {
                    "ticker": f"KXNBAGAME-25DEC19SASATL-{team}",
                    "period_interval": 1,
                    "end_period_ts": pd.Timestamp(m, unit="s", tz="UTC"),
                    "price_close": 0.5 if traded else None,
                }
            )
    return pd.DataFrame(rows)


def grid(start: int, end: int) -> list[int]:
    return list(range(start // 60 * 60 + 60, end + 1, 60))


def test_complete_game_has_no_missing_minutes_and_quiet_tail_is_fine() -> None:
    active_end = -(-CLOSE // 60) * 60 - CLOSE_GRACE_S
    minutes = [TIP - 3600, *grid(TIP, active_end), CLOSE // 60 * 60 + 60]
    (game,) = game_completeness(markets(), candles(minutes))
    assert game.missing_minutes == 0
    assert game.active_minutes == 2 * len(grid(TIP, active_end))
    assert game.candle_minutes == 2 * len(minutes)


def test_gap_inside_active_window_is_missing_and_no_trade_candles_are_not() -> None:
    active_end = -(-CLOSE // 60) * 60 - CLOSE_GRACE_S
    minutes = grid(TIP, active_end)
    gap = minutes[10]
    present = [m for m in minutes if m != gap] + [CLOSE // 60 * 60]
    df = candles(present)
    df.loc[df["end_period_ts"] == pd.Timestamp(minutes[5], unit="s", tz="UTC"), "price_close"] = (
        None
    )
    (game,) = game_completeness(markets(), df)
    assert game.missing_minutes == 2  # one gap in each market
    assert game.first_missing_ts == gap
    assert game.no_trade_minutes == 2
    assert 0 < game.missing_fraction < 0.1


def test_game_in_progress_is_bounded_by_what_was_pulled() -> None:
    pulled = grid(TIP, TIP + 15 * 60)
    (game,) = game_completeness(markets(), candles(pulled))
    assert game.missing_minutes == 0
    assert game.active_minutes == 2 * len(pulled)


def test_game_not_started_has_nothing_to_check() -> None:
    (game,) = game_completeness(markets(), candles([TIP - 7200, TIP - 3600]))
    assert game.active_minutes == 0 and game.missing_fraction == 0.0


def test_missing_minutes_are_named_by_ticker_and_minute() -> None:
    active_end = -(-CLOSE // 60) * 60 - CLOSE_GRACE_S
    minutes = grid(TIP, active_end)
    df = candles(minutes)
    gone = (df["ticker"].str.endswith("-SAS")) & (
        df["end_period_ts"] == pd.Timestamp(minutes[7], unit="s", tz="UTC")
    )
    (game,) = game_completeness(markets(), df[~gone])
    assert game.missing == (("KXNBAGAME-25DEC19SASATL-SAS", minutes[7]),)
    assert game.missing_minutes == 1 and game.first_missing_ts == minutes[7]


def test_a_live_games_settling_minutes_are_not_missing_until_they_settle() -> None:
    # Mid-game: ATL's newest minute is stored, SAS's newest minute not yet (the race the check lost).
    pulled = grid(TIP, TIP + 15 * 60)
    df = candles(pulled)
    newest = pd.Timestamp(pulled[-1], unit="s", tz="UTC")
    racing = df[~((df["ticker"].str.endswith("-SAS")) & (df["end_period_ts"] == newest))]
    now = pulled[-1] + 20
    (game,) = game_completeness(markets(), racing, now_ts=now)
    assert game.missing_minutes == 0 and game.missing == ()
    # The settling minutes are left out of the active window for now ...
    assert game.active_minutes == 2 * (len(pulled) - 2)
    # ... and counted once the game is over: the same gap is then missing and named.
    (final,) = game_completeness(markets(), racing, now_ts=CLOSE + 3600)
    assert final.missing == (("KXNBAGAME-25DEC19SASATL-SAS", pulled[-1]),)
    # A gap older than the settling minutes of a live game is missing right away.
    old_gap = pulled[3]
    holed = df[df["end_period_ts"] != pd.Timestamp(old_gap, unit="s", tz="UTC")]
    (live,) = game_completeness(markets(), holed, now_ts=now)
    assert live.missing_minutes == 2 and {m for _, m in live.missing} == {old_gap}
