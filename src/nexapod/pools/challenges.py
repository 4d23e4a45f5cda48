"""Pure rules of cold-pool liveness challenges (ECONOMICS.md §4, docs/cold-challenges.md).

Time is cut into slots of ``interval_ms`` (aligned on the epoch). In every slot each cold
node gets one challenge, at a moment the node cannot predict: in each maintenance pass a
node still waiting for its slot's challenge gets it with chance ``pass_ms / remaining_ms``
(the time left in the slot), so the moment is spread evenly over the slot's passes and
certain by its last. A node that knew when challenges come could be up only then and
still look always available; this way it must be up all the time.

An answer is in time when it arrives at or before the deadline. The first answer to a
challenge counts: ``passed`` (right, in time), ``wrong`` (in time, not the answer) or
``late`` (after the deadline, whatever it says). Availability over a window is the
challenges whose deadline falls in it, against those of them passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from nexapod.crypto import sha256_hex
from nexapod.protocol.v1.challenges import ChallengeStatus

__all__ = [
    "PPM",
    "Availability",
    "ChallengeSchedule",
    "answer_status",
    "challenge_id_for",
    "issue_now",
    "poll_after_s",
    "recorded_status",
    "slot_start_ms",
]

PPM = 1_000_000
CHALLENGE_ID_HEX_CHARS = 32
_ID_DOMAIN = "nexapod.cold_challenge.v1"


@dataclass(frozen=True)
class ChallengeSchedule:
    """How often cold nodes are challenged, how long they have, and the limits of a pass."""

    interval_ms: int  # one challenge per node per slot of this length
    deadline_ms: int  # time to answer, from the moment of issue
    poll_s: int  # how often a cold node should ask for open challenges
    per_pass_max: int  # challenges one maintenance pass issues at most
    pass_ms: int  # how often maintenance passes run (the step of the issuing chance)

    def __post_init__(self) -> None:
        assert self.deadline_ms > 0
        assert 2 * self.deadline_ms <= self.interval_ms, "at most one open challenge per slot"
        assert 0 < 2 * self.poll_s * 1000 <= self.deadline_ms, "a poll sees half the deadline"
        assert self.per_pass_max >= 1
        assert self.pass_ms > 0


def slot_start_ms(now_ms: int, interval_ms: int) -> int:
    """The start of the slot that holds ``now_ms``."""
    assert now_ms >= 0
    assert interval_ms > 0
    start = now_ms - now_ms % interval_ms
    assert start <= now_ms < start + interval_ms
    return start


def issue_now(draw: int, remaining_ms: int, pass_ms: int) -> bool:
    """Whether a node still owed its slot's challenge gets it in this pass.

    ``draw`` is uniform in ``[0, remaining_ms)``: the chance is ``pass_ms / remaining_ms``,
    which makes the moment of issue uniform over the slot's passes, and certain once less
    than a pass is left.
    """
    assert remaining_ms > 0
    assert 0 <= draw < remaining_ms
    assert pass_ms > 0
    return draw < pass_ms


def challenge_id_for(node_id: str, slot_start: int) -> str:
    """The id of a node's challenge in a slot: one per slot, whoever issues it.

    Two coordinators issuing at once compute the same id, so the table's primary key
    keeps only one; the seed, drawn at random, is what the node cannot know in advance.
    """
    assert node_id
    assert slot_start >= 0
    challenge_id = sha256_hex(f"{_ID_DOMAIN}\x00{node_id}\x00{slot_start}".encode())
    return challenge_id[:CHALLENGE_ID_HEX_CHARS]


def answer_status(answered_at_ms: int, deadline_at_ms: int, correct: bool) -> ChallengeStatus:
    """The fate of a first answer: late past the deadline, else passed or wrong."""
    assert answered_at_ms >= 0
    assert deadline_at_ms >= 0
    if answered_at_ms > deadline_at_ms:
        return "late"
    return "passed" if correct else "wrong"


def recorded_status(answered_at_ms: int, deadline_at_ms: int, passed: bool) -> ChallengeStatus:
    """The status of an answer already recorded (the same as :func:`answer_status` gave)."""
    assert answered_at_ms >= 0
    assert not (passed and answered_at_ms > deadline_at_ms), "a late answer never passes"
    if passed:
        return "passed"
    return "late" if answered_at_ms > deadline_at_ms else "wrong"


def poll_after_s(is_cold: bool, schedule: ChallengeSchedule) -> int:
    """How long a node may wait before asking again for its open challenges.

    A cold node asks every ``poll_s``. Any other node asks every half deadline, so that a
    node just put in cold still sees its first challenge with half its time left.
    """
    if is_cold:
        return schedule.poll_s
    relaxed_s = max(schedule.poll_s, schedule.deadline_ms // 2000)
    assert relaxed_s >= schedule.poll_s
    assert relaxed_s * 2000 <= schedule.deadline_ms
    return relaxed_s


@dataclass(frozen=True)
class Availability:
    """A node's challenges over a window: issued (deadline in the window) and passed.

    ``issued == 0`` means availability is unknown (the node was not challenged in the
    window): :attr:`fraction` is then 0 and :meth:`at_least` False, so no stipend is paid
    on no evidence.
    """

    issued: int
    answered_in_time: int  # right and by the deadline

    def __post_init__(self) -> None:
        assert self.issued >= 0
        assert 0 <= self.answered_in_time <= self.issued

    @property
    def fraction(self) -> Fraction:
        """answered_in_time / issued, exactly (0 when nothing was issued)."""
        if self.issued == 0:
            return Fraction(0)
        return Fraction(self.answered_in_time, self.issued)

    @property
    def ppm(self) -> int:
        """The fraction in parts per million, rounded down (for display and logs)."""
        if self.issued == 0:
            return 0
        ppm = self.answered_in_time * PPM // self.issued
        assert 0 <= ppm <= PPM
        return ppm

    def at_least(self, minimum: Decimal) -> bool:
        """Exactly whether the fraction reaches ``minimum`` (policy ``min_availability``).

        False when nothing was issued, whatever the minimum.
        """
        assert minimum.is_finite()
        assert 0 <= minimum <= 1
        if self.issued == 0:
            return False
        return self.fraction >= Fraction(minimum)
