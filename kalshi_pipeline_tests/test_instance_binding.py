"""One warehouse per Dagster instance: `bind` records the first and refuses another in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.instance_binding import InstanceBindingError, bind, identity
from kalshi_pipeline_tests.simulated import todays_start

ROOT = Path(__file__).resolve().parents[1]


def test_the_first_warehouse_is_recorded_and_another_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = f"duckdb:///{tmp_path}/a.duckdb"
    assert bind(home, first) == f"duckdb file {tmp_path}/a.duckdb"
    assert bind(home, first) == f"duckdb file {tmp_path}/a.duckdb"  # the same one again is fine
    with pytest.raises(InstanceBindingError) as caught:
        bind(home, f"duckdb:///{tmp_path}/b.duckdb")
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"the Dagster instance {home} records runs of duckdb file {tmp_path}/a.duckdb, not duckdb file "
        f"{tmp_path}/b.duckdb: use another DAGSTER_HOME (make dev: DEV_HOME=...) for this warehouse, or "
        f"delete {home} to start over"
    )


def test_a_relative_and_an_absolute_url_of_one_file_are_one_warehouse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert identity("duckdb:///data/kalshi.duckdb") == identity(
        f"duckdb:///{tmp_path}/data/kalshi.duckdb"
    )


def test_no_password_is_recorded(tmp_path: Path) -> None:
    bind(tmp_path, "postgresql://u:hunter2@127.0.0.1:5432/w")
    record = (tmp_path / "warehouse.json").read_text()
    assert "hunter2" not in record
    assert json.loads(record)["warehouse"] == "postgresql://u:***@127.0.0.1:5432/w"


def test_the_command_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bind-instance", str(tmp_path), f"duckdb:///{tmp_path}/a.duckdb"]) == 0
    assert main(["bind-instance", str(tmp_path), f"duckdb:///{tmp_path}/b.duckdb"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kalshi-pipeline bind-instance: the Dagster")


@pytest.mark.integration  # runs make
def test_make_dev_refuses_an_instance_of_another_warehouse(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bind(home, f"duckdb:///{tmp_path}/demo.duckdb")
    done = subprocess.run(
        [
            "make",
            "-s",
            # The stamp counts as up to date: the test must not reinstall the environment.
            "-o",
            ".venv/.installed",
            "dev",
            f"DEV_HOME={home}",
            f"DEV_WAREHOUSE_URL=duckdb:///{tmp_path}/dev.duckdb",
        ],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "records runs of duckdb file" in done.stderr
    assert not (tmp_path / "dev.duckdb").exists()


def _materialize_markets(home: Path, url: str, base_url: str, days: list[str]) -> None:
    import dagster as dg

    from kalshi_pipeline.defs.markets.assets import markets
    from kalshi_pipeline.defs.resources import KalshiApiResource, WarehouseResource

    resources = {
        "kalshi": KalshiApiResource(base_url=base_url, rate_limit_tier="off", shared_budget=False),
        "warehouse": WarehouseResource(url=url),
    }
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for day in days:
            assert dg.materialize(
                [markets], resources=resources, partition_key=day, instance=instance
            ).success


def test_an_old_instance_of_another_warehouse_is_refused_in_one_line(
    tmp_path: Path, start_simulator: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = start_simulator(live_games=2, now=todays_start(), schedule=False)
    live_date = next(g for g in sim.app.state.world.games if g.injected).game_date.isoformat()
    empty_date = "2025-07-15"  # no game on this exchange: a run that found no market
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    demo_url, dev_url = f"duckdb:///{tmp_path}/demo.duckdb", f"duckdb:///{tmp_path}/dev.duckdb"
    # An instance from before bindings were recorded: runs of the demo's warehouse, no warehouse.json.
    _materialize_markets(home, demo_url, sim.base_url, [live_date, empty_date])
    assert not (home / "warehouse.json").exists()

    with pytest.raises(InstanceBindingError) as caught:
        bind(home, dev_url)
    assert str(caught.value) == (
        f"the Dagster instance {home} already records materializations of game dates that duckdb file "
        f"{tmp_path}/dev.duckdb does not hold ({live_date}), so the UI would show them as materialized: "
        "use a fresh DAGSTER_HOME for this warehouse (make dev: DEV_HOME=/path/to/new/home), or delete "
        f"{home} to start over"
    )
    assert not (home / "warehouse.json").exists() and not (tmp_path / "dev.duckdb").exists()
    capsys.readouterr()  # the runs' own log lines
    assert main(["bind-instance", str(home), dev_url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("kalshi-pipeline bind-instance: the Dagster")

    # The warehouse those runs wrote is bound as before (an old instance upgrading): its dates are there.
    assert bind(home, demo_url) == f"duckdb file {tmp_path}/demo.duckdb"
    assert json.loads((home / "warehouse.json").read_text())["warehouse"] == (
        f"duckdb file {tmp_path}/demo.duckdb"
    )
