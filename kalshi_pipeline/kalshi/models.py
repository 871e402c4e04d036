"""Typed, exact models of Kalshi REST payloads.

Fixed-point strings (`*_dollars`, `*_fp`) become `Decimal` exactly; an absent key is treated like `null`;
unknown new fields are ignored (kept in `raw`); a missing required field raises `KalshiProtocolError` naming
the field and the object. RFC3339 timestamps become timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kalshi_pipeline.kalshi.errors import KalshiProtocolError

__all__ = [
    "CANDLE_VALUE_FIELDS",
    "CandleFields",
    "Candlestick",
    "Event",
    "ExchangeStatus",
    "HistoricalCutoff",
    "Market",
    "Milestone",
    "Orderbook",
    "OrderbookLevel",
    "PriceRange",
    "Series",
    "Trade",
    "parse_candle_values",
]

_MISSING = object()


def _where(kind: str, payload: Mapping[str, Any], *keys: str) -> str:
    for key in keys:
        value = payload.get(key)
        if isinstance(value, str) and value:
            return f"{kind} {value!r}"
    return kind


def _obj(payload: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise KalshiProtocolError(f"{where}: expected a JSON object, got {type(payload).__name__}")
    return payload


def _get(payload: Mapping[str, Any], key: str, where: str, required: bool) -> Any:
    value = payload.get(key)
    if value is None and required:
        state = "null" if key in payload else "missing"
        raise KalshiProtocolError(f"{where}: required field {key!r} is {state}")
    return value


def _str(payload: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = _get(payload, key, where, required)
    if value is None:
        return None
    if not isinstance(value, str):
        raise KalshiProtocolError(f"{where}: field {key!r} should be a string, got {value!r}")
    if required and not value:
        raise KalshiProtocolError(f"{where}: required field {key!r} is empty")
    return value


def _fixed(value: Any, key: str, where: str) -> Decimal:
    # Fixed-point fields are always JSON strings; a bare number would be a legacy integer (cents or
    # whole contracts), which must not be silently read as dollars.
    if not isinstance(value, str):
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be a fixed-point string, got {value!r}"
        )
    try:
        result = Decimal(value.strip())
    except InvalidOperation:
        raise KalshiProtocolError(
            f"{where}: field {key!r} is not a decimal number: {value!r}"
        ) from None
    if not result.is_finite():
        raise KalshiProtocolError(f"{where}: field {key!r} is not finite: {value!r}")
    return result


def _dec(
    payload: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> Decimal | None:
    value = _get(payload, key, where, required)
    return None if value is None else _fixed(value, key, where)


def _num(payload: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    """A JSON number (or numeric string) such as `floor_strike` or `fee_multiplier`, read exactly."""
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise KalshiProtocolError(f"{where}: field {key!r} should be a number, got {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    return _fixed(value, key, where)


def _int(payload: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> int | None:
    value = _get(payload, key, where, required)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        raise KalshiProtocolError(f"{where}: field {key!r} should be an integer, got {value!r}")
    return value


def _bool(
    payload: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> bool | None:
    value = _get(payload, key, where, required)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise KalshiProtocolError(f"{where}: field {key!r} should be true/false, got {value!r}")
    return value


def parse_timestamp(value: Any, key: str = "timestamp", where: str = "payload") -> datetime:
    """Parse an RFC3339 timestamp (`Z` or offset, any fraction) into an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be an RFC3339 string, got {value!r}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise KalshiProtocolError(
            f"{where}: field {key!r} is not an RFC3339 timestamp: {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _time(
    payload: Mapping[str, Any], key: str, where: str, *, required: bool = False
) -> datetime | None:
    value = _get(payload, key, where, required)
    if value is None or value == "":
        if required:
            raise KalshiProtocolError(f"{where}: required field {key!r} is empty")
        return None
    return parse_timestamp(value, key, where)


def _str_list(payload: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = payload.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be a list of strings, got {value!r}"
        )
    return tuple(value)


def _dict(payload: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise KalshiProtocolError(f"{where}: field {key!r} should be an object, got {value!r}")
    return value


def _list(payload: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = payload.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be a list, got {type(value).__name__}"
        )
    return value


@dataclass(frozen=True)
class PriceRange:
    """One segment of a market's tick grid: prices from `start` to `end` in steps of `step` dollars."""

    start: Decimal
    end: Decimal
    step: Decimal

    @classmethod
    def from_payload(cls, payload: Any, where: str = "price_range") -> PriceRange:
        """Parse `{start, end, step}` dollar strings."""
        obj = _obj(payload, where)
        return cls(
            start=_dec(obj, "start", where, required=True),  # type: ignore[arg-type]
            end=_dec(obj, "end", where, required=True),  # type: ignore[arg-type]
            step=_dec(obj, "step", where, required=True),  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class Market:
    """A Kalshi market (live `/markets` or archived `/historical/markets`), prices in exact dollars."""

    ticker: str
    event_ticker: str
    status: str
    market_type: str | None
    title: str | None
    subtitle: str | None
    yes_sub_title: str | None
    no_sub_title: str | None
    created_time: datetime | None
    updated_time: datetime | None
    open_time: datetime | None
    close_time: datetime | None
    expected_expiration_time: datetime | None
    expiration_time: datetime | None
    latest_expiration_time: datetime | None
    settlement_timer_seconds: int | None
    yes_bid_dollars: Decimal | None
    yes_ask_dollars: Decimal | None
    no_bid_dollars: Decimal | None
    no_ask_dollars: Decimal | None
    yes_bid_size_fp: Decimal | None
    yes_ask_size_fp: Decimal | None
    last_price_dollars: Decimal | None
    previous_yes_bid_dollars: Decimal | None
    previous_yes_ask_dollars: Decimal | None
    previous_price_dollars: Decimal | None
    volume_fp: Decimal | None
    volume_24h_fp: Decimal | None
    open_interest_fp: Decimal | None
    notional_value_dollars: Decimal | None
    result: str | None
    can_close_early: bool | None
    settlement_value_dollars: Decimal | None
    settlement_ts: datetime | None
    expiration_value: str | None
    occurrence_datetime: datetime | None
    strike_type: str | None
    floor_strike: Decimal | None
    cap_strike: Decimal | None
    custom_strike: dict[str, Any] | None
    rules_primary: str | None
    rules_secondary: str | None
    price_level_structure: str | None
    price_ranges: tuple[PriceRange, ...]
    primary_participant_key: str | None
    mve_collection_ticker: str | None
    is_provisional: bool | None
    exchange_index: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> Market:
        """Parse one Market object; `ticker`, `event_ticker` and `status` are required."""
        obj = _obj(payload, "market")
        w = _where("market", obj, "ticker")
        return cls(
            ticker=_str(obj, "ticker", w, required=True),  # type: ignore[arg-type]
            event_ticker=_str(obj, "event_ticker", w, required=True),  # type: ignore[arg-type]
            status=_str(obj, "status", w, required=True),  # type: ignore[arg-type]
            market_type=_str(obj, "market_type", w),
            title=_str(obj, "title", w),
            subtitle=_str(obj, "subtitle", w),
            yes_sub_title=_str(obj, "yes_sub_title", w),
            no_sub_title=_str(obj, "no_sub_title", w),
            created_time=_time(obj, "created_time", w),
            updated_time=_time(obj, "updated_time", w),
            open_time=_time(obj, "open_time", w),
            close_time=_time(obj, "close_time", w),
            expected_expiration_time=_time(obj, "expected_expiration_time", w),
            expiration_time=_time(obj, "expiration_time", w),
            latest_expiration_time=_time(obj, "latest_expiration_time", w),
            settlement_timer_seconds=_int(obj, "settlement_timer_seconds", w),
            yes_bid_dollars=_dec(obj, "yes_bid_dollars", w),
            yes_ask_dollars=_dec(obj, "yes_ask_dollars", w),
            no_bid_dollars=_dec(obj, "no_bid_dollars", w),
            no_ask_dollars=_dec(obj, "no_ask_dollars", w),
            yes_bid_size_fp=_dec(obj, "yes_bid_size_fp", w),
            yes_ask_size_fp=_dec(obj, "yes_ask_size_fp", w),
            last_price_dollars=_dec(obj, "last_price_dollars", w),
            previous_yes_bid_dollars=_dec(obj, "previous_yes_bid_dollars", w),
            previous_yes_ask_dollars=_dec(obj, "previous_yes_ask_dollars", w),
            previous_price_dollars=_dec(obj, "previous_price_dollars", w),
            volume_fp=_dec(obj, "volume_fp", w),
            volume_24h_fp=_dec(obj, "volume_24h_fp", w),
            open_interest_fp=_dec(obj, "open_interest_fp", w),
            notional_value_dollars=_dec(obj, "notional_value_dollars", w),
            result=_str(obj, "result", w),
            can_close_early=_bool(obj, "can_close_early", w),
            settlement_value_dollars=_dec(obj, "settlement_value_dollars", w),
            settlement_ts=_time(obj, "settlement_ts", w),
            expiration_value=_str(obj, "expiration_value", w),
            occurrence_datetime=_time(obj, "occurrence_datetime", w),
            strike_type=_str(obj, "strike_type", w),
            floor_strike=_num(obj, "floor_strike", w),
            cap_strike=_num(obj, "cap_strike", w),
            custom_strike=_dict(obj, "custom_strike", w),
            rules_primary=_str(obj, "rules_primary", w),
            rules_secondary=_str(obj, "rules_secondary", w),
            price_level_structure=_str(obj, "price_level_structure", w),
            price_ranges=tuple(
                PriceRange.from_payload(item, f"{w} price_ranges[{i}]")
                for i, item in enumerate(_list(obj, "price_ranges", w))
            ),
            primary_participant_key=_str(obj, "primary_participant_key", w),
            mve_collection_ticker=_str(obj, "mve_collection_ticker", w),
            is_provisional=_bool(obj, "is_provisional", w),
            exchange_index=_int(obj, "exchange_index", w),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class Milestone:
    """A real-world milestone (for sports: a game with its scheduled `start_date`)."""

    id: str
    start_date: datetime
    category: str | None
    type: str | None
    end_date: datetime | None
    title: str | None
    related_event_tickers: tuple[str, ...]
    primary_event_tickers: tuple[str, ...]
    notification_message: str | None
    source_id: str | None
    details: dict[str, Any] | None
    last_updated_ts: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> Milestone:
        """Parse one milestone; `id` and `start_date` are required."""
        obj = _obj(payload, "milestone")
        w = _where("milestone", obj, "id", "title")
        return cls(
            id=_str(obj, "id", w, required=True),  # type: ignore[arg-type]
            start_date=_time(obj, "start_date", w, required=True),  # type: ignore[arg-type]
            category=_str(obj, "category", w),
            type=_str(obj, "type", w),
            end_date=_time(obj, "end_date", w),
            title=_str(obj, "title", w),
            related_event_tickers=_str_list(obj, "related_event_tickers", w),
            primary_event_tickers=_str_list(obj, "primary_event_tickers", w),
            notification_message=_str(obj, "notification_message", w),
            source_id=_str(obj, "source_id", w),
            details=_dict(obj, "details", w),
            last_updated_ts=_time(obj, "last_updated_ts", w)
            if isinstance(obj.get("last_updated_ts"), str)
            else None,
            raw=dict(obj),
        )

    def concerns(self, event_ticker: str) -> bool:
        """Whether this milestone is attached to `event_ticker` (related or primary)."""
        return (
            event_ticker in self.related_event_tickers or event_ticker in self.primary_event_tickers
        )


@dataclass(frozen=True)
class Event:
    """A Kalshi event (a game for sports), with its markets and milestones when they were requested."""

    event_ticker: str
    series_ticker: str
    title: str | None
    sub_title: str | None
    category: str | None
    collateral_return_type: str | None
    mutually_exclusive: bool | None
    strike_date: datetime | None
    strike_period: str | None
    product_metadata: dict[str, Any] | None
    exchange_index: int | None
    markets: tuple[Market, ...]
    milestones: tuple[Milestone, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(
        cls,
        payload: Any,
        *,
        markets: Sequence[Any] | None = None,
        milestones: Sequence[Milestone] = (),
    ) -> Event:
        """Parse one EventData object.

        Args:
            payload: The event object.
            markets: Market payloads to use when the event carries no nested `markets` (the deprecated
                top-level `markets` of `GET /events/{ticker}`).
            milestones: Milestones of the same response; those attached to this event are kept.
        """
        obj = _obj(payload, "event")
        w = _where("event", obj, "event_ticker")
        event_ticker = _str(obj, "event_ticker", w, required=True)
        nested = _list(obj, "markets", w) or list(markets or ())
        return cls(
            event_ticker=event_ticker,  # type: ignore[arg-type]
            series_ticker=_str(obj, "series_ticker", w, required=True),  # type: ignore[arg-type]
            title=_str(obj, "title", w),
            sub_title=_str(obj, "sub_title", w),
            category=_str(obj, "category", w),
            collateral_return_type=_str(obj, "collateral_return_type", w),
            mutually_exclusive=_bool(obj, "mutually_exclusive", w),
            strike_date=_time(obj, "strike_date", w),
            strike_period=_str(obj, "strike_period", w),
            product_metadata=_dict(obj, "product_metadata", w),
            exchange_index=_int(obj, "exchange_index", w),
            markets=tuple(Market.from_payload(m) for m in nested),
            milestones=tuple(m for m in milestones if m.concerns(event_ticker)),  # type: ignore[arg-type]
            raw=dict(obj),
        )


@dataclass(frozen=True)
class Series:
    """A Kalshi series (e.g. KXNBAGAME), the template of its recurring events."""

    ticker: str
    title: str | None
    category: str | None
    frequency: str | None
    tags: tuple[str, ...]
    contract_url: str | None
    contract_terms_url: str | None
    fee_type: str | None
    fee_multiplier: Decimal | None
    volume_fp: Decimal | None
    product_metadata: dict[str, Any] | None
    settlement_sources: tuple[dict[str, Any], ...]
    exchange_index: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> Series:
        """Parse one Series object; `ticker` is required."""
        obj = _obj(payload, "series")
        w = _where("series", obj, "ticker")
        return cls(
            ticker=_str(obj, "ticker", w, required=True),  # type: ignore[arg-type]
            title=_str(obj, "title", w),
            category=_str(obj, "category", w),
            frequency=_str(obj, "frequency", w),
            tags=_str_list(obj, "tags", w),
            contract_url=_str(obj, "contract_url", w),
            contract_terms_url=_str(obj, "contract_terms_url", w),
            fee_type=_str(obj, "fee_type", w),
            fee_multiplier=_num(obj, "fee_multiplier", w),
            volume_fp=_dec(obj, "volume_fp", w),
            product_metadata=_dict(obj, "product_metadata", w),
            settlement_sources=tuple(
                _obj(s, f"{w} settlement_sources") for s in _list(obj, "settlement_sources", w)
            ),  # type: ignore[misc]
            exchange_index=_int(obj, "exchange_index", w),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class Trade:
    """One public trade; prices in exact dollars, `count_fp` in contracts."""

    trade_id: str
    ticker: str
    count_fp: Decimal
    yes_price_dollars: Decimal
    no_price_dollars: Decimal | None
    created_time: datetime
    taker_side: str | None
    taker_outcome_side: str | None
    taker_book_side: str | None
    is_block_trade: bool | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> Trade:
        """Parse one Trade object; id, ticker, count, YES price and creation time are required."""
        obj = _obj(payload, "trade")
        w = _where("trade", obj, "trade_id")
        return cls(
            trade_id=_str(obj, "trade_id", w, required=True),  # type: ignore[arg-type]
            ticker=_str(obj, "ticker", w, required=True),  # type: ignore[arg-type]
            count_fp=_dec(obj, "count_fp", w, required=True),  # type: ignore[arg-type]
            yes_price_dollars=_dec(obj, "yes_price_dollars", w, required=True),  # type: ignore[arg-type]
            no_price_dollars=_dec(obj, "no_price_dollars", w),
            created_time=_time(obj, "created_time", w, required=True),  # type: ignore[arg-type]
            taker_side=_str(obj, "taker_side", w),
            taker_outcome_side=_str(obj, "taker_outcome_side", w),
            taker_book_side=_str(obj, "taker_book_side", w),
            is_block_trade=_bool(obj, "is_block_trade", w),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class OrderbookLevel:
    """One resting bid level: `price` in dollars and `count` in contracts."""

    price: Decimal
    count: Decimal


def _levels(side: Any, key: str, where: str) -> tuple[OrderbookLevel, ...]:
    if side is None:
        return ()
    if not isinstance(side, list):
        raise KalshiProtocolError(
            f"{where}: field {key!r} should be a list of [price, count] pairs"
        )
    levels = []
    for i, level in enumerate(side):
        if not isinstance(level, list) or len(level) != 2:
            raise KalshiProtocolError(
                f"{where}: {key}[{i}] should be a [price, count] pair, got {level!r}"
            )
        levels.append(
            OrderbookLevel(
                price=_fixed(level[0], f"{key}[{i}][0]", where),
                count=_fixed(level[1], f"{key}[{i}][1]", where),
            )
        )
    return tuple(sorted(levels, key=lambda lv: lv.price))


@dataclass(frozen=True)
class Orderbook:
    """A market's book: YES and NO bids, ascending by price (best bid last), as Kalshi sends them."""

    ticker: str
    yes: tuple[OrderbookLevel, ...]
    no: tuple[OrderbookLevel, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any, *, ticker: str) -> Orderbook:
        """Parse an `orderbook_fp` object (`yes_dollars` / `no_dollars`; an empty side may be absent)."""
        w = f"orderbook {ticker!r}"
        obj = _obj(payload, w)
        return cls(
            ticker=ticker,
            yes=_levels(obj.get("yes_dollars"), "yes_dollars", w),
            no=_levels(obj.get("no_dollars"), "no_dollars", w),
            raw=dict(obj),
        )

    @property
    def best_yes_bid(self) -> Decimal | None:
        """The highest YES bid, or None when the YES side is empty."""
        return self.yes[-1].price if self.yes else None

    @property
    def best_no_bid(self) -> Decimal | None:
        """The highest NO bid, or None when the NO side is empty."""
        return self.no[-1].price if self.no else None

    @property
    def yes_ask(self) -> Decimal | None:
        """The best YES ask (1 - best NO bid), or None when the NO side is empty."""
        return None if self.best_no_bid is None else Decimal(1) - self.best_no_bid

    @property
    def no_ask(self) -> Decimal | None:
        """The best NO ask (1 - best YES bid), or None when the YES side is empty."""
        return None if self.best_yes_bid is None else Decimal(1) - self.best_yes_bid


@dataclass(frozen=True)
class HistoricalCutoff:
    """Where Kalshi splits live from historical data; older objects live under `/historical/...`."""

    market_settled_ts: datetime
    trades_created_ts: datetime | None
    orders_updated_ts: datetime | None
    market_positions_last_updated_ts: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> HistoricalCutoff:
        """Parse `GET /historical/cutoff`; `market_settled_ts` is required."""
        w = "historical cutoff"
        obj = _obj(payload, w)
        return cls(
            market_settled_ts=_time(obj, "market_settled_ts", w, required=True),  # type: ignore[arg-type]
            trades_created_ts=_time(obj, "trades_created_ts", w),
            orders_updated_ts=_time(obj, "orders_updated_ts", w),
            market_positions_last_updated_ts=_time(obj, "market_positions_last_updated_ts", w),
            raw=dict(obj),
        )

    @property
    def market_settled_unix(self) -> int:
        """`market_settled_ts` as Unix seconds."""
        return int(self.market_settled_ts.timestamp())


@dataclass(frozen=True)
class ExchangeStatus:
    """Whether the exchange is up and trading."""

    exchange_active: bool
    trading_active: bool
    exchange_estimated_resume_time: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: Any) -> ExchangeStatus:
        """Parse `GET /exchange/status`."""
        w = "exchange status"
        obj = _obj(payload, w)
        return cls(
            exchange_active=_bool(obj, "exchange_active", w, required=True),  # type: ignore[arg-type]
            trading_active=_bool(obj, "trading_active", w, required=True),  # type: ignore[arg-type]
            exchange_estimated_resume_time=_time(obj, "exchange_estimated_resume_time", w),
            raw=dict(obj),
        )


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
    """The Decimal of a well-formed fixed-point string; `_Unusual` for anything `_fixed` would refuse."""
    result = _DECIMALS.get(value) if type(value) is str else None
    if result is None:
        if type(value) is not str:
            raise _Unusual
        try:
            result = _fixed(value, "", "")
        except KalshiProtocolError:
            raise _Unusual from None
        if len(_DECIMALS) >= _DECIMALS_MAX:
            _DECIMALS.clear()
        _DECIMALS[value] = result
    return result


def _fast_candle_values(
    obj: dict[str, Any], historical: bool
) -> tuple[int, tuple[Decimal | None, ...]]:
    """Parse a well-formed candle in one pass; `_Unusual` (or TypeError) for anything else."""
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
    get = _DECIMALS.get
    # `get(v) or ...`: a cache miss (and a zero, which is falsy) takes the checked conversion.
    return end, tuple([None if v is None else (get(v) or _cached_fixed(v)) for v in raw])


def _checked_candle_values(
    payload: Any, ticker: str, historical: bool
) -> tuple[int, tuple[Decimal | None, ...]]:
    """Parse a candle field by field, raising `KalshiProtocolError` on the first problem found."""
    obj = _obj(payload, f"candlestick of {ticker!r}")
    end = obj.get("end_period_ts")
    w = f"candlestick {ticker!r} end_period_ts={end!r}"
    end_period_ts = _int(obj, "end_period_ts", w, required=True)

    def names(base: str, suffix: str) -> tuple[str, ...]:
        return (base, base + suffix) if historical else (base + suffix,)

    def pick(container: Mapping[str, Any], base: str, suffix: str, where: str) -> Decimal | None:
        for key in names(base, suffix):
            value = container.get(key)
            if value is not None:
                return _fixed(value, key, where)
        return None

    def sub(key: str) -> Mapping[str, Any]:
        value = obj.get(key)
        if value is None:
            return {}
        return _obj(value, f"{w} field {key!r}")

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
    return end_period_ts, tuple(values[f] for f in CANDLE_VALUE_FIELDS)  # type: ignore[return-value]


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
