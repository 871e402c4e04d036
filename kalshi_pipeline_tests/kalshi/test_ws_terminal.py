"""The WebSocket client against a strict simulator: terminal errors, foreign lifecycle messages, the clock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.kalshi.auth import KalshiSigner
from kalshi_pipeline.kalshi.ws import (
    KalshiWebSocket,
    LifecycleMessage,
    StreamEvent,
    TradeMessage,
    parse_message,
)
from kalshi_pipeline.kalshi.ws.buffer import StreamBuffer
from kalshi_pipeline.kalshi.ws.commands import PendingCommands
from kalshi_pipeline.kalshi.ws.connection import StreamStats
from kalshi_pipeline.kalshi.ws.dispatch import FrameDispatcher
from kalshi_pipeline.kalshi.ws.subscriptions import Subscriptions
from kalshi_pipeline_tests.simulated import live_tickers

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SIGNER = KalshiSigner("key-1", KEY)
#: Longest a test waits for what it provokes (a budget, not an expected duration).
BUDGET_S = 30.0


def client(sim: Any, **kwargs: Any) -> KalshiWebSocket:
    return KalshiWebSocket(sim.ws_url, signer=SIGNER.sign, **kwargs)


def events(items: list[Any], kind: str) -> list[StreamEvent]:
    return [i for i in items if isinstance(i, StreamEvent) and i.kind == kind]


async def collect_until(ws: KalshiWebSocket, done: Any) -> list[Any]:
    items: list[Any] = []
    deadline = time.monotonic() + BUDGET_S
    while not done(items):
        assert time.monotonic() < deadline, "condition never met"
        items.append(await ws.next_item(BUDGET_S))
    return items


def test_a_terminal_error_ends_the_sid_and_the_client_subscribes_again(
    start_simulator: Any,
) -> None:
    # Error 25 right after the initial ticker snapshots (one per market, sent on subscribe), so both
    # the ticker and the trade sid exist when it hits, whatever the markets' message rate.
    now = datetime.now(UTC).replace(microsecond=0)
    probe = start_simulator(auth_keys={"key-1": PEM}, now=now)
    tickers = live_tickers(probe)
    sim = start_simulator(
        auth_keys={"key-1": PEM},
        now=now,
        ws_faults=f"overflow_after={len(tickers) + 1},overflow_drop=0",
    )
    assert live_tickers(sim) == tickers

    async def go() -> None:
        ws = client(sim, backoff_initial=0.5, backoff_max=2.0)
        await ws.subscribe(["ticker", "trade"], tickers)
        async with ws:
            await ws.wait_connected(BUDGET_S)
            first = dict(ws.subscriptions())

            def resubscribed(items: list[Any]) -> bool:
                return any(
                    "again" in e.detail and "trade" in e.detail for e in events(items, "resync")
                )

            items = await collect_until(ws, resubscribed)
            error_at = next(e.at_ms for e in events(items, "error") if e.code == 25)
            back_at = next(e.at_ms for e in events(items, "resync") if "again" in e.detail)
            assert back_at - error_at < 10_000, "the channels come back within 10 s"
            gaps = [g for g in events(items, "gap") if g.code == 25]
            assert {g.channel for g in gaps} == {"ticker", "trade"}
            assert all(g.until_ms is None for g in gaps)
            again = ws.subscriptions()
            assert set(again) == {"ticker", "trade"} and None not in again.values()
            assert set(again.values()).isdisjoint(first.values()), "new sids"
            # The server agrees: only the new sids are alive on this connection.
            listed = await ws.list_subscriptions()
            assert {s["sid"] for s in listed} == set(again.values())
            # And the trade channel delivers again, on its new sid.
            trades = await collect_until(
                ws, lambda xs: any(isinstance(x, TradeMessage) for x in xs)
            )
            trade = next(x for x in trades if isinstance(x, TradeMessage))
            assert trade.sid == again["trade"]
            assert ws.connection_number == 1, "the connection itself never dropped"

    asyncio.run(go())
    assert any(f.startswith("terminal error 25") for f in sim.app.state.ws_hub.stats.faults_fired)


def test_a_foreign_lifecycle_message_never_moves_the_stream_clock(start_simulator: Any) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    tickers = live_tickers(start_simulator(auth_keys={"key-1": PEM}, now=now))
    # The lifecycle channel is subscribed first; the foreign message follows the first ticker snapshot
    # and the connection drops after the last one (one per market, sent on subscribe).
    sim = start_simulator(
        auth_keys={"key-1": PEM},
        now=now,
        ws_faults=f"foreign_lifecycle_after=1,disconnect_after={len(tickers)}",
    )

    async def go() -> None:
        ws = client(sim, backoff_initial=0.05, backoff_max=0.2)
        await ws.subscribe(["market_lifecycle_v2"])
        await ws.subscribe(["ticker", "trade"], tickers)
        async with ws:
            items = await collect_until(
                ws, lambda xs: {g.channel for g in events(xs, "gap")} >= {"ticker", "trade"}
            )
            done_ms = int(time.time() * 1000)
        foreign = [
            x
            for x in items
            if isinstance(x, LifecycleMessage) and x.market_ticker not in set(tickers)
        ]
        assert foreign, "the lifecycle channel covers markets nobody subscribed to"
        assert foreign[0].close_ts is not None and foreign[0].close_ts * 1000 > done_ms
        # A schedule field is not the message's time; the envelope's `sending_ts_ms` is.
        assert foreign[0].ts_ms == foreign[0].sending_ts_ms
        assert foreign[0].ts_ms is not None and foreign[0].ts_ms <= foreign[0].received_ms + 1_000
        gaps = [g for g in events(items, "gap") if g.channel in ("ticker", "trade")]
        assert gaps, "the reconnect reports a gap"
        # The gap starts at the last message known good, not at a market's close days ahead.
        assert all(g.since_ms is not None and g.since_ms <= done_ms for g in gaps)

    asyncio.run(go())


def test_an_error_frame_with_sid_and_seq_advances_seq_tracking() -> None:
    async def go() -> list[Any]:
        stats = StreamStats()
        buffer = StreamBuffer(100, stats)
        channels = Subscriptions()
        channels.want("trade", ["M"])

        async def no_snapshot(tickers: Any) -> None:
            return None

        dispatch = FrameDispatcher(
            channels=channels,
            commands=PendingCommands(),
            buffer=buffer,
            stats=stats,
            overflow="block",
            track_books=False,
            request_snapshot=no_snapshot,
            connected=lambda: True,
        )
        trade = (
            '{"type":"trade","sid":1,"seq":%d,"msg":{"market_ticker":"M","trade_id":"t%d",'
            '"yes_price_dollars":"0.5000","no_price_dollars":"0.5000","count_fp":"1.00",'
            '"ts_ms":1766200000000}}'
        )
        frames = [
            '{"type":"subscribed","id":1,"msg":{"channel":"trade","sid":1}}',
            trade % (1, 1),
            '{"type":"error","sid":1,"seq":2,"msg":{"code":11,"msg":"Invalid parameter"}}',
            trade % (3, 3),
        ]
        for frame in frames:
            await dispatch.handle(frame)
        items = []
        while (item := buffer.get_nowait()) is not None:
            items.append(item)
        return items

    items = asyncio.run(go())
    assert not events(items, "gap"), "seq 2 was the error frame's: no gap"
    assert len(events(items, "error")) == 1


def test_lifecycle_schedule_fields_are_not_message_times_but_sending_ts_ms_is() -> None:
    created = parse_message(
        '{"type":"market_lifecycle_v2","sid":4,"seq":1,"msg":{"market_ticker":"M",'
        '"event_type":"created","open_ts":1694635200,"close_ts":1894721600}}'
    )
    assert isinstance(created, LifecycleMessage)
    assert created.ts_ms is None and created.close_ts == 1894721600
    assert created.open_ts == 1694635200
    sent = parse_message(
        '{"type":"market_lifecycle_v2","sid":4,"seq":2,"sending_ts_ms":1766200000123,'
        '"msg":{"market_ticker":"M","event_type":"close_date_updated","close_ts":1894721600}}'
    )
    assert sent.ts_ms == 1766200000123 and sent.sending_ts_ms == 1766200000123
