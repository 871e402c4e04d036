"""`stream_vs_rest`: an asset check on `kalshi/candlesticks` comparing stream-built and REST candles.

For every closed minute of the lookback window that the stream built completely (`kalshi.candlesticks_ws`
with `complete`) and that REST has since written to `kalshi.candlesticks` (`source` live or historical), all
price and count fields must be equal. Minutes still served from the stream long after they closed are
reported as unreconciled (the REST replacement did not happen).
"""

from datetime import timedelta

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY
from kalshi_pipeline.defs.resources import WarehouseResource

LOOKBACK_HOURS = 48
UNRECONCILED_AFTER_MINUTES = 15


@dg.asset_check(
    asset=CANDLES_KEY,
    name="stream_vs_rest",
    description=(
        "Every closed minute the WebSocket stream built completely equals the REST candle that replaced it "
        f"(last {LOOKBACK_HOURS} h); stream rows not replaced by REST after {UNRECONCILED_AFTER_MINUTES} "
        "minutes are reported."
    ),
    blocking=False,
)
def stream_vs_rest(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    """Compare stream-built and REST candles of recently closed minutes."""
    now = pd.Timestamp.now(tz="UTC").floor("s").to_pydatetime()
    since = now - timedelta(hours=LOOKBACK_HOURS)
    with warehouse.open() as wh:
        compared = wh.stream_rest_comparison(since, now)
        unreconciled = wh.stream_served_candles(
            since, now - timedelta(minutes=UNRECONCILED_AFTER_MINUTES)
        )
    differing = compared[compared["differs"]]
    sample = [
        f"{ticker} @ {pd.Timestamp(ts).isoformat()}"
        for ticker, ts in zip(
            differing["ticker"].head(20), differing["end_period_ts"].head(20), strict=True
        )
    ]
    return dg.AssetCheckResult(
        passed=len(differing) == 0,
        severity=dg.AssetCheckSeverity.ERROR if len(differing) else dg.AssetCheckSeverity.WARN,
        metadata={
            "compared_minutes": len(compared),
            "mismatched_minutes": len(differing),
            "unreconciled_ws_minutes": unreconciled,
            "mismatches": ", ".join(sample) or "none",
            "lookback_hours": LOOKBACK_HOURS,
        },
    )
