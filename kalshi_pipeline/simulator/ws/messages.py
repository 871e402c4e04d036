"""The `msg` bodies of the market channels: ticker, trade, order book snapshot and deltas, lifecycle."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from kalshi_pipeline.simulator.market_model.path import BookLadder, MarketPath, TradePrint
from kalshi_pipeline.simulator.market_model.prices import PIPS
from kalshi_pipeline.simulator.payloads import count_fp, dollars, ladder, rfc3339_ms, trade_fields
from kalshi_pipeline.simulator.ws.lifecycle import LifecycleEvent

_MARKET_NS = uuid.UUID("0b6f0c7e-4d0e-4c47-9a55-2f1f1c1d2e3a")


@functools.lru_cache(maxsize=4096)
def market_id(ticker: str) -> str:
    """The stable `market_id` UUID of a market (computed once per ticker, not per message)."""
    return str(uuid.uuid5(_MARKET_NS, ticker))


def ticker_msg(path: MarketPath, ts_ms: int) -> dict[str, Any]:
    """A `ticker` message: the market's quote, last price and totals at `ts_ms`."""
    state = path.state_at(ts_ms)
    price = state.last_price or 0
    ti = path.trade_index_at(ts_ms)
    last_trade_size = int(path.trade_count[ti]) if ti >= 0 else 0
    return {
        "market_id": market_id(path.ticker),
        "market_ticker": path.ticker,
        "price_dollars": dollars(price),
        "yes_bid_dollars": dollars(state.yes_bid),
        "yes_ask_dollars": dollars(state.yes_ask),
        "volume_fp": count_fp(state.volume),
        "open_interest_fp": count_fp(state.open_interest),
        "dollar_volume": state.volume * price // (100 * PIPS),
        "dollar_open_interest": state.open_interest * price // (100 * PIPS),
        "yes_bid_size_fp": count_fp(state.yes_bid_size),
        "yes_ask_size_fp": count_fp(state.yes_ask_size),
        "last_trade_size_fp": count_fp(last_trade_size),
        "ts": ts_ms // 1000,
        "ts_ms": ts_ms,
        "time": rfc3339_ms(ts_ms),
    }


def trade_msg(path: MarketPath, t: TradePrint) -> dict[str, Any]:
    """A `trade` message for one trade print."""
    return {
        "market_ticker": path.ticker,
        **trade_fields(t),
        "ts": t.ts_ms // 1000,
        "ts_ms": t.ts_ms,
    }


def in_yes_prices(book: BookLadder) -> BookLadder:
    """The book as `use_yes_price` reports it: NO bids at their YES-leg price (1 - price), ascending.

    Kalshi documents only that NO-side levels are then expressed in YES-leg prices; the levels stay under
    the `no` side and, as everywhere else, are listed by ascending price (an assumption).
    """
    return BookLadder(book.yes, tuple(sorted((PIPS - price, size) for price, size in book.no)))


def snapshot_msg(ticker: str, book: BookLadder) -> dict[str, Any]:
    """An `orderbook_snapshot` message (Kalshi omits an empty side entirely)."""
    msg: dict[str, Any] = {"market_ticker": ticker, "market_id": market_id(ticker)}
    if book.yes:
        msg["yes_dollars_fp"] = ladder(book.yes)
    if book.no:
        msg["no_dollars_fp"] = ladder(book.no)
    return msg


def delta_msgs(ticker: str, old: BookLadder, new: BookLadder, ts_ms: int) -> list[dict[str, Any]]:
    """The `orderbook_delta` messages turning `old` into `new`: YES side first, each by ascending price."""
    out: list[dict[str, Any]] = []
    for side, before, after in (("yes", old.yes, new.yes), ("no", old.no, new.no)):
        b, a = dict(before), dict(after)
        for price in sorted(set(b) | set(a)):
            change = a.get(price, 0) - b.get(price, 0)
            if change == 0:
                continue
            sign = "-" if change < 0 else ""
            out.append(
                {
                    "market_ticker": ticker,
                    "market_id": market_id(ticker),
                    "price_dollars": dollars(price),
                    "delta_fp": sign + count_fp(abs(change)),
                    "side": side,
                    "ts": rfc3339_ms(ts_ms),
                    "ts_ms": ts_ms,
                }
            )
    return out


def lifecycle_msg(ev: LifecycleEvent) -> dict[str, Any]:
    """A `market_lifecycle_v2` message with the fields its event type carries."""
    game = ev.game
    msg: dict[str, Any] = {"market_ticker": ev.ticker, "event_type": ev.event_type}
    if ev.event_type == "created":
        msg.update(
            open_ts=game.open_s,
            close_ts=game.scheduled_close_s,
            additional_metadata={
                "event_ticker": game.event_ticker,
                "expected_expiration_ts": game.expected_expiration_s,
                "can_close_early": True,
            },
        )
    elif ev.event_type == "close_date_updated":
        msg["close_ts"] = game.close_s
    elif ev.event_type == "determined":
        msg.update(
            determination_ts=game.determined_s,
            result=game.result(ev.ticker),
            settlement_value=dollars(game.settlement_pips(ev.ticker)),
        )
    elif ev.event_type == "settled":
        msg["settled_ts"] = game.settled_s
    return msg


def foreign_created_msg(ticker: str, open_s: int, close_s: int) -> dict[str, Any]:
    """A `created` lifecycle message of a market outside the session's interest (schedule fields only)."""
    return {
        "market_ticker": ticker,
        "event_type": "created",
        "open_ts": open_s,
        "close_ts": close_s,
        "additional_metadata": {"can_close_early": True, "expected_expiration_ts": close_s},
    }
