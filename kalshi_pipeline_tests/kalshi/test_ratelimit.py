"""Token bucket math with an injectable clock (no timing assertions), tiers and the shared limiter."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kalshi_pipeline.kalshi.errors import KalshiConfigError
from kalshi_pipeline.kalshi.ratelimit import (
    DEFAULT_COST,
    JITTER_HEADROOM_S,
    TIERS,
    RateLimiter,
    TokenBucket,
    UnlimitedLimiter,
    shared_limiter,
    tier_bucket,
)


class FakeClock:
    """A manually advanced monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tiers_match_kalshi_read_buckets() -> None:
    assert TIERS["basic"] == (200, 400)
    assert TIERS["advanced"] == (300, 600)
    assert TIERS["expert"] == (600, 600)
    assert TIERS["premier"] == (1000, 1000)
    assert TIERS["paragon"] == (2000, 2000)
    assert TIERS["prime"] == (4000, 4000)
    assert TIERS["prestige"] == (10000, 10000)
    assert DEFAULT_COST == 10
    with pytest.raises(KalshiConfigError, match="platinum"):
        tier_bucket("platinum")


def test_burst_then_steady_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(200, 400, clock=clock)
    waits = [bucket.reserve(10) for _ in range(40)]
    assert waits == [0.0] * 40
    assert bucket.reserve(10) == pytest.approx(0.05)
    assert bucket.reserve(10) == pytest.approx(0.10)
    clock.now += 0.10
    assert bucket.available() == pytest.approx(0.0, abs=1e-9)
    assert bucket.reserve(10) == pytest.approx(0.05)


def test_refill_is_capped_at_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(200, 400, clock=clock)
    bucket.reserve(400)
    clock.now += 3600
    assert bucket.available() == 400
    assert bucket.reserve(400) == 0.0
    assert bucket.reserve(1) == pytest.approx(1 / 200)


def test_drain_empties_but_keeps_debt() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, 100, clock=clock)
    bucket.drain()
    assert bucket.reserve(10) == pytest.approx(0.1)
    bucket.drain()
    assert bucket.available() == pytest.approx(-10)


def test_acquire_sleeps_the_reserved_wait() -> None:
    clock = FakeClock()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    bucket = TokenBucket(100, 20, clock=clock, sleep=fake_sleep)

    async def run() -> None:
        for _ in range(4):
            await bucket.acquire(10)

    asyncio.run(run())
    assert slept == pytest.approx([0.1, 0.2])


def test_concurrent_threads_account_every_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(200, 400, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            w = bucket.reserve(10)
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bucket.available() == pytest.approx(400 - 8 * 25 * 10)
    assert sorted(waits)[-1] == pytest.approx((8 * 25 * 10 - 400) / 200)
    assert len({round(w, 9) for w in waits if w > 0}) == 8 * 25 - 40


def test_shared_limiter_is_one_per_process_and_loop_agnostic() -> None:
    limiter = shared_limiter("prestige")
    assert shared_limiter("Prestige ") is limiter
    assert isinstance(limiter, TokenBucket) and isinstance(limiter, RateLimiter)
    assert isinstance(shared_limiter("off"), UnlimitedLimiter)

    async def use() -> None:
        await limiter.acquire(10)

    asyncio.run(use())
    asyncio.run(use())  # a second event loop reuses the same bucket


def test_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 10)
    with pytest.raises(ValueError):
        TokenBucket(10, 10).reserve(-1)


def test_tier_bucket_keeps_jitter_headroom() -> None:
    bucket = TokenBucket.for_tier("basic")
    assert (bucket.rate_per_s, bucket.capacity) == (200, 400 - 200 * JITTER_HEADROOM_S)
    prestige = TokenBucket.for_tier("prestige", headroom_s=0)
    assert prestige.capacity == 10000
    advanced = shared_limiter("advanced")
    assert isinstance(advanced, TokenBucket)
    assert advanced.capacity == 600 - 300 * JITTER_HEADROOM_S
