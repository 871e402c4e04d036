"""The code location loads: assets, checks, partitions, backfill policy and resources."""

import dagster as dg
import pyarrow as pa

from kalshi_pipeline.defs.partitions import game_date_partitions
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource, WarehouseResource


def test_definitions_load_with_assets_checks_and_resources() -> None:
    from kalshi_pipeline.definitions import defs

    definitions = defs()
    repo = definitions.get_repository_def()
    graph = repo.asset_graph
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"kalshi/markets", "kalshi/candlesticks_raw", "kalshi/candlesticks"} <= keys
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert {
        ("kalshi/markets", "schema"),
        ("kalshi/markets", "markets_per_game"),
        ("kalshi/candlesticks_raw", "schema"),
        ("kalshi/candlesticks", "schema"),
        ("kalshi/candlesticks", "rejects"),
        ("kalshi/candlesticks", "minute_grid"),
    } <= checks
    for key in ("markets", "candlesticks_raw", "candlesticks"):
        node = graph.get(dg.AssetKey(["kalshi", key]))
        assert node.partitions_def == game_date_partitions
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert graph.get(dg.AssetKey(["kalshi", "candlesticks"])).parent_keys == {
        dg.AssetKey(["kalshi", "candlesticks_raw"])
    }
    assert graph.get(dg.AssetKey(["kalshi", "candlesticks_raw"])).parent_keys == {
        dg.AssetKey(["kalshi", "markets"])
    }
    resources = definitions.resources
    assert resources is not None
    assert isinstance(resources["kalshi"], KalshiApiResource)
    assert isinstance(resources["warehouse"], WarehouseResource)
    assert isinstance(resources["live"], LiveResource)
    # The stream's own tables are in the graph too, on the same partitions.
    for key in ("ticks", "trades", "stream_events", "candlesticks_ws"):
        assert graph.get(dg.AssetKey(["kalshi", key])).partitions_def == game_date_partitions


def test_rejects_check_is_blocking() -> None:
    from kalshi_pipeline.definitions import defs

    graph = defs().get_repository_def().asset_graph
    spec = graph.get_check_spec(
        dg.AssetCheckKey(dg.AssetKey(["kalshi", "candlesticks"]), "rejects")
    )
    assert spec.blocking


def test_workspace_yaml_points_at_the_module() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[1] / "workspace.yaml").read_text()
    assert "module_name: kalshi_pipeline.definitions" in text
    assert "working_directory: ." in text


def test_every_job_runs_on_the_project_run_executor() -> None:
    from kalshi_pipeline.definitions import defs
    from kalshi_pipeline.executor import run_executor

    repo = defs().get_repository_def()
    jobs = repo.get_all_jobs()
    assert jobs
    for job in jobs:
        assert job.executor_def is run_executor, job.name


def test_the_code_location_allocates_arrow_memory_from_the_system_allocator() -> None:
    import kalshi_pipeline.definitions  # noqa: F401

    assert pa.default_memory_pool().backend_name == "system"
    before = pa.system_memory_pool().bytes_allocated()
    held = pa.array(range(100_000))
    assert pa.system_memory_pool().bytes_allocated() >= before + held.nbytes
