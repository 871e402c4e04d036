"""How good are the prices? Brier score and log loss of `kalshi.game_probabilities` against settled results.

Per season (`2025-26`: games from July through June), for every market of a settled game (exactly one
market settled `yes`), the probability is scored against the outcome (1 for the settled winner, else 0) at:
`tip-off` (last priced minute at or before the scheduled start), `end Q1`..`end Q4` (last priced minute
while the game was live in that period) and `overall` (every priced minute). Brier is the mean squared
error; log loss clips probabilities to [1e-6, 1 - 1e-6]. The reliability diagram bins the overall
probabilities in tenths: the mean probability of each bin against how often those outcomes happened.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import date

import pandas as pd
from matplotlib.figure import Figure

from kalshi_pipeline.defs.games.probabilities import minute_rows
from kalshi_pipeline.warehouse import Warehouse

MOMENTS = ("tip-off", "end Q1", "end Q2", "end Q3", "end Q4", "overall")
_EPS = 1e-6
SCORED_COLUMNS = ("season", "moment", "event_ticker", "ticker", "p", "outcome")


def season_of(day: date) -> str:
    """The season a game date belongs to: `2025-26` for 2025-07-01 .. 2026-06-30."""
    first = day.year if day.month >= 7 else day.year - 1
    return f"{first}-{(first + 1) % 100:02d}"


def scored_rows(markets: pd.DataFrame, probs: pd.DataFrame) -> pd.DataFrame:
    """The priced rows of settled games with `outcome` (0/1), `p` (float), `season` and `moment` labels.

    A row can carry several moments (the tip-off minute is also part of `overall`), so it appears once per
    moment.
    """
    settled = markets[markets["result"].isin(["yes", "no"])]
    winners = settled[settled["result"] == "yes"].groupby("event_ticker")["ticker"].agg(list)
    complete = [
        e
        for e, g in settled.groupby("event_ticker")
        if len(g) == int((markets["event_ticker"] == e).sum()) and len(winners.get(e, [])) == 1
    ]
    rows = probs[probs["event_ticker"].isin(complete) & probs["probability"].notna()].copy()
    if rows.empty:
        return pd.DataFrame(columns=list(SCORED_COLUMNS))
    rows["outcome"] = [
        1 if t == winners[e][0] else 0
        for e, t in zip(rows["event_ticker"], rows["ticker"], strict=True)
    ]
    rows["p"] = [float(v) for v in rows["probability"]]
    rows["season"] = [season_of(d) for d in rows["game_date"]]
    starts = markets.groupby("event_ticker")["scheduled_start"].min()
    parts = [rows.assign(moment="overall")]
    tip = rows[rows["minute_ts"] <= rows["event_ticker"].map(starts)]
    parts.append(_last_minute(tip).assign(moment="tip-off"))
    for period in range(1, 5):
        in_period = rows[(rows["period"] == period) & (rows["status"] == "live")]
        parts.append(_last_minute(in_period).assign(moment=f"end Q{period}"))
    return pd.concat([p[list(SCORED_COLUMNS)] for p in parts], ignore_index=True)


def _last_minute(rows: pd.DataFrame) -> pd.DataFrame:
    """Each game's rows at its last minute among `rows`."""
    if rows.empty:
        return rows
    last = rows.groupby("event_ticker")["minute_ts"].transform("max")
    return rows[rows["minute_ts"] == last]


def scores(scored: pd.DataFrame) -> pd.DataFrame:
    """Per season and moment: games, markets (scored probabilities), Brier score and log loss."""
    out = []
    for (season, moment), g in scored.groupby(["season", "moment"], sort=True):
        p, y = g["p"].to_numpy(), g["outcome"].to_numpy()
        clipped = p.clip(_EPS, 1 - _EPS)
        log_loss = -sum(
            math.log(q) if outcome else math.log(1 - q)
            for q, outcome in zip(clipped, y, strict=True)
        ) / len(g)
        out.append(
            {
                "season": season,
                "moment": moment,
                "games": int(g["event_ticker"].nunique()),
                "n": len(g),
                "brier": float(((p - y) ** 2).mean()),
                "log_loss": log_loss,
            }
        )
    frame = pd.DataFrame(out, columns=["season", "moment", "games", "n", "brier", "log_loss"])
    frame["order"] = frame["moment"].map({m: i for i, m in enumerate(MOMENTS)})
    return frame.sort_values(["season", "order"]).drop(columns="order").reset_index(drop=True)


def reliability_png(scored: pd.DataFrame, season: str, *, dpi: int = 80) -> bytes:
    """The season's reliability diagram (overall minutes and tip-off) as PNG bytes."""
    fig = Figure(figsize=(5.2, 5.2), dpi=dpi)
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#999999", ls="--", lw=1, label="perfectly calibrated")
    for moment, color in (("overall", "#1f77b4"), ("tip-off", "#d62728")):
        g = scored[(scored["season"] == season) & (scored["moment"] == moment)]
        if g.empty:
            continue
        bins = (g["p"] * 10).clip(upper=9.999).astype(int)
        table = g.groupby(bins).agg(mean_p=("p", "mean"), freq=("outcome", "mean"), n=("p", "size"))
        ax.plot(
            table["mean_p"], table["freq"], marker="o", color=color, label=f"{moment} (n={len(g)})"
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed frequency")
    ax.set_title(f"Reliability, season {season}")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


@dataclass(frozen=True)
class Calibration:
    """Scores per season and moment, and each season's reliability diagram."""

    scores: pd.DataFrame
    diagrams: dict[str, bytes]
    games: int


def calibrate(wh: Warehouse) -> Calibration:
    """Score every stored game probability of settled games against the results."""
    games = wh.games()
    dates = sorted({d for d in games["game_date"] if d is not None and not pd.isna(d)})
    if not dates:
        return Calibration(scores(pd.DataFrame(columns=list(SCORED_COLUMNS))), {}, 0)
    scored = scored_rows(wh.markets(dates), minute_rows(wh.game_probabilities(dates)))
    diagrams = {s: reliability_png(scored, s) for s in sorted(set(scored["season"]))}
    return Calibration(scores(scored), diagrams, int(scored["event_ticker"].nunique()))
