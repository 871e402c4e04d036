"""WebSocket fault injection: the `ws_faults` spec, its per-server budget and its per-connection state.

See `kalshi_pipeline.simulator.ws` for the spec's keys.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from kalshi_pipeline.simulator.ws.wire import CHANNELS


@dataclass(frozen=True)
class WsFaults:
    """Parsed `ws_faults` settings (see the module docstring)."""

    ping_interval: float = 10.0
    disconnect_after: int | None = None
    disconnect_times: int = 1
    drop_seq_after: int | None = None
    drop_seq_channel: str = "orderbook_delta"
    drop_seq_times: int = 1
    overflow_after: int | None = None
    overflow_drop: int = 20
    overflow_times: int = 1
    malformed_every: int | None = None
    stall_after: int | None = None
    stall_times: int = 1
    foreign_lifecycle_after: int | None = None
    mute_trade_after: int | None = None
    outage_trades: int = 0

    @classmethod
    def parse(cls, spec: str | None) -> WsFaults:
        """Parse `key=value,key=value`; raise ValueError with the offending part on bad input."""
        if not spec or not spec.strip():
            return cls()
        values: dict[str, Any] = {}
        fields = cls.__dataclass_fields__
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in fields:
                raise ValueError(
                    f"ws_faults: {part!r} is not key=value with key in {', '.join(sorted(fields))}"
                )
            if key == "drop_seq_channel":
                if raw.strip() not in CHANNELS:
                    raise ValueError(
                        f"ws_faults: drop_seq_channel must be one of {', '.join(CHANNELS)}"
                    )
                values[key] = raw.strip()
                continue
            try:
                number = float(raw) if key == "ping_interval" else int(raw)
            except ValueError:
                raise ValueError(f"ws_faults: {key}={raw!r} is not a number") from None
            if number < 0 or (
                key != "ping_interval" and key.endswith(("_every", "_after")) and number < 1
            ):
                raise ValueError(f"ws_faults: {key}={raw!r} is out of range")
            values[key] = number
        return cls(**values)


class FaultBudget:
    """How many connections each fault may still hit (shared by all sessions of one server)."""

    def __init__(self, faults: WsFaults) -> None:
        """Start with each configured fault's `*_times` budget (0 for faults that are off)."""
        self._lock = threading.Lock()
        self._left = {
            "disconnect": faults.disconnect_times if faults.disconnect_after else 0,
            "drop_seq": faults.drop_seq_times if faults.drop_seq_after else 0,
            "overflow": faults.overflow_times if faults.overflow_after else 0,
            "stall": faults.stall_times if faults.stall_after else 0,
            "foreign_lifecycle": 1 if faults.foreign_lifecycle_after else 0,
            "mute_trade": 1 if faults.mute_trade_after else 0,
        }

    def take(self, name: str) -> bool:
        """Whether the fault `name` hits one more connection (counting it if so)."""
        with self._lock:
            if self._left.get(name, 0) > 0:
                self._left[name] -= 1
                return True
            return False


@dataclass(frozen=True)
class AfterMessage:
    """What the faults make happen right after a market message went out."""

    malformed: bool = False
    overflow: bool = False
    stall: bool = False
    disconnect: bool = False
    foreign_lifecycle: bool = False
    mute_trade: bool = False


@dataclass
class SessionFaults:
    """The faults one connection is subject to and how far along them it is.

    `fired` is the server-wide list the fired faults are reported to (`WsServerStats.faults_fired`).
    """

    spec: WsFaults
    fired: list[str]
    disconnect_at: int | None = None
    drop_seq_at: int | None = None
    overflow_at: int | None = None
    stall_at: int | None = None
    foreign_lifecycle_at: int | None = None
    mute_trade_at: int | None = None
    muted_sids: set[int] = field(default_factory=set)
    dropping: int = 0
    sequenced: int = 0
    sent: int = 0

    @classmethod
    def start(cls, spec: WsFaults, budget: FaultBudget, fired: list[str]) -> SessionFaults:
        """The faults of a new connection: each one that still has budget left."""
        return cls(
            spec,
            fired,
            disconnect_at=spec.disconnect_after if budget.take("disconnect") else None,
            drop_seq_at=spec.drop_seq_after if budget.take("drop_seq") else None,
            overflow_at=spec.overflow_after if budget.take("overflow") else None,
            stall_at=spec.stall_after if budget.take("stall") else None,
            foreign_lifecycle_at=spec.foreign_lifecycle_after
            if budget.take("foreign_lifecycle")
            else None,
            mute_trade_at=spec.mute_trade_after if budget.take("mute_trade") else None,
        )

    def drops(self, channel: str, sid: int, seq: int | None) -> bool:
        """Whether the next market message (`seq` None when unsequenced) is silently swallowed.

        A swallowed message is the `drop_seq_after`-th sequenced message of the configured channel (its
        seq stays consumed), one of the `overflow_drop` messages after a buffer overflow, or any message of
        a sid `mute_trade_after` muted (the trade sid goes silent without an error, its seqs consumed).
        """
        if (
            seq is not None
            and self.drop_seq_at is not None
            and channel == self.spec.drop_seq_channel
        ):
            self.sequenced += 1
            if self.sequenced == self.drop_seq_at:
                self.fired.append(f"drop_seq sid={sid} seq={seq}")
                return True
        if self.dropping > 0:
            self.dropping -= 1
            return True
        return sid in self.muted_sids

    def after_message(self) -> AfterMessage:
        """Count one market message sent and return the faults it triggers."""
        self.sent += 1
        n = self.sent
        malformed = bool(self.spec.malformed_every) and n % self.spec.malformed_every == 0
        overflow = self.overflow_at is not None and n == self.overflow_at
        if overflow:
            self.fired.append("overflow")
            self.dropping = self.spec.overflow_drop
        stall = self.stall_at is not None and n == self.stall_at
        if stall:
            self.fired.append("stall")
        disconnect = self.disconnect_at is not None and n == self.disconnect_at
        if disconnect:
            self.fired.append("disconnect")
        foreign = self.foreign_lifecycle_at is not None and n == self.foreign_lifecycle_at
        if foreign:
            self.fired.append("foreign_lifecycle")
        mute = self.mute_trade_at is not None and n == self.mute_trade_at
        if mute:
            self.fired.append("mute_trade")
        return AfterMessage(malformed, overflow, stall, disconnect, foreign, mute)
