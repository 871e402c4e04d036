"""Game ticker parsing: dates, optional start time, variable-length team codes."""

from __future__ import annotations

from datetime import date

import pytest

from kalshi_pipeline.kalshi.errors import KalshiProtocolError, TickerError
from kalshi_pipeline.kalshi.tickers import (
    GameEvent,
    event_date_code,
    market_team,
    parse_game_event,
)


def test_nba_event_split_evenly() -> None:
    assert parse_game_event("KXNBAGAME-25DEC19SASATL") == GameEvent(
        series_ticker="KXNBAGAME",
        event_ticker="KXNBAGAME-25DEC19SASATL",
        game_date=date(2025, 12, 19),
        away="SAS",
        home="ATL",
        start_hhmm=None,
    )


def test_mlb_event_with_start_time() -> None:
    game = parse_game_event("KXMLBGAME-26JUN141920TEXBOS")
    assert (game.game_date, game.start_hhmm, game.away, game.home) == (
        date(2026, 6, 14),
        "1920",
        "TEX",
        "BOS",
    )


def test_variable_length_codes_use_market_suffixes() -> None:
    markets = ["KXNCAAMBGAME-26NOV02DUKEKU-KU", "KXNCAAMBGAME-26NOV02DUKEKU-DUKE"]
    game = parse_game_event("KXNCAAMBGAME-26NOV02DUKEKU", markets)
    assert (game.away, game.home) == ("DUKE", "KU")
    # Without market tickers a 6-letter pair is split 3+3, which is wrong here: that is why they are needed.
    assert parse_game_event("KXNCAAMBGAME-26NOV02DUKEKU").away == "DUK"
    # One market is enough to split; unrelated tickers are ignored.
    one = parse_game_event(
        "KXNCAAFGAME-26SEP19PURUCLA", ["KXNCAAFGAME-26SEP19PURUCLA-UCLA", "OTHER-X-PUR"]
    )
    assert (one.away, one.home) == ("PUR", "UCLA")
    soccer = parse_game_event(
        "KXEPLGAME-26JAN10ARSCHE",
        [
            "KXEPLGAME-26JAN10ARSCHE-ARS",
            "KXEPLGAME-26JAN10ARSCHE-TIE",
            "KXEPLGAME-26JAN10ARSCHE-CHE",
        ],
    )
    assert (soccer.away, soccer.home) == ("ARS", "CHE")


@pytest.mark.parametrize(
    "ticker",
    ["", "KXNBAGAME", "KXNBAGAME-25XYZ19SASATL", "KXNBAGAME-25FEB30SASATL", "KXNBAGAME-25DEC19",
     "kxnbagame-25dec19sasatl", "KXNBAGAME-25DEC19SASATL-ATL", "KXMLBGAME-26JUN142599TEXBOS",
     "KXNCAAMBGAME-26NOV02DUKEKUX"],
)  # fmt: skip
def test_bad_event_tickers_raise_ticker_error(ticker: str) -> None:
    with pytest.raises(TickerError) as err:
        parse_game_event(ticker)
    assert isinstance(err.value, ValueError) and isinstance(err.value, KalshiProtocolError)
    assert repr(ticker) in str(err.value)


def test_market_team() -> None:
    assert market_team("KXNBAGAME-25DEC19SASATL-ATL") == "ATL"
    assert market_team("KXNCAAMBGAME-26NOV02DUKEKU-DUKE") == "DUKE"
    for bad in ("KXNBAGAME-25DEC19SASATL", "ATL", "KXNBAGAME--ATL", "KXNBAGAME-25DEC19SASATL-atl"):
        with pytest.raises(TickerError):
            market_team(bad)


def test_event_date_code_round_trips_through_the_parser() -> None:
    for day in (date(2026, 11, 15), date(2025, 1, 2), date(2024, 12, 31)):
        code = event_date_code(day)
        assert len(code) == 7
        assert parse_game_event(f"KXNBAGAME-{code}LALBOS").game_date == day
