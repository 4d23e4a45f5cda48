"""Pure rules of cold challenges: slots, the issuing chance, outcomes, availability."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexapod.pools.challenges import (
    PPM,
    Availability,
    ChallengeSchedule,
    answer_status,
    challenge_id_for,
    issue_now,
    poll_after_s,
    recorded_status,
    slot_start_ms,
)

SCHEDULE = ChallengeSchedule(
    interval_ms=600_000, deadline_ms=60_000, poll_s=10, per_pass_max=256, pass_ms=1000
)
TIMES = st.integers(0, 2**50)


@given(now_ms=TIMES, interval_ms=st.integers(1, 10**9))
def test_a_slot_holds_its_moment(now_ms: int, interval_ms: int) -> None:
    start = slot_start_ms(now_ms, interval_ms)
    assert start % interval_ms == 0
    assert start <= now_ms < start + interval_ms


@given(remaining_ms=st.integers(1, 10**7), pass_ms=st.integers(1, 10**5))
def test_the_issuing_chance_is_pass_over_remaining(remaining_ms: int, pass_ms: int) -> None:
    issuing = sum(issue_now(draw, remaining_ms, pass_ms) for draw in range(min(remaining_ms, 3000)))
    if remaining_ms <= 3000:
        assert issuing == min(pass_ms, remaining_ms)  # exactly pass/remaining of the draws
    if remaining_ms <= pass_ms:
        assert issue_now(remaining_ms - 1, remaining_ms, pass_ms)  # certain in the last pass


def test_the_moment_of_issue_is_uniform_over_the_passes() -> None:
    """The chance of issuing at pass i, having not issued before, is 1 / passes for each i."""
    passes = 600
    pass_ms = 1000
    not_yet = Fraction(1)
    for index in range(passes):
        remaining_ms = (passes - index) * pass_ms
        chance = Fraction(pass_ms, remaining_ms)
        assert not_yet * chance == Fraction(1, passes)
        not_yet *= 1 - chance
    assert not_yet == 0


def test_challenge_ids_are_one_per_node_and_slot() -> None:
    a = challenge_id_for("a" * 32, 600_000)
    assert a == challenge_id_for("a" * 32, 600_000)
    assert len(a) == 32 and int(a, 16) >= 0
    assert a != challenge_id_for("a" * 32, 1_200_000)
    assert a != challenge_id_for("b" * 32, 600_000)


@given(answered=TIMES, deadline=TIMES, correct=st.booleans())
def test_a_recorded_answer_keeps_its_status(answered: int, deadline: int, correct: bool) -> None:
    status = answer_status(answered, deadline, correct)
    assert status == ("late" if answered > deadline else "passed" if correct else "wrong")
    assert recorded_status(answered, deadline, status == "passed") == status


def test_the_deadline_itself_is_in_time() -> None:
    assert answer_status(1000, 1000, True) == "passed"
    assert answer_status(1001, 1000, True) == "late"


def test_cold_nodes_poll_often_and_others_at_half_the_deadline() -> None:
    assert poll_after_s(True, SCHEDULE) == 10
    assert poll_after_s(False, SCHEDULE) == 30


@pytest.mark.parametrize(
    "values",
    [
        {"interval_ms": 100_000, "deadline_ms": 60_000},  # two could be open in one slot
        {"poll_s": 31},  # a poll would leave less than half the deadline
        {"per_pass_max": 0},
    ],
)
def test_an_inconsistent_schedule_is_a_bug(values: dict[str, int]) -> None:
    fields = {
        "interval_ms": 600_000,
        "deadline_ms": 60_000,
        "poll_s": 10,
        "per_pass_max": 1,
        "pass_ms": 1000,
    }
    with pytest.raises(AssertionError):
        ChallengeSchedule(**{**fields, **values})


@given(issued=st.integers(1, 10**6), data=st.data())
def test_availability_is_exact(issued: int, data: st.DataObject) -> None:
    answered = data.draw(st.integers(0, issued))
    availability = Availability(issued, answered)
    assert availability.fraction == Fraction(answered, issued)
    assert availability.ppm == answered * PPM // issued
    minimum = Decimal(data.draw(st.integers(0, 100))) / 100
    assert availability.at_least(minimum) == (answered * 100 >= minimum * 100 * issued)


def test_availability_at_the_boundary() -> None:
    assert Availability(10, 9).at_least(Decimal("0.90"))
    assert not Availability(1000, 899).at_least(Decimal("0.90"))
    assert not Availability(3, 2).at_least(Decimal("0.6667"))
    assert Availability(3, 2).at_least(Decimal("0.6666"))


def test_no_challenges_means_unknown_and_not_available() -> None:
    none = Availability(0, 0)
    assert none.fraction == 0
    assert none.ppm == 0
    assert not none.at_least(Decimal(0))


def test_more_answered_than_issued_is_a_bug() -> None:
    with pytest.raises(AssertionError):
        Availability(1, 2)
