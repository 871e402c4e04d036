"""Stored payloads read in bulk by pyarrow give exactly what the per-payload reader gives, or a refusal."""

from __future__ import annotations

import json
import random
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kalshi_pipeline.defs.candlesticks.columnar import (
    _scale_column,
    _scaled_columns,
    _scaled_columns_per_payload,
    raw_columns,
    scaled,
)
from kalshi_pipeline.defs.candlesticks.payloads import payload_value_texts
from kalshi_pipeline.kalshi.candles import candle_value_texts
from kalshi_pipeline.warehouse.schema import CANDLESTICKS_RAW

T0 = 1_766_190_600
TICKER = "KXNBAGAME-25DEC19SASATL-ATL"
#: Odd values that are still strings (or null): pyarrow reads the batch, the scaling decides each.
ODD_TEXTS: list[str | None] = [
    "0.55", " 0.55 ", "1", "1.000000", "0", "0.0000001", "1.0000005", "-0.01", "1.01", "1E-2",
    "5e-1", "NaN", "Infinity", "abc", "", "99999999999999999999", "1E+400", "0.123456", ".5",
    "+0.5", "1.", "-0", "0.50000000", None,
]  # fmt: skip


def _candle(rng: random.Random, end: int, historical: bool) -> dict[str, Any]:
    """A random candle whose values are strings or null, with odd strings, absent or null fields."""
    groups = {
        "price": ("open", "high", "low", "close", "mean", "previous"),
        "yes_bid": ("open", "high", "low", "close"),
        "yes_ask": ("open", "high", "low", "close"),
    }
    body: dict[str, Any] = {"end_period_ts": end}
    for group, names in groups.items():
        roll = rng.random()
        if roll < 0.05:
            body[group] = None
        elif roll < 0.08:
            body[group] = {}
        elif roll > 0.1:
            members: dict[str, Any] = {}
            for name in names:
                value = f"0.{rng.randint(1, 98):02d}00"
                keys = [name, f"{name}_dollars"] if historical else [f"{name}_dollars"]
                # Historical payloads may carry either name, or both (the plain one wins).
                for key in keys if rng.random() < 0.2 else keys[:1]:
                    members[key] = rng.choice(ODD_TEXTS) if rng.random() < 0.05 else value
            body[group] = members
    for count in ("volume", "open_interest"):
        keys = [count, f"{count}_fp"] if historical else [f"{count}_fp"]
        key = rng.choice(keys)
        if rng.random() > 0.03:
            body[key] = (
                rng.choice(ODD_TEXTS) if rng.random() < 0.05 else f"{rng.randint(0, 900)}.00"
            )
    if rng.random() < 0.02:
        body.pop("end_period_ts")
    if rng.random() < 0.05:
        body["extra"] = {"nested": [1, 2.5, None]}  # unknown fields are ignored by both readers
    return body


def _raw(seed: int, n: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        historical = rng.random() < 0.4
        rows.append(
            {
                "ticker": TICKER,
                "event_ticker": TICKER.rsplit("-", 1)[0],
                "series_ticker": "KXNBAGAME",
                "game_date": date(2025, 12, 19),
                "period_interval": 1,
                "end_period_ts": pd.Timestamp(T0 + 60 * i, unit="s", tz="UTC"),
                "source": "historical" if historical else "live",
                "payload": json.dumps(_candle(rng, T0 + 60 * i, historical)),
            }
        )
    return pd.DataFrame(
        rows, columns=[c for c in CANDLESTICKS_RAW.column_names if c != "ingested_at"]
    )


def test_bulk_reader_gives_the_per_payload_values_of_every_row() -> None:
    # 4,000 payloads are ~2 MB: several of the reader's blocks, parsed on threads, must keep row order.
    for seed, n in ((0, 800), (1, 800), (2, 4000)):
        raw = _raw(seed, n)
        historical = raw["source"].to_numpy() == "historical"
        got = payload_value_texts(pa.array(raw["payload"], pa.string()), historical)
        assert got is not None
        chunked = pa.chunked_array([pa.array(raw["payload"], pa.large_string())])
        from_chunks = payload_value_texts(chunked, historical)
        assert from_chunks is not None and from_chunks[0] == got[0]
        columns, plain = got
        for i, (payload, hist) in enumerate(zip(raw["payload"], historical, strict=True)):
            expected = candle_value_texts(json.loads(payload), bool(hist))
            assert bool(plain[i]) == (expected is not None), payload
            if expected is not None:
                assert [c[i].as_py() for c in columns] == expected, payload
        assert 0 < plain.sum() < len(raw)


def test_bulk_scaling_equals_the_per_payload_scaling() -> None:
    for seed in range(3):
        rows = raw_columns(_raw(seed, 800))
        values, usual = _scaled_columns(rows)
        ref_values, ref_usual = _scaled_columns_per_payload(rows)
        assert np.array_equal(usual, ref_usual)
        assert np.array_equal(values, ref_values)
        assert 0 < usual.sum() < rows.num_rows


def test_batches_pyarrow_refuses_take_the_per_payload_path() -> None:
    plain = '{"end_period_ts":60,"volume_fp":"1.00","open_interest_fp":"2.00"}'
    refused = [
        '{"end_period_ts":60,"price":{"open_dollars":0.5},"volume_fp":"1","open_interest_fp":"2"}',
        '{"end_period_ts":60,"price":"x","volume_fp":"1","open_interest_fp":"2"}',
        '{"end_period_ts":60.0,"volume_fp":"1","open_interest_fp":"2"}',
        '{"end_period_ts":60,"volume_fp":"1","volume_fp":"2","open_interest_fp":"2"}',
        '{"end_period_ts":60,\n"volume_fp":"1","open_interest_fp":"2"}',
        '{"end_period_ts":60,\r"volume_fp":"1","open_interest_fp":"2"}',
        "[]",
        "",
        " \t",
        '{"end_period_ts": 1',
        f"{plain} {plain}",  # two documents on one line: pyarrow reads two rows
    ]
    assert payload_value_texts(pa.array([plain]), np.array([False])) is not None
    for bad in refused:
        assert payload_value_texts(pa.array([plain, bad]), np.array([False, False])) is None, bad
    # A blank payload beside a line of two documents would keep the row count: still refused.
    assert payload_value_texts(pa.array([f"{plain} {plain}", "", plain]), np.zeros(3, bool)) is None
    assert payload_value_texts(pa.array([plain, None]), np.array([False, False])) is None
    # Whitespace around a payload is not a blank payload.
    got = payload_value_texts(pa.array([plain, f" {plain}\t"]), np.array([False, False]))
    assert got is not None and got[1].tolist() == [True, True]
    # A JSON null reads as a row without an end time: never plain, so the per-payload path decides it.
    got = payload_value_texts(pa.array([plain, "null"]), np.array([False, False]))
    assert got is not None and got[1].tolist() == [True, False]
    for bad in (refused[0], "", f"{plain} {plain}"):
        raw = _raw(0, 20)
        raw.loc[3, "payload"] = bad
        rows = raw_columns(raw)
        values, usual = _scaled_columns(rows)
        ref_values, ref_usual = _scaled_columns_per_payload(rows)
        assert np.array_equal(usual, ref_usual) and np.array_equal(values, ref_values)
        assert not usual[3] and usual.sum() > 10


def test_vectorized_scaling_equals_scaled_for_every_string() -> None:
    rng = random.Random(5)
    texts: list[str | None] = [t for t in ODD_TEXTS]
    for _ in range(3000):
        whole = str(rng.randint(0, 10 ** rng.randint(0, 14)))
        decimals = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 8)))
        sign = rng.choice(["", "", "-", "+", " "])
        texts.append(f"{sign}{whole}{'.' if decimals or rng.random() < 0.1 else ''}{decimals}")
    values, ok = _scale_column(pa.chunked_array([pa.array(texts, pa.string())]))
    for text, value, good in zip(texts, values.tolist(), ok.tolist(), strict=True):
        if text is None:
            assert good and value == np.iinfo(np.int64).min
            continue
        expected = scaled(text)
        assert good == (expected is not None), text
        if expected is not None:
            assert value == expected, text


def test_sliced_and_chunked_payload_columns_read_as_their_rows() -> None:
    raw = _raw(4, 300)
    historical = raw["source"].to_numpy() == "historical"
    whole = pa.array(raw["payload"], pa.string())
    expected = payload_value_texts(whole[100:200], historical[100:200])
    chunked = pa.chunked_array([whole[100:150], whole[150:200]])
    got = payload_value_texts(chunked, historical[100:200])
    assert expected is not None and got is not None
    assert got[0] == expected[0] and np.array_equal(got[1], expected[1])
    for i in (0, 57, 99):
        texts = candle_value_texts(json.loads(raw["payload"][100 + i]), bool(historical[100 + i]))
        if texts is not None:
            assert [c[i].as_py() for c in got[0]] == texts
