"""`clean_day` on the raw step's Arrow rows writes what it writes from the frame read back, on both warehouses."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from kalshi_pipeline.defs.candlesticks.clean import DayClean, clean_day
from kalshi_pipeline.defs.candlesticks.pull import RAW_ARROW_SCHEMA
from kalshi_pipeline.warehouse import Warehouse, open_warehouse
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW
from kalshi_pipeline_tests.defs.candlesticks.test_clean import ATL, MINUTES, SAS, payload, raw_rows
from kalshi_pipeline_tests.warehouse.builders import GAME_DATE, T0

STAMP = T0 + 86_400
OTHER = "KXNBAGAME-25DEC19BOSNYK-BOS"


def _raw() -> pd.DataFrame:
    """One date's raw rows: ATL plain and valid, SAS with a row of each kind the fast path defers."""
    sas = {ts: payload(ts) for ts in MINUTES}
    sas[MINUTES[1]] = payload(MINUTES[1], price={"high_dollars": "1.50"})
    sas[MINUTES[2]] = '{"end_period_ts": 1'
    sas[MINUTES[3]] = payload(MINUTES[3], volume_fp=10)  # a number: refused, by pyarrow too
    sas[MINUTES[4]] = payload(MINUTES[4], yes_bid={"close_dollars": "0.90"})  # bid above ask
    sas[MINUTES[5]] = payload(MINUTES[5], volume_fp=" 1E+1")  # not plain fixed-point: `scaled`
    sas[MINUTES[6]] = json.dumps(json.loads(payload(MINUTES[6])), indent=1)  # spans lines
    frames = [
        raw_rows(ATL, {ts: payload(ts) for ts in MINUTES}),
        raw_rows(SAS, sas),
        raw_rows(OTHER, {MINUTES[0]: payload(MINUTES[0])}),  # not one of the date's games
    ]
    return pd.concat(frames, ignore_index=True)


def _as_pulled(raw: pd.DataFrame) -> pa.Table:
    frame = raw.assign(
        end_period_ts=raw["end_period_ts"].astype("datetime64[s, UTC]"),
        ingested_at=pd.Timestamp(T0, unit="s", tz="UTC"),
    )
    return pa.Table.from_pandas(frame, schema=RAW_ARROW_SCHEMA, preserve_index=False)


def _clean(wh: Warehouse, raw: pa.Table | pd.DataFrame, tickers: list[str]) -> DayClean:
    wh.execute("DELETE FROM kalshi.candlesticks")
    wh.execute("DELETE FROM kalshi.candlesticks_rejected")
    with wh.transaction() as tx:
        return clean_day(
            tx,
            raw,
            day_tickers=tickers,
            allowed_tickers=tickers,
            window_start=0,
            ingested_at_ts=STAMP,
        )


def _stored(wh: Warehouse) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name in ("candlesticks", "candlesticks_rejected"):
        rows = wh.candles(name, [GAME_DATE])
        rows = rows.sort_values(["ticker", "end_period_ts"]).reset_index(drop=True)
        out[name] = rows.to_dict("records")
    return out


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.integration)]
)
def test_arrow_rows_and_the_frame_read_back_write_the_same_rows(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"duckdb:///{tmp_path / 'wh.duckdb'}"
        if backend == "duckdb"
        else request.getfixturevalue("fresh_pg_url")
    )
    wh = open_warehouse(url)
    try:
        wh.ensure_schema()
        raw = _raw()
        wh.upsert(CANDLESTICKS_RAW.name, raw)
        tickers = [ATL, SAS]

        from_arrow = _clean(wh, _as_pulled(raw), tickers)
        written = _stored(wh)
        from_frame = _clean(wh, wh.candles(CANDLESTICKS_RAW.name, [GAME_DATE]), tickers)
        assert _stored(wh) == written
        assert from_arrow == from_frame
        assert (from_arrow.raw, from_arrow.valid, from_arrow.rejected) == (31, 26, 5)
        assert from_arrow.day_end == MINUTES[-1]
        assert from_arrow.reason_counts["ticker not in partition's games"] == 1
        assert from_arrow.reason_counts["yes_bid_close > yes_ask_close"] == 1
        assert sum(r.startswith("unparseable") for r in from_arrow.reason_counts) == 2
        # Values are stored exactly as sent, whichever path accepted the row.
        clean = written["candlesticks"]
        by_key = {(r["ticker"], r["end_period_ts"]): r for r in clean}
        for ticker, minute in ((ATL, MINUTES[0]), (SAS, MINUTES[5]), (SAS, MINUTES[6])):
            row = by_key[(ticker, pd.Timestamp(minute, unit="s", tz="UTC"))]
            assert Decimal(str(row["price_mean"])) == Decimal("0.5612")
            assert Decimal(str(row["volume"])) == Decimal(10)
            assert row["ingested_at"] == pd.Timestamp(STAMP, unit="s", tz="UTC")

        # A date with nothing to defer never takes the reference path and writes the same.
        plain = raw[raw["ticker"] == ATL].reset_index(drop=True)
        done = _clean(wh, _as_pulled(plain), tickers)
        assert (done.raw, done.valid, done.rejected, done.reason_counts) == (15, 15, 0, {})
        assert _stored(wh)["candlesticks"] == [r for r in clean if r["ticker"] == ATL]
    finally:
        wh.close()


@pytest.mark.parametrize(
    "backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.integration)]
)
def test_a_value_no_column_can_hold_is_rejected_not_the_date(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"duckdb:///{tmp_path / 'wh.duckdb'}"
        if backend == "duckdb"
        else request.getfixturevalue("fresh_pg_url")
    )
    wh = open_warehouse(url)
    try:
        wh.ensure_schema()
        atl = {ts: payload(ts) for ts in MINUTES}
        atl[MINUTES[1]] = payload(MINUTES[1], volume_fp="0.0000001")  # a seventh decimal
        atl[MINUTES[2]] = payload(MINUTES[2], open_interest_fp="1E+400")
        raw = raw_rows(ATL, atl)
        wh.upsert(CANDLESTICKS_RAW.name, raw)
        done = _clean(wh, _as_pulled(raw), [ATL])
        assert (done.raw, done.valid, done.rejected) == (len(MINUTES), len(MINUTES) - 2, 2)
        rejects = _stored(wh)["candlesticks_rejected"]
        assert [r["reasons"] for r in rejects] == [
            "value not storable exactly (over 6 decimals or too large)"
        ] * 2
        assert rejects[0]["volume"] is None and '"0.0000001"' in rejects[0]["payload"]
        assert rejects[1]["open_interest"] is None and '"1E+400"' in rejects[1]["payload"]
        assert Decimal(str(rejects[1]["volume"])) == Decimal(10)  # what fits is kept
    finally:
        wh.close()
