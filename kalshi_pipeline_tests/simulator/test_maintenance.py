"""The maintenance windows: the weekly Thursday pause in ET, pinned windows, and no trade inside any."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from kalshi_pipeline.simulator import SimulatorConfig
from kalshi_pipeline.simulator.maintenance import Maintenance
from kalshi_pipeline.simulator.market_model.flow import market_summary
from kalshi_pipeline.simulator.world import World


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_weekly_window_is_thursday_morning_eastern_across_dst() -> None:
    m = Maintenance.parse("thu 03:00-05:00")
    winter = m.windows(
        _ms(datetime(2026, 12, 1, tzinfo=UTC)), _ms(datetime(2026, 12, 15, tzinfo=UTC))
    )
    assert [(_utc(a), _utc(b)) for a, b in winter] == [
        (datetime(2026, 12, 3, 8, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC)),
        (datetime(2026, 12, 10, 8, tzinfo=UTC), datetime(2026, 12, 10, 10, tzinfo=UTC)),
    ]
    summer = m.windows(_ms(datetime(2026, 7, 1, tzinfo=UTC)), _ms(datetime(2026, 7, 3, tzinfo=UTC)))
    assert [_utc(a) for a, _ in summer] == [datetime(2026, 7, 2, 7, tzinfo=UTC)]
    assert m.window_at(_ms(datetime(2026, 12, 3, 9, 59, tzinfo=UTC))) is not None
    assert m.window_at(_ms(datetime(2026, 12, 3, 10, tzinfo=UTC))) is None
    hours = m.standard_hours()
    assert hours["thursday"] == [
        {"open_time": "00:00", "close_time": "03:00"},
        {"open_time": "05:00", "close_time": "24:00"},
    ]
    assert hours["monday"] == [{"open_time": "00:00", "close_time": "24:00"}]


def test_pinned_windows_and_bad_specs() -> None:
    start = datetime(2026, 12, 2, 12, tzinfo=UTC)
    m = Maintenance.parse("off", [(start, start + timedelta(seconds=30))])
    assert m.window_at(_ms(start) + 29_999) == (_ms(start), _ms(start) + 30_000)
    assert m.standard_hours()["thursday"] == [{"open_time": "00:00", "close_time": "24:00"}]
    for bad in ("thursday", "xyz 03:00-05:00", "thu 05:00-03:00"):
        with pytest.raises(ValueError, match="maintenance"):
            Maintenance.parse(bad)
    with pytest.raises(ValueError, match="ends before"):
        Maintenance.parse(None, [(start, start)])
    with pytest.raises(ValueError, match="maintenance"):
        SimulatorConfig(maintenance="every day")


def test_no_trade_prints_inside_a_window_and_totals_do_not_change() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    plain = World(SimulatorConfig(seed=4, now=now, maintenance=None))
    paused = World(SimulatorConfig(seed=4, now=now))
    checked = moved = 0
    for game in paused.games:
        if not game.pauses or game.close_s > _ms(now) // 1000:
            continue
        for ticker in game.market_tickers:
            path = paused.market_path(ticker)
            for start, end in game.pauses:
                inside = (path.trade_t >= start) & (path.trade_t < end)
                assert not inside.any()
            before = plain.market_path(ticker)
            moved += sum(
                int(((before.trade_t >= a) & (before.trade_t < b)).sum()) for a, b in game.pauses
            )
            assert int(path.cum_volume[-1]) == int(before.cum_volume[-1])
            assert np.all(np.diff(path.trade_t) > 0)
            summary = market_summary(game, ticker, paused.seed)
            assert summary.volume == int(path.cum_volume[-1])
            assert summary.last_price == int(path.trade_price[-1])
        checked += 1
        if checked >= 6:
            break
    assert checked >= 6 and moved > 0  # the windows did hold trades without maintenance


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)
