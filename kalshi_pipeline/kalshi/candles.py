"""Kalshi candlesticks: the candle fields shared by REST and stream candles, and their parsing.

`parse_candle_values` reads a live (`*_dollars`, `*_fp`) or historical (un-suffixed) candlestick payload into
`(end_period_ts, values)` in `CANDLE_VALUE_FIELDS` order. Backfills parse hundreds of thousands of candles, so
a one-pass parser with a cache of fixed-point strings handles well-formed candles, and anything unusual falls
back to a field-by-field parser that names the problem; both accept and refuse exactly the same payloads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.parsing import Fields, expect_object, parse_fixed

__all__ = [
    "CANDLE_VALUE_FIELDS",
    "CandleFields",
    "CandlePayloads",
    "Candlestick",
    "candle_value_texts",
    "parse_candle_values",
]

_OHLC = ("open", "high", "low", "close")
_CANDLE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("price", (*_OHLC, "mean", "previous")),
    ("yes_bid", _OHLC),
    ("yes_ask", _OHLC),
)
#: The parsed values of a candle, in the order `parse_candle_values` returns them.
CANDLE_VALUE_FIELDS: tuple[str, ...] = (
    *(f"{group}_{name}" for group, names in _CANDLE_GROUPS for name in names),
    "volume",
    "open_interest",
)


_LIVE_CANDLE_KEYS = tuple(
    (group, tuple(f"{name}_dollars" for name in names)) for group, names in _CANDLE_GROUPS
)
_HISTORICAL_CANDLE_KEYS = tuple(
    (group, tuple((name, f"{name}_dollars") for name in names)) for group, names in _CANDLE_GROUPS
)
_NONES = {len(names): [None] * len(names) for _, names in _CANDLE_GROUPS}
# Fixed-point strings repeat heavily across candles (prices move in cents), so each distinct string is
# turned into a Decimal once; Decimals are immutable, so candles may share them.
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 1 << 16


class _Unusual(Exception):
    """A candle the one-pass parser leaves to the field-by-field parser (which names the problem)."""


def _cached_fixed(value: Any) -> Decimal:
    """The Decimal of a well-formed fixed-point string; `_Unusual` for anything `parse_fixed` would refuse."""
    result = _DECIMALS.get(value) if type(value) is str else None
    if result is None:
        if type(value) is not str:
            raise _Unusual
        try:
            result = parse_fixed(value, "", "")
        except KalshiProtocolError:
            raise _Unusual from None
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        _DECIMALS[value] = result
    return result


def candle_value_texts(obj: Any, historical: bool) -> list[Any] | None:
    """The wire values of a well-formed candle in `CANDLE_VALUE_FIELDS` order (None where absent or null).

    None when the candle is not a plain, well-formed one (not an object, an integer `end_period_ts`
    missing, a sub-object of the wrong type, a required count absent): `parse_candle_values` decides those.
    The values are as received (normally fixed-point strings); nothing is converted.
    """
    if type(obj) is not dict:
        return None
    try:
        return _extract(obj, historical)
    except _Unusual:
        return None


def _extract(obj: dict[str, Any], historical: bool) -> list[Any]:
    """The raw values of a well-formed candle (see `candle_value_texts`); `_Unusual` for anything else."""
    end = obj.get("end_period_ts")
    if type(end) is not int:
        raise _Unusual
    raw: list[Any] = []
    if historical:
        for group, pairs in _HISTORICAL_CANDLE_KEYS:
            container = obj.get(group)
            if container is None:
                raw += _NONES[len(pairs)]
                continue
            if type(container) is not dict:
                raise _Unusual
            for plain, suffixed in pairs:
                value = container.get(plain)
                raw.append(container.get(suffixed) if value is None else value)
        volume = obj.get("volume")
        open_interest = obj.get("open_interest")
        raw.append(obj.get("volume_fp") if volume is None else volume)
        raw.append(obj.get("open_interest_fp") if open_interest is None else open_interest)
    else:
        for group, keys in _LIVE_CANDLE_KEYS:
            container = obj.get(group)
            if container is None:
                raw += _NONES[len(keys)]
                continue
            if type(container) is not dict:
                raise _Unusual
            raw += map(container.get, keys)
        raw.append(obj.get("volume_fp"))
        raw.append(obj.get("open_interest_fp"))
    if raw[-1] is None or raw[-2] is None:
        raise _Unusual  # a required count is missing
    return raw


def _fast_candle_values(
    obj: dict[str, Any], historical: bool
) -> tuple[int, tuple[Decimal | None, ...]]:
    """Parse a well-formed candle in one pass; `_Unusual` (or TypeError) for anything else."""
    raw = _extract(obj, historical)
    end = obj["end_period_ts"]
    get = _DECIMALS.get
    # `get(v) or ...`: a cache miss (and a zero, which is falsy) takes the checked conversion.
    return end, tuple([None if v is None else (get(v) or _cached_fixed(v)) for v in raw])


def _checked_candle_values(
    payload: Any, ticker: str, historical: bool
) -> tuple[int, tuple[Decimal | None, ...]]:
    """Parse a candle field by field, raising `KalshiProtocolError` on the first problem found."""
    obj = expect_object(payload, f"candlestick of {ticker!r}")
    end = obj.get("end_period_ts")
    w = f"candlestick {ticker!r} end_period_ts={end!r}"
    end_period_ts = Fields(obj, w).required_integer("end_period_ts")

    def names(base: str, suffix: str) -> tuple[str, ...]:
        return (base, base + suffix) if historical else (base + suffix,)

    def pick(container: Mapping[str, Any], base: str, suffix: str, where: str) -> Decimal | None:
        for key in names(base, suffix):
            value = container.get(key)
            if value is not None:
                return parse_fixed(value, key, where)
        return None

    def sub(key: str) -> Mapping[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        return expect_object(value, f"{w} field {key!r}")

    price = sub("price")
    bid = sub("yes_bid")
    ask = sub("yes_ask")

    def required_count(base: str) -> Decimal:
        value = pick(obj, base, "_fp", w)
        if value is None:
            raise KalshiProtocolError(
                f"{w}: required field {' or '.join(repr(n) for n in names(base, '_fp'))} is missing"
            )
        return value

    values: dict[str, Decimal | None] = {}
    for name in (*_OHLC, "mean", "previous"):
        values[f"price_{name}"] = pick(price, name, "_dollars", f"{w} price")
    for name in _OHLC:
        values[f"yes_bid_{name}"] = pick(bid, name, "_dollars", f"{w} yes_bid")
        values[f"yes_ask_{name}"] = pick(ask, name, "_dollars", f"{w} yes_ask")
    values["volume"] = required_count("volume")
    values["open_interest"] = required_count("open_interest")
    return end_period_ts, tuple(values[f] for f in CANDLE_VALUE_FIELDS)


def parse_candle_values(
    payload: Any, *, ticker: str, historical: bool
) -> tuple[int, tuple[Decimal | None, ...]]:
    """Parse a candlestick payload into `(end_period_ts, values)`, values in `CANDLE_VALUE_FIELDS` order.

    Accepts and refuses exactly what `Candlestick.from_payload` does (which is built on it), with the same
    errors, without building a `Candlestick`: for columnar parsing of many stored payloads.

    Raises:
        KalshiProtocolError: As `Candlestick.from_payload`.
    """
    if type(payload) is dict:
        try:
            return _fast_candle_values(payload, historical)
        except (_Unusual, TypeError):  # TypeError: an unhashable value where a string belongs
            pass
    return _checked_candle_values(payload, ticker, historical)


@dataclass(frozen=True)
class CandleFields:
    """The fields every candle shares, REST (`Candlestick`) or stream-built (`live_candles.LiveCandle`).

    Price fields are `None` when the period had no trade (or Kalshi sent null or omitted them); the value
    fields are named in `CANDLE_VALUE_FIELDS`.
    """

    ticker: str
    period_interval: int
    end_period_ts: int
    price_open: Decimal | None
    price_high: Decimal | None
    price_low: Decimal | None
    price_close: Decimal | None
    price_mean: Decimal | None
    price_previous: Decimal | None
    yes_bid_open: Decimal | None
    yes_bid_high: Decimal | None
    yes_bid_low: Decimal | None
    yes_bid_close: Decimal | None
    yes_ask_open: Decimal | None
    yes_ask_high: Decimal | None
    yes_ask_low: Decimal | None
    yes_ask_close: Decimal | None
    volume: Decimal
    open_interest: Decimal


@dataclass(frozen=True)
class Candlestick(CandleFields):
    """One candle of one market, identical for the live and the historical wire shapes.

    Price fields are `None` when Kalshi sent null or omitted them (no trade in the period, or an empty
    `price`/`yes_bid`/`yes_ask` object). `raw` is the payload exactly as received.
    """

    raw: dict[str, Any] = field(repr=False, compare=False)
    historical: bool = False

    @classmethod
    def from_payload(
        cls, payload: Any, *, ticker: str, period_interval: int, historical: bool
    ) -> Candlestick:
        """Parse a live (`*_dollars`, `*_fp`) or historical (un-suffixed) candlestick payload.

        Historical payloads also accept the suffixed names, in case Kalshi aligns the two shapes; live
        payloads never fall back to un-suffixed names, which there were legacy integer cents.

        Raises:
            KalshiProtocolError: A required field (`end_period_ts`, volume, open interest) is missing or a
                value is malformed; the message names the field and the candle.
        """
        end_period_ts, values = parse_candle_values(payload, ticker=ticker, historical=historical)
        # Filling the instance dict directly is what the generated __init__ does (there is no
        # __post_init__), minus one object.__setattr__ call per field of a frozen dataclass: measured
        # 6 us -> 2 us per candle, and backfills build hundreds of thousands of them.
        candle = object.__new__(cls)
        state = candle.__dict__
        state["ticker"] = ticker
        state["period_interval"] = int(period_interval)
        state["end_period_ts"] = end_period_ts
        state.update(zip(CANDLE_VALUE_FIELDS, values, strict=True))
        state["raw"] = dict(payload)
        state["historical"] = historical
        return candle


@dataclass(frozen=True)
class CandlePayloads:
    """The candles of one market as received, for bulk ingestion: payload texts and end times, nothing parsed.

    `payloads[i]` is the i-th candle's JSON text exactly as it appeared in the answer and `ends[i]` its
    `end_period_ts`; ascending by end time, one candle per end time. Held as an Arrow string array and a
    numpy array, not a Python object per candle. Only the end time is checked here (it keys the stored
    row); the values are validated column by column where they are stored.
    """

    ticker: str
    period_interval: int
    historical: bool
    ends: np.ndarray
    payloads: pa.StringArray

    def __len__(self) -> int:
        return len(self.ends)

    def candlesticks(self) -> list[Candlestick]:
        """The candles parsed into `Candlestick`s (exact decimals, every field checked), same order.

        Raises:
            KalshiProtocolError: A candle's values are malformed (the message names the field).
        """
        loads = orjson.loads
        return [
            Candlestick.from_payload(
                loads(text),
                ticker=self.ticker,
                period_interval=self.period_interval,
                historical=self.historical,
            )
            for text in self.payloads.to_pylist()
        ]

    @classmethod
    def from_texts(
        cls,
        texts: pa.StringArray,
        ends: np.ndarray,
        *,
        ticker: str,
        period_interval: int,
        historical: bool,
    ) -> CandlePayloads:
        """One answer's candles, `texts` and their `ends` in answer order (one candle per end time kept)."""
        return cls.merged(
            [cls(ticker, int(period_interval), historical, ends, texts)],
            ticker=ticker,
            period_interval=period_interval,
            historical=historical,
        )

    @classmethod
    def from_items(
        cls, items: list[Any], *, ticker: str, period_interval: int, historical: bool
    ) -> CandlePayloads:
        """One answer's decoded candle objects, each serialized as compact JSON (key order as given).

        Raises:
            KalshiProtocolError: A candle is not an object or has no integer `end_period_ts` (the message
                names the candle, as `Candlestick.from_payload` does).
        """
        ends: list[int] = []
        for item in items:
            end = item.get("end_period_ts") if type(item) is dict else None
            if type(end) is not int:
                # The field-by-field parser names the problem; it raises for every such candle.
                _checked_candle_values(item, ticker, historical)
                raise KalshiProtocolError(f"candlestick of {ticker!r} without an integer end time")
            ends.append(end)
        texts = pa.array([orjson.dumps(item) for item in items], pa.binary()).cast(pa.string())
        return cls.from_texts(
            texts,
            np.array(ends, dtype=np.int64),
            ticker=ticker,
            period_interval=period_interval,
            historical=historical,
        )

    @classmethod
    def merged(
        cls, parts: list[CandlePayloads], *, ticker: str, period_interval: int, historical: bool
    ) -> CandlePayloads:
        """One market's candles from several answers: ascending by end time, the last one given wins."""
        ends = np.concatenate([np.asarray(p.ends, dtype=np.int64) for p in parts] or [_NO_ENDS])
        texts = pa.concat_arrays([p.payloads for p in parts] or [_NO_TEXTS])
        if len(ends) > 1 and not bool((np.diff(ends) > 0).all()):
            # The last occurrence of each end time, in ascending order of end time.
            backwards = ends[::-1]
            _, first_from_end = np.unique(backwards, return_index=True)
            keep = len(ends) - 1 - first_from_end
            ends, texts = ends[keep], texts.take(pa.array(keep))
        return cls(ticker, int(period_interval), historical, ends, texts)


_NO_ENDS = np.zeros(0, dtype=np.int64)
_NO_TEXTS = pa.array([], pa.string())
