"""Pure rules of the mesh: lease deadlines and what happens to a unit after a lease ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "LeaseTiming",
    "lease_duration_s",
    "unit_status_after_lost_lease",
]


@dataclass(frozen=True)
class LeaseTiming:
    """The coordinator's lease policy (from Settings)."""

    lease_s_min: int
    lease_s_max: int
    slack_factor: int

    def __post_init__(self) -> None:
        assert 0 < self.lease_s_min <= self.lease_s_max
        assert self.slack_factor >= 1


def lease_duration_s(work_flops: int, capacity_flops_per_s: int, timing: LeaseTiming) -> int:
    """How long a node has for a unit: its expected time times the slack, within bounds.

    The expected time is the unit's exact FLOPs over the node's benchmarked capacity,
    rounded up, so a slow node gets a longer lease and a fast one cannot hold work long.
    """
    assert work_flops >= 0
    assert capacity_flops_per_s > 0
    expected_s = -(-work_flops // capacity_flops_per_s)
    return max(timing.lease_s_min, min(timing.lease_s_max, expected_s * timing.slack_factor))


def unit_status_after_lost_lease(attempts: int, attempts_max: int) -> Literal["queued", "failed"]:
    """A unit whose lease expired or failed goes back to the queue, until it ran out of tries."""
    assert attempts >= 1
    assert attempts_max >= 1
    return "failed" if attempts >= attempts_max else "queued"
