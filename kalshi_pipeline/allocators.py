"""Process-wide allocator policy for every process that loads the code location (runs, code servers, tests).

A backfill's run process keeps what its allocators have freed, and that, not the rows in flight, is most of
its peak memory beyond the libraries themselves (`bench/backfill_memory.py`). Three settings lower it without
slowing the run:

- Arrow allocates from the system allocator, both through pyarrow (`pa.set_memory_pool`) and inside Arrow's
  C++ code, whose default pool is chosen once, from `ARROW_DEFAULT_MEMORY_POOL`, when pyarrow first needs it;
  with Arrow's default (mimalloc) a 30-day Postgres backfill peaked ~40 MB higher.
- DuckDB's bundled jemalloc returns freed pages to the system at once (`DUCKDB_JE_MALLOC_CONF`, read when
  DuckDB's library loads) instead of after its 10 s decay: a 30-day DuckDB backfill peaked ~30 MB lower and
  ended ~120 MB lower, at the same speed.
- glibc's malloc keeps at most `MALLOC_ARENAS` arenas instead of eight per core: each thread that allocates
  (the event loop, the store workers, the clean thread, Dagster's) would otherwise hold its own arena's freed
  pages (another ~15-30 MB at the peak).

`kalshi_pipeline.definitions` applies them as it is imported. The variables named here are the libraries'
own, not settings of ours (those are resource fields): an operator's own `ARROW_DEFAULT_MEMORY_POOL`,
`DUCKDB_JE_MALLOC_CONF` or `MALLOC_ARENA_MAX` is left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
DUCKDB_JEMALLOC_VARIABLE = "DUCKDB_JE_MALLOC_CONF"
DUCKDB_JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"
ARENA_VARIABLE = "MALLOC_ARENA_MAX"
#: Arenas glibc's malloc may keep (its default is 8 per core).
MALLOC_ARENAS = 2
# M_ARENA_MAX in glibc's <malloc.h>.
_M_ARENA_MAX = -8


@dataclass(frozen=True)
class AllocatorPolicy:
    """What `configure_allocators` found or set."""

    arrow_cpp_pool: str
    """The pool Arrow's C++ code allocates from by default (`system` unless pyarrow was loaded first)."""
    arrow_pool: str
    """The pool pyarrow allocates from (`system`)."""
    duckdb_jemalloc_conf: str | None
    """DuckDB's jemalloc options, or None where DuckDB was loaded before they could be set."""
    malloc_arenas: int | None
    """The arena cap set through `mallopt`, or None where it was left to the environment or not glibc."""


def configure_allocators() -> AllocatorPolicy:
    """Put Arrow on the system allocator, DuckDB's on prompt release, cap glibc's arenas; call before anything
    imports pyarrow or duckdb."""
    if "pyarrow" not in sys.modules:
        os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
    duckdb_conf = None
    if "duckdb" not in sys.modules:
        duckdb_conf = os.environ.setdefault(DUCKDB_JEMALLOC_VARIABLE, DUCKDB_JEMALLOC_CONF)
    import pyarrow as pa

    cpp_pool = pa.default_memory_pool().backend_name
    pa.set_memory_pool(pa.system_memory_pool())
    return AllocatorPolicy(
        arrow_cpp_pool=cpp_pool,
        arrow_pool=pa.default_memory_pool().backend_name,
        duckdb_jemalloc_conf=duckdb_conf,
        malloc_arenas=_cap_malloc_arenas(MALLOC_ARENAS),
    )


def _cap_malloc_arenas(arenas: int) -> int | None:
    """`mallopt(M_ARENA_MAX, arenas)` on glibc (threads started later share those arenas); else None."""
    if ARENA_VARIABLE in os.environ or not sys.platform.startswith("linux"):
        return None
    # The process's own symbols, libc's among them (no library lookup: that would start `ldconfig`).
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # musl has none
    if mallopt is None:
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return arenas if mallopt(_M_ARENA_MAX, arenas) == 1 else None
