"""The Dagster code location: everything under `kalshi_pipeline/defs/`, loaded by Dagster's defs-folder loader.

Each folder of `defs/` holds its own assets, checks, jobs, sensors and automation; `defs/resources.py` declares
the resources once. Project-wide policy is applied here: every run uses the in-process executor (a run's
steps are sequential, and the multiprocess executor spends 10+ s starting a process per step on a small
machine; it would also leave step processes running when the run's own process is killed), with a worker
heartbeat and operator stops that end runs CANCELED (`kalshi_pipeline.executor`). Every process that loads
the location allocates Arrow memory from the system allocator, has DuckDB's allocator return freed memory at
once and caps glibc's malloc arenas (`kalshi_pipeline.allocators`), set before anything imports pyarrow or
DuckDB.
"""

from pathlib import Path

import dagster as dg

from kalshi_pipeline.allocators import configure_allocators
from kalshi_pipeline.executor import run_executor

#: Before the defs folder is loaded: its modules import pyarrow and DuckDB.
ALLOCATORS = configure_allocators()


@dg.definitions
def defs() -> dg.Definitions:
    """Load `kalshi_pipeline/defs/` and run every job on the project's in-process run executor."""
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    return dg.Definitions.merge(loaded, dg.Definitions(executor=run_executor))
