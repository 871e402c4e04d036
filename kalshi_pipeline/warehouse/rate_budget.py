"""A Kalshi rate budget shared by every process that talks to the same exchange.

Kalshi meters a key (or, for public data, a caller) with one token bucket, while a Dagster deployment runs
many processes at once: the live sensor's runs, a season backfill, the schedules. Each process's own
`TokenBucket` would let N processes send N times the limit, so the processes draw from one bucket stored
outside them:

- `PostgresRateBudget`: one row of `kalshi.rate_budget`, refilled and debited by a single atomic `UPDATE`
  (the row lock serializes callers across processes and machines; the database clock is the only clock).
- `FileRateBudget`: the same arithmetic on a small file under an exclusive `fcntl` lock, for the embedded
  DuckDB case where every process runs on one machine.

Both follow the reservation scheme of the client's `TokenBucket`: `acquire(cost)` subtracts the cost at once
(the balance may go negative, which queues callers fairly in arrival order) and then sleeps until the
balance it left behind has refilled to zero, so one round trip per request suffices. Both satisfy the
client's `RateLimiter` protocol (`async acquire(cost: int) -> None`) and do not import the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import struct
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import LiteralString, Protocol

import psycopg

DEFAULT_BUDGET_NAME = "kalshi-read"
#: Share of the server's bucket capacity the shared bucket may burst (see `shared_rate_budget`).
BURST_FRACTION = 0.9

_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS kalshi.rate_budget (
    name        text PRIMARY KEY,
    rate_per_s  double precision NOT NULL CHECK (rate_per_s > 0),
    capacity    double precision NOT NULL CHECK (capacity > 0),
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
)
"""

_UPSERT_ROW = """
INSERT INTO kalshi.rate_budget (name, rate_per_s, capacity, tokens, updated_at)
VALUES (%(name)s, %(rate)s, %(capacity)s, %(capacity)s, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET rate_per_s = EXCLUDED.rate_per_s, capacity = EXCLUDED.capacity
"""

# One statement refills by the time elapsed on the database clock, debits the cost and returns the new
# balance; concurrent callers queue on the row lock and Postgres re-evaluates SET on the newest row version.
_DEBIT = """
WITH now AS (SELECT clock_timestamp() AS t)
UPDATE kalshi.rate_budget AS b
   SET tokens = LEAST(b.capacity,
                      b.tokens + b.rate_per_s * GREATEST(0, EXTRACT(EPOCH FROM (now.t - b.updated_at))))
                - %(cost)s,
       updated_at = GREATEST(b.updated_at, now.t)
  FROM now
 WHERE b.name = %(name)s
RETURNING b.tokens, b.rate_per_s
"""

_DRAIN = """
WITH now AS (SELECT clock_timestamp() AS t)
UPDATE kalshi.rate_budget AS b
   SET tokens = LEAST(0, LEAST(b.capacity,
                b.tokens + b.rate_per_s * GREATEST(0, EXTRACT(EPOCH FROM (now.t - b.updated_at))))),
       updated_at = GREATEST(b.updated_at, now.t)
  FROM now
 WHERE b.name = %(name)s
RETURNING b.tokens, b.rate_per_s
"""


class RateBudgetError(RuntimeError):
    """The shared rate budget cannot be read or updated (e.g. its database went away)."""


class RateBudget(Protocol):
    """A cross-process token bucket (the client's `RateLimiter` protocol plus `drain`)."""

    name: str
    rate_per_s: float
    capacity: float

    async def acquire(self, cost: int) -> None:
        """Wait until `cost` tokens are available and consume them."""
        ...

    def reserve(self, cost: float) -> float:
        """Consume `cost` tokens now; return the seconds to wait before sending."""
        ...

    def drain(self) -> None:
        """Empty the bucket (after a 429 shows the server's bucket is emptier than ours)."""
        ...

    def available(self) -> float:
        """Return the shared balance now (negative while callers are queued)."""
        ...


def _check_bucket(rate_per_s: float, capacity: float) -> None:
    if rate_per_s <= 0 or capacity <= 0:
        raise ValueError(f"rate_per_s and capacity must be positive, got {rate_per_s}, {capacity}")


class _ReservingBudget:
    """The `acquire` shared by both stores: reserve (possibly in a worker thread), then sleep."""

    name: str
    rate_per_s: float
    capacity: float
    _sleep: Callable[[float], Awaitable[None]]
    _blocking: bool

    def reserve(self, cost: float) -> float:  # pragma: no cover - overridden
        raise NotImplementedError

    async def acquire(self, cost: int = 10) -> None:
        """Wait until `cost` tokens are available in the shared bucket and consume them."""
        if cost < 0:
            raise ValueError(f"cost must be >= 0, got {cost}")
        # A database round trip must not block the event loop; a file lock held for microseconds may.
        wait = await asyncio.to_thread(self.reserve, cost) if self._blocking else self.reserve(cost)
        if wait > 0:
            await self._sleep(wait)


class PostgresRateBudget(_ReservingBudget):
    """A token bucket stored in one row of `kalshi.rate_budget`, shared by every process using `url`."""

    def __init__(
        self,
        url: str,
        *,
        name: str = DEFAULT_BUDGET_NAME,
        rate_per_s: float,
        capacity: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Create (or join) the bucket `name` in the Postgres database at `url`.

        The row is created full on first use; later callers update its rate and capacity to theirs, so
        a tier change takes effect without a migration.
        """
        _check_bucket(rate_per_s, capacity)
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"PostgresRateBudget needs a postgresql:// URL, got {url.split(':', 1)[0]}:"
            )
        self._url = url
        self.name = name
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._sleep = sleep
        self._blocking = True
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def __repr__(self) -> str:
        return (
            f"PostgresRateBudget(name={self.name!r}, rate_per_s={self.rate_per_s:g}, "
            f"capacity={self.capacity:g})"
        )

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10)
        # Concurrent first users race on the catalog; the loser's duplicate is harmless.
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            conn.execute("CREATE SCHEMA IF NOT EXISTS kalshi")
        with contextlib.suppress(psycopg.errors.UniqueViolation):
            conn.execute(_TABLE_DDL)
        conn.execute(
            _UPSERT_ROW, {"name": self.name, "rate": self.rate_per_s, "capacity": self.capacity}
        )
        return conn

    def _run(self, sql: LiteralString, params: dict[str, object]) -> tuple[float, float] | None:
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = self._connect()
                    row = self._conn.execute(sql, params).fetchone()
                    return None if row is None else (float(row[0]), float(row[1]))
                except psycopg.OperationalError as exc:
                    # One reconnect covers a server restart or an idle connection the server dropped.
                    if self._conn is not None:
                        self._conn.close()
                    self._conn = None
                    if attempt == 2:
                        raise RateBudgetError(
                            f"shared rate budget {self.name!r} unreachable in Postgres: {exc}"
                        ) from exc
        return None  # pragma: no cover - the loop returns or raises

    def reserve(self, cost: float) -> float:
        """Debit `cost` tokens in the shared row; return the seconds to wait before sending."""
        result = self._run(_DEBIT, {"name": self.name, "cost": float(cost)})
        if result is None:  # the row was deleted under us: recreate it on the next connection
            with self._lock:
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
            result = self._run(_DEBIT, {"name": self.name, "cost": float(cost)})
            if result is None:
                raise RateBudgetError(f"shared rate budget row {self.name!r} disappeared")
        tokens, rate = result
        return 0.0 if tokens >= 0 else -tokens / rate

    def available(self) -> float:
        """Return the shared balance now (negative while callers are queued)."""
        result = self._run(_DEBIT, {"name": self.name, "cost": 0.0})
        return 0.0 if result is None else result[0]

    def drain(self) -> None:
        """Empty the shared bucket (after a 429 shows the server's bucket is emptier than ours)."""
        self._run(_DRAIN, {"name": self.name})

    def close(self) -> None:
        """Close this process's connection (the shared row stays)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
            self._conn = None


_STATE = struct.Struct("<dd")  # tokens, updated (Unix seconds)


class FileRateBudget(_ReservingBudget):
    """A token bucket stored in a small file under an exclusive `fcntl` lock (one machine, many processes).

    The wall clock (`time.time`) is the shared clock: `time.monotonic` is not comparable across reboots,
    and a backwards clock step only refills less, never more.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str = DEFAULT_BUDGET_NAME,
        rate_per_s: float,
        capacity: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Create (or join) the bucket stored at `path`; a new file starts full."""
        _check_bucket(rate_per_s, capacity)
        self.path = Path(path)
        self.name = name
        self.rate_per_s = float(rate_per_s)
        self.capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._blocking = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"FileRateBudget(path={str(self.path)!r}, rate_per_s={self.rate_per_s:g}, "
            f"capacity={self.capacity:g})"
        )

    def _update(self, debit: Callable[[float], float]) -> float:
        """Refill, apply `debit(tokens) -> new tokens` under the file lock, and return the new balance."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a+b") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                try:
                    fh.seek(0)
                    data = fh.read(_STATE.size)
                    now = self._clock()
                    if len(data) == _STATE.size:
                        tokens, updated = _STATE.unpack(data)
                        elapsed = max(0.0, now - updated)
                        tokens = min(self.capacity, tokens + elapsed * self.rate_per_s)
                        now = max(now, updated)
                    else:
                        tokens = self.capacity
                    tokens = debit(tokens)
                    fh.seek(0)
                    fh.truncate()
                    fh.write(_STATE.pack(tokens, now))
                    fh.flush()
                    return tokens
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        except OSError as exc:
            raise RateBudgetError(f"shared rate budget file {self.path} unusable: {exc}") from exc

    def reserve(self, cost: float) -> float:
        """Debit `cost` tokens in the shared file; return the seconds to wait before sending."""
        tokens = self._update(lambda t: t - cost)
        return 0.0 if tokens >= 0 else -tokens / self.rate_per_s

    def available(self) -> float:
        """Return the shared balance now (negative while callers are queued)."""
        return self._update(lambda t: t)

    def drain(self) -> None:
        """Empty the shared bucket (after a 429 shows the server's bucket is emptier than ours)."""
        self._update(lambda t: min(t, 0.0))

    def close(self) -> None:
        """Nothing to release: the file is opened per call."""


def default_budget_dir() -> Path:
    """Return the directory of file budgets when none is configured: the temp dir."""
    return Path(tempfile.gettempdir())


def budget_name(base_url: str, bucket: str = "read") -> str:
    """Name the bucket of one exchange: Kalshi production, demo and each simulator port meter separately."""
    return f"kalshi-{bucket}:{base_url.rstrip('/')}"


def open_rate_budget(
    *,
    name: str,
    rate_per_s: float,
    capacity: float,
    url: str | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> RateBudget:
    """Return the shared bucket `name`: in Postgres when `url` is postgresql://, else a file on this machine."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return PostgresRateBudget(url, name=name, rate_per_s=rate_per_s, capacity=capacity)
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    folder = Path(directory) if directory is not None else default_budget_dir()
    return FileRateBudget(
        folder / f"kalshi_rate_budget_{digest}.bin",
        name=name,
        rate_per_s=rate_per_s,
        capacity=capacity,
    )


_process_budgets: dict[tuple[str, str, float, float], RateBudget] = {}
_process_lock = threading.Lock()


def shared_rate_budget(
    base_url: str,
    rate_per_s: float,
    capacity: float,
    *,
    url: str = "",
    directory: str | os.PathLike[str] | None = None,
    burst_fraction: float = BURST_FRACTION,
) -> RateBudget:
    """Return this process's handle on the cross-process budget of the exchange at `base_url`.

    `rate_per_s` and `capacity` are the server's bucket; the shared bucket refills at the same rate but
    holds only `burst_fraction` of the capacity. Delays between a grant here and the request reaching the
    server (the client's connection semaphore, the event loop, the network) cannot cause a 429: a request
    that arrives later than granted finds the server's bucket fuller, not emptier, and bunched arrivals
    after a stall of up to `capacity / rate_per_s` seconds still fit. What the held-back capacity covers is
    what this bucket cannot see: requests by other clients of the same key, or a server bucket that was
    not full when the budget was created. 0.9 keeps four requests of Kalshi's 40-request burst for that,
    at the cost of a slightly smaller first burst. The budget lives in Postgres when `url` is a
    postgresql:// URL, else in a locked file in `directory` (default: the temp dir); one handle (and one
    database connection) per process and bucket is reused by every client.
    """
    if not 0 < burst_fraction <= 1:
        raise ValueError(f"burst_fraction must be in (0, 1], got {burst_fraction}")
    capacity = max(capacity * burst_fraction, min(capacity, 1.0))
    store = url if url.startswith(("postgresql://", "postgres://")) else ""
    folder = Path(directory) if directory is not None else default_budget_dir()
    name = budget_name(base_url)
    key = (store or str(folder), name, float(rate_per_s), float(capacity))
    with _process_lock:
        budget = _process_budgets.get(key)
        if budget is None:
            budget = open_rate_budget(
                name=name,
                rate_per_s=rate_per_s,
                capacity=capacity,
                url=store or None,
                directory=folder,
            )
            _process_budgets[key] = budget
        return budget
