"""Typed, exact models of Kalshi REST payloads (markets, events, series, milestones, trades, orderbooks).

Fixed-point strings (`*_dollars`, `*_fp`) become `Decimal` exactly; an absent key is treated like `null`;
unknown new fields are ignored (kept in `raw`); a missing required field raises `KalshiProtocolError` naming
the field and the object. RFC3339 timestamps become timezone-aware datetimes. The field rules live in
`kalshi_pipeline.kalshi.parsing` (shared with the WebSocket messages); candles live in `candles`, the
exchange status and schedule in `exchange`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from kalshi_pipeline.kalshi.errors import KalshiProtocolError
from kalshi_pipeline.kalshi.parsing import Fields, expect_object, parse_fixed

__all__ = [
    "Event",
    "HistoricalCutoff",
    "Market",
    "Milestone",
    "Orderbook",
    "OrderbookLevel",
    "PriceRange",
    "Series",
    "Trade",
]


@dataclass(frozen=True)
class PriceRange:
    """One segment of a market's tick grid: prices from `start` to `end` in steps of `step` dollars."""

    start: Decimal
    end: Decimal
    step: Decimal

    @classmethod
    def from_payload(cls, payload: Any, where: str = "price_range") -> PriceRange:
        """Parse `{start, end, step}` dollar strings."""
        f = Fields(payload, where)
        return cls(
            start=f.required_fixed("start"),
            end=f.required_fixed("end"),
            step=f.required_fixed("step"),
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
    settlement_bounds_type: str | None = None
    settlement_floor_dollars: Decimal | None = None

    @classmethod
    def from_payload(cls, payload: Any) -> Market:
        """Parse one Market object; `ticker`, `event_ticker` and `status` are required."""
        f = Fields.named(payload, "market", "ticker")
        market = cls(
            ticker=f.required_text("ticker"),
            event_ticker=f.required_text("event_ticker"),
            status=f.required_text("status"),
            market_type=f.text("market_type"),
            title=f.text("title"),
            subtitle=f.text("subtitle"),
            yes_sub_title=f.text("yes_sub_title"),
            no_sub_title=f.text("no_sub_title"),
            created_time=f.time("created_time"),
            updated_time=f.time("updated_time"),
            open_time=f.time("open_time"),
            close_time=f.time("close_time"),
            expected_expiration_time=f.time("expected_expiration_time"),
            expiration_time=f.time("expiration_time"),
            latest_expiration_time=f.time("latest_expiration_time"),
            settlement_timer_seconds=f.integer("settlement_timer_seconds"),
            yes_bid_dollars=f.fixed("yes_bid_dollars"),
            yes_ask_dollars=f.fixed("yes_ask_dollars"),
            no_bid_dollars=f.fixed("no_bid_dollars"),
            no_ask_dollars=f.fixed("no_ask_dollars"),
            yes_bid_size_fp=f.fixed("yes_bid_size_fp"),
            yes_ask_size_fp=f.fixed("yes_ask_size_fp"),
            last_price_dollars=f.fixed("last_price_dollars"),
            previous_yes_bid_dollars=f.fixed("previous_yes_bid_dollars"),
            previous_yes_ask_dollars=f.fixed("previous_yes_ask_dollars"),
            previous_price_dollars=f.fixed("previous_price_dollars"),
            volume_fp=f.fixed("volume_fp"),
            volume_24h_fp=f.fixed("volume_24h_fp"),
            open_interest_fp=f.fixed("open_interest_fp"),
            notional_value_dollars=f.fixed("notional_value_dollars"),
            result=f.text("result"),
            can_close_early=f.flag("can_close_early"),
            settlement_value_dollars=f.fixed("settlement_value_dollars"),
            settlement_ts=f.time("settlement_ts"),
            expiration_value=f.text("expiration_value"),
            occurrence_datetime=f.time("occurrence_datetime"),
            strike_type=f.text("strike_type"),
            floor_strike=f.number("floor_strike"),
            cap_strike=f.number("cap_strike"),
            custom_strike=f.mapping("custom_strike"),
            rules_primary=f.text("rules_primary"),
            rules_secondary=f.text("rules_secondary"),
            price_level_structure=f.text("price_level_structure"),
            price_ranges=tuple(
                PriceRange.from_payload(item, f"{f.where} price_ranges[{i}]")
                for i, item in enumerate(f.items("price_ranges"))
            ),
            primary_participant_key=f.text("primary_participant_key"),
            mve_collection_ticker=f.text("mve_collection_ticker"),
            is_provisional=f.flag("is_provisional"),
            exchange_index=f.integer("exchange_index"),
            raw=dict(f.obj),
            settlement_bounds_type=f.text("settlement_bounds_type"),
            settlement_floor_dollars=f.fixed("settlement_floor_dollars"),
        )
        if market.result == "scalar":
            value = market.settlement_value_dollars
            if value is None or not Decimal(0) <= value <= Decimal(1):
                raise KalshiProtocolError(
                    f"{f.where}: result 'scalar' needs settlement_value_dollars in [0, 1], got {value!r}"
                )
        return market


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
        f = Fields.named(payload, "milestone", "id", "title")
        return cls(
            id=f.required_text("id"),
            start_date=f.required_time("start_date"),
            category=f.text("category"),
            type=f.text("type"),
            end_date=f.time("end_date"),
            title=f.text("title"),
            related_event_tickers=f.texts("related_event_tickers"),
            primary_event_tickers=f.texts("primary_event_tickers"),
            notification_message=f.text("notification_message"),
            source_id=f.text("source_id"),
            details=f.mapping("details"),
            last_updated_ts=f.time("last_updated_ts")
            if isinstance(f.obj.get("last_updated_ts"), str)
            else None,
            raw=dict(f.obj),
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
        f = Fields.named(payload, "event", "event_ticker")
        event_ticker = f.required_text("event_ticker")
        nested = f.items("markets") or list(markets or ())
        return cls(
            event_ticker=event_ticker,
            series_ticker=f.required_text("series_ticker"),
            title=f.text("title"),
            sub_title=f.text("sub_title"),
            category=f.text("category"),
            collateral_return_type=f.text("collateral_return_type"),
            mutually_exclusive=f.flag("mutually_exclusive"),
            strike_date=f.time("strike_date"),
            strike_period=f.text("strike_period"),
            product_metadata=f.mapping("product_metadata"),
            exchange_index=f.integer("exchange_index"),
            markets=tuple(Market.from_payload(m) for m in nested),
            milestones=tuple(m for m in milestones if m.concerns(event_ticker)),
            raw=dict(f.obj),
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
    categories: tuple[str, ...] = ()

    @classmethod
    def from_payload(cls, payload: Any) -> Series:
        """Parse one Series object; `ticker` is required."""
        f = Fields.named(payload, "series", "ticker")
        return cls(
            ticker=f.required_text("ticker"),
            title=f.text("title"),
            category=f.text("category"),
            frequency=f.text("frequency"),
            tags=f.texts("tags"),
            contract_url=f.text("contract_url"),
            contract_terms_url=f.text("contract_terms_url"),
            fee_type=f.text("fee_type"),
            fee_multiplier=f.number("fee_multiplier"),
            volume_fp=f.fixed("volume_fp"),
            product_metadata=f.mapping("product_metadata"),
            settlement_sources=tuple(
                dict(expect_object(s, f"{f.where} settlement_sources"))
                for s in f.items("settlement_sources")
            ),
            exchange_index=f.integer("exchange_index"),
            raw=dict(f.obj),
            categories=f.texts("categories"),
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
        f = Fields.named(payload, "trade", "trade_id")
        return cls(
            trade_id=f.required_text("trade_id"),
            ticker=f.required_text("ticker"),
            count_fp=f.required_fixed("count_fp"),
            yes_price_dollars=f.required_fixed("yes_price_dollars"),
            no_price_dollars=f.fixed("no_price_dollars"),
            created_time=f.required_time("created_time"),
            taker_side=f.text("taker_side"),
            taker_outcome_side=f.text("taker_outcome_side"),
            taker_book_side=f.text("taker_book_side"),
            is_block_trade=f.flag("is_block_trade"),
            raw=dict(f.obj),
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
                price=parse_fixed(level[0], f"{key}[{i}][0]", where),
                count=parse_fixed(level[1], f"{key}[{i}][1]", where),
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
        f = Fields(payload, f"orderbook {ticker!r}")
        return cls(
            ticker=ticker,
            yes=_levels(f.obj.get("yes_dollars"), "yes_dollars", f.where),
            no=_levels(f.obj.get("no_dollars"), "no_dollars", f.where),
            raw=dict(f.obj),
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
        f = Fields(payload, "historical cutoff")
        return cls(
            market_settled_ts=f.required_time("market_settled_ts"),
            trades_created_ts=f.time("trades_created_ts"),
            orders_updated_ts=f.time("orders_updated_ts"),
            market_positions_last_updated_ts=f.time("market_positions_last_updated_ts"),
            raw=dict(f.obj),
        )

    @property
    def market_settled_unix(self) -> int:
        """`market_settled_ts` as Unix seconds."""
        return int(self.market_settled_ts.timestamp())
