"""Seeded random draws shared by the market generators (seeds from text, sizes, event times)."""

from __future__ import annotations

import hashlib
import math

import numpy as np


def seed_words(*parts: object) -> list[int]:
    """Four 32-bit seed words from the SHA-256 of the parts' text (stable across runs and platforms)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (np.unique's hashing is slower for these sizes)."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def poisson_times(rng: np.random.Generator, start: int, end: int, mean_gap_ms: float) -> np.ndarray:
    """Sorted event times in `[start, end)` of a Poisson process with this mean gap."""
    if end <= start:
        return np.empty(0, dtype=np.int64)
    n = rng.poisson((end - start) / mean_gap_ms)
    return np.sort(rng.integers(start, end, size=n, dtype=np.int64))


def sizes(rng: np.random.Generator, n: int, median: float, sigma: float) -> np.ndarray:
    """`n` log-normal order sizes in hundredths of a contract (mostly whole contracts, at least 0.01)."""
    # exp of a normal draw: the same distribution as rng.lognormal, several times faster.
    raw = np.exp(math.log(median) + sigma * rng.standard_normal(n))
    whole = rng.random(n) < 0.8
    centi = np.where(whole, np.maximum(np.round(raw), 1) * 100, np.round(raw * 100))
    return np.maximum(centi, 1).astype(np.int64)


def unique_times(rng: np.random.Generator, start: int, stop: int, k: int) -> np.ndarray:
    """`k` distinct sorted integer times in `[start, stop)` (k <= stop - start)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(rng.integers(start, stop - k + 1, size=k, dtype=np.int64)) + np.arange(
        k, dtype=np.int64
    )
