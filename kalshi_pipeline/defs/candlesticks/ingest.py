"""Pulling the candles of a run's games and storing them as received in `kalshi.candlesticks_raw`.

Each market's window is computed from its stored row (see `pull.py`), games are pulled concurrently, and
each game date's windows are replaced in one transaction: rows of the window are deleted, then the pulled
rows written, so a failure leaves that date's previous rows in place. Dates are pulled a few at a time and
written as they arrive, which bounds memory on a season-long single-run backfill; a chunk is stored in a
worker thread while the next one is pulled (the pull mostly waits on the rate limit). Writes stay one at a
time and in date order, and a failed write stops the run before the next write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from kalshi_pipeline.defs.candlesticks.pull import (
    PERIOD_INTERVAL,
    GamePull,
    MarketWindow,
    market_window,
    pull_games,
    raw_frame,
)
from kalshi_pipeline.defs.candlesticks.scope import candle_scope
from kalshi_pipeline.kalshi import KalshiClient
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW

#: Game dates pulled together before their rows are written.
DATES_PER_CHUNK = 3


@dataclass(frozen=True)
class RawIngest:
    """What a raw candle pull covered and stored."""

    games: int
    markets: int
    #: Every covered market's window (empty windows included: nothing was pulled for them).
    windows: tuple[MarketWindow, ...]
    candles: int
    historical_candles: int
    #: Markets whose live pull came back empty and were looked up under /historical instead.
    historical_fallbacks: tuple[str, ...]
    #: The first rows stored (at most `preview_rows`), as written.
    preview: pd.DataFrame
    #: Rows of the run's dates read back from `kalshi.candlesticks_raw`, for the schema check.
    sample: pd.DataFrame

    @property
    def archived_markets(self) -> int:
        """How many markets were pulled from /historical because they were archived."""
        return sum(w.archived for w in self.windows)

    @property
    def pulled_windows(self) -> list[MarketWindow]:
        """The windows that held at least one candle end time."""
        return [w for w in self.windows if not w.empty]


async def ingest_raw_candles(
    wh: Warehouse,
    client: KalshiClient,
    dates: Sequence[date],
    *,
    now: datetime,
    event_tickers: Sequence[str] = (),
    start_ts: int | None = None,
    preview_rows: int,
) -> RawIngest:
    """Pull the candles of the dates' games (or of `event_tickers`) and replace their windows in the table.

    `now` bounds the windows of markets still open and stamps `ingested_at`; `start_ts` (Unix s) starts
    every window there instead of at the market's open (an incremental pull); the first `preview_rows`
    rows stored are returned as the preview.
    """
    scope = candle_scope(wh, dates, event_tickers)
    now_ts = int(now.timestamp())
    ingested_at = pd.Timestamp(now_ts, unit="s", tz="UTC")
    cutoff = (await client.get_historical_cutoff()).market_settled_unix
    windows = [
        market_window(m, now_ts=now_ts, cutoff_ts=cutoff, start_ts=start_ts)
        for m in scope.scoped_rows()
    ]
    stored = _Stored(preview_rows)
    fallbacks: list[str] = []
    storing: asyncio.Future[None] | None = None
    try:
        for i in range(0, len(dates), DATES_PER_CHUNK):
            chunk = set(dates[i : i + DATES_PER_CHUNK])
            by_game: dict[str, list[MarketWindow]] = {}
            for w in windows:
                if w.game_date in chunk:
                    by_game.setdefault(w.event_ticker, []).append(w)
            pulls = await pull_games(client, by_game)
            fallbacks.extend(t for p in pulls for t in p.fell_back_to_historical)
            if storing is not None:
                await storing
            storing = asyncio.ensure_future(
                asyncio.to_thread(stored.store, wh, chunk, pulls, windows, ingested_at)
            )
            del pulls
        if storing is not None:
            await storing
    finally:
        if storing is not None and not storing.done():
            # Never leave a write running behind an error: wait for it, keep the first error.
            await asyncio.wait([storing])
    return RawIngest(
        games=scope.games,
        markets=len(scope.scoped),
        windows=tuple(windows),
        candles=stored.candles,
        historical_candles=stored.historical,
        historical_fallbacks=tuple(fallbacks),
        preview=stored.preview,
        sample=wh.sample_rows(CANDLESTICKS_RAW.name, dates),
    )


class _Stored:
    """Counts of what the chunks stored so far (updated by one writer thread at a time)."""

    def __init__(self, preview_rows: int) -> None:
        self.preview_rows = preview_rows
        self.candles = 0
        self.historical = 0
        self.preview = pd.DataFrame(columns=list(CANDLESTICKS_RAW.column_names))

    def store(
        self,
        wh: Warehouse,
        chunk: set[date],
        pulls: list[GamePull],
        windows: Sequence[MarketWindow],
        ingested_at: pd.Timestamp,
    ) -> None:
        """Build the chunk's raw rows and write them date by date."""
        df = raw_frame(pulls, ingested_at)
        pulls.clear()  # the parsed candles are no longer needed while the rows are written
        for day in sorted(chunk):
            on_day = df.loc[[bool(d == day) for d in df["game_date"]]]
            _replace_date(wh, [w for w in windows if w.game_date == day], on_day)
        self.candles += len(df)
        self.historical += int((df["source"] == "historical").sum())
        if self.preview.empty and len(df):
            self.preview = df.head(self.preview_rows)


def _replace_date(wh: Warehouse, day_windows: list[MarketWindow], df: pd.DataFrame) -> None:
    """Replace one game date's windows in one transaction (a failure leaves the date as it was)."""
    spans: dict[tuple[int, int], list[str]] = {}
    for w in day_windows:
        if not w.empty:
            spans.setdefault((w.start_ts, w.end_ts), []).append(w.ticker)
    with wh.transaction() as tx:
        for (start, end), tickers in sorted(spans.items()):
            tx.delete_candles(CANDLESTICKS_RAW.name, tickers, start, end, PERIOD_INTERVAL)
        if len(df):
            tx.upsert(CANDLESTICKS_RAW.name, df)
