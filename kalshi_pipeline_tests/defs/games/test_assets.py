"""The games assets materialized for one simulated date: checks pass and each game's chart is in the metadata."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from kalshi_pipeline.defs.candlesticks.assets import candle_assets
from kalshi_pipeline.defs.games.assets import calibration, game_probabilities, game_states
from kalshi_pipeline.defs.markets.assets import markets
from kalshi_pipeline.defs.resources import LiveResource
from kalshi_pipeline_tests.defs.markets.helpers import (
    checks_by_name,
    materialization_metadata,
    resources,
)

START = datetime(2026, 1, 20, 23, 0, tzinfo=UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_materialize_states_and_probabilities(
    start_simulator: Callable[..., Any], tmp_path: Path
) -> None:
    sim = start_simulator(now=START, game_minutes=None, live_games=0)
    world = sim.app.state.world
    days: dict[date, int] = {}
    for g in world.games:
        if START.timestamp() - 6 * 86400 < g.settled_s < START.timestamp() - 86400:
            days[g.game_date] = days.get(g.game_date, 0) + 1
    day = min(days, key=lambda d: (days[d], d))
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result = dg.materialize(
        [markets, candle_assets, game_states, game_probabilities, calibration],
        resources={**resources(sim.base_url, url), "live": LiveResource()},
        partition_key=day.isoformat(),
    )
    assert result.success
    checks = checks_by_name(result)
    for name in ("details_keys", "live_data_found"):
        assert checks[("kalshi/game_states", name)].passed, name
    for name in ("probabilities_sum_to_one", "settled_games_end_at_result"):
        evaluation = checks[("kalshi/game_probabilities", name)]
        assert evaluation.passed, evaluation.metadata
    settled = checks[("kalshi/game_probabilities", "settled_games_end_at_result")]
    assert settled.metadata["settled_games"].value == days[day]
    meta = materialization_metadata(result, "kalshi/game_probabilities")
    charts = meta["charts"]
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", charts)
    assert len(images) == days[day]
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for _, data in images)
    assert meta["games"] == days[day] and meta["priced_rows"] > 0

    scored = materialization_metadata(result, "kalshi/calibration")
    assert scored["games"] == days[day] and scored["seasons"] == "2025-26"
    assert "| 2025-26  | tip-off" in scored["scores"] and "end Q4" in scored["scores"]
    assert 0 < scored["brier_overall"] < 0.25
    diagram = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", scored["reliability"])
    assert len(diagram) == 1 and base64.b64decode(diagram[0]).startswith(PNG_MAGIC)
