"""Matching Kalshi's answers to the commands a WebSocket client sent.

Every command carries an `id`; Kalshi echoes it on its answers (`subscribed` per channel, `ok`,
`unsubscribed`, `error`). A command awaited by a caller has a future that resolves with its answers, or
fails with `WsCommandError` on an `error` frame. A `subscribe` of several channels is answered once per
channel, so it completes only when every channel was confirmed.
"""

from __future__ import annotations

import asyncio

from kalshi_pipeline.kalshi.errors import WsCommandError
from kalshi_pipeline.kalshi.ws.messages import ControlMessage

__all__ = ["PendingCommands"]


class PendingCommands:
    """Command ids, and the futures and awaited channels of commands not yet answered."""

    def __init__(self) -> None:
        """Start numbering commands at 1."""
        self._next_id = 1
        self._futures: dict[int, asyncio.Future[list[ControlMessage]]] = {}
        self._channels: dict[int, set[str]] = {}
        self._replies: dict[int, list[ControlMessage]] = {}

    def new_id(self) -> int:
        """A fresh command id."""
        command_id = self._next_id
        self._next_id += 1
        return command_id

    def await_answer(
        self, channels: set[str] | None = None
    ) -> tuple[int, asyncio.Future[list[ControlMessage]]]:
        """Register a command a caller waits for; return its id and the future of its answers."""
        command_id = self.new_id()
        future: asyncio.Future[list[ControlMessage]] = asyncio.get_running_loop().create_future()
        self._futures[command_id] = future
        if channels:
            self._channels[command_id] = set(channels)
        self._replies[command_id] = []
        return command_id, future

    def expect_channels(self, command_id: int, channels: set[str]) -> None:
        """Track the channels a fire-and-forget `subscribe` waits for (nobody awaits its answer)."""
        self._channels[command_id] = channels

    def forget(self, command_id: int) -> None:
        """Drop a command the caller stopped waiting for (answered, timed out or failed)."""
        self._futures.pop(command_id, None)
        self._channels.pop(command_id, None)
        self._replies.pop(command_id, None)

    def is_awaited(self, command_id: int | None) -> bool:
        """Whether a caller waits for the command with this id (its errors then reach the caller)."""
        return command_id is not None and command_id in self._futures

    def fail_all(self, error: BaseException, *, forget: bool = False) -> None:
        """Fail every awaited command (the connection was lost or the client closed)."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(error)
        if forget:
            self._futures.clear()

    def route(self, message: ControlMessage) -> None:
        """Hand a command answer to the command it answers."""
        if message.id is None:
            return
        replies = self._replies.get(message.id)
        if replies is not None:
            replies.append(message)
        waiting_for = self._channels.get(message.id)
        if message.type == "subscribed" and waiting_for is not None:
            waiting_for.discard(message.channel or "")
            if waiting_for:
                return
            if message.id not in self._futures:
                self._channels.pop(message.id, None)
        elif (
            message.type == "error" and waiting_for is not None and message.id not in self._futures
        ):
            self._channels.pop(message.id, None)
        future = self._futures.get(message.id)
        if future is None or future.done():
            return
        if message.type == "error":
            future.set_exception(
                WsCommandError(message.code, message.message or "", command="command")
            )
        else:
            future.set_result(list(replies or [message]))
