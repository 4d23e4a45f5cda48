"""Pure rules of result validation: replication, quorum, adaptive trust, plausibility.

A result is accepted only through these rules (docs/validation.md):

- **Adaptive replication** (BOINC's, made explicit): a node's first results are always
  checked by a replica on a node of another user; after ``trusted_after_valid``
  consecutive valid results the chance that a result is checked falls as
  ``trusted_after_valid / streak``, never below ``check_floor_ppm``. One invalid result
  resets the streak to zero.
- **Quorum**: a checked unit is valid once ``quorum`` results from distinct users agree
  (the workload decides what agreeing means); results outside that group are invalid,
  and their nodes are cheating. A unit that collects ``results_per_unit_max`` results
  without a quorum fails.
- **Plausibility**: a result that arrives sooner after its lease was granted than the
  node's benchmarked capacity allows (with ``speedup_max`` of headroom), or than any
  hardware could (``flops_per_s_max``), is refused: the FLOPs are the unit's exact
  count, never the node's claim, so time is the only thing a node can fake.

Probabilities are integers in parts per million, and the random draw is an argument,
so that every decision is exact and can be replayed in a test or a simulation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "PPM",
    "Candidate",
    "Resolution",
    "ValidationPolicy",
    "check_probability_ppm",
    "implausibility",
    "needs_check",
    "resolve",
    "streak_after",
]

PPM = 1_000_000


@dataclass(frozen=True)
class ValidationPolicy:
    """The coordinator's validation settings (from Settings)."""

    quorum: int = 2
    results_per_unit_max: int = 5
    trusted_after_valid: int = 30
    check_floor_ppm: int = 50_000
    spot_check_ppm: int = 20_000
    speedup_max: int = 8
    flops_per_s_max: int = 10**16

    def __post_init__(self) -> None:
        assert 1 <= self.quorum <= 16
        assert self.quorum <= self.results_per_unit_max <= 64
        assert self.trusted_after_valid >= 1
        assert 0 <= self.check_floor_ppm <= PPM
        assert 0 <= self.spot_check_ppm <= PPM
        assert self.speedup_max >= 1
        assert self.flops_per_s_max >= 1


def check_probability_ppm(valid_streak: int, policy: ValidationPolicy) -> int:
    """How likely (ppm) a result of a node with this many consecutive valid results is checked."""
    assert valid_streak >= 0
    if policy.quorum == 1:
        return 0  # replication is off: every result stands alone
    if valid_streak < policy.trusted_after_valid:
        return PPM
    falling = policy.trusted_after_valid * PPM // valid_streak
    return max(policy.check_floor_ppm, min(PPM, falling))


def needs_check(valid_streak: int, draw_ppm: int, policy: ValidationPolicy) -> bool:
    """Whether a unit's first result must wait for a quorum; ``draw_ppm`` is uniform in [0, PPM)."""
    assert 0 <= draw_ppm < PPM
    return draw_ppm < check_probability_ppm(valid_streak, policy)


def streak_after(valid_streak: int, valid: bool) -> int:
    """A valid result extends the streak; an invalid one resets trust entirely."""
    assert valid_streak >= 0
    return valid_streak + 1 if valid else 0


@dataclass(frozen=True)
class Candidate:
    """A result of a checked unit, waiting for (or part of) its quorum."""

    result_id: str
    username: str


@dataclass(frozen=True)
class Resolution:
    """What a set of results of one unit decides."""

    outcome: Literal["valid", "need_more", "no_quorum"]
    valid: tuple[str, ...] = ()  # result ids in the agreeing group (outcome "valid")
    invalid: tuple[str, ...] = ()  # result ids that contradict it


def resolve(
    candidates: Sequence[Candidate],
    agree: Callable[[str, str], bool],
    quorum: int,
    results_max: int,
) -> Resolution:
    """Group the results by agreement with each group's first member, in arrival order.

    A group with members from ``quorum`` distinct users is the unit's answer: its members
    are valid, everyone else's result is invalid. Without such a group the unit needs
    another result, or fails once it has ``results_max`` of them.
    """
    assert quorum >= 1
    assert len(candidates) <= results_max
    assert len({c.result_id for c in candidates}) == len(candidates)
    groups: list[list[Candidate]] = []
    for candidate in candidates:
        for group in groups:
            if agree(group[0].result_id, candidate.result_id):
                group.append(candidate)
                break
        else:
            groups.append([candidate])
    for group in groups:
        if len({member.username for member in group}) >= quorum:
            members = {member.result_id for member in group}
            return Resolution(
                "valid",
                valid=tuple(c.result_id for c in candidates if c.result_id in members),
                invalid=tuple(c.result_id for c in candidates if c.result_id not in members),
            )
    if len(candidates) >= results_max:
        return Resolution("no_quorum")
    return Resolution("need_more")


def implausibility(
    work_flops: int, elapsed_ms: int, capacity_flops_per_s: int, policy: ValidationPolicy
) -> str | None:
    """Why a result that took ``elapsed_ms`` from lease grant to upload cannot be real, or None.

    Exact integer comparisons: ``work / elapsed > capacity * speedup_max`` is tested as
    ``work * 1000 > capacity * speedup_max * elapsed_ms``.
    """
    assert work_flops >= 0
    assert capacity_flops_per_s > 0
    elapsed_ms = max(elapsed_ms, 0)
    if work_flops * 1000 > policy.flops_per_s_max * elapsed_ms:
        return (
            f"{work_flops} FLOPs in {elapsed_ms} ms is faster than any hardware "
            f"({policy.flops_per_s_max} FLOP/s)"
        )
    if work_flops * 1000 > capacity_flops_per_s * policy.speedup_max * elapsed_ms:
        return (
            f"{work_flops} FLOPs in {elapsed_ms} ms is more than {policy.speedup_max}x "
            f"the node's benchmarked {capacity_flops_per_s} FLOP/s"
        )
    return None
