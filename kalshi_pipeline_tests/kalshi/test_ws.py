"""Tests of the WebSocket client: URLs, message models, and behaviour against the simulator over a socket."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.config import DEFAULT_WS_URL, KalshiConfig, derive_ws_url
from kalshi_pipeline.kalshi.errors import (
    KalshiAuthError,
    KalshiConfigError,
    KalshiProtocolError,
    KalshiWebSocketError,
    WsCommandError,
    WsMessageError,
)
from kalshi_pipeline.kalshi.ws import (
    KalshiWebSocket,
    LifecycleMessage,
    OrderbookDelta,
    OrderbookReplica,
    OrderbookSnapshot,
    StreamEvent,
    TickerMessage,
    TradeMessage,
    parse_message,
)
from kalshi_pipeline_tests.simulated import live_tickers

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SIGNER = KalshiSigner("key-1", KEY)


def client(sim: Any, **kwargs: Any) -> KalshiWebSocket:
    kwargs.setdefault("backoff_initial", 0.05)
    kwargs.setdefault("backoff_max", 0.2)
    return KalshiWebSocket(sim.ws_url, signer=SIGNER.sign, **kwargs)


async def collect_until(
    ws: KalshiWebSocket,
    done: Callable[[list[Any]], bool],
    limit: int = 20_000,
    timeout: float = 20.0,
) -> list[Any]:
    items: list[Any] = []
    while not done(items):
        items.append(await ws.next_item(timeout))
        assert len(items) < limit, "condition never met"
    return items


def events(items: list[Any], kind: str) -> list[StreamEvent]:
    return [i for i in items if isinstance(i, StreamEvent) and i.kind == kind]


# ---------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("http://127.0.0.1:8765/trade-api/v2", "ws://127.0.0.1:8765/trade-api/ws/v2"),
        ("https://example.test/prefix/trade-api/v2/", "wss://example.test/prefix/trade-api/ws/v2"),
        ("https://external-api.kalshi.com/trade-api/v2", DEFAULT_WS_URL),
        (
            "https://api.elections.kalshi.com/trade-api/v2",
            "wss://api.elections.kalshi.com/trade-api/ws/v2",
        ),
        (
            "https://external-api.demo.kalshi.co/trade-api/v2",
            "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2",
        ),
    ],
)
def test_derive_ws_url(base: str, expected: str) -> None:
    assert derive_ws_url(base) == expected


def test_from_config_uses_the_explicit_url_else_the_configured_one() -> None:
    derived = KalshiConfig(base_url="http://h:1/trade-api/v2")
    assert KalshiWebSocket.from_config(derived).url == "ws://h:1/trade-api/ws/v2"
    explicit = KalshiConfig(base_url="demo", ws_url="ws://x:2/trade-api/ws/v2")
    assert KalshiWebSocket.from_config(explicit).url == "ws://x:2/trade-api/ws/v2"
    assert (
        KalshiWebSocket.from_config(explicit, url="ws://y:3/trade-api/ws/v2").url
        == "ws://y:3/trade-api/ws/v2"
    )
    with pytest.raises(KalshiConfigError, match="KALSHI_WS_URL"):
        KalshiWebSocket("ftp://nope")


def test_parse_ticker_uses_decimal_and_falls_back_to_ts() -> None:
    frame = {
        "type": "ticker",
        "sid": 3,
        "msg": {
            "market_ticker": "KXNBAGAME-25DEC19SASATL-ATL",
            "price_dollars": "0.5600",
            "yes_bid_dollars": "0.5500",
            "yes_ask_dollars": "0.5700",
            "volume_fp": "1200.50",
            "open_interest_fp": "800.00",
            "ts": 1766200000,
        },
    }
    msg = parse_message(json.dumps(frame), received_ms=1766200000123)
    assert isinstance(msg, TickerMessage)
    assert msg.price == Decimal("0.5600") and msg.volume == Decimal("1200.50")
    assert msg.ts_ms == 1766200000000 and msg.received_ms == 1766200000123
    assert msg.seq is None and msg.sid == 3


def test_parse_delta_with_rfc3339_ts_and_trade() -> None:
    delta = parse_message(
        '{"type":"orderbook_delta","sid":2,"seq":7,"msg":{"market_ticker":"M","price_dollars":"0.0800",'
        '"delta_fp":"-54.00","side":"no","ts":"2026-07-19T15:45:00.544125Z"}}'
    )
    assert isinstance(delta, OrderbookDelta)
    assert delta.delta == Decimal("-54.00") and delta.seq == 7 and delta.ts_ms == 1784475900544
    trade = parse_message(
        '{"type":"trade","sid":1,"msg":{"trade_id":"t","market_ticker":"M","yes_price_dollars":"0.3600",'
        '"no_price_dollars":"0.6400","count_fp":"3.00","taker_outcome_side":"yes","ts":1,"ts_ms":1500}}'
    )
    assert isinstance(trade, TradeMessage) and trade.ts_ms == 1500 and trade.count == Decimal(3)


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[]",
        '{"sid":1}',
        '{"type":"ticker","msg":{"market_ticker":"M","price_dollars":"abc"}}',
        '{"type":"trade","msg":{"market_ticker":"M"}}',
        '{"type":"orderbook_delta","msg":{"market_ticker":"M","price_dollars":"0.1","delta_fp":"1","side":"up"}}',
    ],
)
def test_malformed_frames_raise_clear_errors(raw: str) -> None:
    with pytest.raises(KalshiWebSocketError):
        parse_message(raw)


@pytest.mark.parametrize(
    ("msg", "field"),
    [
        ({"type": "ticker", "msg": {"market_ticker": "M", "price_dollars": 56}}, "price_dollars"),
        ({"type": "ticker", "msg": {"market_ticker": "M", "volume_fp": 1200}}, "volume_fp"),
        (
            {"type": "trade", "msg": {"market_ticker": "M", "count_fp": "3.00", "yes_price_dollars": 36}},
            "yes_price_dollars",
        ),
        ({"type": "trade", "msg": {"market_ticker": "M", "count_fp": 3}}, "count_fp"),
        (
            {"type": "orderbook_delta", "msg": {"market_ticker": "M", "price_dollars": 0.08,
                                                "delta_fp": "-54.00", "side": "no"}},
            "price_dollars",
        ),
        (
            {"type": "orderbook_delta", "msg": {"market_ticker": "M", "price_dollars": "0.0800",
                                                "delta_fp": -54, "side": "no"}},
            "delta_fp",
        ),
        (
            {"type": "orderbook_snapshot", "msg": {"market_ticker": "M",
                                                   "yes_dollars_fp": [["0.0800", 300]]}},
            "yes_dollars_fp[0][1]",
        ),
        (
            {"type": "market_lifecycle_v2", "msg": {"market_ticker": "M", "event_type": "determined",
                                                    "result": "yes", "settlement_value": 1}},
            "settlement_value",
        ),
    ],
)  # fmt: skip
def test_bare_number_in_a_fixed_point_field_is_refused(msg: dict[str, Any], field: str) -> None:
    # A bare number there is a legacy integer (cents or whole contracts), never silently read as dollars;
    # the same parser refuses it in REST payloads (test_models.py).
    with pytest.raises(WsMessageError) as err:
        parse_message(json.dumps(msg))
    text = str(err.value)
    assert repr(field) in text and "should be a fixed-point string" in text and "\n" not in text
    assert msg["type"] in text and "'M'" in text  # names the frame and the market
    assert isinstance(err.value, KalshiProtocolError) and isinstance(
        err.value, KalshiWebSocketError
    )


def test_fixed_point_strings_parse_exactly_in_every_message_type() -> None:
    snapshot = parse_message(
        '{"type":"orderbook_snapshot","sid":2,"seq":1,"msg":{"market_ticker":"M","market_id":"",'
        '"yes_dollars_fp":[["0.4200","13.00"],["0.4100","10.00"]]}}'
    )
    assert isinstance(snapshot, OrderbookSnapshot)
    assert snapshot.yes == (
        (Decimal("0.4100"), Decimal("10.00")),
        (Decimal("0.4200"), Decimal("13.00")),
    )
    assert snapshot.no == ()
    settled = parse_message(
        '{"type":"market_lifecycle_v2","sid":4,"seq":9,"msg":{"market_ticker":"M",'
        '"event_type":"settled","settlement_value":"1.0000","settled_ts":1766200000}}'
    )
    assert isinstance(settled, LifecycleMessage)
    assert settled.settlement_value == Decimal("1.0000") and settled.ts_ms == 1766200000000


def test_orderbook_replica_follows_snapshot_and_deltas() -> None:
    book = OrderbookReplica("M")
    assert book.stale and book.levels("yes") == []
    snapshot = parse_message(
        '{"type":"orderbook_snapshot","sid":2,"seq":1,"msg":{"market_ticker":"M",'
        '"yes_dollars_fp":[["0.4100","10.00"]],"no_dollars_fp":[["0.5500","3.00"],["0.5600","0.00"]]}}'
    )
    assert isinstance(snapshot, OrderbookSnapshot)
    book.apply_snapshot(snapshot)
    assert not book.stale
    assert book.levels("no") == [(Decimal("0.5500"), Decimal("3.00"))]  # empty levels are dropped

    def delta(price: str, change: str, side: str) -> OrderbookDelta:
        message = parse_message(
            json.dumps(
                {"type": "orderbook_delta", "sid": 2, "seq": 2,
                 "msg": {"market_ticker": "M", "price_dollars": price, "delta_fp": change, "side": side}}
            )
        )  # fmt: skip
        assert isinstance(message, OrderbookDelta)
        return message

    book.apply_delta(delta("0.4200", "5.00", "yes"))
    book.apply_delta(delta("0.4100", "-4.00", "yes"))
    book.apply_delta(delta("0.5500", "-3.00", "no"))
    assert book.levels("yes") == [
        (Decimal("0.4100"), Decimal("6.00")),
        (Decimal("0.4200"), Decimal("5.00")),
    ]
    assert book.levels("no") == []


def test_bad_settings_fail_fast() -> None:
    with pytest.raises(KalshiConfigError, match="overflow"):
        KalshiWebSocket("ws://x/trade-api/ws/v2", overflow="explode")  # type: ignore[arg-type]  # invalid on purpose

    async def go() -> None:
        ws = KalshiWebSocket("ws://127.0.0.1:9/trade-api/ws/v2")
        with pytest.raises(KalshiConfigError, match="unknown channel"):
            await ws.subscribe(["fills"], ["M"])
        with pytest.raises(KalshiConfigError, match="orderbook_delta needs market tickers"):
            await ws.subscribe(["orderbook_delta"])

    asyncio.run(go())


# --------------------------------------------------------------------------------- against the simulator


#: Where every simulator of this module starts its clock. The feeds follow seeded quote and trade times
#: laid out from the start, so what a test waits for arrives after the same delay in every run (from the
#: wall clock, a resync waited anywhere from under 1 s to over 20 s for the exchange's next quote change).
SIM_NOW = datetime(2026, 1, 20, 23, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sims(start_simulator_module: Callable[..., Any]) -> Callable[..., Any]:
    return functools.partial(start_simulator_module, auth_keys={"key-1": PEM}, now=SIM_NOW)


def test_unsigned_or_wrongly_signed_handshake_raises_auth_error(sims: Any) -> None:
    sim = sims()
    other = KalshiSigner("key-1", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    async def go(signer: Any) -> None:
        ws = KalshiWebSocket(sim.ws_url, signer=signer)
        async with ws:
            with pytest.raises(KalshiAuthError, match="HTTP 401"):
                while True:
                    await ws.next_item(10)

    asyncio.run(go(None))
    asyncio.run(go(other.sign))


def test_subscribe_receive_typed_messages_and_commands(sims: Any) -> None:
    sim = sims(ws_faults="ping_interval=0.2")
    tickers = live_tickers(sim)

    async def go() -> None:
        ws = client(sim)
        async with ws:
            await ws.wait_connected(10)
            sids = await ws.subscribe(
                ["ticker", "trade", "orderbook_delta", "market_lifecycle_v2"], tickers
            )
            assert sorted(sids.values()) == [1, 2, 3, 4]
            listed = await ws.list_subscriptions()
            assert {(s["channel"], s["sid"]) for s in listed} == set(sids.items())
            items = await collect_until(
                ws,
                lambda xs: (
                    any(isinstance(x, TradeMessage) for x in xs)
                    and any(isinstance(x, OrderbookDelta) for x in xs)
                    and ws.stats.pings_received >= 2
                ),
            )
            for item in items:
                if isinstance(item, (TickerMessage, TradeMessage, OrderbookDelta)):
                    assert item.market_ticker in tickers
                    assert item.ts_ms is not None and item.received_ms >= item.ts_ms - 1000
            assert ws.stats.ping_payloads.keys() == {"heartbeat"}
            assert all(not b.stale for b in ws.books.values()) and set(ws.books) == set(tickers)
            # Kalshi-coded errors surface as WsCommandError from the command helpers.
            with pytest.raises(WsCommandError) as info:
                await ws._command(
                    "update_subscription",
                    {"sids": [sids["ticker"]], "action": "explode", "market_tickers": tickers},
                )
            assert info.value.code == 13
            await ws.delete_markets("trade", tickers[:1])
            assert ws.subscribed_tickers("trade") == set(tickers[1:])
            await ws.unsubscribe(["market_lifecycle_v2"])
            assert "market_lifecycle_v2" not in ws.subscriptions()

    asyncio.run(go())


def test_disconnect_mid_game_is_survived_with_resubscribe(sims: Any) -> None:
    sim = sims(ws_faults="disconnect_after=25,disconnect_times=2")
    tickers = live_tickers(sim)

    async def go() -> None:
        ws = client(sim)
        await ws.subscribe(["ticker", "trade", "orderbook_delta"], tickers)
        async with ws:
            items = await collect_until(
                ws,
                lambda xs: (
                    ws.connection_number >= 3
                    and sum(
                        isinstance(x, (TickerMessage, OrderbookDelta)) and x.received_ms > 0
                        for x in xs[-5:]
                    )
                    >= 5
                ),
            )
        assert len(events(items, "disconnect")) == 2
        assert [e.connection for e in events(items, "connect")] == [1, 2, 3]
        gaps = events(items, "gap")
        # Each reconnect reports the outage for the channels REST must backfill.
        assert {(g.connection, g.channel) for g in gaps} >= {
            (2, "ticker"),
            (2, "trade"),
            (3, "ticker"),
            (3, "trade"),
        }
        # The outage starts at the last message received and lasts until the new connection's first one.
        assert all(g.since_ms is not None and g.until_ms is None for g in gaps)
        assert all(set(g.market_tickers) == set(tickers) for g in gaps)
        assert all(sid is not None for sid in ws.subscriptions().values())
        # Fresh snapshots after the reconnect make the books usable again.
        assert set(ws.books) == set(tickers) and all(not b.stale for b in ws.books.values())
        assert sim.app.state.ws_hub.stats.faults_fired.count("disconnect") == 2

    asyncio.run(go())


def test_replica_maps_yes_leg_no_prices_back() -> None:
    """Under `use_yes_price` NO levels arrive at 1 - price; the replica keeps REST's NO-leg prices."""
    book = OrderbookReplica("M", yes_prices=True)
    snapshot = parse_message(
        '{"type":"orderbook_snapshot","sid":2,"seq":1,"msg":{"market_ticker":"M",'
        '"yes_dollars_fp":[["0.4100","10.00"]],"no_dollars_fp":[["0.4400","3.00"],["0.4500","2.00"]]}}'
    )
    assert isinstance(snapshot, OrderbookSnapshot)
    book.apply_snapshot(snapshot)
    assert book.levels("no") == [
        (Decimal("0.5500"), Decimal("2.00")),
        (Decimal("0.5600"), Decimal("3.00")),
    ]
    delta = parse_message(
        '{"type":"orderbook_delta","sid":2,"seq":2,"msg":{"market_ticker":"M",'
        '"price_dollars":"0.4400","delta_fp":"-3.00","side":"no"}}'
    )
    assert isinstance(delta, OrderbookDelta)
    book.apply_delta(delta)
    assert book.levels("no") == [(Decimal("0.5500"), Decimal("2.00"))]
    assert book.levels("yes") == [(Decimal("0.4100"), Decimal("10.00"))]


def test_use_yes_price_subscription_rebuilds_the_rest_book(sims: Any) -> None:
    sim = sims()
    ticker = live_tickers(sim)[0]

    def rest_levels() -> dict[str, list[tuple[Decimal, Decimal]]]:
        body = httpx.get(f"{sim.base_url}/markets/{ticker}/orderbook").json()["orderbook_fp"]
        return {
            s: [(Decimal(p), Decimal(c)) for p, c in body.get(f"{s}_dollars") or []]
            for s in ("yes", "no")
        }

    async def go() -> None:
        ws = client(sim, use_yes_price=True)
        await ws.subscribe(["orderbook_delta"], [ticker])
        async with ws:
            snapshot = await collect_until(
                ws, lambda xs: any(isinstance(x, OrderbookSnapshot) for x in xs)
            )
            sent = next(x for x in snapshot if isinstance(x, OrderbookSnapshot))
            for _ in range(300):  # wait for a quiet moment, then compare with REST
                try:
                    await ws.next_item(0.4)
                    continue
                except TimeoutError:
                    pass
                book = ws.books[ticker]
                if {"yes": book.levels("yes"), "no": book.levels("no")} == await asyncio.to_thread(
                    rest_levels
                ):
                    break
            else:
                raise AssertionError("the use_yes_price book never matched REST")
        # The delivered snapshot keeps the prices as sent: YES-leg prices on the NO side.
        assert [p for p, _ in sent.no] == sorted(p for p, _ in sent.no)

    asyncio.run(go())


def test_dropped_orderbook_seq_is_detected_and_resynced(sims: Any) -> None:
    sim = sims(ws_faults="drop_seq_after=12")
    tickers = live_tickers(sim)
    ticker = tickers[0]

    def rest_levels() -> dict[str, list[tuple[Decimal, Decimal]]]:
        body = httpx.get(f"{sim.base_url}/markets/{ticker}/orderbook").json()["orderbook_fp"]
        return {
            s: [(Decimal(p), Decimal(c)) for p, c in body.get(f"{s}_dollars") or []]
            for s in ("yes", "no")
        }

    async def go() -> None:
        ws = client(sim)
        await ws.subscribe(["orderbook_delta"], [ticker])
        async with ws:
            items = await collect_until(ws, lambda xs: bool(events(xs, "resync")))
            gap = events(items, "gap")[0]
            assert gap.channel == "orderbook_delta" and gap.market_tickers == (ticker,)
            assert "expected" in gap.detail
            # After the resync snapshot the rebuilt book matches REST at a quiet moment.
            for _ in range(300):  # a quiet moment can take a while on a busy machine
                try:
                    await ws.next_item(0.4)
                    continue
                except TimeoutError:
                    pass
                book = ws.books[ticker]
                if not book.stale and {
                    "yes": book.levels("yes"),
                    "no": book.levels("no"),
                } == await asyncio.to_thread(rest_levels):
                    break
            else:
                raise AssertionError("the resynced book never matched REST")
        assert ws.stats.gaps == 1 and ws.stats.resyncs == 1

    asyncio.run(go())


def test_overflow_error_malformed_frames_and_stall_are_handled(sims: Any) -> None:
    sim = sims(
        ws_faults="overflow_after=15,overflow_drop=5,malformed_every=7,stall_after=40,ping_interval=0.2"
    )
    tickers = live_tickers(sim)

    async def go() -> None:
        ws = client(sim, heartbeat_timeout=1.0)
        await ws.subscribe(["ticker", "trade", "orderbook_delta"], tickers)
        async with ws:
            items = await collect_until(
                ws, lambda xs: ws.connection_number >= 2 and len(events(xs, "connect")) >= 2
            )
        errors = events(items, "error")
        assert any(e.code == 25 for e in errors), "error 25 must be reported"
        assert any("malformed" in e.detail for e in errors)
        assert ws.stats.malformed >= 1
        assert any(g.code == 25 for g in events(items, "gap"))
        assert events(items, "resync"), "orderbooks are resynced after an overflow"
        assert events(items, "heartbeat_timeout"), "a stalled socket is detected by the watchdog"

    asyncio.run(go())


def test_slow_consumer_policies_bound_memory(sims: Any) -> None:
    sim = sims()
    tickers = live_tickers(sim)

    async def go(policy: str) -> tuple[KalshiWebSocket, list[Any]]:
        ws = client(sim, queue_size=8, overflow=policy)
        await ws.subscribe(["ticker", "orderbook_delta"], tickers)
        drained: list[Any] = []
        async with ws:
            await ws.wait_connected(10)
            # A consumer that does not read at all until the buffer is full (and, for drop, overflowed).
            while ws.queue_depth() < 8 or (policy == "drop" and ws.stats.dropped == 0):
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert ws.queue_depth() <= 8
            if policy == "block":
                frames = ws.stats.frames
                await asyncio.sleep(0.5)
                assert ws.stats.frames == frames, "a blocked reader stops reading the socket"
            while ws.queue_depth() > 0:
                drained.append(await ws.next_item(5))
            drained.append(await ws.next_item(10))
            if policy == "drop":
                while not events(drained, "gap"):
                    drained.append(await ws.next_item(10))
        return ws, drained

    blocked, items = asyncio.run(go("block"))
    assert blocked.stats.dropped == 0 and blocked.stats.blocked_seconds > 0
    assert blocked.stats.max_queue_depth <= 8 and not events(items, "gap")
    dropped, items = asyncio.run(go("drop"))
    assert dropped.stats.dropped > 0 and dropped.stats.max_queue_depth <= 8
    assert {g.channel for g in events(items, "gap")} <= {"ticker", "orderbook_delta"}
