"""The `kalshi-pipeline` console script: one entry point for the project's commands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kalshi_pipeline.kalshi.config import KalshiConfig

# Each subcommand lives with the layer it belongs to; the module exposes
# `configure_parser(parser)` and `run(args) -> int` and is imported only when chosen.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulator": (
        "kalshi_pipeline.simulator.cli",
        "Run the local Kalshi exchange (REST + WebSocket).",
    ),
    "probe": ("kalshi_pipeline.kalshi.probe", "Measure a Kalshi WebSocket endpoint."),
    "demo": ("kalshi_pipeline.demo", "Materialize recent game dates offline and print a summary."),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kalshi-pipeline", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    chosen = next(
        (a for a in (argv if argv is not None else sys.argv[1:]) if a in SUBCOMMANDS), None
    )
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            modules[name] = importlib.import_module(module_name)
            modules[name].configure_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "probe":
        return _run_probe(modules["probe"], args)
    return int(modules[args.command].run(args) or 0)


def _run_probe(probe: ModuleType, args: argparse.Namespace) -> int:
    """Run the probe with a `KalshiConfig` built from the environment (exit code 2 on bad settings)."""
    from kalshi_pipeline.kalshi.errors import KalshiConfigError

    try:
        config = _kalshi_config_from_env()
    except KalshiConfigError as exc:
        print(f"kalshi-pipeline probe: {exc}", file=sys.stderr)
        return 2
    return int(probe.run(args, config) or 0)


def _kalshi_config_from_env() -> KalshiConfig:
    """The probe's `KalshiConfig` from `KALSHI_*` variables (URLs, credentials, rate-limit tier).

    `KALSHI_API_BASE_URL` (a URL or `prod`/`demo`) wins over `KALSHI_ENV` (default production);
    `KALSHI_WS_URL` overrides the WebSocket URL derived from the base URL.
    """
    from kalshi_pipeline.kalshi.config import ENVIRONMENTS, KalshiConfig
    from kalshi_pipeline.kalshi.errors import KalshiConfigError

    def get(name: str) -> str | None:
        value = os.environ.get(name, "").strip()
        return value or None

    env_name = (get("KALSHI_ENV") or "prod").lower()
    if get("KALSHI_API_BASE_URL") is None and env_name not in ENVIRONMENTS:
        raise KalshiConfigError(
            f"KALSHI_ENV={env_name!r} is unknown; expected one of {', '.join(ENVIRONMENTS)}"
        )
    pem = get("KALSHI_PRIVATE_KEY")
    return KalshiConfig(
        base_url=get("KALSHI_API_BASE_URL") or ENVIRONMENTS[env_name],
        ws_url=get("KALSHI_WS_URL"),
        api_key_id=get("KALSHI_API_KEY_ID"),
        private_key_pem=pem,
        private_key_path=None if pem else get("KALSHI_PRIVATE_KEY_PATH"),
        rate_limit_tier=get("KALSHI_RATE_LIMIT_TIER") or "basic",
    ).validate()


if __name__ == "__main__":
    sys.exit(main())
