"""Where the WebSocket client's gaps start: each channel's own last message, else its subscribe command.

The simulated exchange's clock is pinned a minute behind ours, so a gap start taken from our clock without
moving it onto the exchange's would lie a minute after the subscription and fail these tests.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from kalshi_pipeline.kalshi.ws import (
    KalshiWebSocket,
    LifecycleMessage,
    StreamEvent,
    TickerMessage,
    TradeMessage,
    WsMessage,
)
from kalshi_pipeline_tests.kalshi.test_ws_terminal import BUDGET_S, PEM, client, events
from kalshi_pipeline_tests.simulated import live_tickers

#: How far the simulated exchange's clock trails ours.
EXCHANGE_BEHIND = timedelta(minutes=1)
#: Generous bound of how far before the subscribe command a never-delivering channel's gap may start
#: (the exchange-to-us delay of the fastest message seen is subtracted; it is far below this).
EARLY_MS = 10_000


def _exchange_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - EXCHANGE_BEHIND


def _clock(message: WsMessage) -> int:
    """The stream clock of a message as the client keeps it (its time, never after its receipt)."""
    assert message.ts_ms is not None
    return min(message.ts_ms, message.received_ms)


async def _collect(ws: KalshiWebSocket, done: Any) -> list[Any]:
    items: list[Any] = []
    deadline = time.monotonic() + BUDGET_S
    while not done(items):
        assert time.monotonic() < deadline, "condition never met"
        items.append(await ws.next_item(BUDGET_S))
    return items


def test_a_channel_that_never_delivered_loses_from_its_subscribe_command(
    start_simulator: Any,
) -> None:
    now = _exchange_now()
    n = len(live_tickers(start_simulator(auth_keys={"key-1": PEM}, now=now)))
    # The trade channel is subscribed first, so its sid exists when the n-th message (the last initial
    # ticker snapshot) mutes it: it never delivers anything.
    sim = start_simulator(auth_keys={"key-1": PEM}, now=now, ws_faults=f"mute_trade_after={n}")
    tickers = live_tickers(sim)
    world = sim.app.state.world

    async def go() -> None:
        ws = client(sim, backoff_initial=0.5, backoff_max=1.0)
        async with ws:
            await ws.wait_connected(BUDGET_S)
            before_ms = world.now_ms()
            await ws.subscribe(["trade", "ticker"], tickers)
            snapshots = await _collect(
                ws, lambda xs: sum(isinstance(x, TickerMessage) for x in xs) >= n
            )
            answered_ms = min(
                x.sending_ts_ms
                for x in snapshots
                if isinstance(x, TickerMessage) and x.sending_ts_ms is not None
            )
            assert ws.channel_activity("trade") == (None, None), "the trade channel delivered"
            await ws.resubscribe(["trade"], "test: the channel is silent")
            items = snapshots + await _collect(
                ws, lambda xs: any(isinstance(x, TradeMessage) for x in xs)
            )
        gap = next(g for g in events(items, "gap") if g.channel == "trade")
        assert gap.since_ms is not None
        # The window opens no later than the exchange's answer to the subscribe (a trade printed
        # after it belongs to the lost subscription), and not long before the command was sent.
        assert before_ms - EARLY_MS <= gap.since_ms <= answered_ms
        assert sim.app.state.ws_hub.stats.faults_fired.count("mute_trade") == 1

    asyncio.run(go())


def test_a_reconnect_gap_starts_at_the_channels_own_last_message(start_simulator: Any) -> None:
    now = _exchange_now()
    n = len(live_tickers(start_simulator(auth_keys={"key-1": PEM}, now=now)))
    # A foreign market's lifecycle message (stamped when it is sent) follows the first ticker snapshot;
    # the connection drops after 40 more market messages, so the channels' last messages differ.
    sim = start_simulator(
        auth_keys={"key-1": PEM},
        now=now,
        ws_faults=f"foreign_lifecycle_after=1,disconnect_after={n + 40}",
    )
    tickers = live_tickers(sim)

    async def go() -> None:
        ws = client(sim, backoff_initial=0.5, backoff_max=1.0)
        await ws.subscribe(["market_lifecycle_v2"])
        await ws.subscribe(["ticker", "trade"], tickers)
        async with ws:
            items = await _collect(
                ws, lambda xs: {g.channel for g in events(xs, "gap")} >= {"ticker", "trade"}
            )
        cut = next(
            i for i, x in enumerate(items) if isinstance(x, StreamEvent) and x.kind == "disconnect"
        )
        before = items[:cut]
        answered_ms = min(
            x.sending_ts_ms
            for x in before
            if isinstance(x, TickerMessage) and x.sending_ts_ms is not None
        )
        assert any(isinstance(x, LifecycleMessage) for x in before), "the lifecycle clock ran"
        gaps = {g.channel: g for g in events(items, "gap") if g.connection == 2}
        for channel, kind in (("ticker", TickerMessage), ("trade", TradeMessage)):
            mine = [x for x in before if isinstance(x, kind)]
            since = gaps[channel].since_ms
            assert since is not None
            if mine:
                # Exactly where this channel's delivery stopped, whatever other channels said later.
                assert since == _clock(mine[-1]), channel
            else:
                assert since <= answered_ms, channel

    asyncio.run(go())
