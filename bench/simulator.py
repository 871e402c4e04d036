"""Measure the simulated exchange: startup, listing pages, whole candle histories cold and warm, memory.

    .venv/bin/python bench/simulator.py [--games N] [--season-games N] [--baseline COMMIT] [--output PATH]

The first part times the listing endpoints in this process, as before. The second (`candle_histories`)
pulls whole 1-minute market histories the way a backfill does, each pull from a fresh simulator in its own
process (so "cold" means the markets' paths were never generated there), in each mode:

- `cache_on`: this tree's simulator as it ships (`CandleCache` on, 128 MiB);
- `cache_off`: the same with the cache turned off (`max_bytes = 0`: every answer computed from the path);
- `baseline` (with `--baseline COMMIT`): the simulator of another commit, exported with `git archive` into a
  temporary directory and put first on `PYTHONPATH` (its candle endpoints as that commit has them).

Every pull makes two passes, cold then warm, against the same pinned clock and seed in every mode: one
`GET /series/{s}/markets/{t}/candlesticks` per market of `--games` finished games (the naive sequential
pull), one `GET /markets/candlesticks` per game with both markets for another `--games` (the pipeline's
request), one `GET /historical/markets/{t}/candlesticks` per market of `--games / 2` archived games, and a
season-sized pull: each market of the newest `--season-games` finished games, live or archived, by its own
endpoint (more histories than 128 MiB holds as plain text). Every window is a market's whole life,
`[open_time, floor_to_minute(close_time)]`. Reported per pass: milliseconds per request (median, p90),
requests per second, and the simulator's CPU time per request (the process's CPU time minus the client
thread's): what a benchmark's pipeline loses to the simulator when both share the machine's cores. Ratios
compare the modes within the one run. Results go to `bench/results/simulator.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "simulator.json"
SEED = 42


def timed(client: httpx.Client, path: str, repeat: int = 5, **params: Any) -> dict[str, float]:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
    return {"first_ms": round(samples[0], 2), "median_ms": round(statistics.median(samples), 2)}


def listing_endpoints() -> dict[str, Any]:
    """Startup and the listing endpoints of this tree's simulator (wall clock, two live games)."""
    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    results: dict[str, Any] = {}
    start = time.perf_counter()
    config = SimulatorConfig(port=0, seed=SEED, live_games=2, rate_limit="off")
    with serve_in_thread(config) as sim, httpx.Client(base_url=sim.base_url, timeout=60) as client:
        results["startup_ms"] = round((time.perf_counter() - start) * 1000, 1)
        results["games"] = len(sim.app.world.games)
        results["markets_page_100"] = timed(client, "/markets", limit=100)
        results["markets_page_1000_cold_then_warm"] = timed(
            client, "/markets", limit=1000, repeat=3
        )
        results["events_page_200_nested"] = timed(
            client, "/events", limit=200, with_nested_markets="true"
        )
        results["milestones_page_500"] = timed(client, "/milestones", limit=500)
        settled = client.get("/markets", params={"status": "settled", "limit": 20}).json()[
            "markets"
        ]
        results["trades_page_1000"] = timed(
            client, "/markets/trades", ticker=settled[0]["ticker"], limit=1000
        )
        tickers = ",".join(m["ticker"] for m in settled[:20])
        now = int(time.time())
        results["batch_candles_20_markets_hourly_20d"] = timed(
            client,
            "/markets/candlesticks",
            market_tickers=tickers,
            start_ts=now - 20 * 86400,
            end_ts=now,
            period_interval=60,
        )
        results["historical_markets_page_1000"] = timed(
            client, "/historical/markets", limit=1000, repeat=3
        )
    results["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


# -- one mode's candle pulls, in a worker process ---------------------------------------------------


def _candle_endpoints(app: Any) -> Any:
    """The app's `CandleEndpoints` (the object behind the batch candle route)."""
    for route in app.routes:
        if getattr(route, "path", "").endswith("/markets/candlesticks"):
            return route.endpoint.__self__
    raise LookupError("the simulator has no /markets/candlesticks route")


def _pass(
    client: httpx.Client, requests: list[tuple[str, dict[str, Any]]]
) -> dict[str, float | int]:
    """Send `requests` one after another; time each, and the simulator's CPU time over the pass."""
    samples: list[float] = []
    candles = 0
    cpu0, own0, wall0 = time.process_time(), time.thread_time(), time.perf_counter()
    for path, params in requests:
        t0 = time.perf_counter()
        response = client.get(path, params=params)
        samples.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
        body = orjson.loads(response.content)
        markets = body.get("markets", [body])
        candles += sum(len(m["candlesticks"]) for m in markets)
    wall = time.perf_counter() - wall0
    server_cpu = (time.process_time() - cpu0) - (time.thread_time() - own0)
    return {
        "requests": len(requests),
        "candles": candles,
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(sorted(samples)[int(0.9 * (len(samples) - 1))], 2),
        "requests_per_s": round(len(requests) / wall, 1),
        "simulator_cpu_ms_per_request": round(server_cpu * 1000 / len(requests), 2),
    }


def _window(game: Any) -> dict[str, int]:
    return {"start_ts": game.open_s, "end_ts": game.close_s // 60 * 60, "period_interval": 1}


def _plans(world: Any, games: int, season_games: int) -> dict[str, list[tuple[str, Any]]]:
    """The requests of each pull: per endpoint over `games` games each, or one season-sized pull."""
    now_s = world.now_ms() // 1000
    done = [g for g in world.games if g.settled_s < now_s]
    if season_games:
        return {
            "season_pull": [
                (f"/historical/markets/{t}/candlesticks", _window(g))
                if world.is_archived(g, now_s)
                else (f"/series/{g.series.series_ticker}/markets/{t}/candlesticks", _window(g))
                for g in done[:season_games]
                for t in g.market_tickers
            ]
        }
    live = [g for g in done if not world.is_archived(g, now_s)]
    archived = [g for g in done if world.is_archived(g, now_s)]
    return {
        "single_market": [
            (f"/series/{g.series.series_ticker}/markets/{t}/candlesticks", _window(g))
            for g in live[:games]
            for t in g.market_tickers
        ],
        "batch_per_game": [
            ("/markets/candlesticks", {**_window(g), "market_tickers": ",".join(g.market_tickers)})
            for g in live[games : 2 * games]
        ],
        "historical_market": [
            (f"/historical/markets/{t}/candlesticks", _window(g))
            for g in archived[: games // 2]
            for t in g.market_tickers
        ],
    }


def worker(mode: str, now: str, games: int, season_games: int) -> dict[str, Any]:
    """Pull whole histories in `mode` (`cache_on`, `cache_off` or `baseline`), twice, and measure."""
    import kalshi_pipeline
    from kalshi_pipeline.simulator import SimulatorConfig, serve_in_thread

    config = SimulatorConfig(
        port=0, seed=SEED, live_games=2, rate_limit="off", now=datetime.fromisoformat(now)
    )
    out: dict[str, Any] = {"package": str(Path(kalshi_pipeline.__file__).parent)}
    with serve_in_thread(config) as sim, httpx.Client(base_url=sim.base_url, timeout=60) as client:
        cache = getattr(_candle_endpoints(sim.app), "cache", None)
        if mode == "cache_off":
            if cache is None:
                raise LookupError("this simulator has no candle cache to turn off")
            cache.max_bytes = 0
        for name, plan in _plans(sim.app.world, games, season_games).items():
            out[name] = {"cold": _pass(client, plan), "warm": _pass(client, plan)}
        if cache is not None and mode == "cache_on":
            packed = cache.packed_histories
            out["cache"] = {
                "histories": len(cache),
                "compressed": packed,
                "mb": round(cache.nbytes / 2**20, 1),
                "compressed_mb": round(cache.packed_nbytes / 2**20, 1),
                "kb_per_compressed": round(cache.packed_nbytes / max(packed, 1) / 1024, 1),
                "max_mb": round(cache.max_bytes / 2**20, 1),
            }
    out["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


# -- the parent: one worker per mode ---------------------------------------------------------------


def _run_worker(
    mode: str, now: str, games: int, season_games: int, pythonpath: str | None
) -> dict[str, Any]:
    """`worker(...)` in a fresh process (with `pythonpath` first on the path, if given)."""
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, __file__, "--worker", mode, "--now", now, "--games", str(games)]
    args += ["--season-games", str(season_games)]
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"the {mode} worker failed:\n{done.stderr}")
    return json.loads(done.stdout)


@contextlib.contextmanager
def _exported(commit: str) -> Iterator[str]:
    """A temporary directory holding `kalshi_pipeline/` as of `commit`."""
    with tempfile.TemporaryDirectory(prefix="sim_baseline_") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "kalshi_pipeline"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        yield tmp


PULLS = ("single_market", "batch_per_game", "historical_market", "season_pull")


def _ratio(results: dict[str, Any], slower: str, faster: str) -> dict[str, Any]:
    """Per pull and pass: `slower`'s milliseconds and simulator CPU per request over `faster`'s."""
    out: dict[str, Any] = {}
    for name in PULLS:
        for phase in ("cold", "warm"):
            a, b = results[slower][name][phase], results[faster][name][phase]
            out[f"{name}_{phase}"] = {
                "median_ms": round(a["median_ms"] / b["median_ms"], 2),
                "simulator_cpu": round(
                    a["simulator_cpu_ms_per_request"] / b["simulator_cpu_ms_per_request"], 2
                ),
            }
    return out


def candle_histories(games: int, season_games: int, baseline: str | None) -> dict[str, Any]:
    """Every mode's pulls, each in a fresh process against the same pinned clock, and their ratios."""
    now = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
    names = ["cache_off", "cache_on"] + (["baseline"] if baseline else [])
    modes: dict[str, dict[str, Any]] = {name: {} for name in names}
    with contextlib.ExitStack() as stack:
        trees: dict[str, str | None] = dict.fromkeys(names)
        if baseline:
            trees["baseline"] = stack.enter_context(_exported(baseline))
        for plan, count in (("endpoints", 0), ("season", season_games)):
            for name in names:  # interleaved, so load drifting on a shared machine hits all alike
                print(f"candle histories: {plan}, {name} ...", file=sys.stderr)
                got = _run_worker(name, now, games, count, trees[name])
                if name == "baseline":
                    del got["package"]  # a temporary directory, gone after the run
                for key in ("cache", "max_rss_mb"):
                    if key in got:
                        modes[name].setdefault(key, {})[plan] = got.pop(key)
                modes[name].update(got)
    if baseline:
        modes["baseline"]["commit"] = baseline
    ratios = {"cache_off_over_cache_on": _ratio(modes, "cache_off", "cache_on")}
    if baseline:
        ratios["baseline_over_cache_on"] = _ratio(modes, "baseline", "cache_on")
    return {
        "now": now,
        "games_per_endpoint": games,
        "season_pull_games": season_games,
        "modes": modes,
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure the simulated exchange.")
    parser.add_argument("--games", type=int, default=100, help="Finished games per endpoint.")
    parser.add_argument(
        "--season-games", type=int, default=1250, help="Finished games in the season-sized pull."
    )
    parser.add_argument("--baseline", help="A commit whose simulator to measure as `baseline`.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--now", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.now, args.games, args.season_games)))
        return
    results: dict[str, Any] = {
        "command": ".venv/bin/python bench/simulator.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    results.update(listing_endpoints())
    results["candle_histories"] = candle_histories(args.games, args.season_games, args.baseline)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
