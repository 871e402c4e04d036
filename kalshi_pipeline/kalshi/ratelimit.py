"""Client-side rate limiting matching Kalshi's token buckets (read bucket; default cost 10 per request)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol, runtime_checkable

from kalshi_pipeline.kalshi.errors import KalshiConfigError

DEFAULT_COST = 10

#: Burst the client-side bucket holds back, in seconds of refill. Kalshi meters a request when it arrives;
#: a request that overtakes an earlier one in flight (a fresh connection is slower than a reused one) makes
#: the server's bucket look up to `rate x latency spread` emptier than the client's, so the client keeps
#: this much slack to never be the one that triggers a 429.
JITTER_HEADROOM_S = 0.25


@runtime_checkable
class RateLimiter(Protocol):
    """Anything that can make a caller wait until a request of `cost` tokens may be sent."""

    async def acquire(self, cost: int) -> None:
        """Wait until `cost` tokens are available and consume them."""
        ...


class Tier(NamedTuple):
    """A Kalshi read bucket: refill rate in tokens per second and bucket capacity in tokens."""

    rate_per_s: float
    capacity: float


# Read buckets per Kalshi usage tier (docs "Rate Limits", token model since 2026-04-23): Basic and
# Advanced hold 2 s of budget, higher tiers 1 s.
TIERS: dict[str, Tier] = {
    "basic": Tier(200.0, 400.0),
    "advanced": Tier(300.0, 600.0),
    "expert": Tier(600.0, 600.0),
    "premier": Tier(1000.0, 1000.0),
    "paragon": Tier(2000.0, 2000.0),
    "prime": Tier(4000.0, 4000.0),
    "prestige": Tier(10000.0, 10000.0),
}

#: Tier names accepted by configuration; "off" disables client-side limiting.
TIER_NAMES: tuple[str, ...] = (*TIERS, "off")


class TokenBucket:
    """A continuous-refill token bucket, thread-safe and independent of any event loop.

    `acquire(cost)` reserves the tokens under a `threading.Lock` (the balance may go negative, which
    queues callers fairly in arrival order) and then sleeps outside the lock for the computed wait, so one
    bucket can be shared by every request of a process, across threads and successive `asyncio.run` calls.
    """

    def __init__(
        self,
        rate_per_s: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Create a full bucket refilling `rate_per_s` tokens per second up to `capacity` tokens."""
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError(
                f"rate_per_s and capacity must be positive, got {rate_per_s}, {capacity}"
            )
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(capacity)
        self._updated = clock()

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self.rate_per_s:g}, capacity={self.capacity:g})"

    @classmethod
    def for_tier(cls, tier: str, *, headroom_s: float = JITTER_HEADROOM_S) -> TokenBucket:
        """A bucket for a Kalshi tier's read budget, holding back `headroom_s` of burst for jitter."""
        rate, capacity = tier_bucket(tier)
        return cls(rate, max(float(DEFAULT_COST), capacity - rate * headroom_s))

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_s)
        self._updated = now

    def available(self) -> float:
        """Return the current token balance (negative while callers are queued)."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    def reserve(self, cost: float) -> float:
        """Consume `cost` tokens now and return how many seconds the caller must wait before sending."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        with self._lock:
            self._refill(self._clock())
            self._tokens -= cost
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s

    def drain(self) -> None:
        """Empty the bucket (e.g. after a 429 shows the server's bucket is emptier than ours)."""
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, 0.0)

    async def acquire(self, cost: int = DEFAULT_COST) -> None:
        """Wait until `cost` tokens are available and consume them."""
        wait = self.reserve(cost)
        if wait > 0:
            await self._sleep(wait)


class UnlimitedLimiter:
    """A limiter that never waits (rate limiting turned off)."""

    def __repr__(self) -> str:
        return "UnlimitedLimiter()"

    async def acquire(self, cost: int = DEFAULT_COST) -> None:
        """Return immediately."""
        return None


_shared: dict[str, RateLimiter] = {}
_shared_lock = threading.Lock()


def tier_bucket(tier: str) -> Tier:
    """Return the read bucket of a tier name (case-insensitive), with a clear error for unknown names."""
    try:
        return TIERS[tier.strip().lower()]
    except KeyError:
        raise KalshiConfigError(
            f"unknown Kalshi rate-limit tier {tier!r}; expected one of {', '.join(TIER_NAMES)}"
        ) from None


def shared_limiter(tier: str = "basic") -> RateLimiter:
    """Return the one process-wide limiter for a tier ("off" returns a limiter that never waits).

    The bucket refills at the tier's read rate and holds the tier's burst minus `JITTER_HEADROOM_S`.
    """
    name = tier.strip().lower()
    with _shared_lock:
        limiter = _shared.get(name)
        if limiter is None:
            limiter = UnlimitedLimiter() if name == "off" else TokenBucket.for_tier(name)
            _shared[name] = limiter
        return limiter
