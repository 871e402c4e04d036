"""The named queries of the warehouse on both dialects: games, markets, candles, samples, stream vs REST."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from kalshi_pipeline.warehouse import Warehouse, WarehouseDataError
from kalshi_pipeline.warehouse.schema import (
    CANDLESTICKS,
    CANDLESTICKS_RAW,
    CANDLESTICKS_WS,
    MARKETS,
)
from kalshi_pipeline_tests.warehouse.builders import (
    EVENT,
    GAME_DATE,
    T0,
    candle_rows,
    market_rows,
    raw_candle_rows,
)

ATL = f"{EVENT}-ATL"
SAS = f"{EVENT}-SAS"
OTHER = "KXNBAGAME-25DEC20LALBOS"
NEXT_DATE = dt.date(2025, 12, 20)


def _utc(ts: int) -> pd.Timestamp:
    return pd.Timestamp(ts, unit="s", tz="UTC")


def test_games_groups_markets_per_event(wh: Warehouse) -> None:
    other = OTHER
    wh.upsert("markets", market_rows())
    wh.upsert(
        "markets",
        market_rows(
            other,
            game_date=dt.date(2025, 12, 20),
            status="finalized",
            settlement_ts=pd.Timestamp("2025-12-21 03:00", tz="UTC"),
            scheduled_start=pd.Timestamp("2025-12-21 00:30", tz="UTC"),
        ),
    )
    games = wh.games()
    assert list(games["event_ticker"]) == [EVENT, other]
    first = games.iloc[0]
    assert first["tickers"] == [ATL, SAS]
    assert first["statuses"] == ["active"]
    assert not first["all_settled"]
    assert first["game_date"] == GAME_DATE
    assert (first["away_team"], first["home_team"], first["n_markets"]) == ("SAS", "ATL", 2)
    assert first["scheduled_start"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert bool(games.iloc[1]["all_settled"])
    assert list(wh.games(game_dates=[dt.date(2025, 12, 20)])["event_ticker"]) == [other]
    assert wh.games(game_dates=[]).empty
    late = dt.datetime(2025, 12, 21, 3, 30, tzinfo=dt.UTC)
    assert list(wh.games(start=late)["event_ticker"]) == []  # both finished/closed before
    window = wh.games(
        start=dt.datetime(2025, 12, 20, 1, tzinfo=dt.UTC),
        end=dt.datetime(2025, 12, 20, 2, tzinfo=dt.UTC),
    )
    assert list(window["event_ticker"]) == [EVENT]


def test_newest_candle_ts_per_ticker(wh: Warehouse) -> None:
    assert wh.newest_candle_ts([ATL]) == {}
    wh.upsert("candlesticks", candle_rows(ATL, n=4))
    wh.upsert("candlesticks", candle_rows(SAS, n=2))
    wh.upsert("candlesticks", candle_rows(SAS, start_ts=T0 + 3600, n=1, period_interval=60))
    newest = wh.newest_candle_ts([ATL, SAS, "NOPE"])
    assert newest == {
        ATL: dt.datetime.fromtimestamp(T0 + 180, dt.UTC),
        SAS: dt.datetime.fromtimestamp(T0 + 60, dt.UTC),
    }
    assert newest[ATL].tzinfo is not None
    assert wh.newest_candle_ts([SAS], period_interval=60) == {
        SAS: dt.datetime.fromtimestamp(T0 + 3600, dt.UTC)
    }


def _rejected(ticker: str, start_ts: int, n: int) -> pd.DataFrame:
    rows = candle_rows(ticker, start_ts=start_ts, n=n)
    rows["reasons"] = "price_low > price_high"
    rows["payload"] = "{}"
    return rows


def test_candle_counts_and_partition_summary(wh: Warehouse) -> None:
    assert wh.candle_counts(GAME_DATE).empty
    wh.upsert("markets", market_rows())
    with wh.transaction() as tx:
        tx.upsert("candlesticks_raw", raw_candle_rows(ATL, T0, 5))
        closes = [None, Decimal("0.4100"), Decimal("0.4500"), Decimal("0.4700")]
        atl = candle_rows(ATL, n=4)
        atl["price_close"] = closes
        tx.upsert("candlesticks", atl)
        tx.upsert("candlesticks_rejected", _rejected(ATL, T0 + 240, 1))
    counts = wh.candle_counts(GAME_DATE)
    assert list(counts["ticker"]) == [ATL]
    row = counts.iloc[0]
    assert (row["raw"], row["candles"], row["rejected"], row["event_ticker"]) == (5, 4, 1, EVENT)
    assert row["first_ts"] == pd.Timestamp(T0, unit="s", tz="UTC")
    assert row["last_ts"] == pd.Timestamp(T0 + 180, unit="s", tz="UTC")
    assert wh.candle_counts(dt.date(2025, 12, 20)).empty

    summary = wh.partition_summary([GAME_DATE])
    assert list(summary["ticker"]) == [ATL, SAS]
    atl_row, sas_row = summary.iloc[0], summary.iloc[1]
    assert (atl_row["candles"], atl_row["rejected"]) == (4, 1)
    assert atl_row["first_price_close"] == Decimal("0.41")
    assert atl_row["last_price_close"] == Decimal("0.47")
    assert sas_row["candles"] == 0 and pd.isna(sas_row["last_price_close"])
    assert wh.partition_summary([]).empty


def test_markets_of_some_dates_as_stored(wh: Warehouse) -> None:
    empty = wh.markets([GAME_DATE])
    assert empty.empty and tuple(empty.columns) == MARKETS.column_names
    wh.upsert("markets", market_rows(OTHER, game_date=NEXT_DATE))
    wh.upsert("markets", market_rows(volume=Decimal("1.25")))
    got = wh.markets([GAME_DATE])
    assert tuple(got.columns) == MARKETS.column_names
    assert list(got["ticker"]) == [ATL, SAS]
    assert list(got["volume"]) == [Decimal("1.25"), Decimal("1.25")]
    assert str(got["scheduled_start"].dt.tz) == "UTC"
    both = wh.markets([NEXT_DATE, GAME_DATE])
    assert list(both["event_ticker"]) == [EVENT, EVENT, OTHER, OTHER]
    assert wh.markets([]).empty
    with pytest.raises(WarehouseDataError, match="list of game dates"):
        wh.markets(GAME_DATE)  # type: ignore[arg-type]  # the mistake under test


def test_candles_by_date_game_and_start(wh: Warehouse) -> None:
    with wh.transaction() as tx:
        tx.upsert("candlesticks_raw", raw_candle_rows(SAS, T0, 3))
        tx.upsert("candlesticks_raw", raw_candle_rows(ATL, T0, 3))
        other = raw_candle_rows(f"{OTHER}-LAL", T0, 2)
        other["event_ticker"] = OTHER
        tx.upsert("candlesticks_raw", other)
        nxt = candle_rows(f"{OTHER}-BOS", n=2, event_ticker=OTHER, game_date=NEXT_DATE)
        tx.upsert("candlesticks", nxt)
    raw = wh.candles("candlesticks_raw", [GAME_DATE])
    assert tuple(raw.columns) == CANDLESTICKS_RAW.column_names
    assert list(zip(raw["ticker"], raw["end_period_ts"], strict=True)) == [
        (ATL, _utc(T0)),
        (ATL, _utc(T0 + 60)),
        (ATL, _utc(T0 + 120)),
        (SAS, _utc(T0)),
        (SAS, _utc(T0 + 60)),
        (SAS, _utc(T0 + 120)),
        (f"{OTHER}-LAL", _utc(T0)),
        (f"{OTHER}-LAL", _utc(T0 + 60)),
    ]
    game = wh.candles("kalshi.candlesticks_raw", [GAME_DATE], event_tickers={EVENT}, since=T0 + 60)
    assert list(game["ticker"]) == [ATL, ATL, SAS, SAS]
    since = dt.datetime.fromtimestamp(T0 + 120, dt.UTC)
    assert len(wh.candles("candlesticks_raw", [GAME_DATE], since=since)) == 2
    assert wh.candles("candlesticks_raw", [GAME_DATE], event_tickers=[]).empty
    assert wh.candles("candlesticks_raw", []).empty
    picked = wh.candles(
        "candlesticks", [NEXT_DATE, GAME_DATE], columns=["ticker", "end_period_ts", "price_close"]
    )
    assert list(picked.columns) == ["ticker", "end_period_ts", "price_close"]
    assert list(picked["price_close"]) == [Decimal("0.5"), Decimal("0.5")]
    none = wh.candles("candlesticks", [GAME_DATE], columns=["ticker", "end_period_ts"])
    assert none.empty and list(none.columns) == ["ticker", "end_period_ts"]


def test_candles_refuse_other_tables_columns_and_naive_times(wh: Warehouse) -> None:
    with pytest.raises(WarehouseDataError, match="not a candle table"):
        wh.candles("markets", [GAME_DATE])
    with pytest.raises(WarehouseDataError, match="unknown warehouse table"):
        wh.candles("candlesticks; DROP TABLE kalshi.markets", [GAME_DATE])
    with pytest.raises(WarehouseDataError, match=r"no columns \['1; DROP'\]"):
        wh.candles("candlesticks", [GAME_DATE], columns=["ticker", "1; DROP"])
    with pytest.raises(WarehouseDataError, match="naive"):
        wh.candles("candlesticks", [GAME_DATE], since=dt.datetime(2025, 12, 20))


def test_sample_rows_of_dates_or_of_the_table(wh: Warehouse) -> None:
    empty = wh.sample_rows("candlesticks", [GAME_DATE])
    assert empty.empty and tuple(empty.columns) == CANDLESTICKS.column_names
    wh.upsert("candlesticks", candle_rows(ATL, n=5))
    wh.upsert(
        "candlesticks", candle_rows(f"{OTHER}-BOS", n=4, event_ticker=OTHER, game_date=NEXT_DATE)
    )
    assert len(wh.sample_rows("candlesticks", [GAME_DATE])) == 5
    assert len(wh.sample_rows("candlesticks", [GAME_DATE], limit=3)) == 3
    assert set(wh.sample_rows("candlesticks", [NEXT_DATE])["game_date"]) == {NEXT_DATE}
    assert len(wh.sample_rows("candlesticks", [GAME_DATE, NEXT_DATE])) == 9
    whole = wh.sample_rows("candlesticks", limit=1)
    assert len(whole) == 1 and tuple(whole.columns) == CANDLESTICKS.column_names
    assert wh.sample_rows("candlesticks", []).empty
    with pytest.raises(WarehouseDataError, match="no game_date"):
        wh.sample_rows("ticks", [GAME_DATE])
    with pytest.raises(WarehouseDataError, match="non-negative int"):
        wh.sample_rows("candlesticks", limit=-1)


def _ws_rows(ticker: str, start_ts: int, n: int, *, complete: bool = True) -> pd.DataFrame:
    rows = candle_rows(ticker, start_ts=start_ts, n=n).drop(columns=["source"])
    rows["complete"] = complete
    rows["last_event_ts"] = rows["end_period_ts"]
    return rows[[c for c in CANDLESTICKS_WS.column_names if c != "ingested_at"]]


def test_stream_rest_comparison_and_stream_served_candles(wh: Warehouse) -> None:
    # Minutes T0..T0+240 of ATL: built by the stream (the last one incomplete), then replaced by REST
    # one hour later (ingested_at after the minute closed), except T0+180 which is still the stream's.
    ingested = _utc(T0 + 3600)
    with wh.transaction() as tx:
        tx.upsert("candlesticks_ws", _ws_rows(ATL, T0, 4))
        tx.upsert("candlesticks_ws", _ws_rows(ATL, T0 + 240, 1, complete=False))
        rest = pd.concat(
            [
                candle_rows(ATL, T0, 1, source="live", ingested_at=ingested),
                # REST disagrees on T0+60, and on T0+120 (NULL against a value).
                candle_rows(ATL, T0 + 60, 1, close=Decimal("0.51"), ingested_at=ingested),
                candle_rows(ATL, T0 + 120, 1, price_low=None, ingested_at=ingested),
                candle_rows(ATL, T0 + 180, 1, source="ws", ingested_at=ingested),
                # It differs, but the stream's minute was incomplete.
                candle_rows(ATL, T0 + 240, 1, volume=Decimal("99"), ingested_at=ingested),
            ],
            ignore_index=True,
        )
        tx.upsert("candlesticks", rest)
        # A REST row written before its minute closed (a live pull of the open minute) is not compared.
        early = candle_rows(SAS, start_ts=T0, n=1, source="live", ingested_at=_utc(T0 - 30))
        tx.upsert("candlesticks", early)
        tx.upsert("candlesticks_ws", _ws_rows(SAS, T0, 1))
    since, until = _utc(T0).to_pydatetime(), _utc(T0 + 600).to_pydatetime()
    compared = wh.stream_rest_comparison(since, until)
    assert list(compared.columns) == ["ticker", "end_period_ts", "differs"]
    assert list(compared["end_period_ts"]) == [_utc(T0), _utc(T0 + 60), _utc(T0 + 120)]
    assert list(compared["differs"]) == [False, True, True]
    assert compared["differs"].dtype == bool
    narrow = wh.stream_rest_comparison(_utc(T0 + 60).to_pydatetime(), _utc(T0 + 60).to_pydatetime())
    assert list(narrow["differs"]) == [True]
    assert wh.stream_served_candles(since, until) == 1
    assert wh.stream_served_candles(since, _utc(T0 + 120).to_pydatetime()) == 0
    nothing = wh.stream_rest_comparison(until, until)
    assert nothing.empty and list(nothing.columns) == ["ticker", "end_period_ts", "differs"]


def test_delete_candles_of_one_source(wh: Warehouse) -> None:
    rows = candle_rows(ATL, n=4, source="live")
    rows.loc[1:2, "source"] = "ws"
    wh.upsert("candlesticks", rows)
    wh.upsert("candlesticks", candle_rows(SAS, n=2, source="ws"))
    with wh.transaction() as tx:
        assert tx.delete_candles("candlesticks", [ATL], T0, T0 + 180, source="ws") == 2
    left = wh.candles("candlesticks", [GAME_DATE], columns=["ticker", "end_period_ts", "source"])
    assert list(zip(left["ticker"], left["source"], strict=True)) == [
        (ATL, "live"),
        (ATL, "live"),
        (SAS, "ws"),
        (SAS, "ws"),
    ]


def _stamped(rows: pd.DataFrame, at: int) -> pd.DataFrame:
    return rows.assign(ingested_at=_utc(at))


def _raw_of(clean: pd.DataFrame) -> pd.DataFrame:
    """The raw rows whose validation gives `clean` (same keys, source and game)."""
    keys = [c for c in CANDLESTICKS_RAW.column_names if c in clean.columns and c != "payload"]
    return clean[keys].assign(payload="{}")


def test_clean_state_finds_dates_whose_clean_rows_are_the_validated_raw_rows(wh: Warehouse) -> None:
    # One game per date, each date a different case; every clean row is stamped after its raw row unless
    # the case says otherwise.
    dates = [GAME_DATE + dt.timedelta(days=k) for k in range(8)]
    games = [f"KXNBAGAME-G{k}" for k in range(8)]
    rows = [
        candle_rows(f"{game}-A", n=3, event_ticker=game, game_date=day)
        for game, day in zip(games, dates, strict=True)
    ]
    later = {
        # 0: current, with a clean row of another market after the newest raw end.
        0: candle_rows(f"{games[0]}-B", T0 + 180, 1, event_ticker=games[0], game_date=dates[0]),
        # 3: a clean row of another market at the newest raw end: it would be rewritten.
        3: candle_rows(f"{games[3]}-B", T0 + 120, 1, event_ticker=games[3], game_date=dates[3]),
    }
    with wh.transaction() as tx:
        for k, clean in enumerate(rows):
            tx.upsert("candlesticks_raw", _stamped(_raw_of(clean), 1000))
            if k == 1:  # a clean twin stamped before its raw row
                clean = _stamped(clean, 999)
            elif k == 2:  # a clean twin of another source
                clean = _stamped(clean.assign(source="ws"), 2000)
            elif k == 4:  # a raw row without a clean twin
                clean = _stamped(clean.iloc[:2], 2000)
            else:
                clean = _stamped(clean, 2000)
            tx.upsert("candlesticks", clean)
            if k in later:
                tx.upsert("candlesticks", _stamped(later[k], 2000))
        # 5: a rejected row; 6: clean rows only (nothing to validate); 7: current.
        rejected = candle_rows(f"{games[5]}-B", n=1, event_ticker=games[5], game_date=dates[5])
        tx.upsert(
            "candlesticks_rejected", rejected.assign(reasons="price_high < price_low", payload="{}")
        )
        tx.execute("DELETE FROM kalshi.candlesticks_raw WHERE game_date = %s", [dates[6]])
    state = wh.clean_state(dates, games)
    assert sorted(state) == [d for k, d in enumerate(dates) if k != 6]
    assert {k: state[d].current for k, d in enumerate(dates) if d in state} == {
        0: True,
        1: False,
        2: False,
        3: False,
        4: False,
        5: False,
        7: True,
    }
    assert {s.raw_rows for s in state.values()} == {3}
    assert {s.last_end for s in state.values()} == {T0 + 120}
    # From the newest minute on, date 4's last raw row is the one without a twin; date 3's other market
    # still ends at that minute. Only the named games count.
    late = wh.clean_state(dates, games[3:5], since=T0 + 120)
    assert {d: (s.raw_rows, s.current) for d, s in late.items()} == {
        dates[3]: (1, False),
        dates[4]: (1, False),
    }
    assert wh.clean_state(dates, games[4:5], since=T0 + 60)[dates[4]].current is False
    assert wh.clean_state(dates, games[4:5], since=T0 + 180) == {}
    # Repeated dates count once.
    assert wh.clean_state([dates[0], dates[0]], games[:1]) == {dates[0]: state[dates[0]]}


def test_first_traded_game_of_a_date(wh: Warehouse) -> None:
    other = "KXNBAGAME-25DEC19AAABBB"
    quiet = candle_rows(f"{other}-AAA", event_ticker=other, volume=Decimal("0"))
    late = candle_rows(f"{EVENT}-ATL", start_ts=T0 + 600)
    wh.upsert(CANDLESTICKS.name, pd.concat([quiet, late], ignore_index=True))
    # AAA sorts first but never traded; ATL's first trade is the first with volume.
    assert wh.first_traded_game(GAME_DATE) == EVENT
    assert wh.first_traded_game(GAME_DATE, event_tickers=[other]) is None
    assert wh.first_traded_game(GAME_DATE, since=T0 + 3600) is None
    assert wh.first_traded_game(GAME_DATE + dt.timedelta(days=1)) is None
    traded = candle_rows(f"{other}-AAA", event_ticker=other, start_ts=T0 + 60 * 20)
    wh.upsert(CANDLESTICKS.name, traded)
    assert wh.first_traded_game(GAME_DATE) == other
