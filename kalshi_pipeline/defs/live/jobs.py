"""The jobs the live sensor and the schedules launch, and the run config / tags they share.

All of them run on the in-process executor: their steps are sequential anyway, and the multiprocess
executor spends 10+ s starting a process per step, several times a live refresh's own work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from kalshi_pipeline.defs.candlesticks.assets import (
    CANDLES_KEY,
    CANDLES_OP,
    RAW_KEY,
    candle_assets,
)
from kalshi_pipeline.defs.games.assets import (
    GAME_PROBABILITIES_KEY,
    GAME_STATES_KEY,
    game_probabilities,
    game_states,
)
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY, markets
from kalshi_pipeline.defs.partitions import game_date_partitions
from kalshi_pipeline.executor import run_executor

CANDLE_KEYS = (RAW_KEY, CANDLES_KEY)
ALL_KEYS = (MARKETS_KEY, RAW_KEY, CANDLES_KEY)
#: What a live run adds after the candles: the live games' state (a light poll: stored milestone ids, one
#: `GET /live_data/batch`, no play-by-play) and their per-minute probabilities.
GAME_KEYS = (GAME_STATES_KEY, GAME_PROBABILITIES_KEY)

#: One live run per game date at a time: dagster.yaml limits this tag to 1 per unique value.
LIVE_DATE_TAG = "kalshi/live_game_date"
# The stream job's own STREAM_DATE_TAG marks a stream run's game date; deliberately not the date tag
# above, which would block the date's REST reconciles for as long as the stream runs.
#: Marks every run the live sensor launched (the purge job deletes old ones).
LIVE_TAG = "kalshi/live"
#: What a sensor run does: live, final, reconcile or markets.
LIVE_KIND_TAG = "kalshi/live_kind"
MAINTENANCE_TAG = "kalshi/maintenance"

LIVE_JOB_NAME = "kalshi_live_job"
DISCOVERY_JOB_NAME = "kalshi_discovery_job"
SWEEP_JOB_NAME = "kalshi_sweep_job"


def own_checks() -> list[dg.AssetCheckKey]:
    """The checks the assets evaluate inside their own step (their `check_specs`)."""
    assets = (markets, candle_assets, game_states, game_probabilities)
    return sorted(
        {key for asset in assets for key in asset.check_keys},
        key=lambda k: (k.asset_key.to_user_string(), k.name),
    )


# Checks defined elsewhere as their own ops (e.g. the stream-vs-REST audit) would add a step to every live
# refresh, every ~15 s; they run with the nightly sweep and on demand instead.
live_job = dg.define_asset_job(
    LIVE_JOB_NAME,
    selection=dg.AssetSelection.assets(*ALL_KEYS, *GAME_KEYS).without_checks()
    | dg.AssetSelection.checks(*own_checks()),
    partitions_def=game_date_partitions,
    executor_def=run_executor,
    description=(
        "Live refresh of one game date (launched by live_games_sensor): candles of the live games from the "
        "newest stored minute, their game state and win probabilities, the markets every few minutes, one "
        "full reconcile per finished game."
    ),
)

discovery_job = dg.define_asset_job(
    DISCOVERY_JOB_NAME,
    selection=dg.AssetSelection.assets(MARKETS_KEY),
    partitions_def=game_date_partitions,
    executor_def=run_executor,
    description="Discover the games and markets of a date (start times and statuses move).",
)

sweep_job = dg.define_asset_job(
    SWEEP_JOB_NAME,
    selection=dg.AssetSelection.assets(*ALL_KEYS),
    partitions_def=game_date_partitions,
    executor_def=run_executor,
    description="Full pull of a date: markets, then every game's candles over the markets' whole life.",
)


def op_name(key: dg.AssetKey) -> str:
    """Return the op name Dagster gives an asset key (`kalshi/game_states` -> `kalshi__game_states`)."""
    return "__".join(key.path)


def candle_run_config(
    event_tickers: Sequence[str],
    start_ts: int | None,
    game_keys: Sequence[dg.AssetKey] = (),
    replay_pbp: bool = False,
) -> dict[str, Any]:
    """Return the run config scoping the candle assets (and `game_keys`) to some games from `start_ts` on.

    The candle assets' op takes `event_tickers` and `start_ts` (see `defs/candlesticks/assets.py`). The game
    assets in `game_keys` take the same games; `kalshi/game_states` replays the play-by-play only if
    `replay_pbp`.
    """
    scope = {"event_tickers": list(event_tickers), "start_ts": start_ts}
    ops: dict[str, Any] = {CANDLES_OP: {"config": scope}}
    for key in game_keys:
        config: dict[str, Any] = {"event_tickers": list(event_tickers)}
        if key == GAME_STATES_KEY:
            config["replay_pbp"] = replay_pbp
        ops[op_name(key)] = {"config": config}
    return {"ops": ops}
