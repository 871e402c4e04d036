"""Benchmark: where a backfill's peak memory goes, over the run and by owner.

Runs the in-process backfill of `bench/backfill.py` (`kalshi/markets`, `kalshi/candlesticks_raw`,
`kalshi/candlesticks` in one run, Basic tier, warm simulator) once per warehouse and allocator setting, each
in a fresh process, while a thread samples the process every 20 ms: resident memory (`VmRSS`) and, on
DuckDB, what DuckDB itself accounts for (`duckdb_memory()` of the process's shared in-memory host, by tag:
tables not yet checkpointed, ART indexes, base tables, hash tables). It reports:

- `import_rss_mb`: resident memory with the project, Dagster, pandas, pyarrow and DuckDB imported;
- `peak_rss_mb` and when it was reached (`peak_at_fraction` of the run), with DuckDB's own accounting at
  that moment (`duckdb_at_peak_mb`) and its largest total over the run (`duckdb_max_total_mb`);
- `end_rss_mb`: resident memory once the run has returned (what the allocators kept);
- `rss_mb_by_fraction`: the largest resident memory in each tenth of the run, to see whether it grows with
  the dates stored or settles.

Variants: `default`, the allocators as every process of the code location sets them
(`kalshi_pipeline.allocators`); `previous_allocators`, as before that policy (Arrow's C++ code on mimalloc,
DuckDB's jemalloc on its defaults, glibc's default 8 malloc arenas per core), set through the variables the
policy leaves alone, before the child starts. Also `imports_mb`: what importing each of the modules a
run needs adds, in turn, in a fresh interpreter (`rss_file_mb`: of it, the libraries' code pages).
Results go to `bench/results/backfill_memory.json`.

    .venv/bin/python bench/backfill_memory.py [--days 30] [--warehouses duckdb,postgres]
        [--variants default,previous_allocators] [--output PATH] [--pg-admin-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from backfill import TIER, _default_start, _naive, _pipeline
from common import PG_ADMIN, in_fresh_process, results_header, temporary_database

from kalshi_pipeline.allocators import ARENA_VARIABLE, ARROW_POOL_VARIABLE, DUCKDB_JEMALLOC_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "backfill_memory.json"
SAMPLE_S = 0.02
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "previous_allocators": {
        ARROW_POOL_VARIABLE: "mimalloc",
        DUCKDB_JEMALLOC_VARIABLE: "",
        ARENA_VARIABLE: str(8 * (os.cpu_count() or 1)),
    },
}


def _status_mb(field: str = "VmRSS") -> float:
    """A memory field of /proc/self/status (VmRSS, RssAnon: heap memory, RssFile: mapped files), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def _duckdb_by_tag() -> dict[str, float]:
    """DuckDB's own accounting in this process, by tag, in MB (tags under 1 MB left out)."""
    from kalshi_pipeline.warehouse.duck_files import shared_host

    cursor = shared_host().cursor()
    try:
        rows = cursor.execute(
            "SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes >= 1048576"
        ).fetchall()
    finally:
        cursor.close()
    return {str(tag): round(int(used) / 1048576.0, 1) for tag, used in rows}


def _sampled_pipeline(
    base_url: str, warehouse_url: str, start: str, end: str, budget_dir: str
) -> dict[str, Any]:
    """`backfill._pipeline` with a sampling thread beside it; the sampled memory is added to its result."""
    import kalshi_pipeline.definitions  # noqa: F401  (imported as the run would, before measuring)

    on_duckdb = warehouse_url.startswith("duckdb")
    import_rss = _status_mb()
    import_file = _status_mb("RssFile")
    samples: list[tuple[float, float, dict[str, float]]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(
                (time.perf_counter(), _status_mb(), _duckdb_by_tag() if on_duckdb else {})
            )
            stop.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, name="memory-sampler", daemon=True)
    t0 = time.perf_counter()
    sampler.start()
    result = _pipeline(base_url, warehouse_url, start, end, budget_dir)
    t1 = time.perf_counter()
    stop.set()
    sampler.join()
    span = max(t1 - t0, 1e-9)
    at, peak, duck_at_peak = max(samples, key=lambda s: s[1])
    tenths = [0.0] * 10
    for when, rss, _ in samples:
        slot = min(int((when - t0) / span * 10), 9)
        tenths[slot] = max(tenths[slot], rss)
    result.update(
        {
            "import_rss_mb": round(import_rss, 1),
            "peak_rss_mb": round(peak, 1),
            "peak_at_fraction": round((at - t0) / span, 2),
            "duckdb_at_peak_mb": duck_at_peak,
            "duckdb_max_total_mb": round(
                max((sum(d.values()) for _, _, d in samples), default=0), 1
            ),
            "end_rss_mb": round(_status_mb(), 1),
            "rss_mb_by_fraction": [round(x, 1) for x in tenths],
            "samples": len(samples),
            # Resident pages of mapped files (the libraries' code: DuckDB, Arrow, numpy ...) against the
            # heap, at import and once the run has returned.
            "import_rss_file_mb": round(import_file, 1),
            "end_rss_file_mb": round(_status_mb("RssFile"), 1),
            "end_rss_anon_mb": round(_status_mb("RssAnon"), 1),
        }
    )
    return result


# What a run's process imports, in the order it first needs them: Dagster and the code location, then what the
# run itself brings in (frames and validation, Dagster's SQLite storage, the warehouses' drivers).
RUN_IMPORTS = (
    "dagster",
    "kalshi_pipeline.definitions",
    "pandas",
    "pandera.pandas",
    "sqlalchemy",
    "alembic",
    "duckdb",
    "psycopg",
)


def _import_costs() -> dict[str, dict[str, float]]:
    """Resident memory added by importing each of `RUN_IMPORTS` in turn, in one fresh interpreter (MB)."""
    import subprocess

    script = (
        "import importlib, json\n"
        "def mb(field):\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith(field + ':'): return int(line.split()[1]) / 1024\n"
        "out = {'python': {'rss_mb': mb('VmRSS'), 'rss_file_mb': mb('RssFile')}}\n"
        f"for name in {list(RUN_IMPORTS)!r}:\n"
        "    rss, files = mb('VmRSS'), mb('RssFile')\n"
        "    importlib.import_module(name)\n"
        "    out[name] = {'rss_mb': mb('VmRSS') - rss, 'rss_file_mb': mb('RssFile') - files}\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    costs = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: {f: round(v, 1) for f, v in c.items()} for k, c in costs.items()}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--start", type=date.fromisoformat, default=None, help="First game date.")
    parser.add_argument("--days", type=int, default=30, help="Number of game dates (30).")
    parser.add_argument("--seed", type=int, default=42, help="Simulator seed (42).")
    parser.add_argument("--warehouses", default="duckdb,postgres", help="duckdb and/or postgres.")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=", ".join(VARIANTS))
    parser.add_argument("--output", type=Path, default=RESULTS, help="Where to write the JSON.")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN, help="Postgres admin URL.")
    args = parser.parse_args(argv)
    warehouses = [w.strip() for w in args.warehouses.split(",") if w.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if bad := [w for w in warehouses if w not in ("duckdb", "postgres")]:
        parser.error(f"unknown warehouses {bad}; expected duckdb and/or postgres")
    if bad := [v for v in variants if v not in VARIANTS]:
        parser.error(f"unknown variants {bad}; expected some of {', '.join(VARIANTS)}")
    start = args.start or _default_start(args.days)
    span = (start.isoformat(), (start + timedelta(days=args.days - 1)).isoformat())

    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    results: dict[str, Any] = {
        "benchmark": "peak memory of a Basic-tier backfill in one run, sampled every 20 ms",
        **results_header("backfill_memory.py", argv),
        "range": {"start": span[0], "end": span[1], "days": args.days},
        "runs": {},
        "imports_mb": _import_costs(),
    }
    with (
        tempfile.TemporaryDirectory(prefix="kalshi_bench_") as tmp,
        serve_in_thread(
            SimulatorConfig(host="127.0.0.1", port=0, seed=args.seed, rate_limit=TIER)
        ) as sim,
    ):
        budget = str(Path(tmp) / "budget")
        Path(budget).mkdir()
        print("warming the simulator (an untimed naive pull) ...", file=sys.stderr)
        in_fresh_process(_naive, sim.base_url, *span, budget, TIER)
        for warehouse in warehouses:
            for variant in variants:
                name = f"{warehouse}_{variant}"
                print(f"{name} ...", file=sys.stderr)
                time.sleep(3.0)  # the rate bucket refills between runs
                if warehouse == "duckdb":
                    url = f"duckdb:///{tmp}/{name}.duckdb"
                    run = in_fresh_process(
                        _sampled_pipeline, sim.base_url, url, *span, budget, env=VARIANTS[variant]
                    )
                else:
                    with temporary_database("kalshi_bench", args.pg_admin_url) as url:
                        run = in_fresh_process(
                            _sampled_pipeline,
                            sim.base_url,
                            url,
                            *span,
                            budget,
                            env=VARIANTS[variant],
                        )
                results["runs"][name] = run
                print(
                    f"  peak {run['peak_rss_mb']} MB at {run['peak_at_fraction']:.0%} of the run "
                    f"(imports {run['import_rss_mb']} MB, end {run['end_rss_mb']} MB, DuckDB at peak "
                    f"{run['duckdb_at_peak_mb']}), run/floor {run['run_vs_floor']}",
                    file=sys.stderr,
                )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
