"""`GET /live_data/milestone/{id}`, `GET /live_data/batch` and `GET /live_data/milestone/{id}/game_stats`.

Kalshi's live sports data, served from each game's scoring process (`kalshi_pipeline.simulator.scoring`).
As on Kalshi (API reference "Get Live Data", "Get Multiple Live Data", "Get Game Stats"): the single lookup
answers `{"live_data": LiveData}` or 404 "Live data not found"; the batch takes `milestone_ids` repeated (at
most 100; a comma-joined value names no milestone, so it matches nothing) and answers
`{"live_datas": [...]}` without the unknown ids; game stats answer `{"pbp": {"periods": [{"events"}]}}`.
`details` carries the team-sport keys documented for Kalshi's objects (`status` none/live/finished,
`home_points`, `away_points`, `round`, `final_round_time_left` as `M:SS`, `winner` as the team id, names and
abbreviations).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from kalshi_pipeline.simulator import payloads
from kalshi_pipeline.simulator.errors import bad_request, not_found
from kalshi_pipeline.simulator.rest.catalog import Catalog
from kalshi_pipeline.simulator.scoring import STATUS_FINISHED, ScoreState, game_score
from kalshi_pipeline.simulator.world import Game, team_target_id

MAX_BATCH_MILESTONES = 100


def clock_text(seconds: int) -> str:
    """A game clock as Kalshi's widgets show it: `M:SS`."""
    return f"{seconds // 60}:{seconds % 60:02d}"


def _period_label(period: int) -> str:
    return f"Q{period}" if period <= 4 else ("OT" if period == 5 else f"{period - 4}OT")


def live_data(game: Game, seed: int, now_ms: int) -> dict[str, Any]:
    """The `LiveData` object of a game at `now_ms`."""
    state: ScoreState = game_score(game, seed).state_at(now_ms)
    details: dict[str, Any] = {
        "type": game.series.milestone_type,
        "status": state.status,
        "scheduled": payloads.rfc3339(game.tip_s),
        "home_points": state.home_points,
        "away_points": state.away_points,
        "home_name": game.home.name,
        "away_name": game.away.name,
        "home_abbreviation": game.home.code,
        "away_abbreviation": game.away.code,
        "home_id": team_target_id(game.home),
        "away_id": team_target_id(game.away),
    }
    if state.period:
        details["round"] = state.period
        details["final_round_time_left"] = clock_text(state.clock_s)
        text = (
            "Final"
            if state.status == STATUS_FINISHED
            else f"{_period_label(state.period)} {clock_text(state.clock_s)}"
        )
        details["widgetLiveText"] = details["tileLiveText"] = text
    if state.status == STATUS_FINISHED and state.home_points != state.away_points:
        winner = game.home if state.home_points > state.away_points else game.away
        details["winner"] = team_target_id(winner)
    return {
        "type": game.series.milestone_type,
        "milestone_id": game.milestone_id,
        "details": details,
    }


class LiveDataEndpoints:
    """The live sports data endpoints."""

    def __init__(self, catalog: Catalog) -> None:
        """Serve the games of `catalog`."""
        self.catalog = catalog

    def _game(self, milestone_id: str, now_ms: int) -> Game | None:
        game = self.catalog.world.by_milestone.get(milestone_id)
        if game is None or game.created_s * 1000 > now_ms:
            return None
        return game

    async def milestone(self, request: Request) -> Response:
        """`GET /live_data/milestone/{milestone_id}`."""
        now_ms = self.catalog.world.now_ms()
        game = self._game(request.path_params["milestone_id"], now_ms)
        if game is None:
            raise not_found("Live data not found")
        return JSONResponse({"live_data": live_data(game, self.catalog.world.seed, now_ms)})

    async def batch(self, request: Request) -> Response:
        """`GET /live_data/batch?milestone_ids=A&milestone_ids=B` (at most 100 ids)."""
        ids = list(dict.fromkeys(i for i in request.query_params.getlist("milestone_ids") if i))
        if len(ids) > MAX_BATCH_MILESTONES:
            raise bad_request(f"milestone_ids accepts at most {MAX_BATCH_MILESTONES} ids")
        now_ms = self.catalog.world.now_ms()
        games = [g for g in (self._game(i, now_ms) for i in ids) if g is not None]
        seed = self.catalog.world.seed
        return JSONResponse({"live_datas": [live_data(g, seed, now_ms) for g in games]})

    async def game_stats(self, request: Request) -> Response:
        """`GET /live_data/milestone/{milestone_id}/game_stats`: the baskets so far, by period."""
        now_ms = self.catalog.world.now_ms()
        game = self._game(request.path_params["milestone_id"], now_ms)
        if game is None:
            raise not_found("Live data not found")
        score = game_score(game, self.catalog.world.seed)
        if now_ms < score.tip_ms:
            return JSONResponse({"pbp": {"periods": []}})
        shown = [p for p in score.periods if p.start_ms <= now_ms]
        periods: list[dict[str, Any]] = [{"number": p.number, "events": []} for p in shown]
        for play in score.plays_until(now_ms):
            periods[play.period - 1]["events"].append(
                {
                    "event_type": f"{play.points}pt_made",
                    "team": play.side,
                    "points": play.points,
                    "clock": clock_text(play.clock_s),
                    "wall_clock": payloads.rfc3339_ms(play.ts_ms),
                    "home_points": play.home_points,
                    "away_points": play.away_points,
                }
            )
        return JSONResponse({"pbp": {"periods": periods}})
