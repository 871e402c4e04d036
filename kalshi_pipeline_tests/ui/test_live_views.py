"""What the Dagster UI shows of the live path in websocket mode, read from a real webserver's GraphQL.

A `dagster-daemon` (sensors, run queue, run workers) and a `dagster-webserver` run over one instance, as
`dagster dev` runs them, against a simulator with two live games and Kalshi credentials: the live sensor
streams the games. Issue 13, point 4: every skipped sensor tick says why, and the stream run's
materializations of what it wrote appear (with counts) while it runs. Point 5: stopping the daemon with
SIGTERM (what stopping `make dev` does to the run worker) leaves the stream run CANCELED in the runs list.

The stream reports every `KALSHI_LIVE_PROGRESS_SECONDS` (a minute by default); the test sets 5 s so the
report it waits for comes within seconds, and waits for one that shows rows written.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.live.sensor import SENSOR_NAME
from kalshi_pipeline.defs.stream.jobs import STREAM_JOB_NAME
from kalshi_pipeline_tests.simulated import todays_start
from kalshi_pipeline_tests.ui.webserver import (
    LOCATION,
    METADATA,
    GraphQL,
    dagster_process,
    instance_home,
    metadata,
    stop_group,
    wait_until,
    webserver,
)

PORT = 18520
#: Longest the daemon may take to start the stream run on a loaded machine (a budget, not a timing).
STREAM_BUDGET_S = 420.0
#: How often the stream run reports what it wrote here (KALSHI_LIVE_PROGRESS_SECONDS; default 60).
PROGRESS_SECONDS = 5

RUNS = """
{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }
"""

TICKS = """
query Ticks($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    ... on Sensor { sensorState { ticks(limit: 500) { status skipReason runIds } } }
  }
}
"""

RUN_MATERIALIZATIONS = f"""
query Materializations($key: AssetKeyInput!) {{
  assetOrError(assetKey: $key) {{
    ... on Asset {{ assetMaterializations(limit: 20) {{ runId partition {METADATA} }} }}
  }}
}}
"""


def _runs(graphql: GraphQL) -> list[dict[str, Any]]:
    return graphql(RUNS)["runsOrError"]["results"]


def _stream_run(graphql: GraphQL) -> dict[str, Any] | None:
    return next((r for r in _runs(graphql) if r["jobName"] == STREAM_JOB_NAME), None)


@pytest.mark.slow
@pytest.mark.integration  # runs a daemon and a webserver
def test_the_ui_shows_the_stream_running_and_then_canceled(
    tmp_path: Path, start_simulator: Callable[..., Any], fresh_pg_url: str
) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (tmp_path / "key.pem").write_text(pem)
    sim = start_simulator(
        auth_keys={"dev": pem}, live_games=2, game_minutes=120, now=todays_start(), schedule=False
    )
    home = instance_home(tmp_path / "home")
    env = {
        "KALSHI_API_BASE_URL": sim.base_url,
        "KALSHI_API_KEY_ID": "dev",
        "KALSHI_PRIVATE_KEY_PATH": str(tmp_path / "key.pem"),
        "KALSHI_LIVE_MODE": "websocket",
        "KALSHI_WAREHOUSE_URL": fresh_pg_url,
        "KALSHI_RATE_BUDGET_DIR": str(tmp_path / "budget"),
        "KALSHI_LIVE_PROGRESS_SECONDS": str(PROGRESS_SECONDS),
    }
    # The instance's SQLite storage is created before the two processes start together and would race.
    dg.DagsterInstance.from_config(str(home)).dispose()
    daemon_args = ["dagster-daemon", "run", "-m", LOCATION]
    with (
        dagster_process(daemon_args, home, env, tmp_path / "daemon.log") as daemon,
        webserver(home, PORT, env, tmp_path / "webserver.log") as graphql,
    ):
        stream = wait_until(
            "a started stream run", lambda: _is_started(_stream_run(graphql)), STREAM_BUDGET_S
        )
        game_date = {t["key"]: t["value"] for t in stream["tags"]}["kalshi/stream_game_date"]

        def progress() -> dict[str, Any] | None:
            # The first reports may come before the first candle (newest minute "none yet"); the one
            # waited for shows rows written.
            found = graphql(RUN_MATERIALIZATIONS, key={"path": ["kalshi", "ticks"]})
            return next(
                (
                    m
                    for m in found["assetOrError"]["assetMaterializations"]
                    if m["runId"] == stream["runId"]
                    and metadata(m["metadataEntries"])["newest_minute"] != "none yet"
                ),
                None,
            )

        reported = wait_until("a progress materialization of kalshi/ticks", progress, 240)
        # Reported while the run still streams: a periodic materialization, not the run's last word.
        current = _stream_run(graphql)
        assert current is not None and current["status"] == "STARTED"
        assert reported["partition"] == game_date
        meta = metadata(reported["metadataEntries"])
        assert meta["ticks"] > 0
        assert meta["newest_minute"].startswith(game_date[:4]) and meta["newest_minute"].endswith(
            "Z"
        )

        selector = {
            "repositoryName": "__repository__",
            "repositoryLocationName": LOCATION,
            "sensorName": SENSOR_NAME,
        }

        def skipped_ticks() -> list[dict[str, Any]] | None:
            ticks = graphql(TICKS, selector=selector)["sensorOrError"]["sensorState"]["ticks"]
            skipped = [t for t in ticks if t["status"] == "SKIPPED"]
            streaming = [t for t in skipped if "WebSocket" in (t["skipReason"] or "")]
            return skipped if streaming else None

        skipped = wait_until("a skipped sensor tick naming the stream", skipped_ticks, 120)
        assert all(t["skipReason"] for t in skipped), [t for t in skipped if not t["skipReason"]]

        assert not [r for r in _runs(graphql) if r["status"] == "FAILURE"]
        stop_group(daemon)
        status = wait_until(
            "the stream run to end after SIGTERM",
            lambda: _ended(_stream_run(graphql)),
            120,
        )
        assert status == "CANCELED"


def _is_started(run: dict[str, Any] | None) -> dict[str, Any] | None:
    return run if run is not None and run["status"] == "STARTED" else None


def _ended(run: dict[str, Any] | None) -> str | None:
    if run is None or run["status"] in ("STARTED", "STARTING", "CANCELING", "QUEUED"):
        return None
    return run["status"]
