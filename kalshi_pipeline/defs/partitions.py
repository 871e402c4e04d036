"""The game-date partitioning shared by every game-level asset.

A partition key is the game date in America/New_York as written in the event ticker
(`KXNBAGAME-25DEC19SASATL` -> `2025-12-19`): a 10:30 pm ET game's after-midnight minutes still belong
to its date, because rows are keyed by the ticker's date, never by the candle's timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
from dagster._core.definitions.partitions.context import (
    PartitionLoadingContext,
    partition_loading_context,
)

GAME_TIMEZONE = "America/New_York"
GAME_TZ = ZoneInfo(GAME_TIMEZONE)
FIRST_GAME_DATE = "2024-10-01"


class GameDatePartitions(dg.DailyPartitionsDefinition):
    """Daily game-date partitions whose unknown-key error names the valid range in one line.

    Dagster's own message ("Could not find a partition with key ...") does not say which keys exist, and
    `dagster asset materialize` replaces it with one naming only the range's first key. This error type is
    not `DagsterUnknownPartitionError`, so the CLI's last line is this message.
    """

    def validate_partition_key(self, partition_key: str, context: PartitionLoadingContext) -> None:
        """Raise one clear line when `partition_key` is not a game date of this deployment."""
        with partition_loading_context(new_ctx=context):
            if self.has_partition_key(partition_key):
                return
            first, last = self.get_first_partition_key(), self.get_last_partition_key()
        raise dg.DagsterInvalidSubsetError(bad_key_message(partition_key, str(first), str(last)))


def bad_key_message(key: str, first: str, last: str) -> str:
    """Return the one-line error for a partition key outside `first`..`last`."""
    try:
        date.fromisoformat(key)
    except ValueError:
        return f"bad partition key {key!r}: a game date is YYYY-MM-DD between {first} and {last}"
    return (
        f"no game-date partition {key}: valid game dates are {first} to {last} (tomorrow in "
        f"{GAME_TIMEZONE}); pick a date in that range"
    )


# end_offset=2: a daily partition normally ends with yesterday; +1 adds today, +2 adds tomorrow, so
# tonight's and tomorrow's games can be discovered and pulled before they are played.
game_date_partitions = GameDatePartitions(
    start_date=FIRST_GAME_DATE,
    timezone=GAME_TIMEZONE,
    end_offset=2,
    fmt="%Y-%m-%d",
)


def parse_game_date(key: str) -> date:
    """Parse a partition key (`YYYY-MM-DD`) into a date, with a clear error for anything else."""
    try:
        return date.fromisoformat(key)
    except ValueError as exc:
        raise ValueError(f"bad game-date partition key {key!r}: expected YYYY-MM-DD") from exc


def partition_dates(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> list[date]:
    """Return every game date the run covers: one for a single partition, all of them for a range.

    Assets use `BackfillPolicy.single_run()`, so a backfill hands one run a key range; this helper is
    the only place that turns the run's partition(s) into dates.
    """
    key_range = context.partition_key_range
    first, last = parse_game_date(key_range.start), parse_game_date(key_range.end)
    if last < first:
        raise ValueError(
            f"bad partition range {key_range.start}..{key_range.end}: end before start"
        )
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def day_bounds(game_date: date) -> tuple[datetime, datetime]:
    """Return the [start, end) instants of a game date in America/New_York, as aware datetimes."""
    start = datetime.combine(game_date, time(0), tzinfo=GAME_TZ)
    end = datetime.combine(game_date + timedelta(days=1), time(0), tzinfo=GAME_TZ)
    return start, end


def dates_label(dates: Sequence[date]) -> str:
    """Return `2025-12-19` for one date or `2025-12-01..2025-12-31` for a range (as a run's metadata says)."""
    return str(dates[0]) if len(dates) == 1 else f"{dates[0]}..{dates[-1]}"
