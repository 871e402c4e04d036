"""The candlestick endpoints of `KalshiClient`: one market, many markets, an event, and /historical.

Each comes in two forms: `Candlestick` models (exact decimals, for callers that look at candles) and
`CandlePayloads` (the candles as received, for bulk ingestion without a Python object per candle). Windows
are split (`windows.py`) so each request stays under Kalshi's caps; an answer without its candle list is a
protocol error, asked again with the usual backoff, never "no candles".
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from kalshi_pipeline.kalshi.candle_answers import Problem, read_batch_answer, read_single_answer
from kalshi_pipeline.kalshi.candles import CandlePayloads, Candlestick
from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.session import (
    KalshiSession,
    Params,
    decode_json,
    json_object,
    list_field,
)
from kalshi_pipeline.kalshi.windows import (
    SINGLE_MAX_CANDLES,
    batch_plan,
    candle_windows,
    check_unix_seconds,
    sorted_unique,
)

__all__ = ["CandleEndpoints"]

T = TypeVar("T")
#: The object decoder a candle answer that is not plain falls back to.
Decoder = Callable[[bytes], Mapping[str, Any]]


class CandleEndpoints:
    """The candle methods `KalshiClient` inherits; they use its session, backoff sleep and jitter source."""

    _session: KalshiSession
    _sleep: Callable[[float], Awaitable[None]]
    _rng: Callable[[], float]

    async def _candle_answer(
        self, path: str, params: Params, read: Callable[[bytes, Decoder], T | Problem]
    ) -> T:
        """`GET path` of a candle endpoint, its answer read by `read` (see `candle_answers`).

        `read` gets the answer's bytes and the object decoder, and returns what it read or the answer's
        problem. An answer missing a required list (absent or null) is a protocol error, never "no
        candles": it is asked again up to `max_retries` times with the usual backoff, then raised.

        Raises:
            KalshiProtocolError: Every attempt answered without the lists, or a list is not a list.
        """
        attempts = self._session.config.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            label, body = await self._session.get_body(path, params)
            got = read(body, functools.partial(_decoded_object, label=label, path=path))
            if not isinstance(got, str):
                return got
            problem = got
            if problem.startswith("malformed"):
                raise KalshiProtocolError(f"GET {path}: {problem}")
            if attempt + 1 < attempts:
                ceiling = min(
                    self._session.config.backoff_max_s,
                    self._session.config.backoff_base_s * (2**attempt),
                )
                delay = self._rng() * ceiling
                self._session.stats.retries += 1
                self._session.stats.backoff_seconds += delay
                await self._sleep(delay)
        raise KalshiProtocolError(
            f"GET {path}: {problem} in all {attempts} answers (max_retries={self._session.config.max_retries}); "
            "a candle answer without its list is a protocol error, not an empty market"
        )

    async def _single_answers(
        self,
        path: str,
        start_ts: int,
        end_ts: int,
        period_interval: int,
        read: Callable[[bytes, Decoder], T | Problem],
    ) -> list[T]:
        """What `read` makes of each answer of a single-market endpoint, one per <= 5,000 periods."""
        check_unix_seconds("start_ts", start_ts)
        check_unix_seconds("end_ts", end_ts)
        windows = candle_windows(start_ts, end_ts, period_interval, SINGLE_MAX_CANDLES)

        async def fetch(lo: int, hi: int) -> T:
            params = {"start_ts": lo, "end_ts": hi, "period_interval": period_interval}
            return await self._candle_answer(path, params, read)

        return list(await asyncio.gather(*(fetch(lo, hi) for lo, hi in windows)))

    async def _single_payloads(
        self,
        path: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int,
        historical: bool,
    ) -> CandlePayloads:
        shape = {"ticker": ticker, "period_interval": period_interval, "historical": historical}
        chunks = await self._single_answers(
            path,
            start_ts,
            end_ts,
            period_interval,
            lambda body, decoded: read_single_answer(body, decoded, _single_problem, **shape),
        )
        return CandlePayloads.merged(chunks, **shape)

    async def _single_candlesticks(
        self,
        path: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int,
        historical: bool,
    ) -> list[Candlestick]:
        shape = {"ticker": ticker, "period_interval": period_interval, "historical": historical}

        def read(body: bytes, decoded: Decoder) -> list[Candlestick] | Problem:
            answer = decoded(body)
            problem = _single_problem(answer)
            if problem:
                return problem
            return [Candlestick.from_payload(item, **shape) for item in answer["candlesticks"]]

        chunks = await self._single_answers(path, start_ts, end_ts, period_interval, read)
        return sorted_unique(candle for chunk in chunks for candle in chunk)

    async def get_market_candlesticks(
        self,
        series_ticker: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> list[Candlestick]:
        """Candles of one live market ending in `[start_ts, end_ts]` (Unix s), ascending by end time.

        Uses `GET /series/{series}/markets/{ticker}/candlesticks`, one request per <= 5,000 periods.
        """
        path = f"/series/{series_ticker}/markets/{ticker}/candlesticks"
        return await self._single_candlesticks(
            path, ticker, start_ts, end_ts, period_interval, False
        )

    async def get_historical_candlesticks(
        self, ticker: str, start_ts: int, end_ts: int, period_interval: int = 1
    ) -> list[Candlestick]:
        """Candles of one archived market (`GET /historical/markets/{ticker}/candlesticks`), chunked to
        <= 5,000 periods per request, normalised into the same `Candlestick` (with `historical=True`)."""
        path = f"/historical/markets/{ticker}/candlesticks"
        return await self._single_candlesticks(
            path, ticker, start_ts, end_ts, period_interval, True
        )

    async def get_market_candle_payloads(
        self,
        series_ticker: str,
        ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> CandlePayloads:
        """As `get_market_candlesticks`, the candles as received (`CandlePayloads`) for bulk ingestion."""
        path = f"/series/{series_ticker}/markets/{ticker}/candlesticks"
        return await self._single_payloads(path, ticker, start_ts, end_ts, period_interval, False)

    async def get_historical_candle_payloads(
        self, ticker: str, start_ts: int, end_ts: int, period_interval: int = 1
    ) -> CandlePayloads:
        """As `get_historical_candlesticks`, the candles as received (`CandlePayloads`)."""
        path = f"/historical/markets/{ticker}/candlesticks"
        return await self._single_payloads(path, ticker, start_ts, end_ts, period_interval, True)

    async def _batch_answers(
        self,
        unique: list[str],
        start_ts: int,
        end_ts: int,
        period_interval: int,
        read: Callable[[bytes, Decoder], list[T] | Problem],
    ) -> list[T]:
        """What `read` makes of every answer of a batch pull (one item per market entry), in answer order."""
        groups, windows = batch_plan(unique, start_ts, end_ts, period_interval)

        async def fetch(names: list[str], lo: int, hi: int) -> list[T]:
            params = {
                "market_tickers": names,
                "start_ts": lo,
                "end_ts": hi,
                "period_interval": period_interval,
            }
            return await self._candle_answer("/markets/candlesticks", params, read)

        parts = await asyncio.gather(*(fetch(g, lo, hi) for g in groups for lo, hi in windows))
        return [item for part in parts for item in part]

    def _batch_arguments(self, tickers: Sequence[str], start_ts: int, end_ts: int) -> list[str]:
        check_unix_seconds("start_ts", start_ts)
        check_unix_seconds("end_ts", end_ts)
        if isinstance(tickers, str):
            raise TypeError("tickers must be a sequence of market tickers, not one string")
        return list(dict.fromkeys(tickers))

    async def get_candlesticks_batch(
        self,
        tickers: Sequence[str],
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> dict[str, list[Candlestick]]:
        """Candles of many live markets via `GET /markets/candlesticks`.

        Requests carry <= 100 tickers and tickers x periods <= 10,000 (windows also stay <= 5,000 periods).
        Returns every requested ticker (an empty list when it had no candles), candles ascending.
        """
        unique = self._batch_arguments(tickers, start_ts, end_ts)
        by_ticker: dict[str, list[Candlestick]] = {t: [] for t in unique}

        def read(body: bytes, decoded: Decoder) -> list[tuple[str, list[Candlestick]]] | Problem:
            answer = decoded(body)
            problem = _batch_problem(answer)
            if problem:
                return problem
            shape = {"period_interval": period_interval, "historical": False}
            return [
                (
                    entry["market_ticker"],
                    [
                        Candlestick.from_payload(item, ticker=entry["market_ticker"], **shape)
                        for item in entry["candlesticks"]
                    ],
                )
                for entry in answer["markets"]
            ]

        if unique:
            for name, candles in await self._batch_answers(
                unique, start_ts, end_ts, period_interval, read
            ):
                by_ticker.setdefault(name, []).extend(candles)
        return {name: sorted_unique(candles) for name, candles in by_ticker.items()}

    async def get_candle_payloads_batch(
        self,
        tickers: Sequence[str],
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> dict[str, CandlePayloads]:
        """As `get_candlesticks_batch`, the candles as received (`CandlePayloads`) for bulk ingestion."""
        unique = self._batch_arguments(tickers, start_ts, end_ts)
        parts: dict[str, list[CandlePayloads]] = {t: [] for t in unique}
        if unique:
            blocks = await self._batch_answers(
                unique,
                start_ts,
                end_ts,
                period_interval,
                lambda body, decoded: read_batch_answer(
                    body, decoded, _batch_problem, period_interval=period_interval
                ),
            )
            for block in blocks:
                parts.setdefault(block.ticker, []).append(block)
        return {
            name: CandlePayloads.merged(
                got, ticker=name, period_interval=period_interval, historical=False
            )
            for name, got in parts.items()
        }

    async def get_event_candlesticks(
        self,
        series_ticker: str,
        event_ticker: str,
        start_ts: int,
        end_ts: int,
        period_interval: int = 1,
    ) -> dict[str, list[Candlestick]]:
        """Candles of every market of an event via `GET /series/{s}/events/{e}/candlesticks`.

        Kalshi truncates at 5,000 candles across the event and returns `adjusted_end_ts`; the client
        continues from there until the window is covered.
        """
        check_unix_seconds("start_ts", start_ts)
        check_unix_seconds("end_ts", end_ts)
        path = f"/series/{series_ticker}/events/{event_ticker}/candlesticks"
        merged: dict[str, list[Candlestick]] = {}
        for lo, hi in candle_windows(start_ts, end_ts, period_interval, SINGLE_MAX_CANDLES):
            cursor = lo
            while True:
                body = await self._session.get_object(
                    path, {"start_ts": cursor, "end_ts": hi, "period_interval": period_interval}
                )
                names = list_field(body, "market_tickers", path)
                series = list_field(body, "market_candlesticks", path)
                if len(names) != len(series):
                    raise KalshiProtocolError(
                        f"GET {path}: {len(names)} market_tickers but {len(series)} candle lists"
                    )
                for name, items in zip(names, series, strict=True):
                    if not isinstance(name, str):
                        raise KalshiProtocolError(
                            f"GET {path}: market ticker {name!r} is not a string"
                        )
                    merged.setdefault(name, []).extend(
                        Candlestick.from_payload(
                            item, ticker=name, period_interval=period_interval, historical=False
                        )
                        for item in items or []
                    )
                adjusted = body.get("adjusted_end_ts")
                # Absent, null or 0 (an unset Go int) means the window was not truncated.
                if not adjusted or not isinstance(adjusted, int) or adjusted >= hi:
                    break
                if adjusted <= cursor:
                    raise KalshiProtocolError(
                        f"GET {path}: adjusted_end_ts {adjusted} does not advance past start_ts {cursor}"
                    )
                cursor = adjusted
        return {name: sorted_unique(candles) for name, candles in merged.items()}


def _decoded_object(content: bytes, *, label: str, path: str) -> Mapping[str, Any]:
    """A candle answer decoded as objects (for answers `candle_answers` leaves to the object decoder)."""
    return json_object(decode_json(label, content), path)


def _single_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with a one-market candle answer (`{"candlesticks": [...]}`), None when nothing."""
    items = body.get("candlesticks")
    if items is None:
        return "answer has no 'candlesticks' list"
    if not isinstance(items, list):
        return "malformed answer: field 'candlesticks' should be a list"
    return None


def _batch_problem(body: Mapping[str, Any]) -> str | None:
    """What is wrong with a batch candle answer (`{"markets": [{"market_ticker", "candlesticks"}]}`)."""
    entries = body.get("markets")
    if entries is None:
        return "answer has no 'markets' list"
    if not isinstance(entries, list):
        return "malformed answer: field 'markets' should be a list"
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("market_ticker"), str):
            return f"malformed answer: markets[{i}] has no 'market_ticker' string"
        items = entry.get("candlesticks")
        if items is None:
            return f"answer's markets[{i}] ({entry['market_ticker']}) has no 'candlesticks' list"
        if not isinstance(items, list):
            return f"malformed answer: markets[{i}] field 'candlesticks' should be a list"
    return None
