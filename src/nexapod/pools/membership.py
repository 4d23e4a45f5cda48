"""Pool membership in the database: read the pool, apply moves, gate leases, manage.

Every move is one ``pool_transition`` entry in the ledger's log, written in the same
transaction as the membership row it changes and its ``pool_transitions`` history row,
so a node's pool history can be proven from the log alone. The decisions themselves
are the pure functions of :mod:`nexapod.pools.rules`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nexapod.ledger import log_store
from nexapod.mesh.store import LeaseRow
from nexapod.policy import Policy
from nexapod.pools import disrupting, disruption, rules
from nexapod.pools.epoch_work import users_with_capacity_over
from nexapod.pools.rules import Member, Move
from nexapod.pools.store import EntitlementRow, InstitutionRow, PoolMemberRow, PoolTransitionRow
from nexapod.registry.store import NodeRow

__all__ = [
    "ENTITLEMENT_KINDS",
    "MEMBERS_MAX",
    "Gate",
    "apply_moves",
    "gate_for_lease",
    "grant_entitlements",
    "institutional_map",
    "load_members",
    "manage_pools",
    "remove_from_pools",
]

MEMBERS_MAX = 1_000_000
IN_LIST_MAX = 900  # names per IN (...) list: inside SQLite's oldest bind limit (999)
ENTITLEMENT_KINDS = ("unlimited", "early_access")
_WORKING_POOLS = ("hot", "institutional")


@dataclass(frozen=True)
class Gate:
    """Whether a node that asks for work may have it, and the pool it is in."""

    may_work: bool
    pool: str
    reason: str


def load_members(session: Session) -> list[Member]:
    """Every node with a membership row (a node without one is idle in no pool).

    Columns, not ORM objects: the manager reads the whole pool on every pass.
    """
    rows = session.execute(
        select(
            PoolMemberRow.node_id,
            PoolMemberRow.username,
            PoolMemberRow.pool,
            NodeRow.capacity_flops_per_s,
            PoolMemberRow.since_ms,
            PoolMemberRow.warm_opt_in,
            PoolMemberRow.cold_opt_in,
            PoolMemberRow.promoted,
        )
        .join(NodeRow, NodeRow.node_id == PoolMemberRow.node_id)
        .order_by(PoolMemberRow.node_id)
        .limit(MEMBERS_MAX + 1)
    ).all()
    assert len(rows) <= MEMBERS_MAX, "the pool manager reads the pool in one piece"
    return [
        Member(
            node_id=node_id,
            username=username,
            pool=pool,  # type: ignore[arg-type]  # a PoolName, checked by Member
            capacity_flops_per_s=int(capacity),
            since_ms=since_ms,
            warm_opt_in=bool(warm),
            cold_opt_in=bool(cold),
            promoted=bool(promoted),
        )
        for node_id, username, pool, capacity, since_ms, warm, cold, promoted in rows
    ]


def _idle_member(node: NodeRow, now_ms: int) -> Member:
    return Member(node.node_id, node.username, "none", int(node.capacity_flops_per_s), now_ms)


def institutional_map(session: Session, policy: Policy, usernames: Iterable[str]) -> dict[str, str]:
    """Which of these users belong in the institutional pool, and why."""
    wanted = set(usernames)
    if not wanted:
        return {}
    if len(wanted) > IN_LIST_MAX:  # many (settlement): let the database sieve them first
        listed = set(session.scalars(select(InstitutionRow.username))) & wanted
        near = wanted & users_with_capacity_over(session, policy.institutional_min_flops_per_s)
    else:
        names = sorted(wanted)
        listed = set(
            session.scalars(
                select(InstitutionRow.username).where(InstitutionRow.username.in_(names))
            )
        )
        near = wanted
    capacity: dict[str, int] = {}
    names = sorted(near)
    for start in range(0, len(names), IN_LIST_MAX):
        rows = session.execute(
            select(NodeRow.username, NodeRow.capacity_flops_per_s).where(
                NodeRow.username.in_(names[start : start + IN_LIST_MAX])
            )
        )
        for username, node_capacity in rows:
            capacity[username] = capacity.get(username, 0) + int(node_capacity)
    return rules.institutional_reasons(capacity, sorted(listed), policy)


def apply_moves(
    session: Session, moves: Sequence[Move], usernames: dict[str, str], now_ms: int
) -> None:
    """Write ``moves``: membership rows, history rows and one log entry each."""
    if not moves:
        return
    assert len(moves) <= rules.MOVES_PER_PLAN_MAX
    bodies = [
        {
            "node_id": move.node_id,
            "username": usernames[move.node_id],
            "from": move.from_pool,
            "to": move.to_pool,
            "reason": move.reason,
            "at_ms": now_ms,
        }
        for move in moves
    ]
    first_index = log_store.append_entries(session, "pool_transition", bodies)
    existing = set(
        session.scalars(
            select(PoolMemberRow.node_id).where(
                PoolMemberRow.node_id.in_([move.node_id for move in moves])
            )
        )
    )
    for offset, move in enumerate(moves):
        log_index = first_index + offset
        if move.node_id in existing:
            moved = session.execute(
                update(PoolMemberRow)
                .where(PoolMemberRow.node_id == move.node_id, PoolMemberRow.pool == move.from_pool)
                .values(
                    pool=move.to_pool,
                    reason=move.reason,
                    since_ms=now_ms,
                    promoted=move.promoted,
                    log_index=log_index,
                )
            )
            assert moved.rowcount == 1, f"{move.node_id} was in {move.from_pool}"  # type: ignore[attr-defined]
        else:
            assert move.from_pool == "none", "a node without a row is in no pool"
            session.add(
                PoolMemberRow(
                    node_id=move.node_id,
                    username=usernames[move.node_id],
                    pool=move.to_pool,
                    reason=move.reason,
                    since_ms=now_ms,
                    warm_opt_in=False,
                    cold_opt_in=False,
                    promoted=move.promoted,
                    log_index=log_index,
                )
            )
            existing.add(move.node_id)
        session.add(
            PoolTransitionRow(
                node_id=move.node_id,
                from_pool=move.from_pool,
                to_pool=move.to_pool,
                reason=move.reason,
                at_ms=now_ms,
                log_index=log_index,
            )
        )
    session.flush()
    institutional = {usernames[m.node_id]: m.reason for m in moves if m.to_pool == "institutional"}
    grant_entitlements(session, institutional, now_ms)


def grant_entitlements(session: Session, reasons: dict[str, str], now_ms: int) -> None:
    """Atlas++ access for institutional users (unlimited, early access), once each, logged."""
    if not reasons:
        return
    held = {
        (username, kind)
        for username, kind in session.execute(
            select(EntitlementRow.username, EntitlementRow.kind).where(
                EntitlementRow.username.in_(sorted(reasons))
            )
        )
    }
    grants = [
        (username, kind)
        for username in sorted(reasons)
        for kind in ENTITLEMENT_KINDS
        if (username, kind) not in held
    ]
    if not grants:
        return
    bodies = [
        {"username": u, "entitlement": k, "reason": reasons[u], "at_ms": now_ms} for u, k in grants
    ]
    first_index = log_store.append_entries(session, "atlas_entitlement", bodies)
    for offset, (username, kind) in enumerate(grants):
        session.add(
            EntitlementRow(
                username=username,
                kind=kind,
                reason=reasons[username],
                granted_at_ms=now_ms,
                log_index=first_index + offset,
            )
        )


def gate_for_lease(session: Session, node: NodeRow, now_ms: int, policy: Policy) -> Gate:
    """Admit a node that asks for work, or say why it gets none.

    Hot and institutional nodes work; a cold node waits for a disruption; anyone else
    is admitted to hot unless its user would pass the share cap, in which case it is
    parked in warm with the reason (logged once, not at every poll).
    """
    row = session.get(PoolMemberRow, node.node_id)
    if row is not None and row.pool in _WORKING_POOLS:
        return Gate(True, row.pool, row.reason)
    if row is not None and row.pool == "cold":
        return Gate(False, "cold", row.reason)
    log_store.lock_log(session)  # admissions one at a time: the cap is checked on a still pool
    members = load_members(session)
    by_id = {m.node_id: m for m in members}
    candidate = by_id.get(node.node_id) or _idle_member(node, now_ms)
    institutional = institutional_map(session, policy, [node.username])
    moves = rules.admit(candidate, members, institutional, policy)
    if not moves:
        assert candidate.pool == "warm", "only a node parked for the cap stays put"
        return Gate(False, candidate.pool, row.reason if row is not None else "share_cap")
    usernames = {m.node_id: m.username for m in members} | {node.node_id: node.username}
    apply_moves(session, moves, usernames, now_ms)
    own = moves[-1]
    assert own.node_id == node.node_id, "the candidate's own move comes last"
    return Gate(own.to_pool in _WORKING_POOLS, own.to_pool, own.reason)


def _idle_hot(session: Session, idle_after_ms: int) -> list[str]:
    """Hot nodes with no active lease and none granted since ``idle_after_ms``."""
    busy = select(LeaseRow.lease_id).where(
        LeaseRow.node_id == PoolMemberRow.node_id,
        (LeaseRow.status == "active") | (LeaseRow.granted_at_ms >= idle_after_ms),
    )
    return list(
        session.scalars(
            select(PoolMemberRow.node_id).where(
                PoolMemberRow.pool == "hot",
                PoolMemberRow.promoted.is_(False),
                PoolMemberRow.since_ms < idle_after_ms,
                ~busy.exists(),
            )
        )
    )


@dataclass
class _Plan:
    """The manager's moves so far, and the pool as they leave it (each step sees it)."""

    members: list[Member]
    now_ms: int
    moves: list[Move] = field(default_factory=list)

    def add(self, step: list[Move]) -> None:
        self.members = rules.apply_moves(self.members, step, self.now_ms)
        self.moves.extend(step)
        assert len(self.moves) <= rules.MOVES_PER_PLAN_MAX


def manage_pools(
    session: Session,
    policy: Policy,
    now_ms: int,
    *,
    idle_s: int,
    lost_s: int,
    write_off_s: int,
    availability_ppm: dict[str, int] | None = None,
) -> list[Move]:
    """One pass of the pool manager; returns the moves it made (already written).

    In order: idle hot nodes leave (lease end); the disruption's steps (see
    :func:`_plan_disruption`); the institutional sweep; cold kept in its band.
    """
    assert idle_s > 0
    assert lost_s > 0
    log_store.lock_log(session)
    members = load_members(session)
    if availability_ppm:
        members = [  # only those measured: the rest keep the default, unchanged
            _with_availability(m, availability_ppm[m.node_id])
            if m.node_id in availability_ppm
            else m
            for m in members
        ]
    usernames = {m.node_id: m.username for m in members}
    plan = _Plan(members, now_ms)
    by_id = {m.node_id: m for m in members}
    idle = _idle_hot(session, now_ms - idle_s * 1000)
    plan.add(
        [
            Move(node_id, "hot", "warm" if by_id[node_id].warm_opt_in else "none", "lease_end")
            for node_id in sorted(idle)
        ]
    )
    _plan_disruption(session, plan, policy, usernames, lost_s=lost_s, write_off_s=write_off_s)
    institutional = institutional_map(session, policy, usernames.values())
    plan.add(
        [
            Move(m.node_id, m.pool, "institutional", institutional[m.username])
            for m in plan.members
            if m.username in institutional and m.pool not in ("institutional", "none")
        ]
    )
    plan.add(rules.manage_cold(plan.members, policy))
    apply_moves(session, plan.moves, usernames, now_ms)
    return plan.moves


def _plan_disruption(
    session: Session,
    plan: _Plan,
    policy: Policy,
    usernames: dict[str, str],
    *,
    lost_s: int,
    write_off_s: int,
) -> None:
    """Lost nodes away ``write_off_s`` are written off (logged at once); lost hot nodes
    leave; stand-ins no longer owed return to cold; users above the share cap lose their
    stand-ins, then their newest nodes; cold nodes are promoted to replace lost capacity
    (failover), then to meet the running jobs' need (capacity need).

    Returns come before the rebalance (a return raises the others' shares, which it then
    settles), promotions after it (they are checked against a pool within the cap).
    """
    now_ms = plan.now_ms
    away = disrupting.lost_away(session)
    gone = disruption.written_off(away, now_ms, write_off_s)
    disrupting.write_off(session, gone, usernames, now_ms)
    plan.add(disruption.lose(plan.members, disrupting.lost_hot(session, now_ms - lost_s * 1000)))
    owed_by = {n.node_id for n in away} - {n.node_id for n in gone}
    owed_by |= {m.node_id for m in plan.moves if m.reason == "lost"}
    need = disrupting.running_need_flops_per_s(session)
    now = disrupting.disruption_now(plan.members, owed_by, need, policy)
    owed = disruption.stand_ins_owed_flops_per_s(plan.members, now, policy)
    plan.add(disruption.return_stand_ins(plan.members, owed, policy))
    plan.add(rules.rebalance(plan.members, policy))
    plan.add(disruption.promote_stand_ins(plan.members, now.lost_flops_per_s, "failover", policy))
    owed = disruption.stand_ins_owed_flops_per_s(plan.members, now, policy)  # after the rebalance
    plan.add(disruption.promote_stand_ins(plan.members, owed, "capacity_need", policy))


def _with_availability(member: Member, ppm: int) -> Member:
    return replace(member, availability_ppm=ppm)


def remove_from_pools(session: Session, node_ids: Iterable[str], now_ms: int) -> list[Move]:
    """Blacklisted nodes leave every pool (reason ``blacklist``), in the caller's transaction."""
    rows = session.scalars(
        select(PoolMemberRow).where(
            PoolMemberRow.node_id.in_(sorted(set(node_ids))), PoolMemberRow.pool != "none"
        )
    ).all()
    moves = [Move(row.node_id, row.pool, "none", "blacklist") for row in rows]  # type: ignore[arg-type]
    apply_moves(session, moves, {row.node_id: row.username for row in rows}, now_ms)
    return moves
