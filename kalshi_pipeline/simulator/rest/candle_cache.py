"""Rendered candle histories: each market's candles that can no longer change, kept as JSON text.

A candle covers `(end - period, end]`, and a market's path is fixed once generated, so a candle is final as
soon as the exchange clock has passed its end. `CandleCache` keeps, per market, period and wire shape (live
or historical field names), the JSON text of every final candle from the market's first one up to a
frontier, and answers a window by slicing that text; only the candles after the frontier (the period still
open) are computed from the path per request. As the clock moves on, the next request extends the history
by the periods closed since, so a live market's history is rendered once in total, not once per request.
Once the frontier passes the period of the market's last quote or trade, the history is complete.

Memory is bounded by `max_bytes` (texts and their indexes, 128 MiB by default). The most recently used
histories are kept as plain text, up to half the bound; older complete ones are zlib-compressed, and
beyond the bound the least recently used compressed ones are dropped. A finished NBA game's 1-minute
history (~600 candles) is ~200-240 kB of JSON plain and ~20 kB compressed, plus 12 bytes of index per
candle, and a compressed one costs ~0.25 ms to decompress per answer: by default ~300 histories stay plain
and ~2,400 more fit compressed (`bench/simulator.py` kept a season's 2,500 markets in 118 MB).
`max_bytes = 0` turns the cache off (every answer computed from the path, as without it).
"""

from __future__ import annotations

import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.market_model.candles import candles
from kalshi_pipeline.simulator.market_model.path import MarketPath
from kalshi_pipeline.simulator.world import World

CACHE_BYTES = 128 << 20
"""The default memory bound of the rendered histories (texts and their indexes)."""
_ENTRY_OVERHEAD = 400
"""Bytes an entry costs besides its text and arrays (objects, key, LRU links), roughly."""


@dataclass(frozen=True, slots=True)
class History:
    """One market's final candles for one period and wire shape, as rendered JSON text."""

    #: Each candle's `end_period_ts`, ascending.
    end_ts: np.ndarray
    #: Where each candle's text starts in the (uncompressed) text, plus one entry past the end.
    starts: np.ndarray
    #: The candles' JSON texts joined by commas; zlib-compressed when `packed`.
    text: bytes
    packed: bool
    #: Every candle ending at or before this instant (Unix seconds) is here, and final.
    final_s: int
    #: No candle can end after this instant: the period holding the market's last quote or trade.
    last_end_s: int

    @property
    def complete(self) -> bool:
        """Whether the history holds every candle the market will ever have."""
        return self.final_s >= self.last_end_s

    @property
    def nbytes(self) -> int:
        """What the history costs in memory, roughly."""
        return len(self.text) + self.end_ts.nbytes + self.starts.nbytes + _ENTRY_OVERHEAD

    def elements(self, start_s: int, end_s: int) -> bytes:
        """The comma-joined JSON texts of the candles ending in `[start_s, end_s]` (empty for none)."""
        lo = int(np.searchsorted(self.end_ts, start_s, "left"))
        hi = int(np.searchsorted(self.end_ts, end_s, "right"))
        if lo >= hi:
            return b""
        stop = int(self.starts[hi]) - 1
        text = zlib.decompressobj().decompress(self.text, stop) if self.packed else self.text
        return text[int(self.starts[lo]) : stop]

    def packed_copy(self) -> History:
        """This (complete) history with its text compressed."""
        if self.packed:
            return self
        return History(
            self.end_ts,
            self.starts,
            zlib.compress(self.text, 1),
            True,
            self.final_s,
            self.last_end_s,
        )

    def extended(
        self,
        path: MarketPath,
        period_minutes: int,
        frontier_s: int,
        now_ms: int,
        historical: bool,
    ) -> History:
        """This history with the candles ending in `(final_s, frontier_s]` appended (final at `now_ms`)."""
        arrays = candles(path, period_minutes, self.final_s + 1, frontier_s, now_ms)
        text, starts = payloads.candle_elements(arrays, historical)
        if not len(arrays):
            text = self.text
        elif len(self.end_ts):
            text = self.text + b"," + text
        return History(
            np.concatenate([self.end_ts, arrays.end_ts]),
            np.concatenate([self.starts[:-1], starts + self.starts[-1]]).astype(np.int32),
            text,
            False,
            frontier_s,
            self.last_end_s,
        )


def empty_history(path: MarketPath, period_minutes: int) -> History:
    """The history of a market before any of its periods has ended."""
    step_ms = period_minutes * 60_000
    last_ms = int(path.quote_t[-1]) if len(path.quote_t) else 0
    if len(path.trade_t):
        last_ms = max(last_ms, int(path.trade_t[-1]))
    last_end_s = -(-last_ms // step_ms) * step_ms // 1000
    return History(np.zeros(0, np.int64), np.zeros(1, np.int32), b"", False, -1, last_end_s)


class CandleCache:
    """The rendered candle histories of one world's markets, bounded in memory."""

    def __init__(self, world: World, max_bytes: int = CACHE_BYTES) -> None:
        """Serve `world`'s candles, keeping at most `max_bytes` of histories (0: keep none)."""
        self.world = world
        self.max_bytes = max_bytes
        # Each least recently used first.
        self._plain: OrderedDict[tuple[str, int, bool], History] = OrderedDict()
        self._packed: OrderedDict[tuple[str, int, bool], History] = OrderedDict()
        self._bytes = 0
        self._plain_bytes = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """The memory the kept histories cost, roughly."""
        return self._bytes

    @property
    def packed_histories(self) -> int:
        """How many of the kept histories are compressed."""
        return len(self._packed)

    @property
    def packed_nbytes(self) -> int:
        """The memory the compressed histories cost, roughly."""
        return self._bytes - self._plain_bytes

    def __len__(self) -> int:
        return len(self._plain) + len(self._packed)

    def history(self, ticker: str, period_minutes: int, historical: bool) -> History | None:
        """The kept history of a market, period and wire shape, if any (without marking it used)."""
        key = (ticker, period_minutes, historical)
        with self._lock:
            return self._plain.get(key) or self._packed.get(key)

    def array_text(
        self,
        ticker: str,
        start_s: int,
        end_s: int,
        period_minutes: int,
        now_ms: int,
        *,
        historical: bool,
    ) -> bytes:
        """The JSON array of a market's candles ending in `[start_s, end_s]`, as seen at `now_ms`."""
        if now_ms < self.world.by_market[ticker].open_s * 1000:
            return b"[]"  # nothing happened yet; do not generate the path
        if self.max_bytes <= 0:
            path = self.world.market_path(ticker)
            arrays = candles(path, period_minutes, start_s, end_s, now_ms)
            return payloads.candles_json(arrays, historical)
        step = period_minutes * 60
        frontier_s = now_ms // 1000 // step * step  # every candle ending here or before is final
        history = self._history(ticker, period_minutes, historical, frontier_s, end_s, now_ms)
        # `now_ms` may lie before an earlier request's (a pinned clock): only what is final now is used.
        cached_s = min(history.final_s, frontier_s)
        head = history.elements(start_s, min(end_s, cached_s))
        if end_s <= cached_s or (history.complete and cached_s == history.final_s):
            return b"[" + head + b"]"
        path = self.world.market_path(ticker)
        arrays = candles(path, period_minutes, max(start_s, cached_s + 1), end_s, now_ms)
        tail = payloads.candles_json(arrays, historical)
        if not head:
            return tail
        if len(tail) == 2:
            return b"[" + head + b"]"
        return b"[" + head + b"," + tail[1:]

    def _history(
        self,
        ticker: str,
        period_minutes: int,
        historical: bool,
        frontier_s: int,
        end_s: int,
        now_ms: int,
    ) -> History:
        """The market's kept history, first extended to `frontier_s` if it lacks final candles up to `end_s`."""
        key = (ticker, period_minutes, historical)
        with self._lock:
            found = self._touch(key)
        if found is not None and (found.complete or found.final_s >= min(end_s, frontier_s)):
            return found
        path = self.world.market_path(ticker)
        base = found or empty_history(path, period_minutes)
        history = base.extended(path, period_minutes, frontier_s, now_ms, historical)
        with self._lock:
            kept = self._touch(key)
            if kept is None or kept.final_s < history.final_s:
                if kept is not None:
                    self._forget(key)
                self._plain[key] = history
                self._plain_bytes += history.nbytes
                self._bytes += history.nbytes
                self._shrink()
        return history

    def _touch(self, key: tuple[str, int, bool]) -> History | None:
        """The kept history of `key`, marked most recently used among its kind (under the lock)."""
        for kind in (self._plain, self._packed):
            found = kind.get(key)
            if found is not None:
                kind.move_to_end(key)
                return found
        return None

    def _forget(self, key: tuple[str, int, bool]) -> None:
        """Drop the kept history of `key` (under the lock)."""
        dropped = self._plain.pop(key, None)
        if dropped is not None:
            self._plain_bytes -= dropped.nbytes
        else:
            dropped = self._packed.pop(key)
        self._bytes -= dropped.nbytes

    def _shrink(self) -> None:
        """Compress the least recently used plain histories beyond half the bound, then drop the least
        recently used compressed ones until everything fits (under the lock)."""
        while self._plain and self._plain_bytes > self.max_bytes // 2:
            key, oldest = self._plain.popitem(last=False)
            self._plain_bytes -= oldest.nbytes
            self._bytes -= oldest.nbytes
            if oldest.complete:  # an incomplete (live) one is rebuilt when asked for again
                packed = oldest.packed_copy()
                self._packed[key] = packed
                self._bytes += packed.nbytes
        while self._bytes > self.max_bytes and self._packed:
            _, dropped = self._packed.popitem(last=False)
            self._bytes -= dropped.nbytes
