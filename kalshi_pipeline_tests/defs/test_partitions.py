"""Game-date partitions: a key outside the valid range is one line naming the range, also from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from kalshi_pipeline.defs.partitions import FIRST_GAME_DATE, game_date_partitions

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _error(key: str) -> str:
    with pytest.raises(dg.DagsterInvalidSubsetError) as caught, partition_loading_context() as ctx:
        game_date_partitions.validate_partition_key(key, context=ctx)
    return str(caught.value)


def test_a_key_outside_the_range_names_the_valid_range_in_one_line() -> None:
    last = game_date_partitions.get_last_partition_key()
    message = _error("2030-01-15")
    assert message == (
        f"no game-date partition 2030-01-15: valid game dates are {FIRST_GAME_DATE} to {last} "
        "(tomorrow in America/New_York); pick a date in that range"
    )
    assert "\n" not in message
    assert _error("12/01/2026") == (
        f"bad partition key '12/01/2026': a game date is YYYY-MM-DD between {FIRST_GAME_DATE} and {last}"
    )


def test_valid_keys_pass() -> None:
    with partition_loading_context() as ctx:
        game_date_partitions.validate_partition_key(FIRST_GAME_DATE, context=ctx)
        game_date_partitions.validate_partition_key(
            str(game_date_partitions.get_last_partition_key()), context=ctx
        )
    assert date.fromisoformat(FIRST_GAME_DATE)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (["--partition", "2030-01-15"], "2030-01-15"),
        # A range whose start is valid: the message names the end, the key that is wrong.
        (["--partition-range", f"{FIRST_GAME_DATE}...2030-01-17"], "2030-01-17"),
    ],
)
def test_dagster_asset_materialize_ends_with_the_valid_range(
    tmp_path: Path, args: list[str], bad: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KALSHI_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [
            *(str(BIN / "dagster"), "asset", "materialize", "-m", "kalshi_pipeline.definitions"),
            *("--select", "kalshi/markets", *args),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    # The last date is computed by the CLI process (it moves at midnight ET), so it is matched, not pinned.
    assert re.search(
        rf"no game-date partition {bad}: valid game dates are {FIRST_GAME_DATE} to \d{{4}}-\d\d-\d\d "
        r"\(tomorrow in America/New_York\); pick a date in that range$",
        last,
    ), done.stderr[-2000:]
