"""Pulling the candles of a run's games and storing them as received in `kalshi.candlesticks_raw`.

Each market's window is computed from its stored row (see `pull.py`), games are pulled concurrently, and
each game date's windows are replaced in one transaction: rows of the window are deleted, then the pulled
rows written, so a failure leaves that date's previous rows in place. Dates are pulled one at a time (the
busiest first), a couple ahead of the one being written, and each is written as an Arrow table
(`pull.raw_table`, payloads serialized once when their answer is decoded, no per-candle objects kept),
which bounds memory on a season-long single-run backfill; dates are stored in worker threads while the
next ones are pulled (the pull mostly waits on the rate limit), `STORES_AT_ONCE` at a time: on Postgres one
date's rows are parsed and validated while the server takes the other's COPY (an embedded DuckDB file
admits one transaction at a time, so there they queue). Each date is its own transaction; a failed write
stops the run: no date is started once the failure is seen, and one already being written beside it
completes or fails on its own.

Progress is kept per game date: a game whose pull fails (retries exhausted, a protocol error) leaves its
date's stored rows untouched while the other dates are pulled and committed; the run then raises
`CandleDatesFailed` naming the dates to run again. A market's window is never replaced with fewer candles
than it holds (candles of past minutes do not disappear): such a write is refused with `CandleLossRefused`,
which fails the date and keeps the stored rows.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.defs.candlesticks.clean import (
    GRID_DATES_PER_READ,
    CheckReads,
    DayClean,
    ValidatedAlong,
    clean_day,
    read_checks,
)
from kalshi_pipeline.defs.candlesticks.pull import (
    PERIOD_INTERVAL,
    GamePull,
    MarketWindow,
    PulledMarket,
    market_window,
    pull_games,
    raw_table,
)
from kalshi_pipeline.defs.candlesticks.scope import CandleScope, candle_scope
from kalshi_pipeline.kalshi import KalshiClient
from kalshi_pipeline.warehouse import Transaction, Warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW

#: Game dates pulled together before their rows are written.
DATES_PER_CHUNK = 1
#: Chunks pulled ahead of the one being stored (so the rate limiter always has requests waiting).
CHUNKS_AHEAD = 1
#: Dates written at the same time, each in its own transaction and worker thread.
STORES_AT_ONCE = 2


class CandleLossRefused(RuntimeError):
    """A pull would have replaced a market's stored candles with fewer (the stored rows were kept)."""


class CandleDatesFailed(RuntimeError):
    """Some game dates could not be pulled or stored; every other date of the run was committed."""

    def __init__(
        self,
        failures: dict[date, str],
        committed: Sequence[date],
        validated: Mapping[date, DayClean] | None = None,
    ) -> None:
        self.failures = dict(sorted(failures.items()))
        self.committed = tuple(committed)
        #: What validating each committed date wrote, when the run validated dates as it stored them.
        self.validated = dict(validated or {})
        first_day, first_error = next(iter(self.failures.items()))
        super().__init__(
            f"{len(self.failures)} game date(s) failed and kept their stored rows: "
            f"{', '.join(str(d) for d in self.failures)} ({first_day}: {first_error}); "
            f"{len(self.committed)} other date(s) were committed -- run only the failed dates again"
        )


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
    #: The dates validated as they were stored and what the checks read back of each (with `validate`).
    along: ValidatedAlong | None

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
    validate: bool = False,
) -> RawIngest:
    """Pull the candles of the dates' games (or of `event_tickers`) and replace their windows in the table.

    `now` bounds the windows of markets still open and stamps `ingested_at`; `start_ts` (Unix s) starts
    every window there instead of at the market's open (an incremental pull); the first `preview_rows`
    rows stored are returned as the preview. With `validate`, each date's rows are also validated into
    `kalshi.candlesticks` in the transaction that stores them (`clean.clean_day`), from the rows in hand
    rather than read back, and what the clean asset's checks need of the dates is read back once they are
    committed, a week of dates at a time (`clean.read_checks`): a run of both candle assets parses every
    candle once, and validates and checks while the next dates are pulled.
    """
    scope = candle_scope(wh, dates, event_tickers)
    now_ts = int(now.timestamp())
    cutoff = (await client.get_historical_cutoff()).market_settled_unix
    windows = [
        market_window(m, now_ts=now_ts, cutoff_ts=cutoff, start_ts=start_ts)
        for m in scope.scoped_rows()
    ]
    stored = _Stored(preview_rows, scope if validate else None, start_ts, min(dates, default=None))
    fallbacks: list[str] = []
    order = pull_order(dates, windows)
    chunks = [set(order[i : i + DATES_PER_CHUNK]) for i in range(0, len(order), DATES_PER_CHUNK)]

    async def pull_chunk(chunk: set[date]) -> tuple[dict[str, list[MarketWindow]], list[Any]]:
        by_game: dict[str, list[MarketWindow]] = {}
        for w in windows:
            if w.game_date in chunk:
                by_game.setdefault(w.event_ticker, []).append(w)
        return by_game, await pull_games(client, by_game)

    # Chunks are pulled CHUNKS_AHEAD ahead while earlier ones are stored (in worker threads, at most
    # STORES_AT_ONCE at a time): the rate limiter always has requests queued and memory holds a few chunks.
    pulling: list[asyncio.Future[tuple[dict[str, list[MarketWindow]], list[Any]]]] = []
    storing: list[asyncio.Future[None]] = []

    async def finish_one() -> None:
        done, _ = await asyncio.wait(storing, return_when=asyncio.FIRST_COMPLETED)
        for future in done:
            storing.remove(future)
            future.result()  # a failed write stops the run here

    # The dates' writes follow one another closely: an embedded file stays attached between them unless
    # another process asks for it (`Warehouse.hold`).
    with wh.hold():
        try:
            for i, chunk in enumerate(chunks):
                while len(pulling) <= CHUNKS_AHEAD and i + len(pulling) < len(chunks):
                    pulling.append(asyncio.ensure_future(pull_chunk(chunks[i + len(pulling)])))
                by_game, got_games = await pulling.pop(0)
                pulls: list[GamePull] = []
                for game, got in zip(sorted(by_game), got_games, strict=True):
                    if isinstance(got, BaseException) and not isinstance(got, Exception):
                        raise got  # a cancellation or an interrupt stops the run
                    if isinstance(got, BaseException):
                        day = by_game[game][0].game_date
                        with stored.lock:
                            stored.failures.setdefault(day, f"{game}: {_one_line(got)}")
                    else:
                        pulls.append(got)
                fallbacks.extend(t for p in pulls for t in p.fell_back_to_historical)
                while len(storing) >= STORES_AT_ONCE:
                    await finish_one()
                storing.append(
                    asyncio.ensure_future(
                        asyncio.to_thread(stored.store, wh, chunk, pulls, windows, now_ts)
                    )
                )
                del pulls, got_games
            while storing:
                await finish_one()
        finally:
            for pending in pulling:
                pending.cancel()
            if pulling:
                await asyncio.wait(pulling)
            if storing:
                # Never leave a write running behind an error: wait for them, keep the first error.
                await asyncio.wait(storing)
    if stored.failures:
        raise CandleDatesFailed(stored.failures, sorted(stored.committed), stored.validated)
    return RawIngest(
        games=scope.games,
        markets=len(scope.scoped),
        windows=tuple(windows),
        candles=stored.candles,
        historical_candles=stored.historical,
        historical_fallbacks=tuple(fallbacks),
        preview=stored.preview,
        sample=wh.sample_rows(CANDLESTICKS_RAW.name, dates),
        along=ValidatedAlong(scope, stored.validated, stored.reads) if validate else None,
    )


def pull_order(dates: Sequence[date], windows: Sequence[MarketWindow]) -> list[date]:
    """The dates in the order they are pulled: most markets to pull first, then by date.

    What is left to store once the last answer arrives (a run's tail) is then the lightest date's rows.
    """
    markets = Counter(w.game_date for w in windows if not w.empty)
    return sorted(dates, key=lambda d: (-markets[d], d))


class _Stored:
    """Counts of what the chunks stored so far (updated by the writer threads under `lock`)."""

    def __init__(
        self,
        preview_rows: int,
        validate_scope: CandleScope | None,
        start_ts: int | None,
        first_day: date | None,
    ) -> None:
        self.preview_rows = preview_rows
        #: The run's scope when each date is validated as it is stored, else None.
        self.validate_scope = validate_scope
        self.start_ts = start_ts
        #: The run's first date: its validated rows are kept for the clean asset's preview.
        self.first_day = first_day
        self.validated: dict[date, DayClean] = {}
        #: What the clean checks read back, by the committed dates each read covered.
        self.reads: dict[tuple[date, ...], CheckReads] = {}
        #: Committed dates not read back yet.
        self._unread: list[date] = []
        self.candles = 0
        self.historical = 0
        self.preview = pd.DataFrame(columns=list(CANDLESTICKS_RAW.column_names))
        #: Dates that failed (pull or write), with the first error of each, one line.
        self.failures: dict[date, str] = {}
        #: Dates whose rows were committed.
        self.committed: list[date] = []
        self.lock = threading.Lock()
        #: The date the preview was taken from (the earliest stored, whichever thread finished first).
        self._preview_day: date | None = None

    def store(
        self,
        wh: Warehouse,
        chunk: set[date],
        pulls: list[GamePull],
        windows: Sequence[MarketWindow],
        ingested_at_ts: int,
    ) -> None:
        """Build the chunk's raw rows and write them date by date (dates with a failed game are skipped)."""
        by_day: dict[date, list[PulledMarket]] = {}
        for pull in pulls:
            for block in pull.blocks:
                by_day.setdefault(block.window.game_date, []).append(block)
        pulls.clear()  # each date's rows are built from its own blocks, then dropped
        for day in sorted(chunk):
            if day in self.failures:
                continue
            rows = raw_table(by_day.pop(day, []), ingested_at_ts)
            validated: DayClean | None = None
            try:
                with wh.transaction() as tx:
                    _replace_date(tx, [w for w in windows if w.game_date == day], rows)
                    if self.validate_scope is not None:
                        validated = self._validate(tx, day, rows, ingested_at_ts)
            except CandleLossRefused as exc:
                with self.lock:
                    self.failures[day] = str(exc)
                continue
            historical = int(np.count_nonzero(rows["source"].to_numpy() == "historical"))
            with self.lock:
                if validated is not None:
                    self.validated[day] = validated
                self.committed.append(day)
                self.candles += rows.num_rows
                self.historical += historical
                if rows.num_rows and (self._preview_day is None or day < self._preview_day):
                    self._preview_day = day
                    self.preview = rows.slice(0, self.preview_rows).to_pandas()
            del rows
            if validated is not None:
                self._read_checks(wh, day, ingested_at_ts)
            # Arrow's allocator keeps freed blocks for reuse; hand them back so memory stays flat.
            pa.default_memory_pool().release_unused()

    def _read_checks(self, wh: Warehouse, day: date, now_ts: int) -> None:
        """Read back what the clean checks need of committed dates, `GRID_DATES_PER_READ` at a time.

        A read costs about as much for one date as for a week (per-query work dominates), so committed
        dates wait for a full chunk; the clean asset reads the last few (`clean_candles`).
        """
        scope = self.validate_scope
        assert scope is not None
        with self.lock:
            self._unread.append(day)
            if len(self._unread) < GRID_DATES_PER_READ:
                return
            days, self._unread = sorted(self._unread), []
        reads = read_checks(
            wh,
            scope,
            days,
            window_start_ts=self.start_ts if self.start_ts is not None else 0,
            now_ts=now_ts,
        )
        with self.lock:
            self.reads[tuple(days)] = reads

    def _validate(
        self, tx: Transaction, day: date, rows: pa.Table, ingested_at_ts: int
    ) -> DayClean:
        """Validate a date's just-stored raw rows into the clean tables, in the same transaction.

        The rows in hand (Arrow, validated as they are) are the date's whole in-scope raw set unless the
        table holds others (rows outside this pull's windows); the stored set is then read back inside the
        transaction.
        """
        scope = self.validate_scope
        assert scope is not None
        events = scope.event_tickers
        if self.start_ts is not None and rows.num_rows:
            ends = rows["end_period_ts"].cast(pa.int64())
            keep = pc.call_function("greater_equal", [ends, pa.scalar(self.start_ts, pa.int64())])
            rows = rows.filter(keep)
        stored = tx.count_candles(
            CANDLESTICKS_RAW.name, [day], event_tickers=events, since=self.start_ts
        )
        if stored == rows.num_rows:
            raw: pa.Table | pd.DataFrame = rows
        else:
            raw = tx.candles(
                CANDLESTICKS_RAW.name, [day], event_tickers=events, since=self.start_ts
            )
        return clean_day(
            tx,
            raw,
            day_tickers=scope.scoped_on(day)["ticker"],
            allowed_tickers=scope.allowed_tickers,
            window_start=self.start_ts if self.start_ts is not None else 0,
            ingested_at_ts=ingested_at_ts,
            with_rows=day == self.first_day,
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def _replace_date(tx: Transaction, day_windows: list[MarketWindow], rows: pa.Table) -> None:
    """Replace one game date's windows inside `tx` (whose failure leaves the date as it was).

    Raises:
        CandleLossRefused: A market would hold fewer candles in its window than before.
    """
    windows = [w for w in day_windows if not w.empty]
    counts = tx.delete_candle_windows(
        CANDLESTICKS_RAW.name,
        [(w.ticker, w.start_ts, w.end_ts) for w in windows],
        PERIOD_INTERVAL,
    )
    replaced = [w for w in windows if counts.get(w.ticker, 0)]
    pulled = _rows_in_windows(rows, replaced) if replaced else {}
    for w in replaced:
        if pulled[w.ticker] < counts[w.ticker]:
            raise CandleLossRefused(
                f"{w.ticker} would go from {counts[w.ticker]} stored candles to {pulled[w.ticker]} "
                f"in its window {w.start_ts}..{w.end_ts}; the stored rows were kept (a stored candle "
                "never disappears, so the exchange's answer is incomplete -- run the date again later)"
            )
    if rows.num_rows:
        tx.upsert_arrow(CANDLESTICKS_RAW.name, rows)


def _rows_in_windows(rows: pa.Table, windows: Sequence[MarketWindow]) -> dict[str, int]:
    """How many of the raw rows fall in each market's window (its ticker, ends inside its span)."""
    ends = np.asarray(rows["end_period_ts"].cast(pa.int64()).to_numpy(), dtype=np.int64)
    encoded = rows["ticker"].combine_chunks().dictionary_encode()
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    position = {str(t): i for i, t in enumerate(encoded.dictionary.to_pylist())}
    inside: dict[str, int] = {}
    for w in windows:
        mine = (codes == position.get(w.ticker, -1)) & (ends >= w.start_ts) & (ends <= w.end_ts)
        inside[w.ticker] = int(np.count_nonzero(mine))
    return inside
