"""Epoch settlement and cold stipends as pure arithmetic: scaling, replay, proration."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.policy import default_policy, quote
from nexapod.pools.settle import (
    LINES_PER_ENTRY_MAX,
    NodeWork,
    check_lines,
    epoch_bounds_ms,
    epoch_of,
    line_entry_bodies,
    settle_epoch_lines,
    settlement_transfer_id,
    settlement_transfers,
)
from nexapod.pools.stipend import cold_seconds, stipend

POLICY = default_policy()
T = 10**12
WEEK_S = POLICY.stipend_period_s


def _work(n: int) -> list[NodeWork]:
    return [NodeWork(f"node{i:05d}", f"user{i % 7}", (i + 1) * 10**15, 10 * T) for i in range(n)]


def _summary(s: object, sha: str) -> dict[str, object]:
    from nexapod.pools.settle import EpochSettlement

    assert isinstance(s, EpochSettlement)
    return {
        "epoch": s.epoch_index,
        "policy_sha256": sha,
        "treasury_micro_usdc": str(s.treasury_micro_usdc),
        "nxc_micro_total": str(s.nxc_micro_total),
        "usdc_owed_micro_total": str(s.usdc_owed_micro_total),
        "usdc_paid_micro_total": str(s.usdc_paid_micro_total),
    }


def test_a_funded_treasury_pays_every_line_in_full() -> None:
    work = _work(5)
    s = settle_epoch_lines(7, work, POLICY, treasury_micro_usdc=10**18)
    for w, line in zip(work, s.lines, strict=True):
        q = quote(w.flops, w.capacity_flops_per_s, POLICY.epoch_s, POLICY)
        assert (line.nxc_micro, line.usdc_owed_micro, line.usdc_paid_micro) == (
            q.nxc_micro,
            q.usdc_micro,
            q.usdc_micro,
        )
    assert s.usdc_shortfall_micro == 0


def test_a_short_treasury_scales_everyone_by_one_factor_and_reports_the_shortfall() -> None:
    work = _work(3)
    owed = settle_epoch_lines(1, work, POLICY, 10**18).usdc_owed_micro_total
    treasury = owed // 3
    s = settle_epoch_lines(1, work, POLICY, treasury)
    for line in s.lines:
        assert line.usdc_paid_micro == line.usdc_owed_micro * treasury // owed
    assert s.usdc_paid_micro_total <= treasury
    assert s.usdc_shortfall_micro == owed - s.usdc_paid_micro_total > 0
    assert s.nxc_micro_total == settle_epoch_lines(1, work, POLICY, 10**18).nxc_micro_total
    empty = settle_epoch_lines(1, work, POLICY, 0)
    assert empty.usdc_paid_micro_total == 0 and empty.usdc_shortfall_micro == owed


def test_transfers_sum_a_users_nodes_with_ids_fixed_by_epoch_user_and_asset() -> None:
    s = settle_epoch_lines(3, _work(14), POLICY, 10**18)
    batch = settlement_transfers(s)
    assert len(batch) == 14  # 7 users x (NXC, USDC)
    assert (
        sum(t.amount or 0 for t in batch if t.credit_account_id.endswith(":NXC"))
        == s.nxc_micro_total
    )  # type: ignore[union-attr]
    assert batch[0].transfer_id == settlement_transfer_id("reward", 3, "user0", "NXC")
    assert settlement_transfer_id("reward", 4, "user0", "NXC") != batch[0].transfer_id
    assert {t.debit_account_id for t in batch} == {"system:issuance:NXC", "system:treasury:USDC"}


def test_replaying_the_published_lines_gives_identical_amounts() -> None:
    s = settle_epoch_lines(9, _work(LINES_PER_ENTRY_MAX + 3), POLICY, 10**17)
    bodies = line_entry_bodies(s, POLICY.sha256)
    assert len(bodies) == 2
    assert check_lines(_summary(s, POLICY.sha256), bodies, POLICY) == []
    bodies[1]["lines"][0][4] = str(int(bodies[1]["lines"][0][4]) + 1)  # one micro-NXC more
    problems = check_lines(_summary(s, POLICY.sha256), bodies, POLICY)
    assert len(problems) == 1 and bodies[1]["lines"][0][0] in problems[0]
    assert "names policy" in check_lines(_summary(s, "0" * 64), bodies, POLICY)[0]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=10**21), min_size=1, max_size=30),
    st.integers(min_value=0, max_value=10**12),
)
def test_batch_equals_replay_and_never_pays_more_than_the_treasury(
    flops: list[int], treasury: int
) -> None:
    work = [NodeWork(f"n{i}", f"u{i % 3}", f, 10**14) for i, f in enumerate(flops)]
    s = settle_epoch_lines(1, work, POLICY, treasury)
    assert s.usdc_paid_micro_total <= treasury
    assert (
        check_lines(_summary(s, POLICY.sha256), line_entry_bodies(s, POLICY.sha256), POLICY) == []
    )


def test_epochs_tile_time() -> None:
    start, end = epoch_bounds_ms(5, 3600)
    assert (start, end) == (5 * 3_600_000, 6 * 3_600_000)
    assert epoch_of(start, 3600) == 5 and epoch_of(end - 1, 3600) == 5 and epoch_of(end, 3600) == 6


def test_the_weekly_stipend() -> None:
    full = stipend(WEEK_S, 100, 100, POLICY)
    assert (full.nxc_micro, full.usdc_micro) == (5_000_000, 10_000_000)
    at_90 = stipend(WEEK_S, 100, 90, POLICY)
    assert (at_90.nxc_micro, at_90.usdc_micro) == (5_000_000, 9_500_000)
    assert stipend(WEEK_S, 100, 89, POLICY).usdc_micro == 0  # below min_availability
    half = stipend(WEEK_S // 2, 3, 3, POLICY)
    assert (half.nxc_micro, half.usdc_micro, half.note) == (2_500_000, 5_000_000, "prorated")
    third = stipend(WEEK_S // 3, 7, 7, POLICY)
    assert third.nxc_micro == 5_000_000 * (WEEK_S // 3) // WEEK_S  # floored once, exactly
    assert stipend(WEEK_S, 0, 0, POLICY).nxc_micro == 0  # no challenge: no evidence


def test_cold_seconds_count_only_time_in_cold() -> None:
    week_ms = WEEK_S * 1000
    assert cold_seconds("cold", [], 0, week_ms) == WEEK_S
    changes = [(1000_000, "hot"), (3000_000, "cold"), (4000_000, "none")]
    assert cold_seconds("cold", changes, 0, week_ms) == 1000 + 1000  # promoted time is hot
    assert cold_seconds("none", [(week_ms - 5000, "cold")], 0, week_ms) == 5
