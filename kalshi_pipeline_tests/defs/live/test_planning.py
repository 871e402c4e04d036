"""`plan_tick` and its helpers, called directly: stored games and a pinned clock in, a plan out.

No Dagster, no warehouse, no socket: every decision of the live sensor is checked here in milliseconds
(`test_sensor.py` runs the same decisions through the sensor over a DuckDB warehouse). The clock is
always pinned: NOW is 19:00 ET on game date 2026-01-09.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from kalshi_pipeline.defs.live.planning import (
    CandleRequest,
    LiveSettings,
    MarketsRequest,
    StoredGame,
    StreamRequest,
    dump_cursor,
    games_from_frame,
    incremental_start,
    parse_cursor,
    plan_tick,
)
from kalshi_pipeline.defs.resources import KalshiApiResource, LiveResource
from kalshi_pipeline.defs.settings import SettingError

NOW = datetime(2026, 1, 10, 0, 0, tzinfo=UTC)  # 19:00 ET on game date 2026-01-09
EPOCH = int(NOW.timestamp())
TODAY = date(2026, 1, 9)
YESTERDAY = date(2026, 1, 8)
TOMORROW = date(2026, 1, 10)
SETTINGS = LiveSettings()


def game(
    away: str,
    home: str,
    start: datetime | None,
    *,
    game_date: date = TODAY,
    statuses: tuple[str, ...] = ("active",),
    close_time: datetime | None = None,
    settlement_ts: datetime | None = None,
) -> StoredGame:
    """A stored game of two markets (`{event}-{away}`, `{event}-{home}`)."""
    event = f"KXNBAGAME-{game_date.strftime('%y%b%d').upper()}{away}{home}"
    return StoredGame(
        event_ticker=event,
        game_date=game_date,
        scheduled_start=start,
        market_tickers=(f"{event}-{away}", f"{event}-{home}"),
        close_time=close_time,
        settlement_ts=settlement_ts,
        statuses=frozenset(statuses),
    )


#: Tomorrow's stored game: without one, every plan also asks to discover tomorrow's games.
NEXT = game("SAS", "ATL", NOW + timedelta(hours=24), game_date=TOMORROW)


def plan(
    games: list[StoredGame],
    *,
    newest: dict[str, int] | None = None,
    now: datetime = NOW,
    busy: tuple[date, ...] = (),
    cursor: str | None = None,
    settings: LiveSettings = SETTINGS,
    streaming: tuple[date, ...] = (),
):
    return plan_tick(
        games, newest or {}, now, busy, parse_cursor(cursor), settings, streaming_dates=streaming
    )


def test_a_game_is_live_from_tip_off_minus_the_lead_until_its_markets_close() -> None:
    start = NOW + timedelta(minutes=15)
    assert game("BOS", "NYK", start).is_live(NOW, SETTINGS)  # exactly at tip-off minus the lead
    assert not game("BOS", "NYK", start).is_live(NOW - timedelta(seconds=1), SETTINGS)
    assert not game("BOS", "NYK", None).is_live(NOW, SETTINGS)
    assert not game("BOS", "NYK", NOW, statuses=("closed",)).is_live(NOW, SETTINGS)
    assert not game("BOS", "NYK", NOW, settlement_ts=NOW).is_live(NOW, SETTINGS)
    assert not game("BOS", "NYK", NOW, close_time=NOW).is_live(NOW, SETTINGS)
    assert game("BOS", "NYK", NOW, close_time=NOW + timedelta(seconds=1)).is_live(NOW, SETTINGS)
    # A stale "active" status stops counting max_live after tip-off.
    stale = game("BOS", "NYK", NOW - SETTINGS.max_live)
    assert not stale.is_live(NOW, SETTINGS)
    assert stale.is_live(NOW - timedelta(seconds=1), SETTINGS)
    # A paused market (inactive) is still open; a game is closed only when all its markets are.
    assert game("BOS", "NYK", NOW, statuses=("inactive",)).is_live(NOW, SETTINGS)
    assert game("BOS", "NYK", NOW, statuses=("active", "closed")).is_live(NOW, SETTINGS)


def test_live_games_of_a_date_share_one_refresh_from_the_oldest_newest_minute() -> None:
    a = game("BOS", "NYK", NOW - timedelta(minutes=30))
    b = game("LAL", "GSW", NOW - timedelta(minutes=10))
    newest = {a.market_tickers[0]: EPOCH - 120, a.market_tickers[1]: EPOCH - 60}
    newest |= {t: EPOCH - 60 for t in b.market_tickers}
    result = plan([a, b, NEXT], newest=newest)
    (req,) = result.candles
    assert (req.kind, req.game_date, req.event_tickers) == (
        "live",
        TODAY,
        (a.event_ticker, b.event_ticker),
    )
    assert (
        req.start_ts == EPOCH - 120
    )  # the oldest of the games' newest stored minutes is re-pulled
    assert req.run_key.startswith(f"live:2026-01-09:{EPOCH // 15}:")
    assert result.live_games == [a, b] and not result.markets and not result.streams
    # A game with a market that has no stored candle starts at its live window.
    assert incremental_start([a, b], {a.market_tickers[0]: EPOCH}, SETTINGS) == int(
        (a.scheduled_start - SETTINGS.lead).timestamp()  # type: ignore[operator]  # start is set
    )
    assert incremental_start([game("MIA", "CHI", None)], {}, SETTINGS) is None


def test_run_keys_dedupe_ticks_of_one_refresh_bucket() -> None:
    live = [game("BOS", "NYK", NOW - timedelta(minutes=30))]
    bucket_start = NOW - timedelta(seconds=EPOCH % 15)
    first = plan(live, now=bucket_start).candles[0].run_key
    assert plan(live, now=bucket_start + timedelta(seconds=14)).candles[0].run_key == first
    assert plan(live, now=bucket_start + timedelta(seconds=15)).candles[0].run_key != first
    # Another set of games of the date is another refresh, even within the bucket.
    more = [*live, game("LAL", "GSW", NOW)]
    assert plan(more, now=bucket_start).candles[0].run_key != first


def test_settled_games_are_reconciled_once_each_oldest_first_before_the_live_refresh() -> None:
    early = game("DEN", "PHX", NOW - timedelta(hours=3), statuses=("finalized",))
    later = game("SAS", "ATL", NOW - timedelta(hours=2), settlement_ts=NOW - timedelta(minutes=30))
    live = game("BOS", "NYK", NOW - timedelta(minutes=5))
    games = [early, later, live]

    first = plan(games)
    (req,) = first.candles  # one final per tick and date; it takes the date's turn
    assert req == CandleRequest(
        kind="final",
        game_date=TODAY,
        event_tickers=(early.event_ticker,),
        start_ts=None,
        run_key=f"final:{early.event_ticker}",
    )
    assert first.cursor["final"] == {early.event_ticker: "2026-01-09"}
    second = plan(games, cursor=dump_cursor(first.cursor))
    assert [r.event_tickers for r in second.candles] == [(later.event_ticker,)]
    third = plan(games, cursor=dump_cursor(second.cursor))
    assert [r.kind for r in third.candles] == ["live"]
    assert third.candles[0].event_tickers == (live.event_ticker,)
    # A game that settled longer ago than the lookback is not reconciled again.
    old = game(
        "MIA",
        "CHI",
        NOW - timedelta(days=4),
        game_date=date(2026, 1, 5),
        settlement_ts=NOW - timedelta(days=3),
    )
    assert plan([old]).candles == []


def test_a_date_with_a_run_in_flight_gets_nothing_new() -> None:
    live = game("BOS", "NYK", NOW - timedelta(minutes=5))
    settled = game(
        "DEN", "PHX", NOW - timedelta(hours=26), game_date=YESTERDAY, statuses=("settled",)
    )
    result = plan([live, settled], busy=(TODAY,))
    assert [r.game_date for r in result.candles] == [YESTERDAY]
    assert result.busy_dates == [TODAY]
    idle = plan([live, NEXT], busy=(TODAY,))
    assert idle.empty
    assert (
        idle.skip_reason == "1 live game(s); a live run is already queued or running for 2026-01-09"
    )


def test_markets_ride_along_every_markets_refresh_seconds() -> None:
    live = game("BOS", "NYK", NOW - timedelta(minutes=5))
    due = plan([live, NEXT])
    assert due.candles[0].with_markets and due.cursor["markets"] == {"2026-01-09": EPOCH}
    recent = json.dumps({"markets": {"2026-01-09": EPOCH - 299}})
    assert not plan([live, NEXT], cursor=recent).candles[0].with_markets
    stale = json.dumps({"markets": {"2026-01-09": EPOCH - 300}})
    assert plan([live, NEXT], cursor=stale).candles[0].with_markets


def test_a_date_about_to_go_live_gets_a_markets_refresh() -> None:
    soon = game("BOS", "NYK", NOW + timedelta(minutes=40))  # live in 25 minutes
    later = game(
        "LAL", "GSW", NOW + timedelta(minutes=50), game_date=TOMORROW
    )  # live in 35 minutes
    result = plan([soon, later])
    assert result.markets == [
        MarketsRequest(game_date=TODAY, run_key=f"markets:2026-01-09:{EPOCH // 300}")
    ]
    assert result.candles == [] and result.live_games == []


def test_a_closed_game_waiting_for_its_settlement_keeps_its_date_watched() -> None:
    closed = game("MIA", "CHI", NOW - timedelta(hours=3), statuses=("closed",))
    assert plan([closed, NEXT]).markets == [
        MarketsRequest(game_date=TODAY, run_key=f"markets:2026-01-09:{EPOCH // 300}")
    ]
    long_ago = game("MIA", "CHI", NOW - timedelta(hours=13), statuses=("closed",))
    assert plan([long_ago, NEXT]).empty


@pytest.mark.parametrize(
    ("now", "today"),
    [
        (NOW, TODAY),  # 19:00 ET
        (
            datetime(2026, 1, 10, 3, 11, tzinfo=UTC),
            TODAY,
        ),  # 22:11 ET: the UTC date is already the 10th
        (datetime(2026, 1, 10, 5, 0, tzinfo=UTC), TOMORROW),  # 00:00 ET
    ],
)
def test_an_empty_warehouse_discovers_today_and_tomorrow_in_eastern_time(
    now: datetime, today: date
) -> None:
    result = plan([], now=now)
    hour = int(now.timestamp()) // 3600
    assert result.markets == [
        MarketsRequest(game_date=d, run_key=f"discover:{d.isoformat()}:{hour}")
        for d in (today, today + timedelta(days=1))
    ]


def test_websocket_mode_streams_a_date_once_and_reconciles_it_over_rest() -> None:
    settings = LiveSettings(mode="websocket")
    live = game("BOS", "NYK", NOW - timedelta(minutes=5))
    result = plan([live], settings=settings)
    assert result.streams == [
        StreamRequest(game_date=TODAY, event_tickers=(live.event_ticker,), bucket=EPOCH // 15)
    ]
    (req,) = result.candles
    assert req.kind == "reconcile" and req.run_key.startswith(
        f"reconcile:2026-01-09:{EPOCH // 300}:"
    )
    streaming = plan([live], settings=settings, streaming=(TODAY,))
    assert streaming.streams == [] and [r.kind for r in streaming.candles] == ["reconcile"]


def test_the_skip_reason_names_the_next_tip_off() -> None:
    upcoming = game("LAL", "GSW", NOW + timedelta(hours=2))
    result = plan([upcoming, NEXT])
    assert result.empty
    assert result.skip_reason == (
        f"No live games. Next tip-off: {upcoming.event_ticker} at 2026-01-10 02:00 UTC (live in 1h45m)."
    )
    assert plan([], now=NOW, cursor=None).skip_reason is None  # discovery requested instead


def test_the_cursor_survives_garbage_and_forgets_old_reconciles() -> None:
    empty = {"final": {}, "markets": {}, "sent": {}}
    for raw in (None, "", "not json", "[1, 2]", '{"final": 3, "markets": "x"}'):
        assert parse_cursor(raw) == empty
    cursor = {"markets": {"2026-01-09": 5}, "final": {"B": "2026-01-09", "A": "2026-01-01"}}
    assert dump_cursor(cursor) == (
        '{"final":{"A":"2026-01-01","B":"2026-01-09"},"markets":{"2026-01-09":5}}'
    )
    # Entries older than the lookback plus two days (here: before 2026-01-06) are dropped.
    kept = plan([], cursor=dump_cursor(cursor)).cursor
    assert kept["final"] == {"B": "2026-01-09"}


def test_games_from_frame_orders_by_tip_off_and_reads_statuses() -> None:
    frame = pd.DataFrame(
        [
            {
                "event_ticker": "E2",
                "game_date": "2026-01-09",
                "scheduled_start": pd.Timestamp("2026-01-10T01:00:00Z"),
                "close_time": None,
                "settlement_ts": None,
                "tickers": ["E2-B", "E2-A"],
                "statuses": ["Active", "CLOSED"],
                "all_settled": None,
            },
            {
                "event_ticker": "E1",
                "game_date": date(2026, 1, 9),
                "scheduled_start": pd.Timestamp("2026-01-10T00:00:00"),  # naive means UTC
                "close_time": pd.NaT,
                "settlement_ts": "2026-01-10T03:00:00Z",
                "tickers": ["E1-A"],
                "statuses": None,
                "all_settled": True,
            },
            {
                "event_ticker": "E0",
                "game_date": datetime(2026, 1, 9, 12, 0),
                "scheduled_start": None,
                "close_time": None,
                "settlement_ts": None,
                "tickers": ["E0-A"],
                "statuses": [],
                "all_settled": False,
            },
        ]
    )
    games = games_from_frame(frame)
    assert [g.event_ticker for g in games] == ["E1", "E2", "E0"]  # no start sorts last
    e1, e2, e0 = games
    assert e1.scheduled_start == NOW and e1.all_settled and e1.settled
    assert e1.settlement_ts == datetime(2026, 1, 10, 3, 0, tzinfo=UTC)
    assert e2.market_tickers == ("E2-A", "E2-B") and e2.statuses == {"active", "closed"}
    assert not e2.closed  # one market still trades
    assert e0.game_date == TODAY and e0.scheduled_start is None and not e0.all_settled
    with pytest.raises(ValueError, match=r"games frame lacks columns \['tickers'\]"):
        games_from_frame(frame.drop(columns=["tickers"]))


def test_the_live_mode_streams_only_with_credentials() -> None:
    """Moved with the mode decision from `LiveSettings.from_env` to the `live` resource."""
    assert not KalshiApiResource().has_credentials
    assert not KalshiApiResource(api_key_id="key-id").has_credentials
    assert KalshiApiResource(api_key_id="key-id", private_key_path="/keys/k.pem").has_credentials
    assert KalshiApiResource(api_key_id="k", private_key="PEM").has_credentials
    assert LiveResource().settings(has_credentials=False).mode == "rest"
    assert LiveResource().settings(has_credentials=True).mode == "websocket"
    assert LiveResource(mode="rest").settings(has_credentials=True).mode == "rest"
    fallback = LiveResource(mode="websocket").settings(has_credentials=False)
    assert fallback.mode == "rest"
    assert "KALSHI_API_KEY_ID" in fallback.note and "REST" in fallback.note
    explicit = LiveResource(mode="WebSocket").settings(has_credentials=True)
    assert (explicit.mode, explicit.note) == ("websocket", "")
    with pytest.raises(SettingError, match="KALSHI_LIVE_MODE='grpc' is not one of rest, websocket"):
        LiveResource(mode="grpc").settings(has_credentials=True)


def test_a_tick_never_requests_a_key_twice_and_says_why_between_refresh_buckets() -> None:
    live = game("BOS", "NYK", NOW - timedelta(minutes=30))
    bucket_start = NOW - timedelta(seconds=EPOCH % 15)
    first = plan([live, NEXT], now=bucket_start)
    (req,) = first.candles
    assert first.cursor["sent"] == {"2026-01-09": [req.run_key]}
    again = plan(
        [live, NEXT], now=bucket_start + timedelta(seconds=5), cursor=dump_cursor(first.cursor)
    )
    assert again.empty
    assert (
        again.skip_reason
        == "2026-01-09: 1 live game(s), REST refresh already requested, next in 10s."
    )
    # The cursor keeps the key while its bucket lasts, so a third tick in the bucket is quiet too.
    third = plan(
        [live, NEXT], now=bucket_start + timedelta(seconds=10), cursor=dump_cursor(again.cursor)
    )
    assert third.empty and third.cursor["sent"] == first.cursor["sent"]
    # The next bucket is a new key: requested once.
    nxt = plan(
        [live, NEXT], now=bucket_start + timedelta(seconds=15), cursor=dump_cursor(third.cursor)
    )
    assert [r.run_key for r in nxt.candles] != [req.run_key] and len(nxt.candles) == 1


def test_websocket_ticks_between_reconciles_say_what_streams_and_when_rest_is_next() -> None:
    settings = LiveSettings(mode="websocket")
    live = game("BOS", "NYK", NOW - timedelta(minutes=5))
    first = plan([live, NEXT], settings=settings)
    assert len(first.streams) == 1 and len(first.candles) == 1
    # Five seconds later the stream run is in flight and the reconcile bucket is unchanged.
    later = plan(
        [live, NEXT],
        now=NOW + timedelta(seconds=5),
        settings=settings,
        streaming=(TODAY,),
        cursor=dump_cursor(first.cursor),
    )
    assert later.empty
    due = 300 - (EPOCH + 5) % 300
    assert later.skip_reason == (
        f"2026-01-09: 1 live game(s), streaming over the WebSocket, REST reconcile already requested, "
        f"next in {due}s."
    )
    assert later.skip_reason is not None and "\n" not in later.skip_reason


def test_a_busy_date_keeps_its_sent_keys_for_when_its_run_ends() -> None:
    live = game("BOS", "NYK", NOW - timedelta(minutes=30))
    first = plan([live, NEXT])
    busy = plan([live, NEXT], busy=(TODAY,), cursor=dump_cursor(first.cursor))
    assert busy.cursor["sent"] == first.cursor["sent"]
    freed = plan([live, NEXT], cursor=dump_cursor(busy.cursor))
    assert freed.empty and freed.skip_reason is not None
