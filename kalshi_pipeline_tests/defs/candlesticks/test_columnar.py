"""The clean step's fast path splits raw rows exactly as the reference (Decimal) path alone does."""

from __future__ import annotations

import json
import random
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kalshi_pipeline.defs.candlesticks.clean import parse_raw
from kalshi_pipeline.defs.candlesticks.columnar import (
    _allowed,
    _unrepeated,
    accepted_rows,
    accepted_table,
    deferred_rows,
    fast_split,
    fixed_text,
    raw_columns,
    scaled,
)
from kalshi_pipeline.defs.candlesticks.pull import RAW_ARROW_SCHEMA
from kalshi_pipeline.defs.candlesticks.validation import validate_candles
from kalshi_pipeline.kalshi.candles import CANDLE_VALUE_FIELDS
from kalshi_pipeline.warehouse import WarehouseDataError, unix_seconds_column
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW

T0 = 1_766_190_600
TICKERS = ["KXNBAGAME-25DEC19SASATL-ATL", "KXNBAGAME-25DEC19SASATL-SAS"]
ODD_VALUES: list[Any] = [
    "0.5500", "0.55", " 0.55 ", "1", "1.000000", "0", "0.0000001", "1.0000005", "-0.01", "1.01",
    "1E-2", "5e-1", "NaN", "Infinity", "abc", "", 0.55, 1, None, True, "99999999999999999999",
    "1E+400", "0.123456",
]  # fmt: skip


def _candle(rng: random.Random, end: int, historical: bool) -> Any:
    """A random candle, usually plain and valid, often with one odd value or shape."""
    suffix = "" if historical else "_dollars"
    mid = rng.randint(2, 98)

    def p(cents: int) -> str:
        return f"0.{max(0, min(99, cents)):02d}00"

    body: dict[str, Any] = {
        "end_period_ts": end,
        "price": {
            f"{n}{suffix}": p(mid + d)
            for n, d in (("open", 0), ("high", 1), ("low", -1), ("close", 0), ("mean", 0))
        }
        | {f"previous{suffix}": p(mid)},
        "yes_bid": {f"{n}{suffix}": p(mid - 1) for n in ("open", "high", "low", "close")},
        "yes_ask": {f"{n}{suffix}": p(mid + 1) for n in ("open", "high", "low", "close")},
        (
            "volume" if historical else "volume_fp"
        ): f"{rng.randint(0, 500)}.{rng.randint(0, 99):02d}",
        ("open_interest" if historical else "open_interest_fp"): f"{rng.randint(0, 9000)}.00",
    }
    roll = rng.random()
    if roll < 0.35:
        group = rng.choice(["price", "yes_bid", "yes_ask"])
        key = rng.choice(list(body[group]))
        body[group][key] = rng.choice(ODD_VALUES)
    elif roll < 0.45:
        key = rng.choice(["volume_fp", "open_interest_fp", "volume", "open_interest"])
        if rng.random() < 0.5:
            body.pop(key, None)
        else:
            body[key] = rng.choice(ODD_VALUES)
    elif roll < 0.5:
        body[rng.choice(["price", "yes_bid", "yes_ask"])] = rng.choice([None, {}, [], "x", 3])
    elif roll < 0.53:
        return rng.choice([[], "candle", None, {"end_period_ts": "x"}])
    elif roll < 0.58:
        body["yes_bid"][f"close{suffix}"] = p(mid + 5)  # bid above ask
    return body


def _raw_frame(seed: int, n: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        historical = rng.random() < 0.3
        end = T0 + 60 * (i // 2) + (30 if rng.random() < 0.02 else 0)
        ticker = TICKERS[i % 2] if rng.random() > 0.02 else "KXNBAGAME-25DEC19OTHER-X"
        interval = 1 if rng.random() > 0.02 else rng.choice([5, 60])
        payload = json.dumps(_candle(rng, end, historical))
        if rng.random() < 0.01:
            payload = payload[:-3]  # not JSON
        rows.append(
            {
                "ticker": ticker,
                "event_ticker": ticker.rsplit("-", 1)[0],
                "series_ticker": "KXNBAGAME",
                "game_date": date(2025, 12, 19),
                "period_interval": interval,
                "end_period_ts": pd.Timestamp(end, unit="s", tz="UTC"),
                "source": "historical" if historical else "live",
                "payload": payload,
            }
        )
    frame = pd.DataFrame(
        rows, columns=[c for c in CANDLESTICKS_RAW.column_names if c != "ingested_at"]
    )
    # A repeated key (the raw table cannot hold one, but the fast path must not accept it either).
    return pd.concat([frame, frame.iloc[[5, 17]]], ignore_index=True)


def _as_pulled(raw: pd.DataFrame) -> pa.Table:
    """`raw` as the raw step holds it: an Arrow table of `pull.RAW_ARROW_SCHEMA` (times in seconds)."""
    frame = raw.assign(
        end_period_ts=raw["end_period_ts"].astype("datetime64[s, UTC]"),
        ingested_at=pd.Timestamp(T0, unit="s", tz="UTC"),
    )
    return pa.Table.from_pandas(frame, schema=RAW_ARROW_SCHEMA, preserve_index=False)


def _key(row: Any) -> tuple[str, int, int]:
    return (row["ticker"], int(row["period_interval"]), int(row["end_period_ts"]))


def _values(row: Any) -> tuple[Decimal | None, ...]:
    return tuple(None if row[f] is None else Decimal(str(row[f])) for f in CANDLE_VALUE_FIELDS)


def test_fast_path_and_reference_split_every_row_alike() -> None:
    for seed in range(4):
        raw = _raw_frame(seed, 600)
        allowed = set(TICKERS)
        parsed, unparseable = parse_raw(raw)
        ref_valid, ref_rejected = validate_candles(parsed, allowed)

        split = fast_split(raw, allowed)
        fast = accepted_rows(raw, split)
        parsed_rest, unparseable_rest = parse_raw(raw.iloc[split.deferred].reset_index(drop=True))
        rest_valid, rest_rejected = validate_candles(parsed_rest, allowed)

        assert 0 < len(fast) < len(raw) and len(split.deferred) > 0
        reference = {_key(r): _values(r) for r in ref_valid.to_dict("records")}
        combined = {_key(r): _values(r) for r in fast.to_dict("records")}
        overlap = {_key(r): _values(r) for r in rest_valid.to_dict("records")}
        assert not combined.keys() & overlap.keys()
        combined |= overlap
        assert combined == reference
        assert len(fast) + len(rest_valid) == len(ref_valid)

        def reasons(rejected: pd.DataFrame, broken: pd.DataFrame) -> list[tuple[Any, ...]]:
            both = pd.concat([rejected, broken], ignore_index=True)
            return sorted((_key(r), r["reasons"]) for r in both.to_dict("records"))

        assert reasons(rest_rejected, unparseable_rest) == reasons(ref_rejected, unparseable)

        # The raw step's Arrow table splits exactly as its frame does, into the same rows and values.
        table = _as_pulled(raw)
        from_arrow = fast_split(table, allowed)
        assert np.array_equal(from_arrow.accepted, split.accepted)
        assert np.array_equal(from_arrow.deferred, split.deferred)
        assert from_arrow.values.keys() == split.values.keys()
        assert all(np.array_equal(from_arrow.values[k], split.values[k]) for k in split.values)
        arrow_valid, arrow_rejected = validate_candles(
            parse_raw(deferred_rows(table, from_arrow))[0], allowed
        )
        assert {_key(r): _values(r) for r in arrow_valid.to_dict("records")} == overlap
        assert reasons(arrow_rejected, parse_raw(deferred_rows(table, from_arrow))[1]) == reasons(
            rest_rejected, unparseable_rest
        )
        assert accepted_rows(table, from_arrow).to_dict("records") == fast.to_dict("records")
        assert accepted_table(table, from_arrow, T0).equals(accepted_table(raw, split, T0))


def test_scaled_values_and_their_text_are_exact() -> None:
    cases = {
        "0.5500": 550_000,
        "1": 1_000_000,
        " 0.01 ": 10_000,
        "1E-2": 10_000,
        "123456.000001": 123_456_000_001,
        "-0.5": -500_000,
        "0.0000001": None,
        "NaN": None,
        "abc": None,
        "1E+400": None,
    }
    for text, expected in cases.items():
        assert scaled(text) == expected, text
    values = pd.Series([550_000, 10_000, -500_000, 123_456_000_001, 0]).to_numpy()
    texts = list(fixed_text(values))
    assert texts == ["0.550000", "0.010000", "-0.500000", "123456.000001", "0.000000"]
    assert [Decimal(t) for t in texts] == [Decimal(v).scaleb(-6) for v in values.tolist()]


def test_raw_columns_read_every_shape_of_the_raw_rows_alike() -> None:
    raw = _raw_frame(0, 50)
    expected = raw_columns(raw)
    assert expected["end_period_ts"].to_pylist() == unix_seconds_column(raw["end_period_ts"])
    table = _as_pulled(raw)
    assert raw_columns(table).equals(expected)
    assert raw_columns(expected).equals(expected)
    for unit in ("ms", "us", "ns"):
        retimed = table.set_column(
            5, "end_period_ts", table["end_period_ts"].cast(pa.timestamp(unit, tz="UTC"))
        )
        assert raw_columns(retimed).equals(expected), unit
        assert raw_columns(retimed.to_pandas()).equals(expected), unit
    as_seconds = table.set_column(5, "end_period_ts", table["end_period_ts"].cast(pa.int64()))
    assert raw_columns(as_seconds).equals(expected)
    naive = table.set_column(5, "end_period_ts", table["end_period_ts"].cast(pa.timestamp("s")))
    with pytest.raises(WarehouseDataError, match="naive"):
        raw_columns(naive)


def test_ticker_membership_and_repeated_keys_equal_pandas() -> None:
    rng = random.Random(3)
    tickers = [rng.choice([*TICKERS, "OTHER", None]) for _ in range(400)]
    periods = np.array([rng.choice([1, 1, 60]) for _ in range(400)], dtype=np.int64)
    ends = np.array([T0 + 60 * rng.randint(0, 40) for _ in range(400)], dtype=np.int64)
    frame = pd.DataFrame(
        {"ticker": pd.Series(tickers, dtype=object), "period": periods, "end": ends}
    )
    array = pa.array(tickers, pa.string())
    assert np.array_equal(_allowed(array, TICKERS), frame["ticker"].isin(set(TICKERS)).to_numpy())
    repeated = frame.duplicated(["ticker", "period", "end"], keep=False).to_numpy()
    assert np.array_equal(_unrepeated(array, periods, ends), ~repeated)
    assert 0 < repeated.sum() < len(frame) and len(_unrepeated(array[:0], ends[:0], ends[:0])) == 0
