"""The stream rides out the exchange's maintenance window: one row names it, the run goes on, nothing is lost."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from kalshi_pipeline.defs.stream import runner as runner_module
from kalshi_pipeline.defs.stream.maintenance import ExchangePause, pause_row
from kalshi_pipeline.defs.stream.runner import StreamSettings
from kalshi_pipeline.warehouse import open_warehouse
from kalshi_pipeline_tests.defs.stream.test_stream_gaps import BUDGET_S, PEM, _rest_trades, _runner
from kalshi_pipeline_tests.simulated import live_tickers

#: When the window opens after the exchange starts: room for the stream to connect and stream first (a
#: busy machine takes seconds); the test says so plainly if it did not.
WINDOW_AFTER = timedelta(seconds=25)
WINDOW_LENGTH = timedelta(seconds=10)


@pytest.mark.slow
def test_a_maintenance_window_is_ridden_out_and_its_trades_repaired(
    start_simulator: Any, fresh_pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    start, end = now + WINDOW_AFTER, now + WINDOW_AFTER + WINDOW_LENGTH
    sim = start_simulator(auth_keys={"key-1": PEM}, now=now, maintenance_windows=((start, end),))
    end_ms = int(end.timestamp() * 1000)
    wh = open_warehouse(fresh_pg_url)
    wh.ensure_schema()

    def back_after_it() -> bool:
        s = runner.summary
        newest = runner.gaps.newest_trade_ms
        return (
            s.events.get("maintenance", 0) >= 1
            and s.events.get("connect", 0) >= 2
            and newest is not None
            and newest > end_ms  # the stream delivers trades again
            and not runner.gaps
            and runner.writer.buffered == 0
        )

    runner = _runner(
        sim,
        wh,
        StreamSettings(max_seconds=BUDGET_S, reconcile_every_s=1.0, final_delay_s=0.0),
        back_after_it,
    )
    with caplog.at_level(logging.INFO, logger=runner_module.__name__):
        summary = asyncio.run(runner.run())
    try:
        assert summary.stop_reason == "stop requested", summary.stop_reason
        events = wh.query_df(
            "SELECT kind, channel, detail, event_at, since_ts, until_ts, code "
            "FROM kalshi.stream_events ORDER BY event_at"
        )
        connects = events[events.kind == "connect"].event_at
        assert connects.min() < pd.Timestamp(start), "the stream connected before the window"
        # One row names the window; the stream reconnected once it was over.
        pauses = events[events.kind == "maintenance"]
        assert len(pauses) == 1
        row = pauses.iloc[0]
        assert row.detail.startswith("exchange maintenance (scheduled window")
        assert (row.since_ts, row.until_ts) == (pd.Timestamp(start), pd.Timestamp(end))
        # The reconnect's trade gap reaches back before the window, and was repaired from REST.
        disconnect_at = events[events.kind == "disconnect"].event_at.min()
        gap = events[
            (events.kind == "gap") & (events.channel == "trade") & (events.event_at > disconnect_at)
        ]
        assert len(gap) == 1 and gap.since_ts.iloc[0] <= pd.Timestamp(start)
        assert not runner.gaps

        # The pause's first refused handshake is logged and stored; the rest are one line and one row
        # once the stream is back (every error but the 503s has a row of its own).
        errors = events[events.kind == "error"]
        refused = summary.events["error"] - int((errors.code != 503).sum())
        assert refused >= 1, "the window refused the stream's handshakes"
        logged = [r.getMessage() for r in caplog.records]
        assert sum("HTTP 503" in m and "handshakes refused" not in m for m in logged) == 1
        sums = [m for m in logged if "handshakes refused (HTTP 503) during the pause" in m]
        assert sums == (
            [f"stream: {refused} handshakes refused (HTTP 503) during the pause"]
            if refused > 1
            else []
        )
        rows = errors[errors.code == 503]
        assert len(rows) == min(refused, 2)
        if refused > 1:
            assert rows.event_at.iloc[-1] >= connects.max(), "summed up once connected again"

        # No trade printed in the window; every trade printed after the stream subscribed, up to the
        # newest stored, is stored once.
        rest = asyncio.run(_rest_trades(sim, live_tickers(sim)))
        assert rest[(rest.ts >= pd.Timestamp(start)) & (rest.ts < pd.Timestamp(end))].empty
        stored = wh.query_df("SELECT trade_id, ts, source FROM kalshi.trades")
        assert stored.trade_id.is_unique and set(stored.trade_id) <= set(rest.trade_id)
        subscribed = wh.query_df("SELECT min(ts) AS ts FROM kalshi.ticks").ts.iloc[0]
        expected = rest[(rest.ts > subscribed) & (rest.ts <= stored.ts.max())]
        assert not set(expected.trade_id) - set(stored.trade_id)
        assert (stored.ts > pd.Timestamp(end)).any()
    finally:
        wh.close()


def test_a_pause_row_names_its_window_or_says_it_is_unscheduled() -> None:
    start, end = datetime(2026, 12, 3, 8, 0, tzinfo=UTC), datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    row = pause_row(ExchangePause(start, end, scheduled=True), "run-1", 3)
    assert (row["kind"], row["connection"], row["run_id"]) == ("maintenance", 3, "run-1")
    assert (row["since_ts"], row["until_ts"]) == (pd.Timestamp(start), pd.Timestamp(end))
    assert row["detail"].startswith(
        "exchange maintenance (scheduled window 2026-12-03 08:00:00Z to 2026-12-03 10:00:00Z)"
    )
    unscheduled = pause_row(ExchangePause(None, None, scheduled=False), "run-1", 3)
    assert unscheduled["since_ts"] is None and unscheduled["until_ts"] is None
    assert "unscheduled pause ? to unknown" in unscheduled["detail"]
