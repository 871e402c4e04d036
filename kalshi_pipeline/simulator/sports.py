"""Descriptions of the sports series the simulated exchange lists (NBA game winners for now).

A `SeriesSpec` holds everything the world generator needs to know about one head-to-head game-winner
series: the series ticker, the teams with Kalshi's three-letter codes, the season window, how long a game
usually lasts and what its milestones look like. Adding `KXNHLGAME` or `KXNFLGAME` later means adding
another `SeriesSpec` instance to `SERIES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Team:
    """One team as Kalshi labels it: ticker code, the city label used in titles, full name, US time zone."""

    code: str
    label: str
    name: str
    zone: str  # "ET", "CT", "MT" or "PT": local tip-off habits differ by zone.


@dataclass(frozen=True)
class SeriesSpec:
    """A head-to-head game-winner series (one event per game, one binary market per team)."""

    series_ticker: str
    title: str
    teams: tuple[Team, ...]
    # Regular season as (month, day) pairs: it starts in one calendar year and ends in the next.
    season_start: tuple[int, int]
    season_end: tuple[int, int]
    games_per_team: int
    typical_game_minutes: float
    competition: str
    milestone_type: str
    category: str = "Sports"
    tags: tuple[str, ...] = ()
    settlement_source_name: str = ""
    settlement_source_url: str = ""
    # Scoring margin standard deviation over a whole game and the home advantage, in points.
    margin_sd: float = 12.0
    home_advantage: float = 2.5
    rating_sd: float = 4.5
    # Eastern-time tip-off slots (minutes after midnight) and the extra delay for western home teams.
    tipoff_slots_et: tuple[int, ...] = field(default=(19 * 60, 19 * 60, 19 * 60 + 30, 20 * 60))
    west_tipoff_slots_et: tuple[int, ...] = field(default=(22 * 60, 22 * 60, 22 * 60 + 30))
    # Days of the season without games (All-Star break) as (month, day) ranges.
    breaks: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()


NBA_TEAMS: tuple[Team, ...] = (
    Team("ATL", "Atlanta", "Atlanta Hawks", "ET"),
    Team("BOS", "Boston", "Boston Celtics", "ET"),
    Team("BKN", "Brooklyn", "Brooklyn Nets", "ET"),
    Team("CHA", "Charlotte", "Charlotte Hornets", "ET"),
    Team("CHI", "Chicago", "Chicago Bulls", "CT"),
    Team("CLE", "Cleveland", "Cleveland Cavaliers", "ET"),
    Team("DAL", "Dallas", "Dallas Mavericks", "CT"),
    Team("DEN", "Denver", "Denver Nuggets", "MT"),
    Team("DET", "Detroit", "Detroit Pistons", "ET"),
    Team("GSW", "Golden State", "Golden State Warriors", "PT"),
    Team("HOU", "Houston", "Houston Rockets", "CT"),
    Team("IND", "Indiana", "Indiana Pacers", "ET"),
    Team("LAC", "Los Angeles C", "Los Angeles Clippers", "PT"),
    Team("LAL", "Los Angeles L", "Los Angeles Lakers", "PT"),
    Team("MEM", "Memphis", "Memphis Grizzlies", "CT"),
    Team("MIA", "Miami", "Miami Heat", "ET"),
    Team("MIL", "Milwaukee", "Milwaukee Bucks", "CT"),
    Team("MIN", "Minnesota", "Minnesota Timberwolves", "CT"),
    Team("NOP", "New Orleans", "New Orleans Pelicans", "CT"),
    Team("NYK", "New York", "New York Knicks", "ET"),
    Team("OKC", "Oklahoma City", "Oklahoma City Thunder", "CT"),
    Team("ORL", "Orlando", "Orlando Magic", "ET"),
    Team("PHI", "Philadelphia", "Philadelphia 76ers", "ET"),
    Team("PHX", "Phoenix", "Phoenix Suns", "MT"),
    Team("POR", "Portland", "Portland Trail Blazers", "PT"),
    Team("SAC", "Sacramento", "Sacramento Kings", "PT"),
    Team("SAS", "San Antonio", "San Antonio Spurs", "CT"),
    Team("TOR", "Toronto", "Toronto Raptors", "ET"),
    Team("UTA", "Utah", "Utah Jazz", "MT"),
    Team("WAS", "Washington", "Washington Wizards", "ET"),
)

NBA = SeriesSpec(
    series_ticker="KXNBAGAME",
    title="Professional Basketball Game",
    teams=NBA_TEAMS,
    season_start=(10, 21),
    season_end=(4, 12),
    games_per_team=82,
    typical_game_minutes=150.0,
    competition="Pro Basketball (M)",
    milestone_type="basketball_game",
    tags=("Basketball",),
    settlement_source_name="NBA",
    settlement_source_url="https://www.nba.com/",
    breaks=(((2, 13), (2, 18)),),
)

SERIES: dict[str, SeriesSpec] = {NBA.series_ticker: NBA}
"""Every series the simulator lists, by series ticker."""
