"""The channels a WebSocket client wants, their sids on the current connection, and their seq tracking.

The wanted channels and markets outlive connections (a reconnect resubscribes them); sids and seqs are per
connection (Kalshi restarts both), so a new connection resets them. Kalshi numbers the sequenced messages of
each sid 1, 2, 3, ...; a jump is a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from kalshi_pipeline.kalshi.errors import KalshiConfigError

__all__ = [
    "CHANNELS",
    "UNFILTERED_CHANNELS",
    "ChannelState",
    "Subscriptions",
    "group_by_markets",
    "subscribe_params",
]

#: Market-data channels this client understands (others are rejected by `subscribe`).
CHANNELS: tuple[str, ...] = ("ticker", "trade", "orderbook_delta", "market_lifecycle_v2")
#: Channels that take no market filter (all markets of the exchange).
UNFILTERED_CHANNELS: frozenset[str] = frozenset({"market_lifecycle_v2"})


@dataclass
class ChannelState:
    """Wanted and live state of one channel's subscription.

    Attributes:
        name: The channel.
        tickers: The markets wanted (None = all markets, no filter).
        sid: The subscription id on the current connection (None until Kalshi confirms it).
        last_seq: The highest seq seen on `sid` (0 right after `subscribed`).
        last_ts_ms: The exchange time of the channel's latest message (the start of a gap, should one follow).
        last_message_ms: When the channel's latest message was received (local Unix ms; None before one).
        subscribe_sent_ms: When the channel's latest `subscribe` command was sent (local Unix ms; None
            before one): where a gap of a channel that never delivered starts.
    """

    name: str
    tickers: set[str] | None
    sid: int | None = None
    last_seq: int | None = None
    last_ts_ms: int | None = None
    last_message_ms: int | None = None
    subscribe_sent_ms: int | None = None

    def sorted_tickers(self) -> tuple[str, ...]:
        """The wanted markets, sorted (empty for all markets)."""
        return tuple(sorted(self.tickers or ()))

    def gap_start_ms(self, clock_lag_ms: int | None) -> int | None:
        """Where a gap of this channel starts: the exchange time of its latest message, else its subscribe.

        Only this channel's own messages count: another channel's newer message says nothing about a
        message still on its way here. Before the channel delivered anything, the gap starts when its
        subscribe command was sent, moved onto the exchange's clock by `clock_lag_ms` (how far the
        exchange's clock can trail ours; a negative lag counts as 0, so the start is never after now).
        None when the channel was never subscribed.
        """
        if self.last_ts_ms is not None:
            return self.last_ts_ms
        if self.subscribe_sent_ms is None:
            return None
        return self.subscribe_sent_ms - max(clock_lag_ms or 0, 0)


def subscribe_params(states: list[ChannelState], *, use_yes_price: bool) -> dict[str, object]:
    """The `subscribe` params of channels sharing one market filter (one command starts them together).

    A ticker subscription asks for the initial snapshot; an orderbook one carries `use_yes_price` when
    the client wants NO-side levels in YES-leg prices.
    """
    params: dict[str, object] = {"channels": [s.name for s in states]}
    if states[0].tickers is not None:
        params["market_tickers"] = sorted(states[0].tickers)
    names = {s.name for s in states}
    if "ticker" in names:
        params["send_initial_snapshot"] = True
    if use_yes_price and "orderbook_delta" in names:
        params["use_yes_price"] = True
    return params


def group_by_markets(states: Iterable[ChannelState]) -> list[list[ChannelState]]:
    """Group channels by identical market filters, so each group can be subscribed with one command."""
    groups: dict[frozenset[str] | None, list[ChannelState]] = {}
    for state in states:
        key = None if state.tickers is None else frozenset(state.tickers)
        groups.setdefault(key, []).append(state)
    return list(groups.values())


class Subscriptions:
    """The channel states of one client, by channel name."""

    def __init__(self) -> None:
        """Start with no channels."""
        self._states: dict[str, ChannelState] = {}

    def __iter__(self) -> Iterator[ChannelState]:
        return iter(list(self._states.values()))

    def __contains__(self, name: object) -> bool:
        return name in self._states

    def get(self, name: str | None) -> ChannelState | None:
        """The state of a channel, or None when it is not wanted."""
        return None if name is None else self._states.get(name)

    @staticmethod
    def validate(names: Iterable[str], tickers: list[str] | None) -> None:
        """Check a subscription request before anything is sent.

        Raises:
            KalshiConfigError: An unknown channel, or an orderbook subscription without markets.
        """
        for name in names:
            if name not in CHANNELS:
                raise KalshiConfigError(
                    f"unknown channel {name!r}; expected one of {', '.join(CHANNELS)}"
                )
            if name == "orderbook_delta" and not tickers:
                raise KalshiConfigError(
                    "orderbook_delta needs market tickers (Kalshi requires a filter)"
                )

    def want(self, name: str, tickers: list[str] | None) -> tuple[ChannelState, bool, set[str]]:
        """Add a channel or widen its markets; return `(state, is_new, markets added to an existing one)`."""
        wanted = None if name in UNFILTERED_CHANNELS or tickers is None else set(tickers)
        state = self._states.get(name)
        if state is None:
            self._states[name] = state = ChannelState(name, wanted)
            return state, True, set()
        added = set() if state.tickers is None or wanted is None else wanted - state.tickers
        if wanted is None:
            state.tickers = None
        elif state.tickers is not None:
            state.tickers |= wanted
        return state, False, added

    def forget(self, name: str) -> ChannelState | None:
        """Stop wanting a channel; return its state (None when it was not wanted)."""
        return self._states.pop(name, None)

    def channel_of(self, sid: int | None) -> str | None:
        """The channel whose subscription on the current connection is `sid`."""
        for name, state in self._states.items():
            if state.sid is not None and state.sid == sid:
                return name
        return None

    def reset_connection(self) -> None:
        """Forget sids and seqs, which belong to the connection that ended."""
        for state in self._states.values():
            state.sid, state.last_seq = None, None

    def confirm(self, channel: str | None, sid: int | None) -> None:
        """Record Kalshi's `subscribed` answer: the channel's sid, whose seq starts over."""
        if channel in self._states and sid is not None:
            state = self._states[channel]
            state.sid, state.last_seq = sid, 0

    @staticmethod
    def advance_seq(state: ChannelState, seq: int) -> int | None:
        """Record a sequenced message; return the seq that was expected when `seq` is not it, else None."""
        expected = (state.last_seq or 0) + 1
        state.last_seq = seq if state.last_seq is None or seq > state.last_seq else state.last_seq
        return None if seq == expected else expected

    def as_sids(self) -> dict[str, int | None]:
        """Every wanted channel with its sid on the current connection (None = not confirmed yet)."""
        return {name: state.sid for name, state in self._states.items()}
