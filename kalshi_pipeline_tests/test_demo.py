"""`kalshi-pipeline demo` end to end: its own simulator, real Dagster runs, a per-game summary."""

from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.instance_binding import InstanceBindingError, bind
from kalshi_pipeline.warehouse import open_warehouse


@pytest.mark.slow
@pytest.mark.integration  # starts its own simulator on a socket
def test_demo_materializes_recent_and_archived_dates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"duckdb:///{tmp_path}/demo.duckdb"
    code = main(
        [
            "demo",
            "--warehouse-url",
            url,
            "--dagster-home",
            str(tmp_path / "home"),
            "--recent-dates",
            "1",
            "--archived-dates",
            "1",
            "--rate-limit",
            "off",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(recent) materialized" in out and "(archived) materialized" in out
    assert "all checks passed" in out and "failed checks" not in out
    # The warehouse is named by its absolute file, with the Dagster instance that records its runs.
    assert (
        f"Warehouse: duckdb file {tmp_path}/demo.duckdb (Dagster instance {tmp_path / 'home'})"
        in out
    )
    # The advice is the README's `make dev`, on this run's instance and warehouse.
    assert f"make dev DEV_HOME={tmp_path / 'home'} DEV_WAREHOUSE_URL={url}" in out
    wh = open_warehouse(url)
    try:
        markets = wh.query_df("SELECT * FROM kalshi.markets")
        counts = wh.query_df("SELECT count(*) AS n FROM kalshi.candlesticks")
    finally:
        wh.close()
    assert set(markets["source"]) == {"live", "historical"}
    assert int(counts["n"].iloc[0]) > 0
    games = markets["event_ticker"].nunique()
    summary = [line for line in out.splitlines() if " @ " in line]
    assert len(summary) == games
    assert all("%" in line for line in summary)
    # Each game's tier says which Kalshi endpoint served it, never that a settled game is live.
    assert any(" recent " in line for line in summary)
    assert any(" archived " in line for line in summary)
    assert not any(" live " in line for line in summary)
    assert (tmp_path / "home" / "dagster.yaml").exists()
    # What the UI shows as materialized is what this warehouse holds, and the instance is bound to it.
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        shown = instance.get_materialized_partitions(dg.AssetKey(["kalshi", "markets"]))
    assert shown == {str(d) for d in markets["game_date"]}
    with pytest.raises(InstanceBindingError):
        bind(tmp_path / "home", f"duckdb:///{tmp_path}/other.duckdb")
    # The per-game win-probability table: one line per game with its final score and chart file.
    table = [line for line in out.splitlines() if " at " in line and line.endswith(".png")]
    assert len(table) == games
    for line in table:
        chart = Path(line.split()[-1])
        assert chart.is_file() and chart.read_bytes().startswith(b"\x89PNG")
        assert line.count("%") == 3
