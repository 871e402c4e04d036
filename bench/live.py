"""Benchmark: how fresh are live games' candles under the real Dagster daemon?

Reproduces the acceptance setup: the simulator with live games (subprocess), a fresh DAGSTER_HOME holding the
project's dagster.yaml, `dagster-daemon run -w workspace.yaml`, `dagster sensor start live_games_sensor` and
KALSHI_WAREHOUSE_URL pointing at a fresh Postgres database. Then, for MINUTES, every SAMPLE seconds it
records per live game the staleness `now - newest stored 1-minute end_period_ts` (the simulator only emits
closed minutes, so the floor is 0-60 s depending on where in the minute the sample falls). At the end it
reads the live runs from the instance and reports launch overhead (created -> started, started -> finished)
and how often each game date was refreshed. p50/p95 everywhere; results in bench/results/live.json.

    .venv/bin/python bench/live.py [--minutes 4] [--sample-seconds 3] [--live-games 2] [--mode rest|websocket]

`--mode websocket` runs the same setup with KALSHI_LIVE_MODE=websocket and a throwaway key pair registered
with the simulator (Kalshi's WebSocket requires a signed handshake); results go to
bench/results/live_websocket.json. There the stream also stores the still-open minute, whose end_period_ts
lies ahead of the clock, so staleness can be negative. It also measures the live games' probability rows
and game states (`bench/live_probabilities.py`): each bid/ask change the bench itself sees on the exchange
-> the stream row reflecting it (target p95 <= 5 s), and the newest game state's age (target <= the poll
interval + 5 s). `--label` names the result file (live_websocket_<label>.json) so runs can be compared.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from common import create_database, drop_database, free_port
from live_probabilities import ChangeObserver, change_lags, sample_games

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS_DIR = ROOT / "bench" / "results"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 2)


def _summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _pct(values, 50),
        "p95": _pct(values, 95),
        "max": round(max(values), 2) if values else None,
        "mean": round(statistics.fmean(values), 2) if values else None,
    }


def _stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a process group this script started (the daemon's code server and run workers included)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _throwaway_key(home: Path, env: dict[str, str]) -> list[str]:
    """Make a key pair only this run's simulator trusts; set the client's env; return simulator args."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = home / "bench-key.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = home / "bench-key.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    env["KALSHI_API_KEY_ID"] = "bench"
    env["KALSHI_PRIVATE_KEY_PATH"] = str(private)
    return ["--auth-key", f"bench={public}"]


def sample_staleness(wh_url: str) -> list[dict[str, Any]]:
    """Return, per live game (by the warehouse), the newest stored candle and its staleness now."""
    from kalshi_pipeline.defs.live.planning import LiveSettings, games_from_frame
    from kalshi_pipeline.defs.live.sensor import watched_dates
    from kalshi_pipeline.warehouse import open_warehouse

    now = datetime.now(UTC)
    settings = LiveSettings()
    wh = open_warehouse(wh_url)
    try:
        games = [g for g in games_from_frame(wh.games(game_dates=watched_dates(now)))
                 if g.is_live(now, settings)]  # fmt: skip
        newest = wh.newest_candle_ts([t for g in games for t in g.market_tickers])
    finally:
        wh.close()
    out = []
    for game in games:
        stored = [newest[t] for t in game.market_tickers if t in newest]
        if not stored:
            out.append({"event_ticker": game.event_ticker, "newest": None, "staleness_s": None})
            continue
        latest = max(stored)
        out.append(
            {
                "event_ticker": game.event_ticker,
                "newest": latest.isoformat(),
                "staleness_s": round((now - latest).total_seconds(), 2),
            }
        )
    return out


def _live_tickers(wh_url: str, events: list[str]) -> list[str]:
    """The market tickers of some games, from the warehouse."""
    from kalshi_pipeline.warehouse import open_warehouse

    wh = open_warehouse(wh_url)
    try:
        df = wh.query_df("SELECT ticker FROM kalshi.markets WHERE event_ticker = ANY(%s)", [events])
    finally:
        wh.close()
    return sorted(df["ticker"])


def stream_slow_loops(home: Path) -> list[dict[str, Any]]:
    """The stream runs' 'stream loop was busy' warnings (when, and for how long), from the event log."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    out = []
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs(filters=dg.RunsFilter(job_name="kalshi_stream_job")):
            for entry in instance.all_logs(run.run_id):
                if "stream loop was busy" in (entry.user_message or ""):
                    out.append(
                        {
                            "at": datetime.fromtimestamp(entry.timestamp, UTC).isoformat(),
                            "message": entry.user_message,
                        }
                    )
    return out


def run_records(home: Path) -> list[dict[str, Any]]:
    """Read the live runs (tag kalshi/live=true) of the instance in `home`."""
    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(home)
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(filters=dg.RunsFilter(tags={"kalshi/live": "true"}))
        out = []
        for r in records:
            out.append(
                {
                    "run_id": r.dagster_run.run_id,
                    "kind": r.dagster_run.tags.get("kalshi/live_kind"),
                    "date": r.dagster_run.tags.get("kalshi/live_game_date"),
                    "status": r.dagster_run.status.value,
                    "created": r.create_timestamp.timestamp(),
                    "started": r.start_time,
                    "ended": r.end_time,
                }
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--sample-seconds", type=float, default=3.0)
    parser.add_argument("--live-games", type=int, default=2)
    parser.add_argument("--game-minutes", type=float, default=60.0)
    parser.add_argument("--warmup-timeout", type=float, default=180.0)
    parser.add_argument("--mode", choices=("rest", "websocket"), default="rest")
    parser.add_argument("--label", default="", help="suffix of the result file name")
    parser.add_argument("--port", type=int, default=0, help="simulator port (0 = any free port)")
    args = parser.parse_args()
    name = "live" if args.mode == "rest" else "live_websocket"
    results_path = RESULTS_DIR / (f"{name}_{args.label}.json" if args.label else f"{name}.json")
    load_before = os.getloadavg()

    port = args.port or free_port()
    wh_url = create_database("live_bench")
    home = Path(tempfile.mkdtemp(prefix="live_bench_home_"))
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "KALSHI_API_BASE_URL": f"http://127.0.0.1:{port}/trade-api/v2",
        "KALSHI_WAREHOUSE_URL": wh_url,
        "KALSHI_LIVE_MODE": args.mode,
    }
    logs = Path(tempfile.mkdtemp(prefix="live_bench_logs_"))
    simulator_auth: list[str] = []
    if args.mode == "websocket":
        simulator_auth = _throwaway_key(home, env)
    # Create the SQLite instance storage once, up front: the daemon and `dagster sensor start` creating it
    # at the same moment can leave two alembic heads in runs.db.
    import dagster as dg

    dg.DagsterInstance.from_config(str(home)).dispose()
    procs: list[subprocess.Popen[Any]] = []
    samples: list[dict[str, Any]] = []
    game_samples: list[dict[str, Any]] = []
    observer: ChangeObserver | None = None
    changes: list[dict[str, Any]] = []
    feed: dict[str, Any] = {}
    started_at = time.time()
    first_candle_s: float | None = None
    stack = contextlib.ExitStack()
    try:
        procs.append(
            subprocess.Popen(
                [str(BIN / "kalshi-pipeline"), "simulator", "--host", "127.0.0.1", "--port",
                 str(port), "--live-games", str(args.live_games), "--game-minutes",
                 str(args.game_minutes), *simulator_auth],
                cwd=ROOT, env=env, start_new_session=True,
                stdout=stack.enter_context(open(logs / "simulator.log", "w")),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        for _ in range(150):
            try:
                httpx.get(
                    f"{env['KALSHI_API_BASE_URL']}/exchange/status", timeout=1
                ).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        procs.append(
            subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
                cwd=ROOT, env=env, start_new_session=True,
                stdout=stack.enter_context(open(logs / "daemon.log", "w")),  # noqa: SIM115
                stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        start_cmd = subprocess.run(
            [str(BIN / "dagster"), "sensor", "start", "live_games_sensor", "-w", "workspace.yaml"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        print("dagster sensor start:", (start_cmd.stdout + start_cmd.stderr).strip()[-300:])

        # Warm-up: discovery and the first live pull.
        while time.time() - started_at < args.warmup_timeout:
            games = sample_staleness(wh_url)
            if games and all(g["newest"] for g in games):
                first_candle_s = round(time.time() - started_at, 1)
                break
            time.sleep(2)
        print(f"first candles of every live game after {first_candle_s}s")
        events = [g["event_ticker"] for g in sample_staleness(wh_url)]
        if args.mode == "websocket":
            observer = ChangeObserver(
                env["KALSHI_API_BASE_URL"], "bench", Path(env["KALSHI_PRIVATE_KEY_PATH"]),
                _live_tickers(wh_url, events),
            )  # fmt: skip
            observer.start()

        measure_from = time.time()
        end = time.time() + args.minutes * 60
        while time.time() < end:
            t = time.time()
            for game in sample_staleness(wh_url):
                samples.append({"t": round(t - started_at, 1), **game})
            last = [s["staleness_s"] for s in samples[-args.live_games :]]
            line = f"t={t - started_at:6.1f}s staleness={last}"
            if args.mode == "websocket":
                now_games = sample_games(wh_url, events)
                game_samples.extend({"t": round(t - started_at, 1), **g} for g in now_games)
                line += f" state_age={[g['state_age_s'] for g in now_games]}"
            print(line, flush=True)
            time.sleep(max(0.0, args.sample_seconds - (time.time() - t)))
        if observer is not None:
            changes = observer.stop()
            # Let the last changes' rows land before the warehouse is read.
            time.sleep(3)
            feed = change_lags(
                wh_url, [c for c in changes if c["received_ms"] >= measure_from * 1000],
                int(time.time() * 1000) - 3000, Decimal(os.environ.get("KALSHI_PROBABILITY_MAX_SPREAD", "0.10")),
            )  # fmt: skip
    finally:
        if observer is not None:
            observer.stop()
        for proc in reversed(procs):
            _stop(proc)
        stack.close()

    runs = run_records(home)
    slow_loops = stream_slow_loops(home) if args.mode == "websocket" else []
    drop_database(wh_url)

    staleness = [s["staleness_s"] for s in samples if s["staleness_s"] is not None]
    done = [r for r in runs if r["started"] and r["ended"]]
    queue = [r["started"] - r["created"] for r in done]
    execute = [r["ended"] - r["started"] for r in done]
    total = [r["ended"] - r["created"] for r in done]
    live_ends: dict[str, list[float]] = {}
    for r in sorted(done, key=lambda r: r["ended"]):
        if r["kind"] == "live" and r["status"] == "SUCCESS":
            live_ends.setdefault(r["date"], []).append(r["ended"])
    intervals = [b - a for ends in live_ends.values() for a, b in itertools.pairwise(ends)]
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/live.py", *sys.argv[1:]]),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "setup": {
            "live_games": args.live_games,
            "game_minutes": args.game_minutes,
            "minutes": args.minutes,
            "sample_seconds": args.sample_seconds,
            "warehouse": "postgres",
            "mode": args.mode,
            "dagster_yaml": "dagster.yaml (SQLite instance storage, QueuedRunCoordinator 1 s dequeue)",
            "sensor_start": start_cmd.returncode,
            "refresh_seconds": int(os.environ.get("KALSHI_LIVE_REFRESH_SECONDS", "15")),
        },
        "first_candles_after_s": first_candle_s,
        "staleness_s": _summary(staleness),
        "staleness_note": (
            "now - newest stored 1-minute end_period_ts per live game; REST pulls closed minutes only, so "
            "a perfectly fresh REST pipeline still reads 0-60 s (mean 30 s); the stream also stores the "
            "still-open minute, whose end lies ahead of the clock (negative values)"
        ),
        "note_on_stream_runs": (
            "in websocket mode the long-running stream run has no end of its own: the bench stops the "
            "daemon with SIGTERM, which ends it CANCELED (an operator's stop)"
        ),
        "runs": {
            "total": len(runs),
            "by_status": {
                s: sum(r["status"] == s for r in runs) for s in {r["status"] for r in runs}
            },
            "by_kind": {k: sum(r["kind"] == k for r in runs) for k in {r["kind"] for r in runs}},
        },
        "run_created_to_started_s": _summary(queue),
        "run_started_to_finished_s": _summary(execute),
        "run_created_to_finished_s": _summary(total),
        "live_refresh_interval_per_date_s": _summary(intervals),
        "samples": samples,
    }
    if args.mode == "websocket":
        poll_s = int(os.environ.get("KALSHI_LIVE_GAME_STATE_SECONDS", "10"))
        state_ages = [g["state_age_s"] for g in game_samples if g["state_age_s"] is not None]
        row_state = [g["row_state_age_s"] for g in game_samples if g["row_state_age_s"] is not None]
        change_to_row = feed.get("change_to_row_s", [])
        result["probabilities"] = {
            "game_state_seconds": poll_s,
            "change_to_row_s": _summary(change_to_row),
            "change_to_row_target_p95_s": 5.0,
            "exchange_to_bench_s": _summary(feed.get("exchange_to_bench_s", [])),
            "bench_to_row_s": _summary(feed.get("bench_to_row_s", [])),
            "exchange_to_stream_s": _summary(feed.get("exchange_to_stream_s", [])),
            "stream_receipt_to_row_s": _summary(feed.get("stream_receipt_to_row_s", [])),
            "changes_without_row": feed.get("changes_without_row"),
            "changes_with_unchanged_mid": feed.get("changes_with_unchanged_mid"),
            "changes_already_shown": feed.get("changes_already_shown"),
            "changes_observed": len(changes),
            "observer_error": observer.error if observer is not None else None,
            "row_lag_s": _summary(feed.get("row_lag_s", [])),
            "game_state_age_s": _summary(state_ages),
            "game_state_age_target_s": poll_s + 5.0,
            "row_state_age_s": _summary(row_state),
            "note": (
                "change_to_row: each best bid/ask change the bench saw on its own ticker subscription "
                "(mid moved) -> ingested_at of the first stream row of that market stamped at or after it; "
                "row_lag: ingested_at - minute_ts of every stream row; game_state_age: sampled now - newest "
                "live_data observation per live game; row_state_age: now - state_observed_at of the newest "
                "stream row (the row is only rewritten when prices or the state change)"
            ),
        }
        result["probabilities"]["stream_loop_busy"] = slow_loops
        result["game_samples"] = game_samples
        result["scored_changes"] = feed.get("changes", [])
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(home, ignore_errors=True)
    print(f"simulator and daemon logs: {logs}")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
