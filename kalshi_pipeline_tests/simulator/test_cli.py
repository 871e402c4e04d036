"""The `kalshi-pipeline simulator` subcommand's options."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from kalshi_pipeline.simulator.cli import config_from_args, configure_parser
from kalshi_pipeline.simulator.world import World


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    configure_parser(parser)
    return parser.parse_args(argv)


def test_defaults_and_options() -> None:
    config = config_from_args(parse())
    assert (config.seed, config.rate_limit, config.game_minutes, config.live_games) == (
        42,
        "basic",
        None,
        0,
    )
    config = config_from_args(
        parse(
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--seed",
            "9",
            "--live-games",
            "3",
            "--game-minutes",
            "20",
            "--rate-limit",
            "premier",
            "--auth-key",
            "abc=/tmp/key.pem",
            "--require-auth",
            "--faults",
            "500=0.1,script=429;ok",
        )
    )
    assert config.auth_keys == {"abc": "/tmp/key.pem"}
    assert (config.port, config.seed, config.live_games, config.game_minutes) == (0, 9, 3, 20)
    assert config.require_auth and config.rate_limit == "premier"
    assert config_from_args(parse()).maintenance == "thu 03:00-05:00"  # Kalshi's weekly window
    assert config_from_args(parse("--maintenance", "off")).maintenance == "off"


def test_bad_options_are_explained() -> None:
    with pytest.raises(ValueError, match="KEY_ID=PEM_OR_PATH"):
        config_from_args(parse("--auth-key", "no-equals-sign"))
    with pytest.raises(ValueError, match="unknown fault"):
        config_from_args(parse("--faults", "teapot=1"))
    with pytest.raises(ValueError, match="live_games"):
        config_from_args(parse("--live-games", "99"))
    with pytest.raises(SystemExit):
        parse("--rate-limit", "platinum")
    with pytest.raises(ValueError, match="maintenance"):
        config_from_args(parse("--maintenance", "thursday mornings"))


def test_now_pins_the_clock_and_the_live_games() -> None:
    config = config_from_args(parse("--now", "2026-01-15T19:30:00-05:00", "--live-games", "2"))
    pinned = datetime(2026, 1, 16, 0, 30, tzinfo=UTC)
    assert config.now == pinned
    world = World(replace(config, schedule=False))  # only the injected games, to stay fast
    now_s = int(pinned.timestamp())
    assert world.clock.start_ms == now_s * 1000
    injected = [g for g in world.games if g.injected]
    assert len(injected) == 2
    assert all(g.tip_s < now_s < g.end_s and g.status_at(now_s) == "active" for g in injected)
    # A time without a zone is UTC; the wall clock is the default.
    assert config_from_args(parse("--now", "2026-01-16T00:30:00")).now == pinned
    assert config_from_args(parse()).now is None
    with pytest.raises(ValueError, match="--now 'tonight' is not an ISO 8601 time"):
        config_from_args(parse("--now", "tonight"))
