"""Game states and win probabilities within seconds, from inside the websocket stream run.

`GameFeed` rides along with `StreamRunner` (websocket mode):

- every `state_poll_s` (`KALSHI_LIVE_GAME_STATE_SECONDS`, default 10) it polls the live data of the stream's
  games with one `GET /live_data/batch` (through the run's client, so inside the shared rate budget) and
  stores the observations in `kalshi.game_states` (`source = 'live_data'`); milestone ids are looked up once;
- it keeps each market's newest best yes bid/ask (ticker messages) and newest trade, and within
  `write_delay_s` of a change that moves a game's prices, methods or state it writes one
  `kalshi.game_probabilities` row per market of that game with `source = 'stream'`.

A stream row follows the per-minute definition (`defs/games/probabilities.py`) with the stream's newest
quote in place of the latest candle's closing quote and the newest trade in place of the last candle trade:
the mid when both sides exist and the spread is at most the limit, else the last trade price, normalized
per game to sum to exactly 1 with the overround kept. Its `minute_ts` is the exchange time of the newest
change it reflects (millisecond precision, not on the minute), `quote_age_s` is whole seconds from the
price's own exchange time to `minute_ts`, and the game state beside it is the newest poll. Before the stream
has seen a trade of a market, `last` has nothing to fall back on (no REST seed), so the row has no price.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from kalshi_pipeline.defs.games.probabilities import OUTPUT_COLUMNS, market_price, normalize
from kalshi_pipeline.defs.games.states import (
    STATE_ROW_COLUMNS,
    LivePoll,
    find_milestones,
    poll_live_states,
)
from kalshi_pipeline.kalshi.client import KalshiClient
from kalshi_pipeline.kalshi.ws import TickerMessage, TradeMessage
from kalshi_pipeline.warehouse import Warehouse
from kalshi_pipeline.warehouse.games import (
    STREAM_SOURCE,
    known_milestones,
    upsert_game_states,
    upsert_stream_probabilities,
)

log = logging.getLogger(__name__)
#: Seconds between lookups of the milestone of a game that had none (a milestone may appear late).
MILESTONE_RETRY_S = 300.0
#: A stream loop turn longer than this is logged (the rows of changes that arrived meanwhile wait for it).
SLOW_LOOP_S = 2.0


@dataclass
class _Market:
    """What the feed knows of one market: its game and team, newest quote and newest trade."""

    event_ticker: str
    game_date: date
    team: str | None
    bid: Decimal | None = None
    ask: Decimal | None = None
    quote_ms: int | None = None
    trade: tuple[int, Decimal] | None = None


@dataclass
class GameFeedStats:
    """What the feed did during one stream run (reported with the stream's metadata)."""

    state_polls: int = 0
    state_rows: int = 0
    probability_rows: int = 0
    poll_errors: int = 0
    write_errors: int = 0
    #: Longest time between two turns of the stream loop (rows of changes meanwhile wait).
    max_loop_gap_s: float = 0.0


class GameFeed:
    """Polls the stream's games' live data and writes their probability rows within seconds of a change.

    Args:
        warehouse: The stream run's open warehouse (used only from the runner's loop, one call at a time).
        game_date: The stream's game date.
        event_tickers: The stream's games.
        max_spread: Widest spread whose mid prices a market (`KALSHI_PROBABILITY_MAX_SPREAD`).
        state_poll_s: Seconds between live-data polls (`KALSHI_LIVE_GAME_STATE_SECONDS`).
        write_delay_s: Longest a change waits before its rows are written.
    """

    def __init__(
        self,
        *,
        warehouse: Warehouse,
        game_date: date,
        event_tickers: Sequence[str],
        max_spread: Decimal,
        state_poll_s: float = 10.0,
        write_delay_s: float = 0.25,
        logger: Any = None,
    ) -> None:
        """Prepare the feed; it reads the stored markets on the runner's first `step`."""
        self.warehouse = warehouse
        self.game_date = game_date
        self.event_tickers = sorted(set(event_tickers))
        self.max_spread = max_spread
        self.state_poll_s = state_poll_s
        self.write_delay_s = write_delay_s
        self.log = logger or log
        self.stats = GameFeedStats()
        self.markets: dict[str, _Market] = {}
        self.states: dict[str, dict[str, Any]] = {}
        self.milestones: dict[str, str] | None = None
        self._dirty: dict[str, int] = {}
        self._dirty_since: float | None = None
        self._last_poll: float | None = None
        self._last_written: dict[str, tuple[Any, ...]] = {}
        self._last_at: dict[str, int] = {}
        self._pending_states: list[dict[str, Any]] = []
        self._milestones_at: float | None = None
        self._known: dict[str, str] = {}
        self._polling: asyncio.Task[LivePoll | None] | None = None
        self._last_step: float | None = None

    def observe(self, item: TickerMessage | TradeMessage) -> None:
        """Fold one ticker or trade message of a stream market into the feed (no I/O)."""
        market = self.markets.get(item.market_ticker)
        if market is None:
            return
        ts_ms = item.ts_ms if item.ts_ms is not None else item.received_ms
        if isinstance(item, TickerMessage):
            if item.yes_bid is None and item.yes_ask is None:
                return
            if market.quote_ms is not None and ts_ms < market.quote_ms:
                return  # an older quote arriving late (a resend) never replaces a newer one
            if item.yes_bid is not None:
                market.bid = item.yes_bid
            if item.yes_ask is not None:
                market.ask = item.yes_ask
            market.quote_ms = ts_ms
        else:
            if item.yes_price is None:
                return
            if market.trade is None or ts_ms >= market.trade[0]:
                market.trade = (ts_ms, item.yes_price)
        self._mark(market.event_ticker, ts_ms)

    def _mark(self, event_ticker: str, ts_ms: int) -> None:
        self._dirty[event_ticker] = max(self._dirty.get(event_ticker, ts_ms), ts_ms)
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()

    async def step(self, client: KalshiClient) -> None:
        """Do what is due: load the markets once, poll the live data, write the changed games' rows."""
        now = time.monotonic()
        if self._last_step is not None and now - self._last_step > SLOW_LOOP_S:
            gap = now - self._last_step
            self.stats.max_loop_gap_s = round(max(self.stats.max_loop_gap_s, gap), 3)
            self.log.warning(f"game feed: the stream loop was busy for {gap:.1f} s")
        self._last_step = now
        if not self.markets:
            if self._last_poll is not None and now - self._last_poll < self.state_poll_s:
                return
            self._last_poll = now
            await asyncio.to_thread(self.load_markets)
            return
        if self._polling is not None and self._polling.done():
            poll, self._polling = self._polling.result(), None
            if poll is not None:
                self._take(poll)
        due = self._last_poll is None or now - self._last_poll >= self.state_poll_s
        if self._polling is None and due:
            self._last_poll = now
            # Beside the loop, so a slow request never holds back the messages (and their rows).
            self._polling = asyncio.create_task(self._fetch(client))
        if self._dirty_since is not None and now - self._dirty_since >= self.write_delay_s:
            await self.flush()

    def load_markets(self) -> None:
        """Read the stream's markets (game, team) from `kalshi.markets`; `step` retries while none are found."""
        frame = self.warehouse.markets([self.game_date])
        frame = frame[frame["event_ticker"].isin(self.event_tickers)]
        for ticker, event, day, team in zip(
            frame["ticker"], frame["event_ticker"], frame["game_date"], frame["team"], strict=True
        ):
            self.markets[str(ticker)] = _Market(
                str(event), day, None if team is None or pd.isna(team) else str(team)
            )
        self._known = known_milestones(self.warehouse, sorted(set(frame["event_ticker"])))
        if not self.markets:
            self.log.warning(
                f"game feed: no stored markets for {', '.join(self.event_tickers)}; "
                "no probability rows until kalshi/markets has run for the date"
            )

    async def _fetch(self, client: KalshiClient) -> LivePoll | None:
        """One live-data poll over HTTP only (it runs beside the stream loop); None when it failed."""
        games = sorted({m.event_ticker for m in self.markets.values()})
        try:
            lacking = self.milestones is None or bool(set(games) - set(self.milestones))
            if lacking and (
                self._milestones_at is None
                or time.monotonic() - self._milestones_at >= MILESTONE_RETRY_S
            ):
                self._milestones_at = time.monotonic()
                self.milestones = await find_milestones(client, games, self._known)
            if not self.milestones:
                return None
            now = datetime.now(UTC)
            # Observations on the millisecond, the resolution of the rows they stamp.
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            dates = {e: self.game_date for e in games}
            return await poll_live_states(client, self.milestones, dates, now)
        except (
            Exception
        ) as exc:  # a REST outage must not end the stream; polled again next interval
            self.stats.poll_errors += 1
            self.log.warning(f"game feed: live-data poll failed, will retry: {exc}")
            return None

    def _take(self, poll: LivePoll) -> None:
        """Keep a finished poll's observations and mark the games whose state changed."""
        self.stats.state_polls += 1
        for row in poll.rows:
            event = row["event_ticker"]
            self._pending_states.append(row)
            previous = self.states.get(event)
            self.states[event] = row
            if previous is None or _state_key(previous) != _state_key(row):
                self._mark(event, int(row["observed_at"].timestamp() * 1000))
        if self._pending_states and self._dirty_since is None:
            self._dirty_since = time.monotonic()

    def game_rows(self, event_ticker: str, at_ms: int) -> list[dict[str, Any]]:
        """The `source = 'stream'` rows of one game as of `at_ms` (see the module docstring)."""
        tickers = sorted(t for t, m in self.markets.items() if m.event_ticker == event_ticker)
        prices = {}
        for t in tickers:
            m = self.markets[t]
            latest = (
                {"yes_bid_close": m.bid, "yes_ask_close": m.ask, "ts": m.quote_ms}
                if m.quote_ms is not None
                else None
            )
            prices[t] = market_price(latest, m.trade, at_ms, self.max_spread)
        raw = {t: p.raw for t, p in prices.items() if p.raw is not None}
        total = sum(raw.values(), Decimal(0))
        probs: dict[str, Decimal] = {}
        overround: Decimal | None = None
        if len(raw) == len(tickers) and total > 0:
            probs = normalize(raw)
            overround = total - 1
        state = self.states.get(event_ticker)
        rows = []
        for t in tickers:
            m, p = self.markets[t], prices[t]
            rows.append(
                {
                    "ticker": t,
                    "source": STREAM_SOURCE,
                    "minute_ts": pd.Timestamp(at_ms, unit="ms", tz="UTC"),
                    "event_ticker": event_ticker,
                    "game_date": m.game_date,
                    "team": m.team,
                    "method": p.method,
                    "raw_price": p.raw,
                    "probability": probs.get(t),
                    "overround": overround,
                    "quote_age_s": None if p.quote_age_s is None else p.quote_age_s // 1000,
                    "state_observed_at": state["observed_at"] if state else None,
                    "status": state["status"] if state else None,
                    "period": state["period"] if state else None,
                    "clock": state["clock"] if state else None,
                    "home_points": state["home_points"] if state else None,
                    "away_points": state["away_points"] if state else None,
                }
            )
        return rows

    async def flush(self) -> None:
        """Write the pending game states and the rows of games whose prices, methods or state changed."""
        dirty, self._dirty, self._dirty_since = self._dirty, {}, None
        rows: list[dict[str, Any]] = []
        written: dict[str, tuple[Any, ...]] = {}
        stamps: dict[str, int] = {}
        for event, changed_ms in sorted(dirty.items()):
            state = self.states.get(event)
            # A row reflects every message and poll up to its time, and a game's rows never go back.
            at_ms = max(
                changed_ms,
                self._last_at.get(event, changed_ms),
                int(state["observed_at"].timestamp() * 1000) if state else changed_ms,
            )
            game = self.game_rows(event, at_ms)
            key = tuple((r["ticker"], r["method"], r["raw_price"]) for r in game)
            key += (_state_key(state) if state else (),)
            if self._last_written.get(event) == key:
                continue
            written[event], stamps[event] = key, at_ms
            rows.extend(game)
        states = self._pending_states
        if not rows and not states:
            return
        probs = pd.DataFrame(rows, columns=list(OUTPUT_COLUMNS))
        probs["state_observed_at"] = pd.to_datetime(probs["state_observed_at"], utc=True)
        state_frame = pd.DataFrame(states, columns=list(STATE_ROW_COLUMNS))
        try:
            await asyncio.to_thread(self._write, probs, state_frame)
        except Exception as exc:  # the warehouse may be away; the next change writes fresh rows
            self.stats.write_errors += 1
            self.log.error(f"game feed: writing {len(rows)} probability rows failed: {exc}")
            for event, at_ms in dirty.items():
                self._mark(event, at_ms)
            return
        self._pending_states = []
        self._last_written.update(written)
        self._last_at.update(stamps)
        self.stats.probability_rows += len(rows)
        self.stats.state_rows += len(states)

    def _write(self, probs: pd.DataFrame, states: pd.DataFrame) -> None:
        with self.warehouse.transaction() as tx:
            upsert_game_states(tx, states)
            upsert_stream_probabilities(tx, probs)


def _state_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in ("status", "period", "clock", "home_points", "away_points"))
