"""Configuration of the simulated exchange."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from kalshi_pipeline.simulator.maintenance import DEFAULT_WEEKLY, Maintenance

RATE_LIMIT_TIERS: dict[str, tuple[int, int]] = {
    # tier -> (read tokens per second, read bucket capacity); Basic/Advanced hold 2 s of budget.
    "basic": (200, 400),
    "advanced": (300, 600),
    "expert": (600, 600),
    "premier": (1000, 1000),
    "paragon": (2000, 2000),
    "prime": (4000, 4000),
    "prestige": (10000, 10000),
}
"""Kalshi's read-bucket token budgets per tier (every market-data request costs 10 tokens)."""


@dataclass
class SimulatorConfig:
    """Settings of one simulated exchange.

    `auth_keys` maps API key ids to PEM text (a public key, or a private key whose public half is used) or
    to a path of a PEM file. `game_minutes=None` keeps the series' realistic game length (~150 minutes for
    the NBA). `now` pins the simulated clock's starting instant (it then advances in real time), and the
    `live_games` injected games are in progress at that instant; `None` uses the wall clock.
    `schedule=False` leaves out the seeded season: the exchange lists only the `live_games` injected
    games, so what is live does not depend on the time of day (for tests). `faults` is a fault-injection
    spec (see `kalshi_pipeline.simulator.gateway.faults`). `maintenance` is the weekly maintenance window
    (`"thu 03:00-05:00"`, ET, Kalshi's; None or `"off"` for none) and `maintenance_windows` adds one-off
    windows as pairs of aware instants (see `kalshi_pipeline.simulator.maintenance`).
    """

    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 42
    live_games: int = 0
    game_minutes: float | None = None
    rate_limit: str = "basic"
    auth_keys: dict[str, str] = field(default_factory=dict)
    require_auth: bool = False
    faults: str | None = None
    # WebSocket fault injection and server Ping interval (see `kalshi_pipeline.simulator.ws`).
    ws_faults: str | None = None
    log_level: str = "warning"
    now: datetime | None = None
    series: tuple[str, ...] = ("KXNBAGAME",)
    schedule: bool = True
    maintenance: str | None = DEFAULT_WEEKLY
    maintenance_windows: tuple[tuple[datetime, datetime], ...] = ()

    def __post_init__(self) -> None:
        if self.rate_limit != "off" and self.rate_limit not in RATE_LIMIT_TIERS:
            choices = ", ".join(["off", *RATE_LIMIT_TIERS])
            raise ValueError(
                f"unknown rate limit tier {self.rate_limit!r}; choose one of {choices}"
            )
        if self.live_games < 0 or self.live_games > 15:
            raise ValueError(f"live_games must be between 0 and 15, got {self.live_games}")
        if self.game_minutes is not None and not 1 <= self.game_minutes <= 300:
            raise ValueError(f"game_minutes must be between 1 and 300, got {self.game_minutes}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.now is not None and self.now.tzinfo is None:
            self.now = self.now.replace(tzinfo=UTC)
        Maintenance.parse(self.maintenance, self.maintenance_windows)
