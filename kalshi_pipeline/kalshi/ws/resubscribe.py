"""Subscribing channels again on a live connection: after a terminal error, or when a channel went silent.

Kalshi's errors 10 and 25 end one subscription while the socket lives on. `Resubscriber` subscribes the
ended channels again after a backoff (doubling per consecutive terminal error of a channel, reset by a new
connection); channels ended together are subscribed with one command, so a ticker snapshot and the trade
stream restart at the same instant. A reconnect makes a pending resubscription moot (the new connection
subscribes every channel). `replace` swaps a silent channel's sid for a new one at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kalshi_pipeline.kalshi.errors import KalshiWebSocketError
from kalshi_pipeline.kalshi.ws.messages import StreamEvent, StreamItem
from kalshi_pipeline.kalshi.ws.subscriptions import ChannelState, Subscriptions, group_by_markets

__all__ = ["Resubscriber"]


class Resubscriber:
    """Schedules and sends the new subscriptions of channels whose sid a terminal error ended."""

    def __init__(
        self,
        *,
        channels: Subscriptions,
        subscribe: Callable[[list[ChannelState]], Awaitable[Any]],
        unsubscribe: Callable[[list[int]], Awaitable[Any]],
        report_lost: Callable[[ChannelState, str], Awaitable[None]],
        emit: Callable[[StreamItem | BaseException], Awaitable[None]],
        event: Callable[..., StreamEvent],
        connection: Callable[[], int],
        connected: Callable[[], bool],
        backoff_initial: float,
        backoff_max: float,
        rng: random.Random,
    ) -> None:
        """Wire the resubscriber to its client.

        Args:
            channels: The client's channel states.
            subscribe: Subscribes a group of channels sharing one market filter and waits for the answer.
            unsubscribe: Unsubscribes sids and waits for the answer.
            report_lost: Reports a subscription's lost messages and forgets its sid (the dispatcher's
                `report_lost`, which every path that loses a subscription shares).
            emit: Hands an item to the consumer.
            event: Builds a stream event of the current connection.
            connection: The current connection's number.
            connected: Whether a connection is open.
            backoff_initial: First delay ceiling in seconds (doubles per consecutive terminal error).
            backoff_max: Cap of the delay ceiling.
            rng: Source of the jitter.
        """
        self._channels = channels
        self._subscribe = subscribe
        self._unsubscribe = unsubscribe
        self._report_lost = report_lost
        self._emit = emit
        self._event = event
        self._connection = connection
        self._connected = connected
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._rng = rng
        self._attempts: dict[str, int] = {}
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """A new connection subscribed everything: forget attempts and anything pending."""
        self._attempts.clear()
        self._pending.clear()

    def cancel(self) -> None:
        """Cancel a pending resubscription (the client is closing)."""
        if self._task is not None:
            self._task.cancel()

    async def replace(self, names: Sequence[str], reason: str) -> None:
        """Unsubscribe these channels' sids (an error answer is ignored), report gaps, subscribe again."""
        states = [s for name in names if (s := self._channels.get(name)) is not None]
        dead = [s.sid for s in states if s.sid is not None]
        if dead:
            with contextlib.suppress(KalshiWebSocketError, TimeoutError):
                await self._unsubscribe(dead)
        for state in states:
            await self._report_lost(state, f"resubscribing {state.name}: {reason}")
        for group in group_by_markets(states):
            await self._subscribe(group)

    def schedule(self, names: Sequence[str], reason: str) -> None:
        """Subscribe these channels again after a backoff (joining a resubscription already pending)."""
        self._pending.update(names)
        if self._task is not None and not self._task.done():
            return
        attempts = max((self._attempts.get(n, 0) for n in names), default=0)
        for name in names:
            self._attempts[name] = attempts + 1
        ceiling = min(self.backoff_max, self.backoff_initial * 2**attempts)
        delay = self._rng.uniform(ceiling / 2, ceiling)
        self._task = asyncio.get_running_loop().create_task(
            self._after(delay, self._connection(), reason)
        )

    async def _after(self, delay: float, connection: int, reason: str) -> None:
        await asyncio.sleep(delay)
        names = sorted(self._pending)
        self._pending.clear()
        if self._connection() != connection or not self._connected():
            return  # the connection was replaced; its reconnect subscribed every channel again
        states = [s for n in names if (s := self._channels.get(n)) is not None and s.sid is None]
        try:
            for group in group_by_markets(states):
                await self._subscribe(group)
        except (KalshiWebSocketError, TimeoutError) as exc:
            await self._emit(
                self._event("error", f"resubscribing {', '.join(names)} failed: {exc}")
            )
            if self._connection() == connection and self._connected():
                self._task = None
                self.schedule(names, reason)
            return
        await self._emit(
            self._event(
                "resync",
                f"subscribed {', '.join(names)} again after: {reason}",
                channel=names[0] if len(names) == 1 else None,
                market_tickers=tuple(sorted({t for s in states for t in s.sorted_tickers()})),
            )
        )
