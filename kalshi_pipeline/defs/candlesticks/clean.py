"""Parsing, validating and storing a run's raw candles as `kalshi.candlesticks` (no API calls here).

One game date at a time, each in its own transaction: the raw payloads of the covered games are parsed,
validated (`validation.py`), and written over the run's window of the clean and rejected tables (rows of the
window are deleted first, so a candle that turned invalid does not linger). Memory stays bounded on long
single-run backfills, and a failure leaves that date exactly as it was. `clean_day` does that for one date;
a run of both candle assets calls it as each date is stored, reads back what the checks need of the
committed dates a week at a time (`read_checks`: one read of 7 dates costs about what one of a single date
does) while the next dates are pulled, and hands both to `clean_candles` (`ValidatedAlong`), which then
reads the last few dates and finishes the checks. Otherwise `clean_candles` validates each date whose clean
rows are not already current (`Warehouse.clean_state`), then summarizes the stored candles for the
minute-grid completeness check and samples them for the schema check.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.defs.candlesticks.columnar import (
    accepted_rows,
    accepted_table,
    deferred_rows,
    fast_split,
    raw_columns,
)
from kalshi_pipeline.defs.candlesticks.completeness import GameCompleteness, game_completeness
from kalshi_pipeline.defs.candlesticks.pull import PERIOD_INTERVAL
from kalshi_pipeline.defs.candlesticks.scope import CandleScope, candle_scope
from kalshi_pipeline.defs.candlesticks.validation import PARSED_COLUMNS, to_table, validate_candles
from kalshi_pipeline.kalshi import KalshiError
from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS, parse_candle_values
from kalshi_pipeline.warehouse import Transaction, Warehouse, unix_seconds_column
from kalshi_pipeline.warehouse.queries import CleanState
from kalshi_pipeline.warehouse.schema import (
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_REJECTED,
)

#: Game dates whose stored candles the minute-grid check reads in one query.
GRID_DATES_PER_READ = 7


@dataclass(frozen=True)
class CleanCandles:
    """What a clean run parsed, accepted, rejected and found complete."""

    games: int
    markets: int
    #: Raw rows read.
    raw: int
    valid: int
    rejected: int
    #: Candle end times replaced: from `window_start` (Unix s; 0 = each market's open) to `window_end`
    #: (the newest parsed candle), None when nothing was parsed.
    window_start: int
    window_end: int | None
    #: How many rejected rows failed each rule (a row may fail several).
    reason_counts: dict[str, int]
    #: The minute-grid completeness of each covered game that has markets.
    completeness: tuple[GameCompleteness, ...]
    #: The busiest valid minutes of the run's first game with trades (at most `preview_rows`, by time),
    #: `end_period_ts` in Unix seconds.
    preview: pd.DataFrame
    #: Stored rows of `kalshi.candlesticks` read back for the schema check.
    sample: pd.DataFrame
    #: Per covered game: REST rows in the raw table, the clean table and the rejects (`game_candle_counts`).
    agreement: pd.DataFrame

    @property
    def reject_fraction(self) -> float:
        """Rejected rows as a share of all rows parsed or refused (0 when there were none)."""
        total = self.valid + self.rejected
        return self.rejected / total if total else 0.0

    @property
    def disagreeing_games(self) -> pd.DataFrame:
        """The games whose raw rows are not all either clean or rejected."""
        a = self.agreement
        return a[a["raw"] != a["candles"] + a["rejected"]]

    def top_reasons(self, n: int = 10) -> dict[str, int]:
        """The `n` most frequent rejection reasons with their counts, most frequent first."""
        return dict(sorted(self.reason_counts.items(), key=lambda kv: -kv[1])[:n])


@dataclass(frozen=True)
class DayClean:
    """What validating one game date's raw rows wrote."""

    raw: int
    valid: int
    rejected: int
    #: The newest parsed candle end time (Unix s), None when nothing was parsed.
    day_end: int | None
    #: How many rejected rows failed each rule.
    reason_counts: dict[str, int]
    #: The valid rows as parsed candles when asked for (`clean_day`'s `with_rows`), else None.
    rows: pd.DataFrame | None


@dataclass(frozen=True)
class CheckReads:
    """What the clean asset's checks read back of some game dates once their rows were committed."""

    #: The minute-grid completeness of the dates' covered games.
    games: list[GameCompleteness]
    #: `Warehouse.game_candle_counts` of the dates.
    counts: pd.DataFrame


def read_checks(
    wh: Warehouse, scope: CandleScope, days: Sequence[date], *, window_start_ts: int, now_ts: int
) -> CheckReads:
    """Read back what the minute-grid and agreement checks need of some committed game dates.

    `window_start_ts` and `now_ts` are the run's (`game_completeness`). The grid reads a few columns of
    every stored row of the dates, so callers ask for a few dates at a time (bounded memory).
    """
    markets = scope.scoped[scope.scoped["game_date"].isin(days)]
    games = (
        game_completeness(
            markets,
            wh.candle_grid(list(days), scope.event_tickers),
            window_start_ts=window_start_ts,
            now_ts=now_ts,
        )
        if len(markets)
        else []
    )
    return CheckReads(games, wh.game_candle_counts(list(days), PERIOD_INTERVAL))


@dataclass(frozen=True)
class ValidatedAlong:
    """The dates a candle run validated as it stored them, and what the checks read back of each."""

    #: The run's scope, as the pull computed it.
    scope: CandleScope
    #: What validating each stored date wrote.
    days: Mapping[date, DayClean]
    #: What the checks need of those dates, by the dates each read covered (read as they were committed;
    #: validated dates missing here are read by `clean_candles`).
    reads: Mapping[tuple[date, ...], CheckReads]


def clean_day(
    tx: Transaction,
    raw: pa.Table | pd.DataFrame,
    *,
    day_tickers: Collection[str],
    allowed_tickers: Collection[str],
    window_start: int,
    ingested_at_ts: int,
    with_rows: bool = False,
) -> DayClean:
    """Validate one date's raw rows and replace them, inside `tx`, in the clean and rejected tables.

    `raw` holds the date's `kalshi.candlesticks_raw` rows: the Arrow table `pull.raw_table` builds, or a
    frame as `Warehouse.candles` reads them (converted to Arrow columns once); `day_tickers` are the
    date's covered markets, whose clean and rejected rows from `window_start` to the newest parsed candle
    are deleted first, so a candle that turned invalid does not linger; a candle of a ticker outside
    `allowed_tickers` is rejected.
    """
    allowed = set(allowed_tickers)
    rows = raw_columns(raw)
    # The fast path accepts the plain, valid rows; the reference path decides every other row.
    split = fast_split(rows, allowed)
    if len(split.deferred):
        parsed, unparseable = parse_raw(deferred_rows(raw, split))
        valid, rejected = validate_candles(parsed, allowed)
        if len(unparseable):
            rejected = pd.concat([rejected, unparseable], ignore_index=True)
    else:
        parsed = valid = rejected = pd.DataFrame()
    raw_tickers = pc.call_function("unique", [rows["ticker"]]).drop_null().to_pylist()
    tickers = sorted(set(day_tickers) | set(raw_tickers))
    ends = []
    if len(split.accepted):
        ends.append(int(rows["end_period_ts"].to_numpy()[split.accepted].max()))
    if len(parsed):
        ends.append(int(parsed["end_period_ts"].max()))
    day_end = max(ends) if ends else None
    ingested_at = pd.Timestamp(ingested_at_ts, unit="s", tz="UTC")
    if tickers and day_end is not None:
        for spec in (CANDLESTICKS, CANDLESTICKS_REJECTED):
            tx.delete_candles(spec.name, tickers, window_start, day_end, PERIOD_INTERVAL)
    if len(rejected):
        tx.upsert(
            CANDLESTICKS_REJECTED.name,
            to_table(rejected, CANDLESTICKS_REJECTED.column_names, ingested_at),
        )
    if len(valid):
        tx.upsert(CANDLESTICKS.name, to_table(valid, CANDLESTICKS.column_names, ingested_at))
    if len(split.accepted):
        tx.upsert_arrow(CANDLESTICKS.name, accepted_table(rows, split, ingested_at_ts))
    reason_counts: dict[str, int] = {}
    for reasons_text in rejected["reasons"] if len(rejected) else ():
        for reason in str(reasons_text).split("; "):
            reason_counts[reason] = reason_counts.get(reason, 0) + 1
    rows_out = None
    if with_rows:
        fast = accepted_rows(raw, split)
        rows_out = pd.concat([fast, valid], ignore_index=True) if len(valid) else fast
    return DayClean(
        raw=rows.num_rows,
        valid=len(split.accepted) + len(valid),
        rejected=len(rejected),
        day_end=day_end,
        reason_counts=reason_counts,
        rows=rows_out,
    )


def clean_candles(
    wh: Warehouse,
    dates: Sequence[date],
    *,
    now: datetime,
    event_tickers: Sequence[str] = (),
    start_ts: int | None = None,
    preview_rows: int,
    along: ValidatedAlong | None = None,
) -> CleanCandles:
    """Parse and validate the dates' raw candles and replace them in the clean and rejected tables.

    Covers every game of the dates, or only `event_tickers`; `start_ts` (Unix s) limits the run to candles
    ending at or after it (an incremental run). `now` stamps `ingested_at`. The dates in `along` were
    validated as they were stored, in this run, and what the checks need of them was read then: only the
    other dates are looked at. A date whose clean rows are already exactly what validating its raw rows
    would write (`Warehouse.clean_state`) is not parsed again; its counts are read back instead.
    """
    # Many reads and the dates' writes, one after another: an embedded file stays attached between them.
    with wh.hold():
        return _clean_candles(
            wh,
            dates,
            now=now,
            event_tickers=event_tickers,
            start_ts=start_ts,
            preview_rows=preview_rows,
            along=along,
        )


def _clean_candles(
    wh: Warehouse,
    dates: Sequence[date],
    *,
    now: datetime,
    event_tickers: Sequence[str],
    start_ts: int | None,
    preview_rows: int,
    along: ValidatedAlong | None,
) -> CleanCandles:
    scope = along.scope if along is not None else candle_scope(wh, dates, event_tickers)
    validated: Mapping[date, DayClean] = along.days if along is not None else {}
    read_along: Mapping[tuple[date, ...], CheckReads] = along.reads if along is not None else {}
    read = {day for days in read_along for day in days}
    ingested_at_ts = int(now.timestamp())
    window_start = start_ts if start_ts is not None else 0
    allowed = scope.allowed_tickers
    events = scope.event_tickers
    unvalidated = [d for d in dates if d not in validated]
    state = _clean_state(wh, unvalidated, events, start_ts) if unvalidated else {}
    raw_rows = valid_rows = rejected_rows = 0
    window_end: int | None = None
    reason_counts: dict[str, int] = {}
    preview = pd.DataFrame()
    preview_day: date | None = None
    for day in dates:
        day_markets = scope.scoped_on(day)
        found = state.get(day)
        if day in validated:
            done = validated[day]
        elif found is None:
            done = DayClean(0, 0, 0, None, {}, None)
        elif found.current:
            done = DayClean(found.raw_rows, found.raw_rows, 0, found.last_end, {}, None)
        else:
            raw = wh.candles(CANDLESTICKS_RAW.name, [day], event_tickers=events, since=start_ts)
            with wh.transaction() as tx:
                done = clean_day(
                    tx,
                    raw,
                    day_tickers=day_markets["ticker"],
                    allowed_tickers=allowed,
                    window_start=window_start,
                    ingested_at_ts=ingested_at_ts,
                    with_rows=preview.empty,
                )
            del raw
        raw_rows += done.raw
        valid_rows += done.valid
        rejected_rows += done.rejected
        if done.day_end is not None:
            window_end = done.day_end if window_end is None else max(window_end, done.day_end)
        for reason, n in done.reason_counts.items():
            reason_counts[reason] = reason_counts.get(reason, 0) + n
        if preview_day is None and done.valid:
            preview_day = day
            if done.rows is not None:
                preview = busiest_minutes(done.rows, preview_rows)
    # Everything below reads back what the tables now hold (of the dates not read as they were stored);
    # the reads are independent, so they are asked `Warehouse.reads_at_once` at a time.
    unread = [d for d in dates if d not in read]
    chunks = [
        unread[i : i + GRID_DATES_PER_READ] for i in range(0, len(unread), GRID_DATES_PER_READ)
    ]
    with ThreadPoolExecutor(wh.reads_at_once, thread_name_prefix="clean-read") as reads:
        checked = [
            reads.submit(
                read_checks,
                wh,
                scope,
                chunk,
                window_start_ts=window_start,
                now_ts=ingested_at_ts,
            )
            for chunk in chunks
        ]
        stored = (
            reads.submit(_preview_rows, wh, preview_day, events, start_ts, preview_rows)
            if preview_day is not None and preview.empty
            else None
        )
        # The schema check reads whole rows back.
        sampled = reads.submit(_sample, wh, dates)
        got = [*read_along.values(), *(future.result() for future in checked)]
        if stored is not None:
            preview = stored.result()
        sample = sampled.result()
    games = [game for part in got for game in part.games]
    # By date, then game: the same order whether a date was read as it was stored or in a chunk here.
    game_dates = dict(zip(scope.scoped["event_ticker"], scope.scoped["game_date"], strict=True))
    games.sort(key=lambda g: (game_dates[g.event_ticker], g.event_ticker))
    counts = [part.counts for part in got] or [wh.game_candle_counts([], PERIOD_INTERVAL)]
    agreement = pd.concat(counts, ignore_index=True) if len(counts) > 1 else counts[0]
    agreement = (
        agreement[agreement["event_ticker"].isin(events)]
        .sort_values("event_ticker", kind="stable")
        .reset_index(drop=True)
    )
    return CleanCandles(
        games=scope.games,
        markets=len(scope.scoped),
        raw=raw_rows,
        valid=valid_rows,
        rejected=rejected_rows,
        window_start=window_start,
        window_end=window_end,
        reason_counts=reason_counts,
        completeness=tuple(games),
        preview=preview,
        sample=sample,
        agreement=agreement,
    )


def _clean_state(
    wh: Warehouse, dates: Sequence[date], events: frozenset[str], start_ts: int | None
) -> dict[date, CleanState]:
    """`Warehouse.clean_state` of the dates, asked in `Warehouse.reads_at_once` parts at once."""
    parts = [p for p in (list(dates[i :: wh.reads_at_once]) for i in range(wh.reads_at_once)) if p]
    if len(parts) < 2:
        return wh.clean_state(dates, events, start_ts, PERIOD_INTERVAL)
    with ThreadPoolExecutor(len(parts), thread_name_prefix="clean-state") as reads:
        answers = list(
            reads.map(lambda part: wh.clean_state(part, events, start_ts, PERIOD_INTERVAL), parts)
        )
    return dict(sorted(kv for answer in answers for kv in answer.items()))


def _sample(wh: Warehouse, dates: Sequence[date]) -> pd.DataFrame:
    """Whole stored rows for the schema check: of the dates, else any row (so the columns show)."""
    sample = wh.sample_rows(CANDLESTICKS.name, list(dates))
    return sample if not sample.empty else wh.sample_rows(CANDLESTICKS.name, limit=1)


def _preview_rows(
    wh: Warehouse, day: date, events: frozenset[str], start_ts: int | None, rows: int
) -> pd.DataFrame:
    """`busiest_minutes` of a date's stored clean candles (`end_period_ts` in Unix seconds).

    Only the game it shows is read: the first that traded, else the date's first rows.
    """
    game = wh.first_traded_game(day, events, start_ts)
    stored = wh.candles(
        CANDLESTICKS.name, [day], event_tickers=events if game is None else [game], since=start_ts
    )
    stored["end_period_ts"] = unix_seconds_column(stored["end_period_ts"])
    return busiest_minutes(stored, rows)


def busiest_minutes(valid: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The `rows` candles of most volume of the first game that traded, ordered by time then ticker.

    A game's first rows are quiet pre-game minutes; its busiest minutes show what the data is about.
    Volumes (Decimal or fixed-point text) are compared exactly; a frame without any volume gives its
    first rows.
    """
    traded = valid[[v is not None and Decimal(str(v)) > 0 for v in valid["volume"]]]
    if traded.empty:
        return valid.head(rows)
    game = traded[traded["event_ticker"] == traded["event_ticker"].iloc[0]]
    volumes = [Decimal(str(v)) for v in game["volume"].tolist()]
    order = sorted(range(len(game)), key=volumes.__getitem__, reverse=True)
    top = game.iloc[sorted(order[:rows])]
    return top.sort_values(["end_period_ts", "ticker"], kind="stable").reset_index(drop=True)


def parse_raw(raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse raw payloads once each (`parse_candle_values`, the parser behind `Candlestick.from_payload`).

    Returns (parsed, unparseable): parsed candles with their payload, and the rows whose payload could not
    be parsed as rejects with the reason. Columns are built whole, never row by row.
    """
    cols = list(PARSED_COLUMNS)
    tickers = raw["ticker"].tolist()
    payloads = raw["payload"].tolist()
    sources = raw["source"].tolist()
    intervals = [int(v) for v in raw["period_interval"].tolist()]
    ends = unix_seconds_column(raw["end_period_ts"])
    good: list[int] = []
    values: list[tuple[Any, ...]] = []
    bad: list[int] = []
    bad_reasons: list[str] = []
    for i, (ticker, payload, source) in enumerate(zip(tickers, payloads, sources, strict=True)):
        try:
            _, parsed = parse_candle_values(
                json.loads(payload), ticker=ticker, historical=source == "historical"
            )
        except (ValueError, TypeError, KalshiError) as exc:
            bad.append(i)
            bad_reasons.append(f"unparseable payload: {exc}")
            continue
        good.append(i)
        values.append(parsed)

    def base(rows: list[int]) -> dict[str, list[Any]]:
        if len(rows) == len(raw):
            pick: Any = list
        else:
            pick = lambda column: [column[i] for i in rows]  # noqa: E731
        return {
            "ticker": pick(tickers),
            "event_ticker": pick(raw["event_ticker"].tolist()),
            "series_ticker": pick(raw["series_ticker"].tolist()),
            "game_date": pick(raw["game_date"].tolist()),
            "period_interval": pick(intervals),
            "end_period_ts": pick(ends),
            "source": pick(sources),
            "payload": pick(payloads),
        }

    parsed_columns = base(good)
    by_field = list(zip(*values, strict=True)) if values else [()] * len(CANDLE_VALUE_FIELDS)
    for name, column in zip(CANDLE_VALUE_FIELDS, by_field, strict=True):
        parsed_columns[name] = list(column)
    broken_columns = base(bad)
    for name in CANDLE_VALUE_FIELDS:
        broken_columns[name] = [None] * len(bad)
    broken_columns["reasons"] = bad_reasons
    return (
        pd.DataFrame(parsed_columns, columns=cols) if good else pd.DataFrame([], columns=cols),
        pd.DataFrame(broken_columns, columns=[*cols, "reasons"])
        if bad
        else pd.DataFrame([], columns=[*cols, "reasons"]),
    )
