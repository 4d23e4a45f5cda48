"""Pure validation rules: adaptive replication, quorum resolution, plausibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nexapod.mesh.validation import (
    PPM,
    Candidate,
    ValidationPolicy,
    check_probability_ppm,
    implausibility,
    needs_check,
    resolve,
    streak_after,
)

POLICY = ValidationPolicy(quorum=2, results_per_unit_max=4, trusted_after_valid=10)


def test_new_nodes_are_always_checked() -> None:
    for streak in range(10):
        assert check_probability_ppm(streak, POLICY) == PPM
        assert needs_check(streak, PPM - 1, POLICY)


def test_the_check_probability_falls_with_the_streak_but_never_below_the_floor() -> None:
    probabilities = [check_probability_ppm(n, POLICY) for n in range(10, 10_000)]
    assert probabilities == sorted(probabilities, reverse=True)
    assert check_probability_ppm(20, POLICY) == PPM // 2
    assert min(probabilities) == POLICY.check_floor_ppm
    assert not needs_check(10_000, POLICY.check_floor_ppm, POLICY)
    assert needs_check(10_000, POLICY.check_floor_ppm - 1, POLICY)


def test_one_invalid_result_resets_trust() -> None:
    assert streak_after(500, valid=True) == 501
    assert streak_after(500, valid=False) == 0
    assert check_probability_ppm(streak_after(500, valid=False), POLICY) == PPM


def test_quorum_one_turns_replication_off() -> None:
    assert check_probability_ppm(0, ValidationPolicy(quorum=1)) == 0


def _agree_by_answer(answers: dict[str, str]) -> Callable[[str, str], bool]:
    return lambda a, b: answers[a] == answers[b]


def test_two_users_agreeing_validate_and_the_outlier_is_invalid() -> None:
    answers = {"r1": "x", "r2": "y", "r3": "x"}
    candidates = [Candidate("r1", "alice"), Candidate("r2", "mallory"), Candidate("r3", "bob")]
    resolution = resolve(candidates, _agree_by_answer(answers), 2, 4)
    assert resolution.outcome == "valid"
    assert resolution.valid == ("r1", "r3")
    assert resolution.invalid == ("r2",)


def test_agreement_within_one_user_is_no_quorum() -> None:
    answers = {"r1": "bad", "r2": "bad"}
    candidates = [Candidate("r1", "mallory"), Candidate("r2", "mallory")]
    assert resolve(candidates, _agree_by_answer(answers), 2, 4).outcome == "need_more"


def test_a_disagreement_needs_a_tie_breaker_then_fails_at_the_limit() -> None:
    answers = {"r1": "a", "r2": "b", "r3": "c", "r4": "d"}
    users = ["u1", "u2", "u3", "u4"]
    candidates = [Candidate(r, u) for r, u in zip(answers, users, strict=True)]
    agree = _agree_by_answer(answers)
    assert resolve(candidates[:2], agree, 2, 4).outcome == "need_more"
    assert resolve(candidates[:3], agree, 2, 4).outcome == "need_more"
    assert resolve(candidates, agree, 2, 4).outcome == "no_quorum"


def test_a_plausible_time_passes() -> None:
    # 10^9 FLOPs on a 10^9 FLOP/s node in 1 s, or 8x faster at most
    assert implausibility(10**9, 1000, 10**9, POLICY) is None
    assert implausibility(10**9, 125, 10**9, POLICY) is None


@pytest.mark.parametrize("elapsed_ms", [0, 1, 124])
def test_faster_than_the_benchmark_allows_is_refused(elapsed_ms: int) -> None:
    reason = implausibility(10**9, elapsed_ms, 10**9, POLICY)
    assert reason is not None
    assert "benchmarked" in reason or "any hardware" in reason


def test_faster_than_any_hardware_is_refused_whatever_the_claimed_capacity() -> None:
    reason = implausibility(10**18, 1000, 10**30, POLICY)
    assert reason is not None and "any hardware" in reason
