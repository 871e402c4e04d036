"""What every asset reports: metadata values, previews and the shared `schema` check result."""

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import dagster as dg
import pandas as pd

from kalshi_pipeline.kalshi import RequestStats

PREVIEW_ROWS = 10


def preview_md(
    df: pd.DataFrame, columns: Sequence[str], rows: int = PREVIEW_ROWS
) -> dg.MetadataValue:
    """Render the first rows of some columns as a markdown table for the Dagster UI."""
    cols = [c for c in columns if c in df.columns]
    if df.empty or not cols:
        return dg.MetadataValue.md("_no rows_")
    head = df[cols].head(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for record in head.itertuples(index=False):
        cells = ["" if v is None or v is pd.NaT else str(v) for v in record]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if len(df) > rows:
        lines.append(f"\n_{len(df) - rows} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def stats_metadata(stats: RequestStats) -> dict[str, Any]:
    """Return the client's request counters as metadata (requests, retries, 429s, throttled seconds)."""
    return {
        "api_requests": int(stats.requests),
        "api_retries": int(stats.retries),
        "api_rate_limited": int(stats.rate_limited),
        "api_throttled_seconds": dg.MetadataValue.float(round(float(stats.throttled_seconds), 3)),
    }


def schema_check_result(
    asset_key: dg.AssetKey, written: pd.DataFrame, expected: Sequence[str], money: Sequence[str]
) -> dg.AssetCheckResult:
    """Check that a frame read back from the warehouse has exactly the expected columns and types.

    Money and count columns must hold `Decimal` (never float); timestamps must be tz-aware UTC.
    """
    problems: list[str] = []
    if list(written.columns) != list(expected):
        problems.append(f"columns {list(written.columns)} != {list(expected)}")
    for col in money:
        if col in written.columns:
            bad = [
                v
                for v in written[col].tolist()
                if v is not None and not isinstance(v, Decimal) and not pd.isna(v)
            ]
            if bad:
                problems.append(f"{col} holds {type(bad[0]).__name__}, not Decimal")
    for col in written.columns:
        dtype = written[col].dtype
        if isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) not in ("UTC", "utc"):
            problems.append(f"{col} is in {dtype.tz}, not UTC")
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name="schema",
        passed=not problems,
        metadata={"rows_checked": len(written), "problems": "; ".join(problems) or "none"},
    )
