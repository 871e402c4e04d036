"""The `kalshi-pipeline` console script: one entry point for the project's commands."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

# Each subcommand lives with the layer it belongs to; the module exposes
# `configure_parser(parser)` and `run(args) -> int` and is imported only when chosen.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulator": (
        "kalshi_pipeline.simulator.cli",
        "Run the local Kalshi exchange (REST + WebSocket).",
    ),
    "probe": ("kalshi_pipeline.kalshi.probe", "Measure a Kalshi WebSocket endpoint."),
    "demo": ("kalshi_pipeline.demo", "Materialize recent game dates offline and print a summary."),
    "chart": ("kalshi_pipeline.defs.games.chart_cli", "Write one game's win-probability chart."),
    "query": ("kalshi_pipeline.query", "Run one read query on the warehouse (both kinds alike)."),
    "bind-instance": (
        "kalshi_pipeline.instance_binding",
        "Check a Dagster instance records only this warehouse (one warehouse per DAGSTER_HOME).",
    ),
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
    """Run the probe with the client settings the code location would use (exit code 2 on bad ones)."""
    from kalshi_pipeline.defs.resources import kalshi_config_from_env
    from kalshi_pipeline.defs.settings import SettingError

    try:
        config = kalshi_config_from_env()
    except SettingError as exc:
        print(f"kalshi-pipeline probe: {exc}", file=sys.stderr)
        return 2
    return int(probe.run(args, config) or 0)


if __name__ == "__main__":
    sys.exit(main())
