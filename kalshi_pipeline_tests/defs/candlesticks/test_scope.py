"""A candle run's scope: the covered markets of each game date."""

from __future__ import annotations

from datetime import date

import pandas as pd

from kalshi_pipeline.defs.candlesticks.scope import CandleScope

DAY, NEXT, ABSENT = date(2026, 1, 10), date(2026, 1, 11), date(2026, 1, 12)


def test_scoped_on_gives_each_dates_markets_and_an_empty_frame_for_others() -> None:
    markets = pd.DataFrame(
        {
            "ticker": ["G1-A", "G2-A", "G1-B", "G2-B"],
            "event_ticker": ["G1", "G2", "G1", "G2"],
            "game_date": [DAY, NEXT, DAY, NEXT],
        }
    )
    scope = CandleScope(markets, markets)
    assert scope.scoped_on(DAY)["ticker"].tolist() == ["G1-A", "G1-B"]
    assert scope.scoped_on(NEXT).index.tolist() == [1, 3]
    absent = scope.scoped_on(ABSENT)
    assert absent.empty and list(absent.columns) == list(markets.columns)
    # Asked again (a run asks for each date in both candle steps): the same rows.
    assert scope.scoped_on(DAY).equals(scope.scoped_on(DAY))
