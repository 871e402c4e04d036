"""What `bench/live.py --mode websocket` adds for live games: how far probability rows and game states trail.

Three measurements, all against the same Postgres warehouse the daemon's runs write:

- **change -> row** (independent of the pipeline): the bench subscribes to the exchange's `ticker` channel
  itself and records every change of a market's best yes bid/ask that must move its price (both sides
  present, spread within the limit, and the mid moved: a book that narrows or widens around the same mid
  leaves the newest row right, so no row is due). For each such change at exchange time E, the first
  `source = 'stream'` row of that market with `minute_ts >= E` is the row reflecting it; its `ingested_at - E`
  is how far the row trailed the exchange. The subscription's first message per market (a snapshot stamped
  with the quote's own, older time) is not a change; changes in the last seconds of the run are left out
  (their rows may land after the warehouse is read).
  The same change's exchange time -> the bench's own receipt (`exchange_to_bench`) shows how late the
  exchange itself delivered it (the simulator shares the loaded machine), and receipt -> row
  (`bench_to_row`) the pipeline's part.
- **row lag**: for every stream row, `ingested_at - minute_ts` (write time minus the exchange time of the
  newest change it reflects).
- **game state trail** (sampled): `now - observed_at` of each live game's newest `kalshi.game_states`
  observation (`source = 'live_data'`), and of the state beside its newest stream row.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

#: Changes this close to the end of the run are not scored (their row may not be read yet).
TAIL_S = 10.0


class ChangeObserver:
    """Subscribes to `ticker` for some markets in a thread and records every bid/ask change it sees."""

    def __init__(self, base_url: str, key_id: str, key_path: Path, tickers: list[str]) -> None:
        """Prepare an observer of `tickers` on the exchange at `base_url` (REST base; WS derived)."""
        self.base_url, self.key_id, self.key_path = base_url, key_id, key_path
        self.tickers = sorted(tickers)
        self.changes: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def stop(self) -> list[dict[str, Any]]:
        """Stop listening and return the changes (ticker, ts_ms, received_ms, bid, ask)."""
        self._stop.set()
        self._thread.join(timeout=30)
        return self.changes

    async def _run(self) -> None:
        from kalshi_pipeline.kalshi import KalshiConfig
        from kalshi_pipeline.kalshi.ws import KalshiWebSocket, TickerMessage

        config = KalshiConfig(
            base_url=self.base_url,
            api_key_id=self.key_id,
            private_key_pem=self.key_path.read_text(),
            rate_limit_tier="off",
        )
        last: dict[str, tuple[Any, Any]] = {}
        try:
            async with KalshiWebSocket.from_config(config) as ws:
                await ws.subscribe(["ticker"], self.tickers)
                while not self._stop.is_set():
                    try:
                        item = await ws.next_item(0.5)
                    except TimeoutError:
                        continue
                    if not isinstance(item, TickerMessage) or item.ts_ms is None:
                        continue
                    quote = (item.yes_bid, item.yes_ask)
                    if item.yes_bid is None or item.yes_ask is None:
                        continue
                    before = last.get(item.market_ticker)
                    last[item.market_ticker] = quote
                    # The first message per market is the subscription's snapshot, not a change.
                    if before is not None and before != quote:
                        self.changes.append(
                            {
                                "ticker": item.market_ticker,
                                "ts_ms": item.ts_ms,
                                "received_ms": item.received_ms,
                                "bid": item.yes_bid,
                                "ask": item.yes_ask,
                            }
                        )
        except Exception as exc:  # reported in the results, never hidden
            self.error = f"{type(exc).__name__}: {exc}"


def sample_games(wh_url: str, events: list[str]) -> list[dict[str, Any]]:
    """Per game now: its newest live-data observation and newest stream probability row (and its state)."""
    from kalshi_pipeline.warehouse import open_warehouse

    now = datetime.now(UTC)
    wh = open_warehouse(wh_url)
    try:
        states = wh.query_df(
            "SELECT event_ticker, max(observed_at) AS observed FROM kalshi.game_states "
            "WHERE source = 'live_data' AND event_ticker = ANY(%s) GROUP BY event_ticker",
            [events],
        )
        rows = wh.query_df(
            "SELECT DISTINCT ON (event_ticker) event_ticker, minute_ts, ingested_at, state_observed_at "
            "FROM kalshi.game_probabilities WHERE source = 'stream' AND event_ticker = ANY(%s) "
            "ORDER BY event_ticker, minute_ts DESC",
            [events],
        )
    finally:
        wh.close()
    observed = dict(zip(states["event_ticker"], states["observed"], strict=True))
    newest = {r["event_ticker"]: r for r in rows.to_dict("records")}

    def age(ts: Any) -> float | None:
        return None if ts is None or pd.isna(ts) else round((now - ts).total_seconds(), 2)

    out = []
    for event in events:
        row = newest.get(event)
        out.append(
            {
                "event_ticker": event,
                "state_age_s": age(observed.get(event)),
                "row_age_s": age(row["minute_ts"]) if row else None,
                "row_state_age_s": age(row["state_observed_at"]) if row else None,
            }
        )
    return out


def change_lags(
    wh_url: str, changes: list[dict[str, Any]], until_ms: int, max_spread: Decimal
) -> dict[str, Any]:
    """Score the observed changes against the stream rows (see the module docstring).

    A change is met by the first row of its market stamped at or after it; a change back to the price the
    market's newest row already shows is met when that row is in; and a change the market's next change
    undoes (back to the shown price) before any row is met by that next change (a quote that flickers away
    and back within the write delay gets no row of its own, and needs none).
    """
    from kalshi_pipeline.warehouse import open_warehouse

    wh = open_warehouse(wh_url)
    try:
        rows = wh.query_df(
            "SELECT ticker, minute_ts, ingested_at, method, raw_price FROM kalshi.game_probabilities "
            "WHERE source = 'stream' ORDER BY ticker, minute_ts"
        )
        ticks = wh.query_df("SELECT ticker, ts, received_at FROM kalshi.ticks")
    finally:
        wh.close()
    # When the stream itself received each ticker message (same ticker and exchange time).
    stream_got = {
        (t, int(ts.value // 1_000_000)): int(r.value // 1_000_000)
        for t, ts, r in zip(ticks["ticker"], ticks["ts"], ticks["received_at"], strict=True)
    }
    by_ticker = {
        t: (
            [int(ts.value // 1_000_000) for ts in g["minute_ts"]],
            [int(ts.value // 1_000_000) for ts in g["ingested_at"]],
            [r if m == "mid" else None for m, r in zip(g["method"], g["raw_price"], strict=True)],
        )
        for t, g in rows.groupby("ticker")
    }
    candidates: list[dict[str, Any]] = []
    unmoved = 0
    previous: dict[str, tuple[Decimal, Decimal]] = {}
    for change in changes:
        bid, ask = change["bid"], change["ask"]
        before = previous.get(change["ticker"])
        previous[change["ticker"]] = (bid, ask)
        if not (bid > 0 and ask < 1 and ask - bid <= max_spread):
            continue
        if before is not None and before[1] - before[0] <= max_spread and sum(before) == bid + ask:
            # The book moved around an unchanged mid: the price (and the newest row) stay right.
            unmoved += 1
            continue
        stamps, written, mids = by_ticker.get(change["ticker"], ([], [], []))
        index = bisect.bisect_left(stamps, change["ts_ms"])
        shown = mids[index - 1] if index > 0 else None
        candidates.append(
            {
                **change,
                "row_at_ms": written[index] if index < len(stamps) else None,
                "already_shown": shown is not None and shown == (bid + ask) / 2,
                "shown_at_ms": written[index - 1] if index > 0 else None,
            }
        )
    following: dict[int, dict[str, Any]] = {}
    last_of: dict[str, int] = {}
    for i, c in enumerate(candidates):
        if c["ticker"] in last_of:
            following[last_of[c["ticker"]]] = c
        last_of[c["ticker"]] = i
    lags, missing, shown_already = [], 0, 0
    scored: list[dict[str, Any]] = []
    delivered: list[float] = []
    to_stream: list[float] = []
    stream_to_row: list[float] = []
    after_delivery: list[float] = []
    for i, change in enumerate(candidates):
        if change["ts_ms"] > until_ms - TAIL_S * 1000:
            continue
        met_ms = change["row_at_ms"]
        if change["already_shown"]:
            # Met once the row showing its price is in (usually before the change itself).
            shown_already += 1
            met_ms = max(change["ts_ms"], change["shown_at_ms"])
        nxt = following.get(i)
        if nxt is not None and nxt["already_shown"]:
            back_ms = max(nxt["ts_ms"], nxt["shown_at_ms"])
            if met_ms is None or back_ms < met_ms:
                met_ms = back_ms
        if met_ms is None:
            missing += 1
            continue
        lags.append((met_ms - change["ts_ms"]) / 1000)
        delivered.append((change["received_ms"] - change["ts_ms"]) / 1000)
        after_delivery.append((met_ms - change["received_ms"]) / 1000)
        got = stream_got.get((change["ticker"], change["ts_ms"]))
        if got is not None:
            to_stream.append((got - change["ts_ms"]) / 1000)
            stream_to_row.append((met_ms - got) / 1000)
        scored.append(
            {
                "ticker": change["ticker"],
                "ts_ms": change["ts_ms"],
                "lag_s": lags[-1],
                "delivered_s": delivered[-1],
                "stream_received_s": None if got is None else (got - change["ts_ms"]) / 1000,
            }
        )
    row_lags = (
        ((rows["ingested_at"] - rows["minute_ts"]).dt.total_seconds()).tolist() if len(rows) else []
    )
    return {
        "change_to_row_s": lags,
        "changes_without_row": missing,
        "changes_with_unchanged_mid": unmoved,
        "changes_already_shown": shown_already,
        "row_lag_s": row_lags,
        "changes": scored,
        "exchange_to_bench_s": delivered,
        "bench_to_row_s": after_delivery,
        "exchange_to_stream_s": to_stream,
        "stream_receipt_to_row_s": stream_to_row,
    }
