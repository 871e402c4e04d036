"""Benchmark the WebSocket stream path: message-to-row latency and memory over a slate of live games.

Starts the simulator with N live games (default 10), a throwaway PostgreSQL database (or DuckDB with
`--duckdb`), and runs the production stream loop (`defs/stream/runner.StreamRunner`: client -> candle
builder -> batched warehouse writer -> REST reconcile) for `--seconds`. Measures:

- receipt -> committed row latency (p50/p95/p99) of every ticker/trade message;
- exchange time (`ts_ms`) -> committed row latency (includes the simulator's 50 ms send cadence);
- candle freshness, sampled every second: per market, now minus the exchange time of the newest event in
  its stored candle; per game, now minus the newest write to `kalshi.candlesticks` and now minus the newest
  candle's period end (0 while the open minute is stored);
- resident memory (RSS) sampled every second, and the client's peak buffer depth.

Writes bench/results/stream.json.

    .venv/bin/python bench/stream.py --seconds 120 --games 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from common import temporary_database
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_pipeline.defs.stream.runner import StreamRunner, StreamSettings
from kalshi_pipeline.kalshi import KalshiClient, KalshiConfig
from kalshi_pipeline.kalshi.ws import KalshiWebSocket, TickerMessage, TradeMessage
from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread
from kalshi_pipeline.warehouse import open_warehouse

RESULTS = Path(__file__).parent / "results" / "stream.json"


def q(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {}
    data = sorted(values)
    cuts = statistics.quantiles(data, n=100, method="inclusive")
    return {
        "n": len(data),
        "p50": round(cuts[49], 2),
        "p95": round(cuts[94], 2),
        "p99": round(cuts[98], 2),
        "max": round(data[-1], 2),
    }


class MeasuringRunner(StreamRunner):
    """The production runner, also remembering each message's exchange time until its row is committed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.exchange_pending: list[int] = []
        self.exchange_latency: list[float] = []

    def _handle(self, item: Any) -> None:
        if isinstance(item, (TickerMessage, TradeMessage)) and item.ts_ms is not None:
            self.exchange_pending.append(item.ts_ms)
        super()._handle(item)

    async def _flush(self) -> bool:
        before = self.writer.flushes
        ok = await super()._flush()
        if self.writer.flushes > before:
            done = time.time() * 1000
            self.exchange_latency.extend(done - t for t in self.exchange_pending)
            self.exchange_pending.clear()
        return ok


async def sample(
    runner: MeasuringRunner, wh: Any, stop: asyncio.Event, out: dict[str, list[float]]
) -> None:
    proc = psutil.Process()
    while not stop.is_set():
        await asyncio.sleep(1.0)
        out["rss_mb"].append(proc.memory_info().rss / 2**20)
        if runner.ws is not None:
            out["queue_depth"].append(runner.ws.queue_depth())
        df = await asyncio.to_thread(
            wh.query_df,
            "SELECT ticker, max(last_event_ts) AS newest FROM kalshi.candlesticks_ws GROUP BY ticker",
        )
        now = datetime.now(UTC)
        for newest in df["newest"]:
            if newest is not None:
                out["candle_trail_s"].append((now - newest.to_pydatetime()).total_seconds())
        games = await asyncio.to_thread(
            wh.query_df,
            "SELECT event_ticker, max(ingested_at) AS written, max(end_period_ts) AS newest_end "
            "FROM kalshi.candlesticks GROUP BY event_ticker",
        )
        now = datetime.now(UTC)
        for row in games.itertuples():
            out["game_write_trail_s"].append((now - row.written.to_pydatetime()).total_seconds())
            out["game_period_trail_s"].append(
                max(0.0, (now - row.newest_end.to_pydatetime()).total_seconds())
            )


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    config = SimulatorConfig(
        port=0,
        seed=11,
        live_games=args.games,
        game_minutes=args.game_minutes,
        rate_limit="off",
        auth_keys={"bench": pem},
    )
    with serve_in_thread(config) as sim:
        world = sim.app.state.world
        games = [g for g in world.games if g.injected]
        client_config = KalshiConfig(
            base_url=sim.base_url, api_key_id="bench", private_key_pem=pem, rate_limit_tier="off"
        )
        wh = open_warehouse(url)
        wh.ensure_schema()
        settings = StreamSettings(
            max_seconds=args.seconds, reconcile_every_s=10.0, settle_poll_s=30.0
        )
        runner = MeasuringRunner(
            client_factory=lambda: KalshiClient(client_config),
            ws_factory=lambda **kw: KalshiWebSocket.from_config(
                client_config, url=sim.ws_url, **kw
            ),
            warehouse=wh,
            game_date=games[0].game_date,
            event_tickers=[g.event_ticker for g in games],
            settings=settings,
            run_id="bench",
        )
        samples: dict[str, list[float]] = {
            "rss_mb": [],
            "queue_depth": [],
            "candle_trail_s": [],
            "game_write_trail_s": [],
            "game_period_trail_s": [],
        }
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(runner, wh, stop, samples))
        rss_before = psutil.Process().memory_info().rss / 2**20
        summary = await runner.run()
        stop.set()
        await sampler
        counts = wh.query_df(
            "SELECT (SELECT count(*) FROM kalshi.ticks) AS ticks, (SELECT count(*) FROM kalshi.trades) AS trades,"
            " (SELECT count(*) FROM kalshi.candlesticks) AS candles,"
            " (SELECT count(*) FROM kalshi.stream_events) AS events"
        ).iloc[0]
        wh.close()
    rss = samples["rss_mb"]
    return {
        "what": "stream path: simulator WS -> client -> live candles -> batched warehouse writes",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "warehouse": url.split("://")[0],
        "live_games": len(games),
        "markets": summary.markets,
        "seconds": summary.seconds,
        "messages": summary.messages,
        "messages_per_s": round(summary.messages / max(summary.seconds, 1e-9), 2),
        "rows": {k: int(v) for k, v in counts.items()},
        "flushes": summary.flushes,
        "flush_delay_s": settings.flush_delay_s,
        "receipt_to_row_ms": q(summary.latency_ms),
        "exchange_to_row_ms": q(runner.exchange_latency),
        "candle_trail_s": q(samples["candle_trail_s"]),
        "game_write_trail_s": q(samples["game_write_trail_s"]),
        "game_period_trail_s": q(samples["game_period_trail_s"]),
        "rss_mb": {
            "before": round(rss_before, 1),
            "peak": round(max(rss), 1) if rss else None,
            "last": round(rss[-1], 1) if rss else None,
            "first_sample": round(rss[0], 1) if rss else None,
        },
        "client_queue_depth_max": runner.ws.stats.max_queue_depth if runner.ws else None,
        "reconciled_minutes": summary.reconciled_minutes,
        "compared_minutes": summary.compared_minutes,
        "mismatched_minutes": summary.mismatched_minutes,
        "stream_events": summary.events,
        "notes": (
            "Sampled every second. candle_trail_s: per market, now minus the exchange time of the newest "
            "event in its newest stored candle (includes the seconds a quiet market did not move). "
            "game_write_trail_s: per game, now minus the newest write to kalshi.candlesticks. "
            "game_period_trail_s: per game, now minus the newest candle's end_period_ts, 0 when the "
            "current (open) minute is stored."
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--games", type=int, default=10)
    parser.add_argument("--game-minutes", type=float, default=60.0)
    parser.add_argument(
        "--duckdb", action="store_true", help="use a temporary DuckDB file instead of Postgres"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.duckdb:
        result = asyncio.run(bench(args, f"duckdb:///{tempfile.mkdtemp()}/stream_bench.duckdb"))
    else:
        with temporary_database("kalshi_bench_stream") as url:
            result = asyncio.run(bench(args, url))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
