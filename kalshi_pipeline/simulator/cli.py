"""`kalshi-pipeline simulator`: run the local Kalshi exchange (REST and WebSocket on one port)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from kalshi_pipeline.simulator.config import RATE_LIMIT_TIERS, SimulatorConfig
from kalshi_pipeline.simulator.gateway.faults import parse_faults
from kalshi_pipeline.simulator.maintenance import DEFAULT_WEEKLY
from kalshi_pipeline.simulator.ws.faults import WsFaults


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to its subcommand parser."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="port to listen on; 0 picks a free one"
    )
    parser.add_argument("--seed", type=int, default=42, help="world seed (default 42)")
    parser.add_argument(
        "--now",
        default=None,
        metavar="TIME",
        help="pin the exchange clock's start, e.g. 2026-01-15T19:30:00-05:00 (no zone: UTC); "
        "live games are placed around it; default: the wall clock",
    )
    parser.add_argument(
        "--live-games", type=int, default=0, help="extra games guaranteed in progress at start"
    )
    parser.add_argument(
        "--game-minutes",
        type=float,
        default=None,
        help="length of every game in minutes (default: realistic, about 150)",
    )
    parser.add_argument(
        "--rate-limit",
        choices=["off", *RATE_LIMIT_TIERS],
        default="basic",
        help="token-bucket tier (default basic: 200 tokens/s, 10 per request)",
    )
    parser.add_argument(
        "--auth-key",
        action="append",
        default=[],
        metavar="KEY_ID=PUBLIC_KEY_PEM",
        help="accept signatures of this key (PEM text or a path to a PEM file); repeatable",
    )
    parser.add_argument(
        "--require-auth", action="store_true", help="reject unsigned requests with 401"
    )
    parser.add_argument(
        "--faults",
        default=None,
        metavar="SPEC",
        help="fault injection, e.g. '500=0.05,reset=0.01,latency=0.1:300,script=429;503;ok'",
    )
    parser.add_argument(
        "--ws-faults",
        default=None,
        metavar="SPEC",
        help="WebSocket faults and Ping interval, e.g. 'ping_interval=10,disconnect_after=500,drop_seq_after=50'",
    )
    parser.add_argument(
        "--maintenance",
        default=DEFAULT_WEEKLY,
        metavar="SPEC",
        help=f"weekly maintenance window in ET, e.g. '{DEFAULT_WEEKLY}' (Kalshi's), or 'off'",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """Build a `SimulatorConfig` from parsed arguments (ValueError with a clear message when invalid)."""
    keys: dict[str, str] = {}
    for entry in args.auth_key:
        key_id, sep, pem = entry.partition("=")
        if not sep or not key_id.strip() or not pem.strip():
            raise ValueError(f"--auth-key {entry[:40]!r} must look like KEY_ID=PEM_OR_PATH")
        keys[key_id.strip()] = pem
    now = _parse_now(args.now) if args.now else None
    parse_faults(args.faults)
    WsFaults.parse(args.ws_faults)
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        now=now,
        live_games=args.live_games,
        game_minutes=args.game_minutes,
        rate_limit=args.rate_limit,
        auth_keys=keys,
        require_auth=args.require_auth,
        faults=args.faults,
        ws_faults=args.ws_faults,
        maintenance=args.maintenance,
        log_level=args.log_level,
    )


def _parse_now(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--now {text!r} is not an ISO 8601 time; use e.g. 2026-01-15T19:30:00-05:00"
        ) from None


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; print the base URL once the socket is listening."""
    from kalshi_pipeline.simulator.auth import KeyRing
    from kalshi_pipeline.simulator.server import serve_forever

    try:
        config = config_from_args(args)
        KeyRing(config.auth_keys)
    except ValueError as exc:
        print(f"kalshi-pipeline simulator: {exc}", file=sys.stderr)
        return 2

    def announce(base_url: str, ws_url: str) -> None:
        print(f"Kalshi simulator REST: {base_url}", flush=True)
        print(f"Kalshi simulator WS:   {ws_url}", flush=True)

    try:
        serve_forever(config, announce)
    except OSError as exc:
        print(f"kalshi-pipeline simulator: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
