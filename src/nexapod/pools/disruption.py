"""Disruptions and their stand-ins, as pure functions (ECONOMICS.md §4 and §5).

A disruption is hot capacity missing while a job runs, for either of two reasons:

- a hot node is lost: its capacity is owed until it comes back or is written off
  (away longer than the coordinator's ``pool_write_off_s``);
- hot capacity is below what the running jobs need (``capacity_flops_per_s_min``,
  stated at submission, summed over the running jobs: they share the hot pool).

Cold nodes stand in: promoted to hot (flagged ``promoted``), they lease the lost work
from its last checkpoint and earn the hot rate; they return to cold as soon as the
capacity they cover is no longer owed. Stand-ins are not tied to one lost node: the
manager keeps as much promoted capacity as is owed,

    owed = max(lost capacity still away, the jobs' need - regular hot capacity)

(both owed amounts are met by the same stand-ins, so the larger one counts) and
returns any stand-in whose capacity is beyond it. Stand-ins are hot capacity for the
share cap: one whose user would pass ``max_user_share`` is passed over for another
user's, and capacity stays unreplaced rather than break the cap.

    lose                lost hot nodes leave hot (``lost``, or ``stand_in_lost``)
    stand_ins_owed      the promoted capacity the disruption calls for now
    return_stand_ins    stand-ins beyond it go back to cold (``disruption_over``)
    promote_stand_ins   the most available cold nodes, within the cap, until it is met
    written_off         lost nodes away past the grace
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from nexapod.policy import Policy
from nexapod.pools.rules import (
    Member,
    Move,
    counted_capacity,
    fits_under_cap,
    hot_capacity_by_user,
    share_cap_binds,
)

__all__ = [
    "Disruption",
    "LostNode",
    "lose",
    "promote_stand_ins",
    "return_stand_ins",
    "stand_ins_owed_flops_per_s",
    "written_off",
]

PromotionReason = Literal["failover", "capacity_need"]


@dataclass(frozen=True, slots=True)
class Disruption:
    """What is missing from hot now; zero and zero when nothing is."""

    lost_flops_per_s: int  # counted capacity of lost hot nodes still away, while a job runs
    need_flops_per_s: int  # the running jobs' capacity needs, summed (0: none stated)

    def __post_init__(self) -> None:
        assert self.lost_flops_per_s >= 0
        assert self.need_flops_per_s >= 0


@dataclass(frozen=True, slots=True)
class LostNode:
    """A node the manager found lost, not back and not written off."""

    node_id: str
    lost_at_ms: int  # when it was moved out of hot as lost


def lose(members: Sequence[Member], lost: Iterable[str]) -> list[Move]:
    """Lost hot nodes leave hot. A lost stand-in is ``stand_in_lost``: the capacity it
    stood in for is still owed by the node it replaced, so its own is not owed again."""
    by_id = {m.node_id: m for m in members}
    moves: list[Move] = []
    for node_id in sorted(set(lost)):
        member = by_id.get(node_id)
        if member is None or member.pool != "hot":
            continue
        moves.append(Move(node_id, "hot", "none", "stand_in_lost" if member.promoted else "lost"))
    assert len(moves) <= len(members)
    return moves


def _regular_hot_flops_per_s(members: Iterable[Member], policy: Policy) -> int:
    return sum(counted_capacity(m, policy) for m in members if m.pool == "hot" and not m.promoted)


def _promoted_flops_per_s(members: Iterable[Member], policy: Policy) -> int:
    return sum(counted_capacity(m, policy) for m in members if m.promoted)


def stand_ins_owed_flops_per_s(
    members: Sequence[Member], disruption: Disruption, policy: Policy
) -> int:
    """The promoted capacity the disruption calls for: the lost capacity still away, or
    the jobs' need beyond regular hot capacity, whichever is larger (0: no disruption)."""
    shortfall = disruption.need_flops_per_s - _regular_hot_flops_per_s(members, policy)
    owed = max(disruption.lost_flops_per_s, shortfall, 0)
    assert owed >= disruption.lost_flops_per_s
    return owed


def return_stand_ins(
    members: Sequence[Member], owed_flops_per_s: int, policy: Policy
) -> list[Move]:
    """Stand-ins whose capacity is no longer owed go back to cold, the newest first, each
    only if those left still cover ``owed_flops_per_s``; all of them once nothing is owed."""
    assert owed_flops_per_s >= 0
    stand_ins = sorted((m for m in members if m.promoted), key=lambda m: (-m.since_ms, m.node_id))
    covered = _promoted_flops_per_s(stand_ins, policy)
    moves: list[Move] = []
    for member in stand_ins:
        capacity = counted_capacity(member, policy)
        if covered - capacity >= owed_flops_per_s:
            covered -= capacity
            moves.append(Move(member.node_id, "hot", "cold", "disruption_over"))
    assert covered >= min(owed_flops_per_s, _promoted_flops_per_s(stand_ins, policy))
    return moves


def promote_stand_ins(
    members: Sequence[Member],
    owed_flops_per_s: int,
    reason: PromotionReason,
    policy: Policy,
) -> list[Move]:
    """Promote cold nodes, most available first, until stand-ins cover ``owed_flops_per_s``.

    A cold node whose user would pass the share cap with it is passed over (another
    user's may stand in); when nobody's fits, the capacity stays unreplaced. The pool
    must be within the cap already: the manager runs its rebalance first.
    """
    missing = owed_flops_per_s - _promoted_flops_per_s(members, policy)
    if missing <= 0:
        return []
    by_user = hot_capacity_by_user(members, policy)
    total = sum(by_user.values())
    num, den = policy.max_user_share.as_integer_ratio()
    binds = share_cap_binds(by_user, policy)
    assert not binds or all(c * den <= num * total for c in by_user.values()), "rebalance first"
    standby = sorted(
        (m for m in members if m.pool == "cold" and counted_capacity(m, policy) > 0),
        key=lambda m: (-m.availability_ppm, m.since_ms, m.node_id),
    )
    moves: list[Move] = []
    # A node passed over may fit once others' stand-ins have grown hot: go round again
    # over those passed over, while a round promotes someone (each round promotes one
    # at least, so there are at most as many rounds as nodes).
    for _ in range(len(standby) + 1):
        passed_over: list[Member] = []
        for member in standby:
            capacity = counted_capacity(member, policy)
            if missing <= 0:
                break
            if not fits_under_cap(by_user, total, member.username, capacity, policy):
                passed_over.append(member)
                continue
            by_user[member.username] = by_user.get(member.username, 0) + capacity
            total += capacity
            missing -= capacity
            moves.append(Move(member.node_id, "cold", "hot", reason, promoted=True))
        if missing <= 0 or len(passed_over) == len(standby):
            assert total == sum(by_user.values())
            return moves
        standby = passed_over
    raise AssertionError("every round promotes a node")


def written_off(lost: Iterable[LostNode], now_ms: int, write_off_s: int) -> list[LostNode]:
    """Lost nodes away for ``write_off_s`` or longer, by id: the manager stops owing
    their capacity. Such a node may still come back; it then rejoins like any node."""
    assert write_off_s > 0
    before_ms = now_ms - write_off_s * 1000
    gone = sorted((node for node in lost if node.lost_at_ms <= before_ms), key=lambda n: n.node_id)
    assert len({node.node_id for node in gone}) == len(gone), "a node is lost once"
    return gone
