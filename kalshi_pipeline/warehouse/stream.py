"""Writes the WebSocket stream into the warehouse in small batches: ticks, trades, events, live candles.

Tables (created by migration 2 in `schema.py`): `kalshi.ticks` (pk ticker, ts), `kalshi.trades`
(pk trade_id), `kalshi.stream_events` (pk event_id), `kalshi.candlesticks_ws` (every stream-built candle as
last built, kept for the stream-vs-REST audit) and, for freshness, `kalshi.candlesticks` rows with
`source = 'ws'`.

A stream-built candle never overwrites a final REST candle: the upsert into `kalshi.candlesticks` only
replaces a row whose `source` is `ws`, or a REST row written before its period ended (a partial candle of
the then-open minute). REST writes overwrite `ws` rows unconditionally, so once the minute is final the REST
candle wins.

```python
writer = StreamWriter(wh, max_rows=500, max_delay_s=0.25)
writer.add("ticks", {...}); writer.add_candle({...})
if writer.due():
    writer.flush()          # one transaction; returns rows written per table
```
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from kalshi_pipeline.warehouse.base import Warehouse
from kalshi_pipeline.warehouse.errors import WarehouseDataError
from kalshi_pipeline.warehouse.schema import CANDLESTICKS, CANDLESTICKS_WS, table_spec

STREAM_TABLES = ("ticks", "trades", "stream_events", "candlesticks_ws")
_CANDLE_COLUMNS = [c for c in CANDLESTICKS.column_names if c != "ingested_at"]
_PK = ("ticker", "period_interval", "end_period_ts")
_UPDATABLE = [c for c in _CANDLE_COLUMNS if c not in _PK]

# Copy the batch's stream candles from candlesticks_ws into candlesticks without clobbering final REST rows.
_PROMOTE_SQL = f"""
INSERT INTO kalshi.candlesticks ({", ".join(_CANDLE_COLUMNS)}, ingested_at)
SELECT {", ".join("'ws'" if c == "source" else f"w.{c}" for c in _CANDLE_COLUMNS)}, w.ingested_at
FROM kalshi.candlesticks_ws AS w
WHERE w.period_interval = %s AND w.ticker = ANY(%s) AND w.end_period_ts >= %s AND w.end_period_ts <= %s
  AND w.ingested_at >= %s
ON CONFLICT (ticker, period_interval, end_period_ts) DO UPDATE SET
  {", ".join(f"{c} = excluded.{c}" for c in _UPDATABLE)}, ingested_at = excluded.ingested_at
WHERE kalshi.candlesticks.source = 'ws' OR kalshi.candlesticks.ingested_at < kalshi.candlesticks.end_period_ts
"""


class StreamWriter:
    """Buffers stream rows per table and writes them in one transaction per flush.

    Args:
        warehouse: An open warehouse whose schema includes migration 2.
        max_rows: Flush when this many rows are buffered (bounds memory and transaction size).
        max_delay_s: Flush when the oldest buffered row is this old (bounds freshness lag).
    """

    def __init__(
        self, warehouse: Warehouse, *, max_rows: int = 500, max_delay_s: float = 0.25
    ) -> None:
        """Create a writer on `warehouse`."""
        self.warehouse = warehouse
        self.max_rows = max_rows
        self.max_delay_s = max_delay_s
        self._rows: dict[str, list[dict[str, Any]]] = {t: [] for t in STREAM_TABLES}
        self._candles: dict[tuple[str, int, Any], dict[str, Any]] = {}
        self._oldest: float | None = None
        self.flushes = 0
        self.written: dict[str, int] = dict.fromkeys((*STREAM_TABLES, "candlesticks"), 0)

    def __repr__(self) -> str:
        return f"StreamWriter(warehouse={self.warehouse!r}, buffered={self.buffered})"

    @property
    def buffered(self) -> int:
        """Rows waiting to be written."""
        return sum(len(rows) for rows in self._rows.values()) + len(self._candles)

    def add(self, table: str, row: Mapping[str, Any]) -> None:
        """Buffer one row of `ticks`, `trades` or `stream_events` (column names as in the table)."""
        if table not in ("ticks", "trades", "stream_events"):
            raise WarehouseDataError(
                f"StreamWriter.add takes ticks, trades or stream_events, not {table!r}"
            )
        self._rows[table].append(dict(row))
        self._touch()

    def add_candle(self, row: Mapping[str, Any]) -> None:
        """Buffer the latest state of one stream-built candle (`candlesticks_ws` columns; later adds win)."""
        key = (row["ticker"], int(row["period_interval"]), row["end_period_ts"])
        self._candles[key] = dict(row)
        self._touch()

    def _touch(self) -> None:
        if self._oldest is None:
            self._oldest = time.monotonic()

    def due(self) -> bool:
        """Whether a flush is due (buffer full or oldest row older than `max_delay_s`)."""
        if self._oldest is None:
            return False
        return self.buffered >= self.max_rows or time.monotonic() - self._oldest >= self.max_delay_s

    def flush(self) -> dict[str, int]:
        """Write everything buffered in one transaction; return rows written per table.

        On an exception the transaction rolls back and the rows stay buffered, so nothing is lost; the
        caller may retry.
        """
        if self._oldest is None:
            return {}
        written: dict[str, int] = {}
        now = pd.Timestamp.now(tz="UTC")
        candles = list(self._candles.values())
        with self.warehouse.transaction() as tx:
            for table in ("ticks", "trades", "stream_events"):
                rows = self._rows[table]
                if rows:
                    written[table] = tx.upsert(table, _frame(table, rows))
            if candles:
                frame = _frame("candlesticks_ws", candles)
                frame["ingested_at"] = now
                written["candlesticks_ws"] = tx.upsert("candlesticks_ws", frame)
                ends = [c["end_period_ts"] for c in candles]
                tickers = sorted({c["ticker"] for c in candles})
                for interval in sorted({int(c["period_interval"]) for c in candles}):
                    written["candlesticks"] = written.get("candlesticks", 0) + max(
                        tx.execute(
                            _PROMOTE_SQL,
                            [interval, tickers, min(ends), max(ends), now.to_pydatetime()],
                        ),
                        0,
                    )
        for rows in self._rows.values():
            rows.clear()
        self._candles.clear()
        self._oldest = None
        self.flushes += 1
        for table, count in written.items():
            self.written[table] = self.written.get(table, 0) + count
        return written


def _frame(table: str, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    spec = CANDLESTICKS_WS if table == "candlesticks_ws" else table_spec(table)
    columns = [c for c in spec.column_names if c != "ingested_at"]
    frame = pd.DataFrame(list(rows))
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise WarehouseDataError(f"rows for kalshi.{table} lack columns {missing}")
    return frame[columns]
