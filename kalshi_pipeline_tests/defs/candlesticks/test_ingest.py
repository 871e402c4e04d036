"""`ingest_raw_candles` called directly against the simulator, with the clock pinned inside a game."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_pipeline.defs.candlesticks.ingest import (
    CandleDatesFailed,
    CandleLossRefused,
    _replace_date,
    ingest_raw_candles,
    pull_order,
)
from kalshi_pipeline.defs.candlesticks.pull import MarketWindow, PulledMarket, raw_table
from kalshi_pipeline.defs.markets.refresh import refresh_markets
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.candles import CandlePayloads
from kalshi_pipeline.kalshi.ratelimit import UnlimitedLimiter
from kalshi_pipeline.warehouse import Transaction, Warehouse, WarehouseUnavailable, open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW
from kalshi_pipeline_tests.defs.markets.helpers import sim_dates

T = TypeVar("T")


def _with_client(base_url: str, work: Callable[[KalshiClient], Awaitable[T]]) -> T:
    async def run() -> T:
        config = KalshiConfig(base_url=base_url, rate_limit_tier="off")
        async with KalshiClient(config, limiter=UnlimitedLimiter()) as client:
            return await work(client)

    return asyncio.run(run())


def test_windows_stop_at_the_given_time_and_rows_carry_it(simulator: Any, tmp_path: Path) -> None:
    url = simulator.base_url
    day = sim_dates(url).finished_live()
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        _with_client(
            url, lambda c: refresh_markets(wh, c, ["KXNBAGAME"], [day], now=datetime.now(UTC))
        )
        markets = wh.markets([day])
        # Twenty minutes and a few seconds after the day's first tip-off, as if the run happened then.
        now = markets["scheduled_start"].min().to_pydatetime() + timedelta(minutes=20, seconds=7)
        done = _with_client(
            url, lambda c: ingest_raw_candles(wh, c, [day], now=now, preview_rows=5)
        )
        assert done.games == markets["event_ticker"].nunique() and done.markets == len(markets)
        last_minute = int(now.timestamp()) // 60 * 60
        assert done.windows and all(w.end_ts <= last_minute for w in done.windows)
        assert max(w.end_ts for w in done.windows) == last_minute  # the first game was still open
        raw = wh.candles(CANDLESTICKS_RAW.name, [day])
        assert done.candles == len(raw) > 0
        assert raw["end_period_ts"].max() <= pd.Timestamp(last_minute, unit="s", tz="UTC")
        assert set(raw["ingested_at"]) == {pd.Timestamp(now.replace(microsecond=0))}
        assert len(done.preview) == 5
        assert tuple(done.sample.columns) == CANDLESTICKS_RAW.column_names
        assert done.historical_fallbacks == () and done.archived_markets == 0

        # The same pull a day later takes every game whole and replaces the earlier windows' rows.
        later = now + timedelta(days=1)
        whole = _with_client(
            url, lambda c: ingest_raw_candles(wh, c, [day], now=later, preview_rows=5)
        )
        assert whole.candles > done.candles
        assert len(wh.candles(CANDLESTICKS_RAW.name, [day])) == whole.candles
    finally:
        wh.close()


class _Corrupting(httpx.AsyncBaseTransport):
    """Forwards requests to the real exchange and corrupts the candle answers of some games.

    `mode` "drop" removes the candle lists (a malformed answer), "empty" empties them (an answer that
    would shrink stored data); only answers naming a ticker of `games` are touched.
    """

    def __init__(self, mode: str, games: set[str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.mode = mode
        self.games = games

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        url = str(request.url)
        if "candlesticks" not in url or not any(g.split("-", 1)[1] in url for g in self.games):
            return response
        body = json.loads(await response.aread())
        for entry in [body, *body.get("markets", [])]:
            if "candlesticks" in entry:
                if self.mode == "drop":
                    del entry["candlesticks"]
                else:
                    entry["candlesticks"] = []
        return httpx.Response(response.status_code, json=body)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _corrupt_client(base_url: str, transport: httpx.AsyncBaseTransport) -> KalshiClient:
    config = KalshiConfig(
        base_url=base_url,
        rate_limit_tier="off",
        max_retries=1,
        backoff_base_s=0.001,
        backoff_max_s=0.001,
    )
    return KalshiClient(config, limiter=UnlimitedLimiter(), transport=transport)


@pytest.mark.parametrize("mode", ["drop", "empty"])
def test_a_bad_answer_fails_its_date_loudly_and_never_removes_stored_rows(
    simulator: Any, tmp_path: Path, mode: str
) -> None:
    url = simulator.base_url
    days = sim_dates(url).consecutive_live(2)
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    now = datetime.now(UTC)
    try:
        _with_client(url, lambda c: refresh_markets(wh, c, ["KXNBAGAME"], days, now=now))
        _with_client(url, lambda c: ingest_raw_candles(wh, c, days, now=now, preview_rows=5))
        before = wh.candles(CANDLESTICKS_RAW.name, days)
        assert len(before) > 0
        bad_day, good_day = days
        bad_games = set(wh.markets([bad_day])["event_ticker"])

        async def rerun() -> Any:
            async with _corrupt_client(url, _Corrupting(mode, bad_games)) as client:
                return await ingest_raw_candles(
                    wh, client, days, now=now + timedelta(hours=1), preview_rows=5
                )

        with pytest.raises(CandleDatesFailed) as failed:
            asyncio.run(rerun())
        assert list(failed.value.failures) == [bad_day]
        assert failed.value.committed == (good_day,)
        assert str(bad_day) in str(failed.value) and "\n" not in str(failed.value)
        reason = failed.value.failures[bad_day]
        if mode == "drop":
            assert "protocol error" in reason
        else:
            assert "stored rows were kept" in reason
        after = wh.candles(CANDLESTICKS_RAW.name, days)
        kept = before[before["game_date"] == bad_day].reset_index(drop=True)
        pd.testing.assert_frame_equal(
            after[after["game_date"] == bad_day].reset_index(drop=True), kept
        )
        # The good date was re-pulled and committed (stamped with the re-run's time).
        rewritten = after[after["game_date"] == good_day]
        assert len(rewritten) == len(before[before["game_date"] == good_day])
        assert set(rewritten["ingested_at"]) == {
            pd.Timestamp((now + timedelta(hours=1)).replace(microsecond=0))
        }
    finally:
        wh.close()


def test_a_window_is_never_replaced_with_fewer_candles(tmp_path: Path) -> None:
    t0 = 1_766_190_600
    atl, sas = "KXNBAGAME-25DEC19SASATL-ATL", "KXNBAGAME-25DEC19SASATL-SAS"

    def window(ticker: str) -> MarketWindow:
        return MarketWindow(
            ticker, "KXNBAGAME-25DEC19SASATL", "KXNBAGAME", date(2025, 12, 19), t0, t0 + 600, False
        )

    def rows(counts: dict[str, int], volume: str) -> Any:
        blocks = []
        for ticker, n in counts.items():
            items = [{"end_period_ts": t0 + 60 * i, "volume_fp": volume} for i in range(n)]
            block = CandlePayloads.from_items(
                items, ticker=ticker, period_interval=1, historical=False
            )
            blocks.append(PulledMarket(window(ticker), block))
        return raw_table(blocks, t0 + 3600)

    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    try:
        wh.ensure_schema()
        windows = [window(atl), window(sas)]
        with wh.transaction() as tx:
            _replace_date(tx, windows, rows({atl: 5, sas: 5}, "1.00"))
        with (
            pytest.raises(CandleLossRefused, match=f"{sas} would go from 5 stored candles to 4"),
            wh.transaction() as tx,
        ):
            _replace_date(tx, windows, rows({atl: 6, sas: 4}, "2.00"))
        kept = wh.candles(CANDLESTICKS_RAW.name, [date(2025, 12, 19)])
        assert len(kept) == 10 and kept["payload"].str.contains('"1.00"').all()
        with wh.transaction() as tx:
            _replace_date(tx, windows, rows({atl: 6, sas: 5}, "3.00"))
        replaced = wh.candles(CANDLESTICKS_RAW.name, [date(2025, 12, 19)])
        assert len(replaced) == 11 and replaced["payload"].str.contains('"3.00"').all()
    finally:
        wh.close()


class _FailingWrites:
    """A warehouse whose raw writes of one game date fail as if the database went away mid-write."""

    def __init__(self, wh: Warehouse, bad_day: date) -> None:
        self._wh, self._bad_day = wh, bad_day

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wh, name)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        with self._wh.transaction() as tx:
            yield _FailingTransaction(tx, self._bad_day)


class _FailingTransaction:
    def __init__(self, tx: Transaction, bad_day: date) -> None:
        self._tx, self._bad_day = tx, bad_day

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def upsert_arrow(self, table: str, rows: pa.Table) -> int:
        if table == CANDLESTICKS_RAW.name and self._bad_day in rows["game_date"].to_pylist():
            raise WarehouseUnavailable("the database went away mid-write")
        return self._tx.upsert_arrow(table, rows)


def test_a_failed_write_stops_the_range_and_keeps_every_date_whole(
    simulator: Any, tmp_path: Path
) -> None:
    url = simulator.base_url
    days = sim_dates(url).consecutive_live(3)
    wh = open_warehouse(f"duckdb:///{tmp_path / 'wh.duckdb'}")
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        _with_client(url, lambda c: refresh_markets(wh, c, ["KXNBAGAME"], days, now=now))
        _with_client(url, lambda c: ingest_raw_candles(wh, c, days, now=now, preview_rows=5))
        before = wh.candles(CANDLESTICKS_RAW.name, days)
        first, bad_day, last = days
        later = now + timedelta(hours=1)
        failing = cast(Warehouse, _FailingWrites(wh, bad_day))
        with pytest.raises(WarehouseUnavailable, match="went away"):
            _with_client(
                url, lambda c: ingest_raw_candles(failing, c, days, now=later, preview_rows=5)
            )
        after = wh.candles(CANDLESTICKS_RAW.name, days)
        # The failed date keeps its rows exactly; each other date was either committed whole by the
        # re-run (stamped with its time) or left untouched, never partly rewritten.
        pd.testing.assert_frame_equal(
            after[after["game_date"] == bad_day].reset_index(drop=True),
            before[before["game_date"] == bad_day].reset_index(drop=True),
        )
        for day in (first, last):
            rows = after[after["game_date"] == day]
            assert len(rows) == len(before[before["game_date"] == day])
            stamped = set(rows["ingested_at"])
            assert len(stamped) == 1 and stamped <= {pd.Timestamp(now), pd.Timestamp(later)}
    finally:
        wh.close()


def test_dates_are_pulled_busiest_first_then_by_date() -> None:
    d1, d2, d3, d4 = (date(2026, 11, day) for day in (1, 2, 3, 4))

    def windows(day: date, n: int, empty: int = 0) -> list[MarketWindow]:
        full = [MarketWindow(f"T{i}", f"E-{day}", "S", day, 60, 120, False) for i in range(n)]
        none = [MarketWindow(f"X{i}", f"E-{day}", "S", day, 120, 60, False) for i in range(empty)]
        return full + none

    # d3 has the most markets to pull; d1 and d4 tie (empty windows do not count); d2 has none.
    order = pull_order(
        [d1, d2, d3, d4], [*windows(d1, 2), *windows(d3, 4), *windows(d4, 2, empty=3)]
    )
    assert order == [d3, d1, d4, d2]
