"""What `bench/live.py --mode websocket` adds for live games: how far probability rows and game states trail.

Three measurements, all against the same Postgres warehouse the daemon's runs write:

- **change -> row** (independent of the pipeline): the bench subscribes to the exchange's `ticker` channel
  itself and records every change of a market's best yes bid/ask that must move its price (both sides
  present, spread within the limit, so the mid changed). For each such change at exchange time E, the first
  `source = 'stream'` row of that market with `minute_ts >= E` is the row reflecting it; its `ingested_at - E`
  is how far the row trailed the exchange. The subscription's first message per market (a snapshot stamped
  with the quote's own, older time) is not a change; changes in the last seconds of the run are left out
  (their rows may land after the warehouse is read).
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
    """Score the observed changes against the stream rows (see the module docstring)."""
    from kalshi_pipeline.warehouse import open_warehouse

    wh = open_warehouse(wh_url)
    try:
        rows = wh.query_df(
            "SELECT ticker, minute_ts, ingested_at FROM kalshi.game_probabilities "
            "WHERE source = 'stream' ORDER BY ticker, minute_ts"
        )
    finally:
        wh.close()
    by_ticker = {
        t: (
            [int(ts.value // 1_000_000) for ts in g["minute_ts"]],
            [int(ts.value // 1_000_000) for ts in g["ingested_at"]],
        )
        for t, g in rows.groupby("ticker")
    }
    lags, missing = [], 0
    scored: list[dict[str, Any]] = []
    for change in changes:
        bid, ask = change["bid"], change["ask"]
        if change["ts_ms"] > until_ms - TAIL_S * 1000:
            continue
        if not (bid > 0 and ask < 1 and ask - bid <= max_spread):
            continue
        stamps, written = by_ticker.get(change["ticker"], ([], []))
        index = bisect.bisect_left(stamps, change["ts_ms"])
        if index == len(stamps):
            missing += 1
            continue
        lags.append((written[index] - change["ts_ms"]) / 1000)
        scored.append({"ticker": change["ticker"], "ts_ms": change["ts_ms"], "lag_s": lags[-1]})
    row_lags = (
        ((rows["ingested_at"] - rows["minute_ts"]).dt.total_seconds()).tolist() if len(rows) else []
    )
    return {
        "change_to_row_s": lags,
        "changes_without_row": missing,
        "row_lag_s": row_lags,
        "changes": scored,
    }
