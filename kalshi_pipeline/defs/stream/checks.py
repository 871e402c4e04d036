"""`stream_vs_rest`: an asset check on `kalshi/candlesticks` comparing stream-built and REST candles.

For every closed minute of the lookback window that the stream built completely (`kalshi.candlesticks_ws`
with `complete`) and that REST has since written to `kalshi.candlesticks` (`source` live or historical), all
price and count fields must be equal. Minutes still served from the stream long after they closed are
reported as unreconciled (the REST replacement did not happen).
"""

import dagster as dg
import pandas as pd

from kalshi_pipeline.defs.candlesticks.assets import CANDLES_KEY
from kalshi_pipeline.defs.candlesticks.validation import COUNT_COLUMNS, PRICE_COLUMNS
from kalshi_pipeline.defs.resources import WarehouseResource

LOOKBACK_HOURS = 48
UNRECONCILED_AFTER_MINUTES = 15
_VALUES = [*PRICE_COLUMNS, *COUNT_COLUMNS]

_COMPARE_SQL = f"""
SELECT w.ticker, w.end_period_ts,
       CASE WHEN {" OR ".join(f"w.{c} IS DISTINCT FROM c.{c}" for c in _VALUES)} THEN 1 ELSE 0 END AS differs
FROM kalshi.candlesticks_ws AS w
JOIN kalshi.candlesticks AS c
  ON c.ticker = w.ticker AND c.period_interval = w.period_interval AND c.end_period_ts = w.end_period_ts
WHERE w.complete AND c.source <> 'ws' AND w.period_interval = 1
  AND w.end_period_ts >= %(since)s AND w.end_period_ts <= %(closed)s
  AND c.ingested_at >= c.end_period_ts
"""

_UNRECONCILED_SQL = """
SELECT count(*) AS n FROM kalshi.candlesticks
WHERE source = 'ws' AND end_period_ts >= %(since)s AND end_period_ts <= %(stale)s
"""


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
    now = pd.Timestamp.now(tz="UTC").floor("s")
    params = {
        "since": (now - pd.Timedelta(hours=LOOKBACK_HOURS)).to_pydatetime(),
        "closed": now.to_pydatetime(),
        "stale": (now - pd.Timedelta(minutes=UNRECONCILED_AFTER_MINUTES)).to_pydatetime(),
    }
    with warehouse.open() as wh:
        compared = wh.query_df(_COMPARE_SQL, params)
        unreconciled = int(wh.query_df(_UNRECONCILED_SQL, params)["n"].iloc[0])
    differing = compared[compared["differs"].astype(int) == 1] if len(compared) else compared
    sample = [
        f"{row.ticker} @ {pd.Timestamp(row.end_period_ts).isoformat()}"
        for row in differing.head(20).itertuples()
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
