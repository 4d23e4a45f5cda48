"""The pool manager's decisions, as pure functions (ECONOMICS.md sections 2, 4 and 5).

Every function takes the pool as it stands (a list of :class:`Member`) and returns the
moves that bring it back to the rules; the service applies them, one log entry each.
Capacities are counted the way rewards count them: at most the node cap
(``node_cap_flops_per_s``), so one huge machine weighs no more in the share cap than
it would earn.

    admission       a node asks for work: hot, institutional, or warm for the share cap
    rebalance       a user above ``max_user_share`` loses its stand-ins, then its newest
                    hot nodes, until under it
    cold band       cold capacity kept inside [10 %, 20 %] of hot, aiming at cold_fraction

Disruptions (lost nodes, capacity needs, stand-ins promoted from cold) are
:mod:`nexapod.pools.disruption`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

from nexapod.policy import Policy

__all__ = [
    "COLD_BAND_HIGH",
    "COLD_BAND_LOW",
    "MOVES_PER_PLAN_MAX",
    "POOLS",
    "REASONS",
    "Member",
    "Move",
    "Pool",
    "admit",
    "apply_moves",
    "cold_band",
    "counted_capacity",
    "fits_under_cap",
    "hot_capacity_by_user",
    "institutional_reasons",
    "institutional_users",
    "manage_cold",
    "rebalance",
    "share_cap_binds",
]

Pool = Literal["hot", "warm", "cold", "institutional", "none"]
POOLS: tuple[Pool, ...] = ("hot", "warm", "cold", "institutional", "none")
REASONS = (
    "admission",  # a verified node asked for work and fits under the cap
    "share_cap",  # refused hot, or demoted, because its user would exceed max_user_share
    "lease_end",  # a hot node went idle after its work
    "failover",  # a cold node promoted to replace a lost hot node
    "capacity_need",  # a cold node promoted because hot capacity is below the jobs' need
    "lost",  # a hot node stopped answering while a job ran
    "stand_in_lost",  # a promoted stand-in stopped answering (its capacity is not owed twice)
    "disruption_over",  # a promoted cold node returns to cold
    "opt_in",
    "opt_out",
    "cold_band",  # the manager moved a volunteer into or out of cold
    "institution",  # an operator verified the node's user as an institution
    "capacity",  # the user's verified capacity passed institutional_min_flops_per_s
    "blacklist",
)
COLD_BAND_LOW = Decimal("0.10")
COLD_BAND_HIGH = Decimal("0.20")
MOVES_PER_PLAN_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Member:
    """One node as the pool manager sees it."""

    node_id: str
    username: str
    pool: Pool
    capacity_flops_per_s: int
    since_ms: int  # when it entered its current pool (the newest hot nodes go first)
    warm_opt_in: bool = False
    cold_opt_in: bool = False
    promoted: bool = False  # a cold node serving in hot during a disruption
    availability_ppm: int = 1_000_000  # of its recent liveness challenges; 1e6 when none yet

    def __post_init__(self) -> None:
        assert self.pool in POOLS, self.pool
        assert self.capacity_flops_per_s >= 0
        assert 0 <= self.availability_ppm <= 1_000_000
        assert not self.promoted or self.pool == "hot", "only hot nodes are promoted"


@dataclass(frozen=True, slots=True)
class Move:
    node_id: str
    from_pool: Pool
    to_pool: Pool
    reason: str
    promoted: bool = False  # the node's flag after the move

    def __post_init__(self) -> None:
        assert self.reason in REASONS, self.reason
        assert self.from_pool != self.to_pool, "a move changes the pool"


def counted_capacity(member: Member, policy: Policy) -> int:
    return min(member.capacity_flops_per_s, policy.node_cap_flops_per_s)


def hot_capacity_by_user(members: Iterable[Member], policy: Policy) -> dict[str, int]:
    """Hot capacity per user, as the share cap counts it: every node serving in hot,
    promoted stand-ins included (they are hot capacity while they serve, ECONOMICS §5)."""
    cap = policy.node_cap_flops_per_s  # counted_capacity, inlined: admissions call this per node
    by_user: dict[str, int] = {}
    for member in members:
        if member.pool == "hot":
            capacity = member.capacity_flops_per_s
            by_user[member.username] = by_user.get(member.username, 0) + (
                capacity if capacity < cap else cap
            )
    return by_user


def share_cap_binds(by_user: dict[str, int], policy: Policy) -> bool:
    """The cap binds once hot holds nodes of ``share_cap_min_users`` distinct users."""
    return len(by_user) >= policy.share_cap_min_users


def _over_share(by_user: dict[str, int], policy: Policy) -> list[str]:
    """Users above the cap, largest first.

    Exact in integers, whatever the magnitudes: with max_user_share = num / den,
    share > max  <=>  cap_u * den > num * total.
    """
    total = sum(by_user.values())
    if total == 0 or not share_cap_binds(by_user, policy):
        return []
    num, den = policy.max_user_share.as_integer_ratio()
    limit = num * total
    over = [user for user, cap in by_user.items() if cap * den > limit]
    return sorted(over, key=lambda user: (-by_user[user], user))


def fits_under_cap(
    by_user: dict[str, int],
    total_flops_per_s: int,
    username: str,
    capacity_flops_per_s: int,
    policy: Policy,
) -> bool:
    """Whether one more hot node of ``username`` keeps every user within the cap.

    ``by_user`` must be within the cap already (as the rebalance leaves it): then adding
    a node can only raise its own user's share, unless its user is the one whose arrival
    makes the cap bind, when everyone is checked. Exact, as :func:`_over_share`.
    """
    assert total_flops_per_s >= 0  # the sum of by_user: the caller keeps it (it is asked per node)
    assert capacity_flops_per_s >= 0
    newcomer = username not in by_user
    users_after = len(by_user) + (1 if newcomer else 0)
    if users_after < policy.share_cap_min_users:
        return True
    if newcomer and users_after == policy.share_cap_min_users:
        after = dict(by_user)
        after[username] = capacity_flops_per_s
        return not _over_share(after, policy)
    num, den = policy.max_user_share.as_integer_ratio()
    mine = by_user.get(username, 0) + capacity_flops_per_s
    return mine * den <= num * (total_flops_per_s + capacity_flops_per_s)


def institutional_users(
    members: Iterable[Member], institutions: Iterable[str], policy: Policy
) -> dict[str, str]:
    """Users whose nodes belong in the institutional pool, with the reason.

    A verified institution is there by the operator's act; anyone else once the sum of
    their nodes' benchmarked capacity exceeds ``institutional_min_flops_per_s``.
    """
    capacity: dict[str, int] = {}
    for member in members:
        capacity[member.username] = capacity.get(member.username, 0) + member.capacity_flops_per_s
    return institutional_reasons(capacity, institutions, policy)


def institutional_reasons(
    capacity_by_user: dict[str, int], institutions: Iterable[str], policy: Policy
) -> dict[str, str]:
    """:func:`institutional_users` from each user's total benchmarked capacity."""
    reasons = {username: "institution" for username in institutions}
    for username, total in capacity_by_user.items():
        if username not in reasons and total > policy.institutional_min_flops_per_s:
            reasons[username] = "capacity"
    return reasons


def admit(
    candidate: Member, members: Sequence[Member], institutional: dict[str, str], policy: Policy
) -> list[Move]:
    """Where a node that asks for work goes, and whom its arrival displaces.

    Institutions' nodes go to institutional. Anyone else joins hot if, once it is in,
    the cap can hold by demoting the newest nodes of *other* users above it (the
    newcomer's arrival can make the cap bind, and then the over-share incumbents make
    room); if its own user would be above the cap, it is parked in warm instead. So
    admissions never leave the pool above the cap, and a parked node asking again
    changes nothing (no flapping). [] when nothing moves.
    """
    if candidate.username in institutional:
        if candidate.pool == "institutional":
            return []
        reason = institutional[candidate.username]
        return [Move(candidate.node_id, candidate.pool, "institutional", reason)]
    if candidate.pool in ("hot", "cold", "institutional"):
        return []
    hot = [m for m in members if m.pool == "hot" and m.node_id != candidate.node_id]
    joined = replace(
        candidate, pool="hot", since_ms=max([m.since_ms for m in hot] + [candidate.since_ms]) + 1
    )
    demotions = _demote_over_share([*hot, joined], policy, protected=candidate.username)
    if demotions is None:
        if candidate.pool == "warm":
            return []
        return [Move(candidate.node_id, candidate.pool, "warm", "share_cap")]
    return [*demotions, Move(candidate.node_id, candidate.pool, "hot", "admission")]


def rebalance(members: Sequence[Member], policy: Policy) -> list[Move]:
    """Demote the newest hot nodes of users above the cap until nobody is above it.

    Run after others leave. Each step removes one node, so the loop ends; demoting can
    make the cap stop binding (fewer users in hot), which also ends it.
    """
    moves = _demote_over_share([m for m in members if m.pool == "hot"], policy, protected=None)
    assert moves is not None, "with nobody protected, the rebalance always succeeds"
    return moves


def _demote_over_share(
    hot: list[Member], policy: Policy, protected: str | None
) -> list[Move] | None:
    """Demotions that bring every user under the cap; None when that would take a node of
    the ``protected`` user (the newcomer's own).

    An over-share user's promoted stand-ins go first, back to cold (they are temporary,
    and another user's cold node may stand in instead), then its newest hot nodes, to
    warm. Only a user with capacity is over the cap, so it has a node to pick.
    """
    by_user = hot_capacity_by_user(hot, policy)
    if not _over_share(by_user, policy):
        return []  # the common case, answered without sorting the pool
    # stand-ins last in this order, so the search from the end finds them first
    working = sorted(hot, key=lambda m: (m.promoted, m.since_ms, m.node_id))
    moves: list[Move] = []
    for _ in range(len(working) + 1):
        over = _over_share(by_user, policy)
        if not over:
            return moves
        if protected in over:
            return None
        user = over[0]
        newest = next(m for m in reversed(working) if m.username == user)
        working.remove(newest)
        by_user[user] -= counted_capacity(newest, policy)
        if by_user[user] == 0:
            del by_user[user]
        to_pool: Pool = "cold" if newest.promoted else "warm"
        moves.append(Move(newest.node_id, "hot", to_pool, "share_cap"))
    raise AssertionError("every step removes a node")


def cold_band(members: Iterable[Member], policy: Policy) -> tuple[Decimal, Decimal, Decimal]:
    """(low, target, high) cold capacity in FLOP/s: 10 %, cold_fraction and 20 % of hot."""
    hot_total = Decimal(
        sum(counted_capacity(m, policy) for m in members if m.pool == "hot" and not m.promoted)
    )
    return hot_total * COLD_BAND_LOW, hot_total * policy.cold_fraction, hot_total * COLD_BAND_HIGH


def manage_cold(members: Sequence[Member], policy: Policy) -> list[Move]:
    """Keep cold capacity inside its band: promote volunteers, or demote the least available.

    Below the band, volunteers (``cold_opt_in``, idle in warm or no pool) join, oldest
    first, each only if it does not carry cold above the band, until the target is
    reached. Above the band, the least available cold nodes leave, each only if cold
    stays at or above the band's floor. Nodes are whole, so a small network may be
    unable to land inside the band; then it stays as close as whole nodes allow. With
    no hot capacity at all (between jobs) the band is undefined and cold is left alone.
    """
    low, target, high = cold_band(members, policy)
    if high == 0:
        return []  # no hot capacity (between jobs): the band is undefined, standby stays
    cold = [m for m in members if m.pool == "cold"]
    cold_total = sum(counted_capacity(m, policy) for m in cold)
    moves: list[Move] = []
    if cold_total < low:
        volunteers = sorted(
            (m for m in members if m.cold_opt_in and m.pool in ("warm", "none")),
            key=lambda m: (m.since_ms, m.node_id),
        )
        for member in volunteers:
            if cold_total >= target:
                break
            capacity = counted_capacity(member, policy)
            if capacity == 0 or cold_total + capacity > high:
                continue
            cold_total += capacity
            moves.append(Move(member.node_id, member.pool, "cold", "cold_band"))
    elif cold_total > high:
        by_reliability = sorted(cold, key=lambda m: (m.availability_ppm, -m.since_ms, m.node_id))
        for member in by_reliability:
            if cold_total <= target:
                break
            capacity = counted_capacity(member, policy)
            if cold_total - capacity < low:
                continue
            cold_total -= capacity
            moves.append(
                Move(member.node_id, "cold", "warm" if member.warm_opt_in else "none", "cold_band")
            )
    return moves


def apply_moves(members: Sequence[Member], moves: Sequence[Move], now_ms: int) -> list[Member]:
    """The pool after ``moves`` (what the service writes; the property tests replay it)."""
    assert len(moves) <= MOVES_PER_PLAN_MAX
    by_id = {m.node_id: m for m in members}
    for move in moves:
        member = by_id[move.node_id]
        assert member.pool == move.from_pool, f"{move.node_id} is in {member.pool}"
        by_id[move.node_id] = replace(
            member, pool=move.to_pool, since_ms=now_ms, promoted=move.promoted
        )
    return [by_id[m.node_id] for m in members]
