"""The leaderboard's arithmetic (pure: the time is an argument). ECONOMICS §6 and
docs/leaderboard.md.

**Rank** orders contributors by cumulative verified FLOPs, most first, ties by
username; tied contributors share a rank and the next rank skips (1, 2, 2, 4).

**Recent average** (BOINC's RAC, in FLOPs per day) weighs each verified result by
``2^(-age / half_life)``:

    recent_avg_flops_per_day(now) = sum over hour buckets b of
        F_b * (ln 2 / half_life_days) * 2^(-max(0, now - start_b) / half_life)

where ``F_b`` is the exact sum of ``work_flops`` validated in UTC hour ``b`` (hours since
the Unix epoch) and ``start_b`` its first millisecond. The factor ``ln 2 / half_life_days``
is the decay's rate, so a contributor verifying R FLOPs a day for long enough reads R.
Buckets older than :data:`RECENT_HALF_LIVES_MAX` half-lives are left out: they would
weigh less than ``2^-16``. The figure is a display statistic, not money: it is summed in
binary floating point (about 15 significant digits) and rounded to whole FLOPs a day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "RECENT_HALF_LIVES_MAX",
    "RankedStanding",
    "Standing",
    "hour_start_ms",
    "next_refresh_at_ms",
    "rank_standings",
    "recent_horizon_ms",
    "recent_rate_term",
    "snapshot_due",
    "whole_flops_per_day",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
RECENT_HALF_LIVES_MAX = 16


@dataclass(frozen=True, slots=True)
class Standing:
    """One contributor's figures, before ranking."""

    username: str
    verified_flops: int
    recent_avg_flops_per_day: int
    nodes: int


@dataclass(frozen=True, slots=True)
class RankedStanding:
    """A standing with its place: ``row_index`` orders the table (0-based, unique)."""

    row_index: int
    rank: int
    standing: Standing


def hour_start_ms(hour_index: int) -> int:
    """The first millisecond of UTC hour ``hour_index`` (hours since the Unix epoch)."""
    return hour_index * HOUR_MS


def recent_rate_term(work_flops: int, hour_index: int, now_ms: int, half_life_ms: int) -> float:
    """What the FLOPs verified in one hour bucket add to the recent average (FLOPs a day).

    A bucket one half-life old adds half of what it added when new; a bucket that
    starts after ``now_ms`` (clocks of several coordinators) counts as new.
    """
    assert work_flops >= 0
    assert half_life_ms > 0
    age_ms = max(0, now_ms - hour_start_ms(hour_index))
    rate_per_day = math.log(2) * DAY_MS / half_life_ms
    weight: float = 2.0 ** (-age_ms / half_life_ms)
    return work_flops * rate_per_day * weight


def whole_flops_per_day(recent_sum: float) -> int:
    """The summed terms as whole FLOPs a day (rounded half to even)."""
    assert recent_sum >= 0.0
    assert math.isfinite(recent_sum)
    return round(recent_sum)


def recent_horizon_ms(now_ms: int, half_life_ms: int) -> int:
    """The first millisecond whose results still count in the recent average: an hour's
    start, so that each bucket is wholly in or wholly out."""
    assert half_life_ms > 0
    start = (now_ms - RECENT_HALF_LIVES_MAX * half_life_ms) // HOUR_MS * HOUR_MS
    assert start <= now_ms - RECENT_HALF_LIVES_MAX * half_life_ms
    return start


def rank_standings(standings: Iterable[Standing]) -> list[RankedStanding]:
    """Order by verified FLOPs (most first, then username) and give competition ranks."""
    ordered = sorted(standings, key=lambda s: (-s.verified_flops, s.username))
    ranked: list[RankedStanding] = []
    for row_index, standing in enumerate(ordered):
        assert standing.verified_flops >= 0
        previous = ranked[-1] if ranked else None
        if previous is not None and previous.standing.verified_flops == standing.verified_flops:
            assert previous.standing.username < standing.username, "usernames are unique"
            rank = previous.rank
        else:
            rank = row_index + 1
        ranked.append(RankedStanding(row_index, rank, standing))
    return ranked


def snapshot_due(generated_at_ms: int | None, now_ms: int, refresh_s: int) -> bool:
    """A snapshot is made when there is none, or the last is ``refresh_s`` old or more."""
    assert refresh_s > 0
    if generated_at_ms is None:
        return True
    return now_ms >= next_refresh_at_ms(generated_at_ms, refresh_s)


def next_refresh_at_ms(generated_at_ms: int, refresh_s: int) -> int:
    """When the snapshot made at ``generated_at_ms`` is replaced, at the earliest."""
    assert refresh_s > 0
    assert generated_at_ms >= 0
    return generated_at_ms + refresh_s * 1000
