"""What the live sensor should request, decided from stored games alone (no Dagster, no API calls).

A game is *live* from `lead` (15 minutes) before its scheduled tip-off until its markets close or settle,
and at most `max_live` (6 hours) after tip-off in case the stored status is stale. While a game is live the
sensor refreshes its candles; once all of its markets have settled it pulls the whole game once more.
Everything here is a pure function of the stored games, the newest stored candle minute and the clock, so
the window edges are tested without a daemon.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.partitions import GAME_TZ
from kalshi_pipeline.warehouse import SETTLED_STATUSES

#: Market statuses after which a market takes no more trades (Kalshi: active -> closed -> determined
#: -> settled/finalized; `inactive` is a paused market and still counts as open).
CLOSED_STATUSES = frozenset({"closed", "determined", "disputed", "amended", "settled", "finalized"})

LIVE_MODES = ("rest", "websocket")


@dataclass(frozen=True)
class LiveSettings:
    """The sensor's tunables (built by the `live` resource from its fields; defaults for tests)."""

    mode: str = "rest"
    #: Why the mode differs from what was asked for (logged by the sensor), or "".
    note: str = ""
    lead: timedelta = timedelta(minutes=15)
    max_live: timedelta = timedelta(hours=6)
    refresh_seconds: int = 15
    markets_refresh_seconds: int = 300
    reconcile_seconds: int = 300
    final_lookback: timedelta = timedelta(days=2)


@dataclass(frozen=True)
class StoredGame:
    """One game event as stored in `kalshi.markets` (its markets folded together)."""

    event_ticker: str
    game_date: date
    scheduled_start: datetime | None
    market_tickers: tuple[str, ...]
    close_time: datetime | None = None
    settlement_ts: datetime | None = None
    statuses: frozenset[str] = field(default_factory=frozenset)
    all_settled: bool = False

    @property
    def closed(self) -> bool:
        """True when every market has stopped trading by status (the stored status may lag)."""
        return self.all_settled or (bool(self.statuses) and self.statuses <= CLOSED_STATUSES)

    @property
    def settled(self) -> bool:
        """True when every market of the game is settled (or determined: its candles are final)."""
        return (
            self.all_settled
            or self.settlement_ts is not None
            or (bool(self.statuses) and self.statuses.issubset(SETTLED_STATUSES))
        )

    def live_from(self, settings: LiveSettings) -> datetime | None:
        """Return when the game becomes live (tip-off minus the lead), or None without a start."""
        return None if self.scheduled_start is None else self.scheduled_start - settings.lead

    def is_live(self, now: datetime, settings: LiveSettings) -> bool:
        """Return whether the game is live at `now`: past tip-off minus the lead, markets still open."""
        start = self.live_from(settings)
        if start is None or now < start or self.closed or self.settlement_ts is not None:
            return False
        if self.close_time is not None and now >= self.close_time:
            return False
        assert self.scheduled_start is not None
        return now < self.scheduled_start + settings.max_live


def _utc(value: Any) -> datetime | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)
    return ts.to_pydatetime()


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def games_from_frame(games: pd.DataFrame) -> list[StoredGame]:
    """Turn `Warehouse.games()` rows (one per event) into `StoredGame`s, ordered by tip-off then ticker."""
    required = {
        "event_ticker",
        "game_date",
        "scheduled_start",
        "close_time",
        "settlement_ts",
        "tickers",
    }
    missing = required - set(games.columns)
    if missing:
        raise ValueError(f"games frame lacks columns {sorted(missing)}")
    out: list[StoredGame] = []
    for row in games.to_dict("records"):
        statuses = row.get("statuses")
        statuses = statuses if isinstance(statuses, list | tuple | set | frozenset) else []
        all_settled = row.get("all_settled")
        out.append(
            StoredGame(
                event_ticker=str(row["event_ticker"]),
                game_date=_date(row["game_date"]),
                scheduled_start=_utc(row["scheduled_start"]),
                market_tickers=tuple(sorted(str(t) for t in row["tickers"])),
                close_time=_utc(row["close_time"]),
                settlement_ts=_utc(row["settlement_ts"]),
                statuses=frozenset(str(s).lower() for s in statuses),
                all_settled=bool(all_settled) if all_settled is not None else False,
            )
        )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(out, key=lambda g: (g.scheduled_start or far, g.event_ticker))


@dataclass(frozen=True)
class CandleRequest:
    """One candle refresh of some games of one date (a Dagster run of the live job)."""

    kind: str  # "live", "final" or "reconcile"
    game_date: date
    event_tickers: tuple[str, ...]
    start_ts: int | None
    run_key: str
    with_markets: bool = False


@dataclass(frozen=True)
class MarketsRequest:
    """A discovery-only refresh of one date's markets (start times, statuses, settlements)."""

    game_date: date
    run_key: str


@dataclass(frozen=True)
class StreamRequest:
    """A long-running WebSocket stream of one date's live games (websocket mode)."""

    game_date: date
    event_tickers: tuple[str, ...]
    bucket: int = 0

    @property
    def run_key(self) -> str:
        """The run key: one stream per date and refresh bucket (a crashed stream restarts next bucket)."""
        return f"stream:{self.game_date.isoformat()}:{self.bucket}"


@dataclass
class LivePlan:
    """The outcome of one sensor tick."""

    candles: list[CandleRequest] = field(default_factory=list)
    markets: list[MarketsRequest] = field(default_factory=list)
    streams: list[StreamRequest] = field(default_factory=list)
    live_games: list[StoredGame] = field(default_factory=list)
    busy_dates: list[date] = field(default_factory=list)
    skip_reason: str | None = None
    cursor: dict[str, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the tick requests nothing."""
        return not (self.candles or self.markets or self.streams)


def parse_cursor(raw: str | None) -> dict[str, Any]:
    """Parse the sensor cursor; garbage starts afresh.

    JSON `{"final": {event_ticker: game_date}, "markets": {game_date: unix_s}, "sent": {game_date:
    [run_key]}}`: the games already reconciled, when each date's markets were last refreshed by the
    sensor, and the run keys of each date's current buckets already requested (a tick never requests a
    key twice, so it can say why it requests nothing).
    """
    empty: dict[str, Any] = {"final": {}, "markets": {}, "sent": {}}
    if not raw:
        return empty
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return empty
    if not isinstance(data, dict):
        return empty
    final, markets, sent = data.get("final"), data.get("markets"), data.get("sent")
    return {
        "final": dict(final) if isinstance(final, dict) else {},
        "markets": dict(markets) if isinstance(markets, dict) else {},
        "sent": {
            str(d): [str(k) for k in keys]
            for d, keys in (sent.items() if isinstance(sent, dict) else ())
            if isinstance(keys, list)
        },
    }


def dump_cursor(cursor: Mapping[str, Any]) -> str:
    """Serialize the cursor deterministically."""
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))


def incremental_start(
    games: Sequence[StoredGame], newest: Mapping[str, int], settings: LiveSettings
) -> int | None:
    """Return the window start of a live refresh: the oldest 'newest stored minute' among the games.

    The newest stored 1-minute candle may still be the open minute, so the window starts at its
    `end_period_ts` (the candle assets keep candles ending at or after `start_ts`) and re-pulls it. A game with no stored candle starts at its live
    window (tip-off minus the lead); its pre-game minutes arrive with the final reconcile.
    """
    starts: list[int] = []
    for game in games:
        stored = [newest.get(t) for t in game.market_tickers]
        known = [ts for ts in stored if ts is not None]
        if known and len(known) == len(stored):
            starts.append(int(min(known)))
        else:
            begin = game.live_from(settings)
            if begin is None:
                return None
            starts.append(int(begin.timestamp()))
    return min(starts) if starts else None


def _tickers_digest(event_tickers: Iterable[str]) -> str:
    return hashlib.sha1(",".join(sorted(event_tickers)).encode()).hexdigest()[:8]


def plan_tick(
    games: Sequence[StoredGame],
    newest: Mapping[str, int],
    now: datetime,
    busy_dates: Iterable[date],
    cursor: Mapping[str, Any],
    settings: LiveSettings,
    streaming_dates: Iterable[date] = (),
) -> LivePlan:
    """Decide one sensor tick.

    - `games`: stored games of the dates the sensor watches; `newest`: newest stored 1-minute
      `end_period_ts` per market ticker (None when none is stored);
    - `busy_dates`: dates with a live-job run queued or in progress (nothing more is requested for them);
    - `cursor`: the parsed cursor (final reconciles and run keys already requested);
    - `streaming_dates` (websocket mode): dates whose stream run is already in flight.

    Run keys name each refresh: a live refresh is keyed by date and `refresh_seconds` time bucket, a
    final reconcile by event ticker, a markets refresh by date and `markets_refresh_seconds` bucket. The
    cursor keeps the keys a date's current buckets already requested, so a tick requests each key once
    and otherwise returns a skip reason saying what runs or streams and when the next refresh is due.
    """
    now = now.astimezone(UTC)
    epoch = int(now.timestamp())
    busy = set(busy_dates)
    streaming = set(streaming_dates)
    final_done: dict[str, str] = dict(cursor.get("final", {}))
    markets_last: dict[str, int] = dict(cursor.get("markets", {}))
    sent_before: dict[str, list[str]] = dict(cursor.get("sent", {}))
    plan = LivePlan()

    live = [g for g in games if g.is_live(now, settings)]
    plan.live_games = live
    live_by_date: dict[date, list[StoredGame]] = {}
    for game in live:
        live_by_date.setdefault(game.game_date, []).append(game)

    # Games whose markets all settled recently and that were never reconciled get one full pull.
    final_by_date: dict[date, list[StoredGame]] = {}
    for game in games:
        if game.event_ticker in final_done or not game.settled:
            continue
        settled_at = game.settlement_ts or game.close_time
        if settled_at is not None and now - settled_at > settings.final_lookback:
            continue
        final_by_date.setdefault(game.game_date, []).append(game)

    # Dates whose markets should be refreshed often: live games, games about to start, games closed but
    # not yet settled (the final reconcile waits for the settlement to be stored).
    watch_dates: set[date] = set(live_by_date)
    for game in games:
        start = game.live_from(settings)
        if start is not None and now < start <= now + timedelta(minutes=30):
            watch_dates.add(game.game_date)
        if (
            game.closed
            and not game.settled
            and game.scheduled_start is not None
            and now - game.scheduled_start <= settings.max_live + timedelta(hours=6)
        ):
            watch_dates.add(game.game_date)

    markets_bucket = epoch // settings.markets_refresh_seconds
    refresh_bucket = epoch // settings.refresh_seconds
    reconcile_bucket = epoch // settings.reconcile_seconds

    # Dates the sensor watches but has no stored game for get an hourly discovery, so a fresh deployment
    # (or a schedule change) finds tonight's games without waiting for the discovery schedule.
    today = now.astimezone(GAME_TZ).date()
    stored_dates = {g.game_date for g in games}
    discover = {d for d in (today, today + timedelta(days=1)) if d not in stored_dates}

    for game_date in sorted(set(live_by_date) | set(final_by_date) | watch_dates | discover):
        if game_date in busy:
            plan.busy_dates.append(game_date)
            continue
        iso = game_date.isoformat()
        # Markets ride along with a candle run every markets_refresh_seconds (one run per date at a time).
        markets_due = (
            game_date in watch_dates
            and epoch - int(markets_last.get(iso, 0)) >= settings.markets_refresh_seconds
        )
        markets_key = f"markets:{iso}:{markets_bucket}"
        finals = final_by_date.get(game_date, [])
        live_games = live_by_date.get(game_date, [])
        if finals:
            # One final reconcile per tick and date, oldest game first; the next tick takes the next one.
            game = finals[0]
            plan.candles.append(
                CandleRequest(
                    kind="final",
                    game_date=game_date,
                    event_tickers=(game.event_ticker,),
                    start_ts=None,
                    run_key=f"final:{game.event_ticker}",
                )
            )
            final_done[game.event_ticker] = iso
        elif live_games:
            tickers = tuple(g.event_ticker for g in live_games)
            if settings.mode == "websocket":
                # The stream keeps the date fresh; REST candle runs reconcile it every reconcile_seconds.
                kind, bucket = "reconcile", reconcile_bucket
                if game_date not in streaming:
                    plan.streams.append(
                        StreamRequest(
                            game_date=game_date, event_tickers=tickers, bucket=refresh_bucket
                        )
                    )
            else:
                kind, bucket = "live", refresh_bucket
            plan.candles.append(
                CandleRequest(
                    kind=kind,
                    game_date=game_date,
                    event_tickers=tickers,
                    start_ts=incremental_start(live_games, newest, settings),
                    run_key=f"{kind}:{iso}:{bucket}:{_tickers_digest(tickers)}",
                    with_markets=markets_due,
                )
            )
        elif markets_due:
            plan.markets.append(MarketsRequest(game_date=game_date, run_key=markets_key))
        elif game_date in discover:
            plan.markets.append(
                MarketsRequest(game_date=game_date, run_key=f"discover:{iso}:{epoch // 3600}")
            )

    sent = _drop_sent(plan, sent_before)
    for req in plan.candles:
        if req.with_markets:
            markets_last[req.game_date.isoformat()] = epoch
    for markets_req in plan.markets:
        markets_last[markets_req.game_date.isoformat()] = epoch

    # Forget reconciles of games older than the lookback plus a margin, so the cursor stays small.
    oldest = (now - settings.final_lookback - timedelta(days=2)).date()
    plan.cursor = {
        "final": {t: d for t, d in final_done.items() if date.fromisoformat(d) >= oldest},
        "markets": {d: ts for d, ts in markets_last.items() if date.fromisoformat(d) >= oldest},
        "sent": {
            d: keys
            for d, keys in {
                **{d.isoformat(): sent_before.get(d.isoformat(), []) for d in plan.busy_dates},
                **sent,
            }.items()
            if keys
        },
    }

    if plan.empty:
        plan.skip_reason = _skip_reason(
            games, live, plan.busy_dates, now, settings, sent, streaming
        )
    return plan


def _drop_sent(plan: LivePlan, sent_before: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Remove the plan's requests whose run key an earlier tick already requested.

    Returns each planned date's current run keys (requested now or before), the cursor's new `sent`.
    """
    keys: dict[str, list[str]] = {}
    for req in [*plan.streams, *plan.candles, *plan.markets]:
        keys.setdefault(req.game_date.isoformat(), []).append(req.run_key)

    def fresh(req: StreamRequest | CandleRequest | MarketsRequest) -> bool:
        return req.run_key not in sent_before.get(req.game_date.isoformat(), ())

    plan.streams = [r for r in plan.streams if fresh(r)]
    plan.candles = [r for r in plan.candles if fresh(r)]
    plan.markets = [r for r in plan.markets if fresh(r)]
    return keys


def _period(kind: str, settings: LiveSettings) -> int | None:
    """Return how often a run key of this kind changes (its bucket length), None for one-off keys."""
    return {
        "live": settings.refresh_seconds,
        "reconcile": settings.reconcile_seconds,
        "markets": settings.markets_refresh_seconds,
        "discover": 3600,
    }.get(kind)


def _waiting(
    game_date: str,
    keys: Sequence[str],
    live: Sequence[StoredGame],
    epoch: int,
    settings: LiveSettings,
    streaming: set[date],
) -> str:
    """Describe one date whose current refreshes were already requested (one clause, no newline)."""
    iso_live = [g for g in live if g.game_date.isoformat() == game_date]
    parts: list[str] = []
    if iso_live:
        parts.append(f"{len(iso_live)} live game(s)")
    if date.fromisoformat(game_date) in streaming:
        parts.append("streaming over the WebSocket")
    for kind in sorted({key.split(":", 1)[0] for key in keys}):
        if kind == "stream":
            if date.fromisoformat(game_date) not in streaming:
                parts.append("stream run requested")
            continue
        period = _period(kind, settings)
        if period is None:
            continue
        due = period - epoch % period
        label = {"live": "REST refresh", "reconcile": "REST reconcile"}.get(kind, f"{kind} refresh")
        parts.append(f"{label} already requested, next in {due}s")
    return f"{game_date}: " + ", ".join(parts)


def _skip_reason(
    games: Sequence[StoredGame],
    live: Sequence[StoredGame],
    busy: Sequence[date],
    now: datetime,
    settings: LiveSettings,
    sent: Mapping[str, list[str]] | None = None,
    streaming: Iterable[date] = (),
) -> str:
    clauses: list[str] = []
    if busy:
        dates = ", ".join(d.isoformat() for d in busy)
        clauses.append(f"a live run is already queued or running for {dates}")
    epoch = int(now.timestamp())
    for game_date, keys in sorted((sent or {}).items()):
        clauses.append(_waiting(game_date, keys, live, epoch, settings, set(streaming)))
    if live and busy and not sent:
        return f"{len(live)} live game(s); " + "; ".join(clauses)
    if clauses:
        return "; ".join(clauses) + "."
    if live:
        return f"{len(live)} live game(s); refreshed within the last {settings.refresh_seconds}s"
    upcoming = [
        g
        for g in games
        if g.scheduled_start is not None
        and g.scheduled_start - settings.lead > now
        and not g.closed
        and g.settlement_ts is None
    ]
    if not upcoming:
        return (
            "No live games and no upcoming game stored; discovery (kalshi/markets) adds new games."
        )
    nxt = min(upcoming, key=lambda g: (g.scheduled_start, g.event_ticker))
    assert nxt.scheduled_start is not None
    wait = nxt.scheduled_start - settings.lead - now
    minutes = int(wait.total_seconds() // 60)
    return (
        f"No live games. Next tip-off: {nxt.event_ticker} at "
        f"{nxt.scheduled_start.strftime('%Y-%m-%d %H:%M UTC')} (live in {minutes // 60}h{minutes % 60:02d}m)."
    )
