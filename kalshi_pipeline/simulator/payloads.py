"""Kalshi's wire format, written from the documented schemas: fixed-point strings, RFC3339 times, objects.

Prices are `*_dollars` strings with four decimals ("0.5600"), counts are `*_fp` strings with two ("12.50").
No legacy integer fields (cents prices, integer counts) are ever emitted.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from kalshi_pipeline.simulator.market_model.candles import CandleArrays
from kalshi_pipeline.simulator.market_model.path import BookLadder, MarketPath, TradePrint
from kalshi_pipeline.simulator.market_model.prices import PIPS, PRICE_RANGES
from kalshi_pipeline.simulator.sports import SeriesSpec
from kalshi_pipeline.simulator.world import SETTLEMENT_TIMER_S, Game, World, team_target_id

_DOLLARS = [f"{p // PIPS}.{p % PIPS:04d}" for p in range(PIPS + 1)]


def dollars(pips: int) -> str:
    """A price in pips (0.0001 dollars) as Kalshi's FixedPointDollars string."""
    return _DOLLARS[pips]


def count_fp(centi: int) -> str:
    """A count in hundredths of a contract as Kalshi's FixedPointCount string."""
    return f"{centi // 100}.{centi % 100:02d}"


@functools.lru_cache(maxsize=1 << 16)
def rfc3339(ts_s: int) -> str:
    """Unix seconds as an RFC3339 UTC timestamp ("2025-12-20T03:00:00Z")."""
    return datetime.fromtimestamp(ts_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_ms(ts_ms: int) -> str:
    """Unix milliseconds as an RFC3339 UTC timestamp with milliseconds."""
    dt = datetime.fromtimestamp(ts_ms // 1000, UTC)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ts_ms % 1000:03d}Z"


@functools.cache
def _price_ranges() -> list[dict[str, str]]:
    return [
        {"start": dollars(a), "end": dollars(b), "step": dollars(s)} for a, b, s in PRICE_RANGES
    ]


def market_updated_s(game: Game, now_s: int) -> int:
    """When a game's markets last changed as seen at `now_s`: created, closed, determined or settled."""
    return max(
        t for t in (game.created_s, game.close_s, game.determined_s, game.settled_s) if t <= now_s
    )


def event_updated_s(game: Game, now_s: int) -> int:
    """When a game's event last changed as seen at `now_s`: created, closed or settled."""
    return max(t for t in (game.created_s, game.close_s, game.settled_s) if t <= now_s)


def market(world: World, game: Game, ticker: str, now_ms: int) -> dict[str, Any]:
    """The Market object of one of a game's markets as seen at `now_ms`."""
    now_s = now_ms // 1000
    team = game.team_for(ticker)
    status = game.status_at(now_s)
    state = world.market_state(ticker, now_ms)
    determined = status in ("determined", "finalized")
    close_s = game.close_at(now_s)
    date_text = f"{game.game_date:%b} {game.game_date.day}, {game.game_date.year}"
    matchup = f"{game.away.label} at {game.home.label}"
    payload: dict[str, Any] = {
        "ticker": ticker,
        "event_ticker": game.event_ticker,
        "market_type": "binary",
        "title": f"{matchup} Winner?",
        "subtitle": "",
        "yes_sub_title": team.label,
        "no_sub_title": team.label,
        "created_time": rfc3339(game.created_s),
        "updated_time": rfc3339(market_updated_s(game, now_s)),
        "open_time": rfc3339(game.open_s),
        "close_time": rfc3339(close_s),
        "expected_expiration_time": rfc3339(game.expected_expiration_s),
        "expiration_time": rfc3339(game.scheduled_close_s),
        "latest_expiration_time": rfc3339(game.scheduled_close_s),
        "settlement_timer_seconds": SETTLEMENT_TIMER_S,
        "status": status,
        "notional_value_dollars": dollars(PIPS),
        "yes_bid_dollars": dollars(state.yes_bid),
        "yes_ask_dollars": dollars(state.yes_ask),
        "no_bid_dollars": dollars(PIPS - state.yes_ask),
        "no_ask_dollars": dollars(PIPS - state.yes_bid),
        "yes_bid_size_fp": count_fp(state.yes_bid_size),
        "yes_ask_size_fp": count_fp(state.yes_ask_size),
        "last_price_dollars": dollars(state.last_price or 0),
        "previous_yes_bid_dollars": dollars(state.previous_yes_bid),
        "previous_yes_ask_dollars": dollars(state.previous_yes_ask),
        "previous_price_dollars": dollars(state.previous_price or 0),
        "volume_fp": count_fp(state.volume),
        "volume_24h_fp": count_fp(state.volume_24h),
        "open_interest_fp": count_fp(state.open_interest),
        "result": game.result(ticker) if determined else "",
        "can_close_early": True,
        "expiration_value": _expiration_value(game) if determined else "",
        "occurrence_datetime": rfc3339(game.end_s) if determined else None,
        "early_close_condition": "This market will close and expire early if the event occurs.",
        "strike_type": "structured",
        "custom_strike": {"basketball_team": team_target_id(team)},
        "rules_primary": (
            f"If {team.name} wins the {matchup} professional basketball game originally scheduled "
            f"for {date_text}, then the market resolves to Yes."
        ),
        "rules_secondary": (
            "The following market refers to the "
            f"{matchup} professional basketball game originally scheduled for {date_text}. If the game "
            "is postponed or delayed, the market will remain open until the game is completed or "
            "canceled."
        ),
        "primary_participant_key": team_target_id(team),
        "price_level_structure": "tapered_deci_cent",
        "price_ranges": _price_ranges(),
        "exchange_index": 0,
        "settlement_bounds_type": "default",
        "settlement_floor_dollars": None,
    }
    # Nullable fields marked x-omitempty in Kalshi's schema are left out while unset
    # (`fee_waiver_expiration_time` never applies here).
    if determined:
        payload["settlement_value_dollars"] = dollars(game.settlement_pips(ticker))
    if status == "finalized":
        payload["settlement_ts"] = rfc3339(game.settled_s)
    return payload


def _expiration_value(game: Game) -> str:
    """The value the markets settled on: the winner's label, or `Tie` for a game called off tied."""
    if game.tied:
        return "Tie"
    return (game.home if game.home_wins else game.away).label


def event(game: Game, now_s: int, markets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The EventData object of a game (with `markets` when nested markets were asked for)."""
    spec = game.series
    payload: dict[str, Any] = {
        "event_ticker": game.event_ticker,
        "series_ticker": spec.series_ticker,
        "sub_title": f"{game.away.code} at {game.home.code} ({game.game_date:%b} {game.game_date.day})",
        "title": f"{game.away.label} at {game.home.label}",
        "collateral_return_type": "",
        "mutually_exclusive": True,
        "category": spec.category,
        "available_on_brokers": False,
        "product_metadata": {"competition": spec.competition, "competition_scope": "Game"},
        "settlement_sources": [
            {"name": spec.settlement_source_name, "url": spec.settlement_source_url}
        ],
        "last_updated_ts": rfc3339(event_updated_s(game, now_s)),
        "exchange_index": 0,
    }
    # `strike_date`, `strike_period`, the fee overrides and `markets` are x-omitempty: a game event
    # has no strike or fee override, and an empty nested market list is left out too.
    if markets:
        payload["markets"] = markets
    return payload


def milestone_updated_s(game: Game, now_s: int) -> int:
    """When a game's milestone last changed as seen at `now_s`: created, tipped off, or ended."""
    if now_s >= game.end_s:
        return game.end_s
    return game.tip_s if now_s >= game.tip_s else game.created_s


def milestone(game: Game, now_s: int) -> dict[str, Any]:
    """The milestone (the real-world game) of a game's event."""
    spec = game.series
    ended = now_s >= game.end_s
    updated = milestone_updated_s(game, now_s)
    return {
        "id": game.milestone_id,
        "category": spec.category,
        "type": spec.milestone_type,
        "start_date": rfc3339(game.tip_s),
        "end_date": rfc3339(game.end_s) if ended else None,
        "related_event_tickers": [game.event_ticker],
        "primary_event_tickers": [game.event_ticker],
        "title": f"{game.away.name} at {game.home.name}",
        "notification_message": "",
        "source_id": None,
        "source_ids": {},
        "details": {
            "competition": spec.competition,
            "home_team_id": team_target_id(game.home),
            "away_team_id": team_target_id(game.away),
        },
        "last_updated_ts": rfc3339(updated),
    }


SERIES_UPDATED_S = 1_759_276_800
"""When the simulated series' metadata last changed (2025-10-01T00:00:00Z)."""


def series(
    spec: SeriesSpec, volume_centi: int | None = None, product_metadata: bool = True
) -> dict[str, Any]:
    """The Series object (`volume_fp` only when volume was asked for; `product_metadata` optional)."""
    payload: dict[str, Any] = {
        "ticker": spec.series_ticker,
        "frequency": "custom",
        "title": spec.title,
        "category": spec.category,
        "categories": [spec.category],
        "tags": list(spec.tags),
        "settlement_sources": [
            {"name": spec.settlement_source_name, "url": spec.settlement_source_url}
        ],
        "contract_url": "https://kalshi-public-docs.s3.amazonaws.com/contract_terms/NBAGAME.pdf",
        "contract_terms_url": "https://kalshi-public-docs.s3.amazonaws.com/contract_terms/NBAGAME.pdf",
        "product_metadata": {"competition": spec.competition},
        "fee_type": "quadratic",
        "fee_multiplier": 1,
        "additional_prohibitions": [],
        "last_updated_ts": rfc3339(SERIES_UPDATED_S),
        "exchange_index": 0,
    }
    if not product_metadata:
        del payload["product_metadata"]
    if volume_centi is not None:
        payload["volume_fp"] = count_fp(volume_centi)
    return payload


def candles(arrays: CandleArrays, historical: bool = False) -> list[dict[str, Any]]:
    """Candlestick objects; `historical=True` uses the historical endpoint's un-suffixed field names."""
    d = _DOLLARS
    out: list[dict[str, Any]] = []
    cols = (
        arrays.end_ts.tolist(),
        arrays.bid_open.tolist(),
        arrays.bid_low.tolist(),
        arrays.bid_high.tolist(),
        arrays.bid_close.tolist(),
        arrays.ask_open.tolist(),
        arrays.ask_low.tolist(),
        arrays.ask_high.tolist(),
        arrays.ask_close.tolist(),
        arrays.has_trade.tolist(),
        arrays.price_open.tolist(),
        arrays.price_low.tolist(),
        arrays.price_high.tolist(),
        arrays.price_close.tolist(),
        arrays.price_mean.tolist(),
        arrays.price_previous.tolist(),
        arrays.volume.tolist(),
        arrays.open_interest.tolist(),
    )
    for end, bo, bl, bh, bc, ao, al, ah, ac, traded, po, pl, ph, pc, pm, pp, vol, oi in zip(
        *cols, strict=True
    ):
        if historical:
            price: dict[str, Any] = {
                "open": d[po] if traded else None,
                "low": d[pl] if traded else None,
                "high": d[ph] if traded else None,
                "close": d[pc] if traded else None,
                "mean": d[pm] if traded else None,
                "previous": d[pp] if pp >= 0 else None,
            }
            out.append(
                {
                    "end_period_ts": end,
                    "yes_bid": {"open": d[bo], "low": d[bl], "high": d[bh], "close": d[bc]},
                    "yes_ask": {"open": d[ao], "low": d[al], "high": d[ah], "close": d[ac]},
                    "price": price,
                    "volume": count_fp(vol),
                    "open_interest": count_fp(oi),
                }
            )
            continue
        if traded:
            price = {
                "open_dollars": d[po],
                "low_dollars": d[pl],
                "high_dollars": d[ph],
                "close_dollars": d[pc],
                "mean_dollars": d[pm],
            }
            if pp >= 0:
                price["previous_dollars"] = d[pp]
        else:
            price = {"previous_dollars": d[pp]} if pp >= 0 else {}
        out.append(
            {
                "end_period_ts": end,
                "yes_bid": {
                    "open_dollars": d[bo],
                    "low_dollars": d[bl],
                    "high_dollars": d[bh],
                    "close_dollars": d[bc],
                },
                "yes_ask": {
                    "open_dollars": d[ao],
                    "low_dollars": d[al],
                    "high_dollars": d[ah],
                    "close_dollars": d[ac],
                },
                "price": price,
                "volume_fp": count_fp(vol),
                "open_interest_fp": count_fp(oi),
            }
        )
    return out


CANDLE_START = b'{"end_period_ts":'
"""How every Candlestick object's JSON text begins (its first key), in both wire shapes."""


def candles_json(arrays: CandleArrays, historical: bool = False) -> bytes:
    """The JSON array of `candles(arrays, historical)` as compact UTF-8 text, exactly as `JSONResponse` renders it."""
    return orjson.dumps(candles(arrays, historical))


def candle_elements(arrays: CandleArrays, historical: bool = False) -> tuple[bytes, np.ndarray]:
    """The candles' JSON texts joined by commas, and where each one starts in that text.

    `starts` has one more entry than there are candles, as if a comma followed the last one: candles `lo`
    to `hi - 1` are `text[starts[lo] : starts[hi] - 1]`.
    """
    if not len(arrays):
        return b"", np.zeros(1, dtype=np.int64)
    text = candles_json(arrays, historical)[1:-1]
    # A candle's text holds no `,{"end_period_ts":` of its own: its values are numbers and price strings.
    pieces = text.split(b"," + CANDLE_START)
    lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    lengths[1:] += len(CANDLE_START)
    starts = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=starts[1:])
    return text, starts


def trade_fields(t: TradePrint) -> dict[str, Any]:
    """The fields a trade print has in both the REST Trade object and the WebSocket `trade` message."""
    side = "yes" if t.taker_yes else "no"
    return {
        "trade_id": t.trade_id,
        "count_fp": count_fp(t.count),
        "yes_price_dollars": dollars(t.yes_price),
        "no_price_dollars": dollars(PIPS - t.yes_price),
        "taker_side": side,
        "taker_outcome_side": side,
        "taker_book_side": "bid" if t.taker_yes else "ask",
        "is_block_trade": False,
    }


def trade(path: MarketPath, t: TradePrint) -> dict[str, Any]:
    """The Trade object of a trade print."""
    return {"ticker": path.ticker, **trade_fields(t), "created_time": rfc3339_ms(t.ts_ms)}


def ladder(levels: tuple[tuple[int, int], ...]) -> list[list[str]]:
    """One side of a book as `[price_dollars, count_fp]` pairs (REST and WebSocket share the shape)."""
    return [[dollars(p), count_fp(c)] for p, c in levels]


def orderbook(book: BookLadder) -> dict[str, Any]:
    """The `orderbook_fp` object: YES and NO bid ladders, ascending, `[price_dollars, count_fp]` pairs."""
    return {"yes_dollars": ladder(book.yes), "no_dollars": ladder(book.no)}
