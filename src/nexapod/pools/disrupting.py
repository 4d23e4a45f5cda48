"""Disruptions in the database: the running jobs' capacity need, the lost nodes still
away, and writing off those away too long (each write-off an entry in the log).

The decisions are the pure functions of :mod:`nexapod.pools.disruption`; the pool
manager (:func:`nexapod.pools.membership.manage_pools`) calls these in its pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nexapod.ledger import log_store
from nexapod.mesh.store import JobRow, LeaseRow
from nexapod.policy import Policy
from nexapod.pools.disruption import Disruption, LostNode
from nexapod.pools.rules import Member, counted_capacity
from nexapod.pools.store import PoolMemberRow
from nexapod.registry.store import NodeRow

__all__ = [
    "LOST_READ_MAX",
    "RUNNING_JOBS_READ_MAX",
    "disruption_now",
    "lost_away",
    "lost_hot",
    "running_need_flops_per_s",
    "write_off",
]

RUNNING_JOBS_READ_MAX = 100_000  # running jobs the manager sums needs over, in one read
LOST_READ_MAX = 1_000_000  # lost nodes in one read: no more than the pool holds


def lost_hot(session: Session, seen_before_ms: int) -> list[str]:
    """Hot nodes that let a lease lapse and have not been heard from since before then:
    the manager's ``lost`` (``seen_before_ms`` is now minus ``pool_lost_s``)."""
    lapsed = select(LeaseRow.lease_id).where(
        LeaseRow.node_id == PoolMemberRow.node_id,
        LeaseRow.status == "expired",
        LeaseRow.ended_at_ms >= PoolMemberRow.since_ms,
    )
    return list(
        session.scalars(
            select(PoolMemberRow.node_id)
            .join(NodeRow, NodeRow.node_id == PoolMemberRow.node_id)
            .where(
                PoolMemberRow.pool == "hot",
                NodeRow.last_seen_at_ms < seen_before_ms,
                lapsed.exists(),
            )
        )
    )


def running_need_flops_per_s(session: Session) -> int | None:
    """The running jobs' capacity needs, summed (they share the hot pool); None when no
    job runs (then nothing is a disruption), 0 when the running jobs stated none.

    Summed here, not in SQL: the column is exact text on SQLite, where SUM is a float.
    """
    needs = session.scalars(
        select(JobRow.capacity_flops_per_s_min)
        .where(JobRow.status == "running")
        .limit(RUNNING_JOBS_READ_MAX + 1)
    ).all()
    assert len(needs) <= RUNNING_JOBS_READ_MAX, "the manager reads the running jobs in one piece"
    if not needs:
        return None
    total = sum(int(need) for need in needs if need is not None)
    assert total >= 0
    return total


def lost_away(session: Session) -> list[LostNode]:
    """Nodes found lost that are neither back nor written off, with when they were lost."""
    rows = session.execute(
        select(PoolMemberRow.node_id, PoolMemberRow.since_ms)
        .where(PoolMemberRow.pool == "none", PoolMemberRow.reason == "lost")
        .order_by(PoolMemberRow.node_id)
        .limit(LOST_READ_MAX + 1)
    ).all()
    assert len(rows) <= LOST_READ_MAX, "the manager reads the lost nodes in one piece"
    return [LostNode(node_id, since_ms) for node_id, since_ms in rows]


def disruption_now(
    members: Sequence[Member], lost_ids: set[str], need_flops_per_s: int | None, policy: Policy
) -> Disruption:
    """What is missing from hot: the capacity of ``lost_ids`` (nodes lost and still away)
    and the running jobs' need; nothing at all when no job runs (``need`` None)."""
    if need_flops_per_s is None:
        return Disruption(0, 0)
    lost = sum(counted_capacity(m, policy) for m in members if m.node_id in lost_ids)
    assert all(m.pool == "none" for m in members if m.node_id in lost_ids), "lost: in no pool"
    return Disruption(lost_flops_per_s=lost, need_flops_per_s=need_flops_per_s)


def write_off(
    session: Session, lost: Sequence[LostNode], usernames: dict[str, str], now_ms: int
) -> None:
    """Write these lost nodes off: a ``pool_write_off`` entry each (with when the node was
    lost) and the reason ``written_off`` on its row. The node stays in no pool; it is no
    longer owed, so its stand-ins may go back to cold."""
    if not lost:
        return
    assert len(lost) <= LOST_READ_MAX
    step = log_store.ENTRIES_PER_APPEND_MAX
    for start in range(0, len(lost), step):
        _write_off_batch(session, lost[start : start + step], usernames, now_ms)


def _write_off_batch(
    session: Session, lost: Sequence[LostNode], usernames: dict[str, str], now_ms: int
) -> None:
    bodies = [
        {
            "node_id": node.node_id,
            "username": usernames[node.node_id],
            "lost_at_ms": node.lost_at_ms,
            "at_ms": now_ms,
        }
        for node in lost
    ]
    first_index = log_store.append_entries(session, "pool_write_off", bodies)
    for offset, node in enumerate(lost):
        changed = session.execute(
            update(PoolMemberRow)
            .where(
                PoolMemberRow.node_id == node.node_id,
                PoolMemberRow.pool == "none",
                PoolMemberRow.reason == "lost",
            )
            .values(reason="written_off", log_index=first_index + offset)
        )
        assert changed.rowcount == 1, f"{node.node_id} was lost"  # type: ignore[attr-defined]
