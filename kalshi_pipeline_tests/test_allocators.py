"""The process-wide allocator policy set by loading the code location (`kalshi_pipeline.allocators`)."""

import os
import platform
import subprocess
import sys

import pytest

from kalshi_pipeline import allocators


@pytest.mark.integration
def test_a_fresh_process_loading_the_location_uses_the_lean_allocator_settings() -> None:
    # A fresh interpreter, as a run's process starts: Arrow's C++ default pool is chosen once, at pyarrow's
    # first use, so this cannot be seen from a process that has already imported pyarrow.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            allocators.ARROW_POOL_VARIABLE,
            allocators.DUCKDB_JEMALLOC_VARIABLE,
            allocators.ARENA_VARIABLE,
        )
    }
    script = (
        "import kalshi_pipeline.definitions as d, pyarrow as pa\n"
        "import os, sys\n"
        "assert 'duckdb' not in sys.modules\n"
        "print(d.ALLOCATORS.arrow_cpp_pool, d.ALLOCATORS.arrow_pool, d.ALLOCATORS.malloc_arenas, "
        "pa.mimalloc_memory_pool().max_memory(), os.environ['DUCKDB_JE_MALLOC_CONF'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    cpp_pool, pool, arenas, mimalloc_peak, duckdb_conf = done.stdout.split()
    assert (cpp_pool, pool) == ("system", "system")
    assert duckdb_conf == allocators.DUCKDB_JEMALLOC_CONF
    assert int(mimalloc_peak) == 0
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert arenas == "2"


def test_an_operators_own_arena_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocators.ARENA_VARIABLE, "4")
    assert allocators._cap_malloc_arenas(2) is None
