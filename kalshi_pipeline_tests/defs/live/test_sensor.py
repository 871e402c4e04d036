"""`live_games_sensor` over a warehouse holding known games: live window edges, dedupe, skip, final once."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY, CANDLES_OP, RAW_KEY
from kalshi_pipeline.defs.games.assets import GAME_PROBABILITIES_KEY, GAME_STATES_KEY
from kalshi_pipeline.defs.live.jobs import LIVE_DATE_TAG, LIVE_KIND_TAG, LIVE_TAG
from kalshi_pipeline.defs.live.planning import LiveSettings
from kalshi_pipeline.defs.live.sensor import evaluate, live_games_sensor
from kalshi_pipeline.defs.markets.assets import MARKETS_KEY
from kalshi_pipeline.defs.resources import (
    KalshiApiResource,
    LiveResource,
    WarehouseResource,
    resources_from_env,
)
from kalshi_pipeline.defs.stream.jobs import STREAM_DATE_TAG
from kalshi_pipeline_tests.defs.live.conftest import candle_frame, event_ticker, market_frame

NOW = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)  # 19:00 ET on game date 2026-01-09
TODAY = date(2026, 1, 9)
YESTERDAY = date(2026, 1, 8)
TOMORROW = date(2026, 1, 10)

LIVE = event_ticker(TODAY, "BOS", "NYK")  # tips off in 14 minutes: inside the 15-minute lead
EARLY = event_ticker(TODAY, "LAL", "GSW")  # tips off in 16 minutes: not yet
CLOSED = event_ticker(TODAY, "MIA", "CHI")  # started 3 h ago, markets closed, not settled
SETTLED = event_ticker(YESTERDAY, "DEN", "PHX")  # last night's game, settled
NEXT = event_ticker(TOMORROW, "SAS", "ATL")
DONE = json.dumps(
    {"final": {SETTLED: YESTERDAY.isoformat()}}
)  # cursor: last night already reconciled


@pytest.fixture
def night(store) -> None:
    store(
        markets=[
            market_frame(TODAY, "BOS", "NYK", NOW + timedelta(minutes=14)),
            market_frame(TODAY, "LAL", "GSW", NOW + timedelta(minutes=16)),
            market_frame(TODAY, "MIA", "CHI", NOW - timedelta(hours=3), status="closed"),
            market_frame(
                YESTERDAY,
                "DEN",
                "PHX",
                NOW - timedelta(hours=26),
                status="settled",
                settlement_ts=NOW - timedelta(hours=20),
            ),
            market_frame(TOMORROW, "SAS", "ATL", NOW + timedelta(hours=24)),
        ]
    )


def tick(
    duck_url: str,
    instance: dg.DagsterInstance,
    cursor: str | None = None,
    now: datetime = NOW,
    settings: LiveSettings | None = None,
) -> dg.SensorResult:
    warehouse = WarehouseResource(url=duck_url)
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"warehouse": warehouse}
    )
    return evaluate(context, warehouse, now=now, settings=settings or LiveSettings())


def selection(req: dg.RunRequest) -> set[dg.AssetKey]:
    """The assets a run request selects (every request of the live sensor names them)."""
    assert req.asset_selection is not None
    return set(req.asset_selection)


def skip_message(result: dg.SensorResult) -> str:
    """The message of a tick that requested nothing."""
    assert result.skip_reason is not None and result.skip_reason.skip_message is not None
    return result.skip_reason.skip_message


def by_kind(result: dg.SensorResult) -> dict[str, list[dg.RunRequest]]:
    out: dict[str, list[dg.RunRequest]] = {}
    for req in result.run_requests or []:
        out.setdefault(req.tags[LIVE_KIND_TAG], []).append(req)
    return out


def scope(req: dg.RunRequest) -> dict:
    return req.run_config["ops"][CANDLES_OP]["config"]


def test_first_tick_refreshes_the_live_game_and_reconciles_last_night(night, duck_url) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance)
    kinds = by_kind(result)
    assert set(kinds) == {"live", "final"}

    (live,) = kinds["live"]
    assert live.partition_key == TODAY.isoformat()
    assert live.tags[LIVE_DATE_TAG] == TODAY.isoformat() and live.tags[LIVE_TAG] == "true"
    # 14 minutes before tip-off is live, 16 minutes is not.
    assert scope(live)["event_tickers"] == [LIVE]
    # No stored candle yet: start at the live window (tip-off minus 15 minutes).
    assert scope(live)["start_ts"] == int((NOW - timedelta(minutes=1)).timestamp())
    # The date is about to go live, so its markets ride along.
    assert selection(live) == {
        MARKETS_KEY,
        RAW_KEY,
        CANDLES_KEY,
        GAME_STATES_KEY,
        GAME_PROBABILITIES_KEY,
    }
    # The live games' state is polled (stored milestones, no play-by-play) and their probabilities redone.
    ops = live.run_config["ops"]
    assert ops["kalshi__game_states"]["config"] == {"event_tickers": [LIVE], "replay_pbp": False}
    assert ops["kalshi__game_probabilities"]["config"] == {"event_tickers": [LIVE]}
    # Only the checks the assets evaluate in their own step; separately defined check ops stay out.
    assert {c.name for c in live.asset_check_keys or []} == {
        "schema",
        "markets_per_game",
        "settlement",
        "rejects",
        "minute_grid",
        "historical_fallbacks",
        "raw_clean_agree",
        "details_keys",
        "live_data_found",
        "probabilities_sum_to_one",
        "settled_games_end_at_result",
    }
    assert live.job_name == "kalshi_live_job"

    (final,) = kinds["final"]
    assert final.run_key == f"final:{SETTLED}"
    assert final.partition_key == YESTERDAY.isoformat()
    assert scope(final) == {"event_tickers": [SETTLED], "start_ts": None}
    assert selection(final) == {RAW_KEY, CANDLES_KEY, GAME_STATES_KEY, GAME_PROBABILITIES_KEY}
    # The settled game's record is completed once: its state with the replayed play-by-play.
    assert final.run_config["ops"]["kalshi__game_states"]["config"]["replay_pbp"] is True


def test_final_reconcile_exactly_once_and_run_keys_dedupe(night, duck_url) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        first = tick(duck_url, instance)
        second = tick(duck_url, instance, cursor=first.cursor)
        later = tick(duck_url, instance, cursor=second.cursor, now=NOW + timedelta(seconds=15))
    assert "final" in by_kind(first)
    assert "final" not in by_kind(second) and "final" not in by_kind(later)
    assert first.cursor is not None and second.cursor is not None
    assert SETTLED in first.cursor and SETTLED in second.cursor
    # Same refresh bucket -> the key was already requested: nothing is requested twice, and the tick says
    # why; the next bucket is a new run.
    assert not second.run_requests and second.skip_reason is not None
    assert skip_message(second) == (
        f"2026-01-09: 1 live game(s), REST refresh already requested, next in {15 - int(NOW.timestamp()) % 15}s."
    )
    assert by_kind(later)["live"][0].run_key != by_kind(first)["live"][0].run_key
    # Markets ride along once per KALSHI_LIVE_MARKETS_REFRESH_SECONDS, not on every refresh.
    assert MARKETS_KEY in selection(by_kind(first)["live"][0])
    assert MARKETS_KEY not in selection(by_kind(later)["live"][0])


def test_live_window_edges(night, duck_url, store) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        # 61 s later the second game is 14m59s from tip-off: now live too.
        result = tick(
            duck_url,
            instance,
            cursor=DONE,
            now=NOW + timedelta(seconds=61),
        )
        assert scope(by_kind(result)["live"][0])["event_tickers"] == [LIVE, EARLY]

        # After the markets close the game is no longer live.
        store(
            markets=[
                market_frame(TODAY, "BOS", "NYK", NOW + timedelta(minutes=14), status="closed"),
                market_frame(
                    TODAY,
                    "LAL",
                    "GSW",
                    NOW + timedelta(minutes=16),
                    close_time=NOW + timedelta(minutes=30),
                ),
            ]
        )
        result = tick(
            duck_url,
            instance,
            cursor=DONE,
            now=NOW + timedelta(minutes=31),
        )
    kinds = by_kind(result)
    assert "live" not in kinds
    # Closed but unsettled games keep their date's markets refreshing, to see the settlement.
    (markets,) = kinds["markets"]
    assert markets.partition_key == TODAY.isoformat()
    assert markets.asset_selection == [MARKETS_KEY]


def test_incremental_start_is_the_oldest_newest_minute(night, duck_url, store) -> None:
    newest = int((NOW - timedelta(minutes=5)).timestamp())
    store(
        candles=[
            candle_frame(f"{LIVE}-BOS", TODAY, [newest - 120, newest - 60, newest]),
            candle_frame(f"{LIVE}-NYK", TODAY, [newest - 120, newest - 60]),
        ]
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance)
    # The slower market decides; its newest minute (possibly still open) is pulled again.
    assert scope(by_kind(result)["live"][0])["start_ts"] == newest - 60


def test_a_date_with_a_run_in_flight_gets_nothing_new(night, duck_url) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="kalshi_live_job",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={LIVE_TAG: "true", LIVE_DATE_TAG: TODAY.isoformat(), LIVE_KIND_TAG: "live"},
            )
        )
        cursor = DONE
        result = tick(duck_url, instance, cursor=cursor)
    assert not result.run_requests
    assert "already queued or running for 2026-01-09" in skip_message(result)


def test_skip_names_the_next_tip_off(store, duck_url) -> None:
    store(
        markets=[
            market_frame(TODAY, "BOS", "NYK", NOW + timedelta(hours=2)),
            market_frame(TODAY, "LAL", "GSW", NOW + timedelta(hours=3)),
            market_frame(TOMORROW, "SAS", "ATL", NOW + timedelta(hours=24)),
        ]
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance)
    assert not result.run_requests
    message = skip_message(result)
    assert f"Next tip-off: {LIVE} at 2026-01-10 02:00 UTC" in message
    assert "live in 1h45m" in message


def test_empty_warehouse_discovers_today_and_tomorrow(duck_url) -> None:
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance)
    requests = result.run_requests or []
    dates = sorted(r.partition_key or "" for r in requests)
    assert dates == [TODAY.isoformat(), TOMORROW.isoformat()]
    assert all(r.asset_selection == [MARKETS_KEY] for r in requests)


def test_websocket_mode_requests_one_stream_per_date_and_rest_reconciles(night, duck_url) -> None:
    settings = LiveSettings(mode="websocket")
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance, cursor=DONE, settings=settings)
        kinds = by_kind(result)
        assert "live" not in kinds
        (reconcile,) = kinds["reconcile"]
        assert (reconcile.run_key or "").startswith("reconcile:2026-01-09:")
        assert scope(reconcile)["event_tickers"] == [LIVE]
        # The stream polls the game state; the reconcile recomputes the minute probabilities.
        assert selection(reconcile) - {MARKETS_KEY} == {
            RAW_KEY,
            CANDLES_KEY,
            GAME_PROBABILITIES_KEY,
        }
        # The stream run comes from kalshi_pipeline.defs.stream.stream_run_request.
        (stream,) = kinds["stream"]
        assert stream.job_name == "kalshi_stream_job"
        assert stream.tags[STREAM_DATE_TAG] == TODAY.isoformat()
        assert LIVE_DATE_TAG not in stream.tags  # it must not block the date's REST reconciles
        assert (stream.run_key or "").startswith("stream:2026-01-09:")

        # While the stream run is in flight, no second one is requested; reconciles continue.
        instance.add_run(
            dg.DagsterRun(
                job_name="kalshi_stream_job",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags=stream.tags,
            )
        )
        later = tick(
            duck_url, instance, cursor=DONE, settings=settings, now=NOW + timedelta(minutes=6)
        )
    assert "stream" not in by_kind(later) and "reconcile" in by_kind(later)


def test_bad_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="KALSHI_LIVE_MODE='smoke'"):
        LiveResource(mode="smoke").settings(has_credentials=True)
    with pytest.raises(ValueError, match="KALSHI_LIVE_REFRESH_SECONDS"):
        resources_from_env({"KALSHI_LIVE_REFRESH_SECONDS": "soon"})


def test_decorated_sensor_on_the_real_clock(store, duck_url) -> None:
    now = datetime.now(UTC)
    from kalshi_pipeline.defs.partitions import GAME_TZ

    today = now.astimezone(GAME_TZ).date()
    store(
        markets=[
            market_frame(today, "BOS", "NYK", now + timedelta(minutes=5)),
            market_frame(today + timedelta(days=1), "SAS", "ATL", now + timedelta(hours=24)),
        ]
    )
    warehouse = WarehouseResource(url=duck_url)
    with dg.DagsterInstance.ephemeral() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={
                "warehouse": warehouse,
                "kalshi": KalshiApiResource(),
                "live": LiveResource(),
            },
        )
        result = live_games_sensor(context)
    assert isinstance(result, dg.SensorResult)
    (req,) = result.run_requests or []
    assert req.tags[LIVE_KIND_TAG] == "live"
    assert scope(req)["event_tickers"] == [event_ticker(today, "BOS", "NYK")]


def test_live_variables_act_in_a_sensor_tick(night, duck_url, monkeypatch) -> None:
    """KALSHI_LIVE_* reach the sensor through the `live` resource the code location builds."""
    env = {
        "KALSHI_LIVE_LEAD_MINUTES": "20",  # the game tipping off in 16 minutes is live too
        "KALSHI_LIVE_REFRESH_SECONDS": "7",
        "KALSHI_LIVE_MODE": "rest",
        "KALSHI_API_KEY_ID": "key-1",  # credentials would pick websocket; the explicit mode wins
        "KALSHI_PRIVATE_KEY": "unused",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    built = resources_from_env()
    with dg.build_resources({"kalshi": built["kalshi"], "live": built["live"]}) as resolved:
        settings = resolved.live.settings(has_credentials=resolved.kalshi.has_credentials)
    with dg.DagsterInstance.ephemeral() as instance:
        result = tick(duck_url, instance, settings=settings)
    (live,) = by_kind(result)["live"]
    assert scope(live)["event_tickers"] == sorted([LIVE, EARLY])
    assert live.run_key is not None and f":{int(NOW.timestamp()) // 7}:" in live.run_key
    assert "stream" not in by_kind(result)
