"""Behaviour of the warehouse API on both dialects: schema, upserts, exactness, transactions, domain queries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_pipeline.warehouse import (
    MIGRATIONS,
    TABLES,
    Warehouse,
    WarehouseDataError,
    WarehouseQueryError,
    open_warehouse,
)
from kalshi_pipeline_tests.warehouse.builders import (
    EVENT,
    GAME_DATE,
    T0,
    candle_rows,
    market_rows,
)

ATL = f"{EVENT}-ATL"
SAS = f"{EVENT}-SAS"


def _candles(wh: Warehouse, table: str = "candlesticks") -> pd.DataFrame:
    return wh.query_df(f"SELECT * FROM kalshi.{table} ORDER BY ticker, end_period_ts")


def test_ensure_schema_is_idempotent_and_records_migrations(wh_url: str) -> None:
    wh = open_warehouse(wh_url)
    assert wh.applied_migrations() == []
    assert wh.ensure_schema() == [m.version for m in MIGRATIONS]
    assert wh.ensure_schema() == []
    assert open_warehouse(wh_url).ensure_schema() == []
    recorded = wh.query_df("SELECT version, description, applied_at FROM kalshi.schema_migrations")
    assert list(recorded["version"]) == [m.version for m in MIGRATIONS]
    assert str(recorded["applied_at"].dt.tz) == "UTC"
    assert wh.table_counts() == dict.fromkeys(TABLES, 0)


def test_tables_have_the_contract_columns(wh: Warehouse) -> None:
    for name, spec in TABLES.items():
        df = wh.query_df(f"SELECT * FROM kalshi.{name} WHERE 1 = 0")
        assert tuple(df.columns) == spec.column_names


def test_upsert_inserts_then_updates_without_duplicates(wh: Warehouse) -> None:
    with wh.transaction() as tx:
        assert tx.upsert("candlesticks", candle_rows(n=3)) == 3
    first = _candles(wh)
    changed = candle_rows(start_ts=T0 + 120, n=2, close=Decimal("0.6100"), source="live")
    with wh.transaction() as tx:
        assert tx.upsert("kalshi.candlesticks", changed) == 2
    after = _candles(wh)
    assert len(after) == 4
    assert list(after["price_close"]) == [
        Decimal("0.5"),
        Decimal("0.5"),
        Decimal("0.61"),
        Decimal("0.61"),
    ]
    assert list(after["source"]) == ["historical", "historical", "live", "live"]
    assert after["ingested_at"].iloc[2] >= first["ingested_at"].iloc[2]


def test_upsert_collapses_repeated_keys_to_the_last_row(wh: Warehouse) -> None:
    rows = pd.concat(
        [candle_rows(n=2), candle_rows(n=1, close=Decimal("0.7700"))], ignore_index=True
    )
    assert wh.upsert("candlesticks", rows) == 2
    assert list(_candles(wh)["price_close"]) == [Decimal("0.77"), Decimal("0.5")]


def test_decimals_round_trip_exactly_with_nulls(wh: Warehouse) -> None:
    values = [Decimal("0.9870"), Decimal("12.34"), Decimal("0.0005"), None, Decimal("0.000001")]
    counts = [
        Decimal("0.01"),
        Decimal("123456789012345678.123456"),
        Decimal("0"),
        Decimal("7.5"),
        3,
    ]
    rows = candle_rows(n=5)
    rows["price_mean"] = values
    rows["volume"] = counts
    rows["price_previous"] = ["0.1234", None, "1", "0.5", None]
    rows["yes_bid_close"] = None
    wh.upsert("candlesticks", rows)
    back = _candles(wh)
    assert list(back["price_mean"]) == values
    assert all(isinstance(v, Decimal) for v in back["price_mean"].dropna())
    assert list(back["volume"]) == [Decimal(str(c)) for c in counts]
    assert list(back["price_previous"]) == [
        Decimal("0.1234"),
        None,
        Decimal(1),
        Decimal("0.5"),
        None,
    ]
    assert back["yes_bid_close"].isna().all()


def test_timestamps_are_utc_and_dates_are_dates(wh: Warehouse) -> None:
    rows = candle_rows(n=2)
    rows["end_period_ts"] = [
        pd.Timestamp("2025-12-19 19:00", tz="America/New_York"),
        T0 + 60,  # Unix seconds are accepted too
    ]
    rows["end_period_ts"] = rows["end_period_ts"].astype(object)
    wh.upsert("candlesticks", rows)
    back = _candles(wh)
    assert str(back["end_period_ts"].dt.tz) == "UTC"
    assert list(back["end_period_ts"]) == [
        pd.Timestamp(T0, unit="s", tz="UTC"),
        pd.Timestamp(T0 + 60, unit="s", tz="UTC"),
    ]
    assert list(back["game_date"]) == [GAME_DATE, GAME_DATE]
    assert str(back["ingested_at"].dt.tz) == "UTC"


def test_payload_text_is_kept_byte_for_byte(wh: Warehouse) -> None:
    payload = (
        '{"end_period_ts":1766188800, "price": {"close_dollars": "0.5000"},\t"note":"a\\\\b é\\n"}'
    )
    rows = candle_rows(n=1).drop(
        columns=[
            c for c in candle_rows(n=1).columns if c.startswith(("price", "yes", "vol", "open_"))
        ]
    )
    rows["payload"] = [payload]
    wh.upsert("candlesticks_raw", rows)
    assert wh.query_df("SELECT payload FROM kalshi.candlesticks_raw")["payload"].iloc[0] == payload


def test_exception_mid_transaction_rolls_everything_back(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(n=3))
    wh.upsert("markets", market_rows())
    before = _candles(wh)
    with pytest.raises(RuntimeError, match="boom"), wh.transaction() as tx:
        tx.upsert("candlesticks", candle_rows(n=5, close=Decimal("0.9900")))
        tx.delete_candles("candlesticks", [ATL], T0, T0 + 60)
        tx.execute("UPDATE kalshi.markets SET status = %s", ["settled"])
        raise RuntimeError("boom")
    pd.testing.assert_frame_equal(_candles(wh), before)
    assert set(wh.query_df("SELECT status FROM kalshi.markets")["status"]) == {"active"}


def test_failed_statement_rolls_back_and_says_why(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(n=2))
    with pytest.raises(WarehouseQueryError, match="no_such_table"), wh.transaction() as tx:
        tx.delete_candles("candlesticks", None, T0, T0 + 600)
        tx.execute("SELECT * FROM kalshi.no_such_table")
    assert len(_candles(wh)) == 2


def test_delete_candles_window_is_inclusive(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(ATL, n=6))
    wh.upsert("candlesticks", candle_rows(SAS, n=6))
    wh.upsert("candlesticks", candle_rows(ATL, n=2, period_interval=60))
    with wh.transaction() as tx:
        assert tx.delete_candles("candlesticks", [ATL], T0 + 60, T0 + 180, period_interval=1) == 3
        assert tx.delete_candles("candlesticks", [], T0, T0 + 600) == 0
        assert tx.delete_candles("candlesticks", [ATL], T0 + 61, T0 + 119) == 0
    left = _candles(wh)
    atl = left[(left["ticker"] == ATL) & (left["period_interval"] == 1)]
    assert [int(ts.timestamp()) - T0 for ts in atl["end_period_ts"]] == [0, 240, 300]
    assert (left["ticker"] == SAS).sum() == 6
    assert ((left["ticker"] == ATL) & (left["period_interval"] == 60)).sum() == 2
    start = dt.datetime.fromtimestamp(T0, dt.UTC)
    with wh.transaction() as tx:
        assert tx.delete_candles("candlesticks", None, start, T0 + 300) == 9


def test_delete_then_upsert_same_keys_in_one_transaction(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(n=4))
    with wh.transaction() as tx:
        tx.delete_candles("candlesticks", [ATL], T0, T0 + 180)
        tx.upsert("candlesticks", candle_rows(n=2, close=Decimal("0.4200")))
    assert list(_candles(wh)["price_close"]) == [Decimal("0.42"), Decimal("0.42")]


def test_query_df_parameters_positional_named_and_lists(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(ATL, n=3))
    wh.upsert("candlesticks", candle_rows(SAS, n=3))
    positional = wh.query_df(
        "SELECT count(*) AS n FROM kalshi.candlesticks WHERE ticker = ANY(%s) AND end_period_ts > %s",
        [[ATL], dt.datetime.fromtimestamp(T0, dt.UTC)],
    )
    assert int(positional["n"].iloc[0]) == 2
    named = wh.query_df(
        "SELECT ticker FROM kalshi.candlesticks WHERE ticker LIKE %(p)s || '%%' AND game_date = %(d)s "
        "GROUP BY ticker ORDER BY ticker",
        {"p": "KXNBAGAME", "d": GAME_DATE},
    )
    assert list(named["ticker"]) == [ATL, SAS]
    with wh.transaction() as tx:
        inside = tx.query_df("SELECT sum(volume) AS v FROM kalshi.candlesticks")
    assert inside["v"].iloc[0] == Decimal("60.00")


def test_upsert_rejects_unknown_tables_and_wrong_columns(wh: Warehouse) -> None:
    rows = candle_rows(n=1)
    with pytest.raises(WarehouseDataError, match="unknown warehouse table"):
        wh.upsert("candlesticks; DROP TABLE kalshi.markets", rows)
    with pytest.raises(
        WarehouseDataError, match=r"missing columns \['price_close'\].*unknown columns \['bogus'\]"
    ):
        wh.upsert("candlesticks", rows.drop(columns=["price_close"]).assign(bogus=1))
    with pytest.raises(WarehouseDataError, match="price_close is float"):
        wh.upsert("candlesticks", rows.assign(price_close=[0.5]))
    with pytest.raises(WarehouseDataError, match="more than 6 fractional digits"):
        wh.upsert(
            "candlesticks", rows.assign(price_close=pd.Series([Decimal("0.1234567")], dtype=object))
        )
    with pytest.raises(WarehouseDataError, match="naive"):
        wh.upsert("candlesticks", rows.assign(end_period_ts=[pd.Timestamp("2025-12-20 00:00")]))
    with pytest.raises(WarehouseDataError, match="NOT NULL"):
        wh.upsert("candlesticks", rows.assign(event_ticker=pd.Series([None], dtype=object)))
    assert wh.table_counts()["candlesticks"] == 0
    assert wh.upsert("candlesticks", rows.iloc[0:0]) == 0


def test_reads_during_a_transaction_see_committed_data_only(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(n=2))
    with wh.transaction() as tx:
        tx.upsert("candlesticks", candle_rows(start_ts=T0 + 600, n=3))
        assert len(tx.query_df("SELECT ticker FROM kalshi.candlesticks")) == 5
        assert wh.table_counts()["candlesticks"] == 2
        assert wh.newest_candle_ts([ATL]) == {ATL: dt.datetime.fromtimestamp(T0 + 60, dt.UTC)}
    assert wh.table_counts()["candlesticks"] == 5


def test_query_df_types_match_across_dialects(wh: Warehouse) -> None:
    rows = candle_rows(n=3)
    rows["price_low"] = pd.Series([Decimal("0.0001"), None, Decimal("0.5")], dtype=object)
    rows["game_date"] = [GAME_DATE, None, GAME_DATE]
    wh.upsert("candlesticks", rows)
    df = wh.query_df(
        "SELECT end_period_ts, game_date, price_low, period_interval, "
        "CASE WHEN price_low IS NULL THEN NULL ELSE period_interval END AS maybe_int, "
        "ticker, price_low IS NULL AS no_low "
        "FROM kalshi.candlesticks ORDER BY end_period_ts"
    )
    assert str(df["end_period_ts"].dtype) == "datetime64[us, UTC]"
    assert list(df["game_date"]) == [GAME_DATE, None, GAME_DATE]
    assert list(df["price_low"]) == [Decimal("0.0001"), None, Decimal("0.5")]
    assert str(df["period_interval"].dtype) == "int64"
    assert str(df["maybe_int"].dtype) == "Int64" and df["maybe_int"].isna().sum() == 1
    assert list(df["no_low"]) == [False, True, False]
    totals = wh.query_df(
        "SELECT sum(period_interval) AS s, count(*) AS n, sum(volume) AS v FROM kalshi.candlesticks"
    )
    assert (int(totals["s"].iloc[0]), int(totals["n"].iloc[0])) == (3, 3)
    assert totals["v"].iloc[0] == Decimal("30.00")
    empty = wh.query_df("SELECT price_close, end_period_ts FROM kalshi.candlesticks WHERE 1 = 0")
    assert list(empty.columns) == ["price_close", "end_period_ts"] and empty.empty


def test_named_parameters_may_include_unused_names(wh: Warehouse) -> None:
    # One params mapping is shared by several queries (as psycopg allows); DuckDB must accept it too.
    wh.upsert("candlesticks", candle_rows(n=2))
    params = {"pi": 1, "unused": "x"}
    counted = wh.query_df(
        "SELECT count(*) AS n FROM kalshi.candlesticks WHERE period_interval = %(pi)s", params
    )
    assert int(counted["n"].iloc[0]) == 2


def _arrow_candles(scaled: list[int | None], ends: list[int]) -> pa.Table:
    """`kalshi.candlesticks` rows as an Arrow table: every value column from `scaled` (10**6 units)."""
    from kalshi_pipeline.defs.candlesticks.columnar import _NULL, _decimal_array
    from kalshi_pipeline.warehouse.schema import CANDLE_PRICE_COLUMNS, CANDLESTICKS

    n = len(ends)
    values = np.array([_NULL if v is None else v for v in scaled], dtype=np.int64)
    utc = pa.timestamp("s", tz="UTC")
    columns: dict[str, pa.Array] = {
        "ticker": pa.array([ATL] * n),
        "event_ticker": pa.array([EVENT] * n),
        "series_ticker": pa.array(["KXNBAGAME"] * n),
        "game_date": pa.array([GAME_DATE] * n, pa.date32()),
        "period_interval": pa.array([1] * n, pa.int32()),
        "end_period_ts": pa.array(ends, pa.int64()).cast(pa.timestamp("s")).cast(utc),
        "source": pa.array(["live"] * n),
    }
    for name in (*CANDLE_PRICE_COLUMNS, "volume", "open_interest"):
        precision = 18 if name in CANDLE_PRICE_COLUMNS else 24
        columns[name] = _decimal_array(values, precision)
    return pa.table({c: columns[c] for c in CANDLESTICKS.column_names if c in columns})


def test_upsert_arrow_writes_decimals_exactly_and_updates(wh: Warehouse) -> None:
    scaled = [560_000, 1, None, 0, 999_999, 1_000_000]
    ends = [T0 + 60 * i for i in range(len(scaled))]
    with wh.transaction() as tx:
        assert tx.upsert_arrow("candlesticks", _arrow_candles(scaled, ends)) == len(scaled)
    stored = wh.candles("candlesticks", [GAME_DATE])
    expected = [None if v is None else Decimal(v).scaleb(-6) for v in scaled]
    assert stored["price_close"].tolist() == expected
    assert stored["open_interest"].tolist() == expected
    assert [int(t.timestamp()) for t in stored["end_period_ts"]] == ends
    assert set(stored["game_date"]) == {GAME_DATE}
    with wh.transaction() as tx:
        tx.upsert_arrow("candlesticks", _arrow_candles([250_000] * 2, ends[:2]))
    again = wh.candles("candlesticks", [GAME_DATE])
    assert len(again) == len(scaled)
    assert again["price_close"].tolist()[:3] == [Decimal("0.25"), Decimal("0.25"), None]


def test_upsert_arrow_keeps_times_of_every_unit_to_the_microsecond(wh: Warehouse) -> None:
    ends = [T0, T0 + 60]
    rows = _arrow_candles([1, 2], ends)
    in_ms = pa.array([T0 * 1000, (T0 + 60) * 1000], pa.int64()).cast(pa.timestamp("ms"))
    rows = rows.set_column(
        rows.schema.get_field_index("end_period_ts"),
        "end_period_ts",
        in_ms.cast(pa.timestamp("ms", tz="UTC")),
    )
    stamps = [T0 * 10**6 + 123_456, T0 * 10**6 + 7]
    in_us = pa.array(stamps, pa.int64()).cast(pa.timestamp("us"))
    rows = rows.append_column("ingested_at", in_us.cast(pa.timestamp("us", tz="UTC")))
    with wh.transaction() as tx:
        assert tx.upsert_arrow("candlesticks", rows) == 2
    stored = wh.candles("candlesticks", [GAME_DATE], columns=["end_period_ts", "ingested_at"])
    assert [int(t.timestamp()) for t in stored["end_period_ts"]] == ends
    assert [t.value // 1000 for t in stored["ingested_at"]] == stamps


def test_upsert_arrow_refuses_wrong_types_nulls_and_repeated_keys(wh: Warehouse) -> None:
    good = _arrow_candles([1, 2], [T0, T0 + 60])
    floats = good.set_column(
        good.schema.get_field_index("price_close"), "price_close", pa.array([0.5, 0.25])
    )
    naive = good.set_column(
        good.schema.get_field_index("end_period_ts"),
        "end_period_ts",
        pa.array([T0, T0 + 60], pa.int64()).cast(pa.timestamp("s")),
    )
    no_ticker = good.set_column(0, "ticker", pa.array([None, ATL], pa.string()))
    extra = good.append_column("nonsense", pa.array([1, 2]))
    for bad, words in (
        (floats, "price_close"),
        (naive, "end_period_ts"),
        (no_ticker, "NOT NULL"),
        (extra, "nonsense"),
        (pa.concat_tables([good, good]), "repeats a primary key"),
    ):
        with pytest.raises(WarehouseDataError, match=words), wh.transaction() as tx:
            tx.upsert_arrow("candlesticks", bad)
    assert wh.candles("candlesticks", [GAME_DATE]).empty


def test_delete_candle_windows_deletes_each_ticker_in_its_own_window(wh: Warehouse) -> None:
    wh.upsert("candlesticks", candle_rows(ATL, n=6))
    wh.upsert("candlesticks", candle_rows(SAS, n=6))
    wh.upsert("candlesticks", candle_rows(ATL, n=2, period_interval=60))
    with wh.transaction() as tx:
        assert tx.delete_candle_windows("candlesticks", []) == {}
        counts = tx.delete_candle_windows(
            "candlesticks",
            [(ATL, T0 + 60, T0 + 180), (SAS, T0 + 240, T0 + 900), (f"{EVENT}-NONE", T0, T0 + 900)],
        )
    assert counts == {ATL: 3, SAS: 2}
    left = _candles(wh)
    atl = left[(left["ticker"] == ATL) & (left["period_interval"] == 1)]
    assert [int(ts.timestamp()) - T0 for ts in atl["end_period_ts"]] == [0, 240, 300]
    sas = left[left["ticker"] == SAS]
    assert [int(ts.timestamp()) - T0 for ts in sas["end_period_ts"]] == [0, 60, 120, 180]
    assert ((left["ticker"] == ATL) & (left["period_interval"] == 60)).sum() == 2
    with pytest.raises(WarehouseDataError, match="candle"), wh.transaction() as tx:
        tx.delete_candle_windows("markets", [(ATL, T0, T0)])
