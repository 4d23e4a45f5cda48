"""The leaderboard's pure arithmetic: competition ranks, the decayed recent average, the
recent horizon, and when a snapshot is due."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexapod.registry.leaderboard import (
    DAY_MS,
    HOUR_MS,
    RECENT_HALF_LIVES_MAX,
    Standing,
    next_refresh_at_ms,
    rank_standings,
    recent_horizon_ms,
    recent_rate_term,
    snapshot_due,
    whole_flops_per_day,
)

WEEK_MS = 7 * DAY_MS
NOW_MS = 20_000 * HOUR_MS  # an hour's start
RATE_PER_DAY = math.log(2) / 7  # the decay rate of a 7-day half-life, per day


def _standing(username: str, flops: int) -> Standing:
    return Standing(username, flops, 0, 1)


def test_rank_orders_by_flops_then_name_and_ties_share_a_rank() -> None:
    ranked = rank_standings(
        [
            _standing("dave", 0),
            _standing("carol", 10),
            _standing("alice", 10),
            _standing("bob", 2**70 + 1),
            _standing("erin", 2**70),
        ]
    )
    assert [(r.row_index, r.rank, r.standing.username) for r in ranked] == [
        (0, 1, "bob"),
        (1, 2, "erin"),
        (2, 3, "alice"),
        (3, 3, "carol"),
        (4, 5, "dave"),
    ]


def test_rank_of_nobody_is_empty() -> None:
    assert rank_standings([]) == []


@given(st.lists(st.integers(0, 10**30), max_size=30))
def test_ranks_never_decrease_and_equal_flops_share_one(flops: list[int]) -> None:
    ranked = rank_standings(_standing(f"user{i:03d}", f) for i, f in enumerate(flops))
    for earlier, later in itertools.pairwise(ranked):
        assert earlier.standing.verified_flops >= later.standing.verified_flops
        same = earlier.standing.verified_flops == later.standing.verified_flops
        assert later.rank == (earlier.rank if same else later.row_index + 1)


def test_a_result_one_half_life_old_weighs_half() -> None:
    flops = 7 * 10**15
    hour = NOW_MS // HOUR_MS
    now_term = recent_rate_term(flops, hour, NOW_MS, WEEK_MS)
    assert now_term == pytest.approx(flops * RATE_PER_DAY, rel=1e-12)
    week_old = recent_rate_term(flops, hour - 7 * 24, NOW_MS, WEEK_MS)
    assert week_old == pytest.approx(now_term / 2, rel=1e-12)
    two_weeks_old = recent_rate_term(flops, hour - 14 * 24, NOW_MS, WEEK_MS)
    assert two_weeks_old == pytest.approx(now_term / 4, rel=1e-12)


def test_age_is_counted_from_the_start_of_the_bucket_and_never_negative() -> None:
    hour = NOW_MS // HOUR_MS
    in_the_hour = recent_rate_term(10**9, hour, NOW_MS + HOUR_MS // 2, WEEK_MS)
    assert in_the_hour == pytest.approx(10**9 * RATE_PER_DAY * 2 ** (-0.5 / 168), rel=1e-12)
    future = recent_rate_term(10**9, hour + 5, NOW_MS, WEEK_MS)
    assert future == recent_rate_term(10**9, hour, NOW_MS, WEEK_MS)


@given(rate_per_day=st.integers(24, 10**24), half_life_days=st.integers(1, 60))
def test_a_steady_rate_reads_as_itself(rate_per_day: int, half_life_days: int) -> None:
    """Work at R FLOPs a day for the whole horizon reads as R, within what counting ages
    from the start of the hour adds (at most ln 2 hours over the half-life: 0.4% at 7 days)."""
    half_life_ms = half_life_days * DAY_MS
    per_hour = rate_per_day // 24
    horizon_hours = RECENT_HALF_LIVES_MAX * half_life_ms // HOUR_MS
    hour = NOW_MS // HOUR_MS
    total = sum(
        recent_rate_term(per_hour, hour - k, NOW_MS, half_life_ms) for k in range(horizon_hours)
    )
    assert total == pytest.approx(per_hour * 24, rel=math.log(2) * HOUR_MS / half_life_ms)
    assert total >= per_hour * 24 * (1 - 1e-9)


def test_whole_flops_per_day_rounds() -> None:
    assert whole_flops_per_day(0.0) == 0
    assert whole_flops_per_day(2.5) == 2
    assert whole_flops_per_day(2.6) == 3
    assert whole_flops_per_day(float(2**80)) == 2**80


@given(now_ms=st.integers(-(10**13), 10**14), half_life_days=st.integers(1, 365))
def test_the_horizon_is_an_hour_start_sixteen_half_lives_back(
    now_ms: int, half_life_days: int
) -> None:
    half_life_ms = half_life_days * DAY_MS
    horizon = recent_horizon_ms(now_ms, half_life_ms)
    assert horizon % HOUR_MS == 0
    assert now_ms - horizon >= RECENT_HALF_LIVES_MAX * half_life_ms
    assert now_ms - horizon < RECENT_HALF_LIVES_MAX * half_life_ms + HOUR_MS
    left_out = recent_rate_term(10**6, horizon // HOUR_MS - 1, now_ms, half_life_ms)
    assert left_out < 10**6 * 2.0**-RECENT_HALF_LIVES_MAX


def test_a_snapshot_is_due_when_there_is_none_or_it_is_a_refresh_old() -> None:
    assert snapshot_due(None, NOW_MS, 3600)
    assert not snapshot_due(NOW_MS, NOW_MS, 3600)
    assert not snapshot_due(NOW_MS, NOW_MS + 3_599_999, 3600)
    assert snapshot_due(NOW_MS, NOW_MS + 3_600_000, 3600)
    assert not snapshot_due(NOW_MS, NOW_MS - 5, 3600), "a clock that steps back waits"
    assert next_refresh_at_ms(NOW_MS, 3600) == NOW_MS + 3_600_000
