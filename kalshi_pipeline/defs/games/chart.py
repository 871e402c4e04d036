"""Per-game win-probability charts (matplotlib PNG): each team's probability over the game, periods shaded,
score changes marked, settlement shown.

`game_chart_png` draws from the rows of `kalshi.game_probabilities` and `kalshi.game_states` of one game and the
game's `kalshi.markets` rows; `chart_markdown` embeds PNGs in markdown metadata for the Dagster UI (a
`data:image/png;base64` image, the way Dagster's docs attach plots to materializations).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from kalshi_pipeline.defs.partitions import GAME_TZ

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _period_label(period: int) -> str:
    return f"Q{period}" if period <= 4 else ("OT" if period == 5 else f"{period - 4}OT")


def game_chart_png(
    event_ticker: str,
    probabilities: pd.DataFrame,
    states: pd.DataFrame,
    markets: pd.DataFrame,
    *,
    dpi: int = 80,
) -> bytes:
    """Render one game's chart as PNG bytes (in-play minutes, plus the last hour before tip-off)."""
    probs = probabilities[probabilities["event_ticker"] == event_ticker].copy()
    game_states = states[states["event_ticker"] == event_ticker].sort_values("observed_at")
    game_markets = markets[markets["event_ticker"] == event_ticker].sort_values("ticker")
    # A bare Figure (no pyplot): no global state, no GUI backend, safe in any thread.
    fig = Figure(figsize=(10, 4.6), dpi=dpi)
    ax = fig.subplots()
    tip = game_markets["scheduled_start"].min() if "scheduled_start" in game_markets else None
    if tip is not None and not pd.isna(tip):
        probs = probs[probs["minute_ts"] >= tip - pd.Timedelta(hours=1)]
    teams: dict[str, str] = {}
    for i, (ticker, rows) in enumerate(probs.groupby("ticker", sort=True)):
        team = str(rows["team"].dropna().iloc[0]) if rows["team"].notna().any() else str(ticker)
        teams[str(ticker)] = team
        rows = rows.sort_values("minute_ts")
        values = [
            float(v) if v is not None and not pd.isna(v) else float("nan")
            for v in rows["probability"]
        ]
        ax.plot(rows["minute_ts"], values, color=_COLORS[i % len(_COLORS)], lw=1.6, label=team)
    start, stop = probs["minute_ts"].min(), probs["minute_ts"].max()
    settled = game_markets["settlement_ts"].dropna()
    if len(settled) and not pd.isna(stop):
        stop = max(stop, settled.max())
    if not pd.isna(start) and not pd.isna(stop):
        stop = stop + pd.Timedelta(minutes=5)
        ax.set_xlim(start, stop)
        # Observations after the chart's window (a poll days later) would stretch it.
        game_states = game_states[game_states["observed_at"] <= stop]
    _shade_periods(ax, game_states)
    _mark_scores(ax, game_states)
    _mark_settlement(ax, game_markets, teams)
    away = (
        game_markets["away_team"].dropna().iloc[0]
        if game_markets["away_team"].notna().any()
        else "?"
    )
    home = (
        game_markets["home_team"].dropna().iloc[0]
        if game_markets["home_team"].notna().any()
        else "?"
    )
    ax.set_title(f"{event_ticker}: {away} at {home} - win probability")
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("probability (overround removed)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=GAME_TZ))
    ax.set_xlabel("time (ET)")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", fontsize=8)
    ax.text(
        0.0,
        -0.16,
        "ticks: baskets (lower row home, upper row away); labels: score away-home at each period end; "
        "shaded: periods",
        transform=ax.transAxes,
        fontsize=7,
        color="#555555",
    )
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _shade_periods(ax: Axes, states: pd.DataFrame) -> None:
    """Shade each period's span (first to last observation in it), labelled at the top."""
    rows = states[states["period"].notna() & (states["status"] == "live")]
    for i, period in enumerate(sorted({int(p) for p in rows["period"]})):
        g = rows[rows["period"] == period]
        start, end = g["observed_at"].min(), g["observed_at"].max()
        ax.axvspan(start, end, color="#888888", alpha=0.10 if i % 2 == 0 else 0.04, lw=0)
        ax.text(start, 1.0, _period_label(period), fontsize=7, va="top", color="#555555")


def _mark_scores(ax: Axes, states: pd.DataFrame) -> None:
    """A tick at the bottom for every score change (home below, away above), with the score at period ends."""
    rows = states[states["home_points"].notna() & states["away_points"].notna()]
    prev: tuple[int, int] | None = None
    for ts, home, away in zip(
        rows["observed_at"], rows["home_points"], rows["away_points"], strict=True
    ):
        score = (int(home), int(away))
        if prev is not None and score != prev:
            y = 0.02 if score[0] != prev[0] else 0.06
            ax.plot([ts], [y], marker="|", color="#333333" if y < 0.05 else "#999999", ms=6)
        prev = score
    ends = rows.groupby("period", sort=True).tail(1) if "period" in rows else rows.tail(0)
    for ts, home, away in zip(
        ends["observed_at"], ends["home_points"], ends["away_points"], strict=True
    ):
        ax.text(ts, 0.1, f"{int(away)}-{int(home)}", fontsize=7, ha="right", color="#333333")


def _mark_settlement(ax: Axes, markets: pd.DataFrame, teams: Mapping[str, str]) -> None:
    """A vertical line at settlement, labelled with the winning team."""
    settled = markets["settlement_ts"].dropna() if "settlement_ts" in markets else pd.Series([])
    if settled.empty:
        return
    when = settled.max()
    winners = markets[markets["result"] == "yes"]["ticker"]
    winner = teams.get(str(winners.iloc[0]), str(winners.iloc[0])) if len(winners) else "?"
    ax.axvline(when, color="black", ls="--", lw=1)
    ax.text(when, 0.5, f" settled: {winner} wins", fontsize=8, rotation=90, va="center")


def chart_markdown(charts: Mapping[str, bytes]) -> str:
    """Markdown with each chart as an embedded PNG under its game's name."""
    parts = []
    for name, png in charts.items():
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(f"**{name}**\n\n![{name}](data:image/png;base64,{encoded})\n")
    return "\n".join(parts)
