"""Which stored markets a candle run covers: every market of its game dates, or only some games'.

Both candle assets take the same scope (`event_tickers`, empty = every game of the dates). A requested game
that `kalshi.markets` does not hold for those dates is an error naming it, raised before anything is pulled
or written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.partitions import dates_label
from kalshi_pipeline.warehouse import Warehouse


@dataclass(frozen=True)
class CandleScope:
    """The `kalshi.markets` rows of a run's dates, and those of the games it was asked for."""

    #: Every market of the dates: the tickers a candle of these dates may belong to.
    markets: pd.DataFrame
    #: The markets of the requested games (all of `markets` when no game was named).
    scoped: pd.DataFrame

    @property
    def games(self) -> int:
        """How many games the run covers."""
        return int(self.scoped["event_ticker"].nunique())

    @cached_property
    def event_tickers(self) -> frozenset[str]:
        """The games the run covers."""
        return frozenset(str(e) for e in self.scoped["event_ticker"])

    @cached_property
    def allowed_tickers(self) -> frozenset[str]:
        """Every market ticker of the dates (a candle of any other ticker is rejected)."""
        return frozenset(str(t) for t in self.markets["ticker"])

    def scoped_rows(self) -> list[dict[str, Any]]:
        """The covered markets as one dict per row (column name to value)."""
        return [{str(k): v for k, v in row.items()} for row in self.scoped.to_dict("records")]

    def scoped_on(self, day: date) -> pd.DataFrame:
        """The covered markets of one game date."""
        return self._by_date.get(day, self.scoped.iloc[:0])

    @cached_property
    def _by_date(self) -> dict[date, pd.DataFrame]:
        # Grouped once: a run asks for every date's markets, some steps twice.
        return {
            day: group
            for day, group in self.scoped.groupby("game_date", sort=False, dropna=True)
            if isinstance(day, date)
        }


def candle_scope(
    wh: Warehouse, dates: Sequence[date], event_tickers: Sequence[str] = ()
) -> CandleScope:
    """Read the markets of `dates` and narrow them to `event_tickers` (case-insensitive; empty: all games).

    Raises `ValueError` naming the requested games that are not stored for these dates.
    """
    everything = wh.markets(dates)
    if not event_tickers:
        return CandleScope(everything, everything)
    wanted = {e.strip().upper() for e in event_tickers if e.strip()}
    unknown = sorted(wanted - set(everything["event_ticker"]))
    if unknown:
        raise ValueError(
            f"event_tickers {unknown} are not games of {dates_label(list(dates))} in kalshi.markets; "
            "materialize kalshi/markets for that date first or fix the tickers"
        )
    scoped = everything[everything["event_ticker"].isin(wanted)].reset_index(drop=True)
    return CandleScope(everything, scoped)
