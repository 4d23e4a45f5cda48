"""Validation against the database: decide units, update trust, catch and forfeit.

The rules are pure (``mesh.validation``); this module reads a unit's results, applies
them, and writes the outcome in the caller's transaction: results become valid,
invalid or forfeited, units done (or back in the queue for another replica), jobs
counted, nodes' trust moved, and cheaters blacklisted (``registry.blacklist``) with
their unpaid work forfeited. Honest replicas of the same units keep their credit.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from nexapod.errors import NexaPodError
from nexapod.mesh import atlas_jobs
from nexapod.mesh.store import JobRow, LeaseRow, NodeTrustRow, ResultDataRow, ResultRow, UnitRow
from nexapod.mesh.validation import (
    PPM,
    Candidate,
    ValidationPolicy,
    needs_check,
    resolve,
    streak_after,
)
from nexapod.pools.settling import paid_until_ms
from nexapod.registry import blacklist
from nexapod.registry.store import NodeRow

__all__ = [
    "NO_KEY_UPDATE",
    "settle_first_results",
    "Caught",
    "TamperingDetected",
    "catch_node",
    "settle_unit",
    "trust_of",
]

OPEN_RESULT_STATUSES = ("pending", "valid")
# A job's counters change, never its key: FOR NO KEY UPDATE does not wait for the KEY SHARE
# locks PostgreSQL's foreign-key checks take when units of the job are updated twice in
# one transaction (FOR UPDATE would, and two such transactions would deadlock).
NO_KEY_UPDATE = {"key_share": True}


@dataclass(frozen=True)
class Caught:
    """Evidence against a node: what it did, on which unit, in a short summary."""

    node_id: str
    reason_code: str
    evidence: dict[str, Any]


class TamperingDetected(Exception):  # noqa: N818 (it is an event, not a failure of ours)
    """Raised by a check that caught a node tampering: the request is refused with
    ``error`` after the node is blacklisted in a transaction of its own."""

    def __init__(self, error: NexaPodError, caught: Caught) -> None:
        super().__init__(error.detail)
        self.error = error
        self.caught = caught


def trust_of(session: Session, node_id: str) -> NodeTrustRow:
    """The node's trust record, created at zero the first time it returns a result."""
    row = session.get(NodeTrustRow, node_id, with_for_update=True)
    if row is None:
        row = NodeTrustRow(node_id=node_id, valid_streak=0, valid_total=0, invalid_total=0)
        session.add(row)
        session.flush()
    return row


def settle_first_results(
    session: Session,
    node_id: str,
    results: Sequence[tuple[int, str]],
    policy: ValidationPolicy,
    now_ms: int,
) -> set[int]:
    """The common case in bulk: a unit's first result, from a node the draw leaves
    unchecked, is valid at once. ``results`` are (unit id, lease id) of one node's batch.

    Every first result gets its draw here (the node's trust as the batch arrived); the
    units it checks are marked as needing a quorum and left to :func:`settle_unit`, as
    are units with other results. Returns the units settled here. A batch of unchecked
    first results costs a fixed number of statements, whatever its size.
    """
    unit_ids = sorted(unit_id for unit_id, _ in results)
    open_counts = dict(
        session.execute(
            select(ResultRow.unit_id, func.count())
            .where(ResultRow.unit_id.in_(unit_ids), ResultRow.status.in_(OPEN_RESULT_STATUSES))
            .group_by(ResultRow.unit_id)
        ).all()
    )
    units = {
        row.unit_id: row
        for row in session.execute(
            select(
                UnitRow.unit_id, UnitRow.quorum, UnitRow.status, UnitRow.job_id, UnitRow.work_flops
            ).where(UnitRow.unit_id.in_(unit_ids))
        )
    }
    trust = trust_of(session, node_id)
    fast: list[tuple[int, str]] = []
    checked: list[int] = []
    for unit_id, lease_id in sorted(results):
        unit = units[unit_id]
        if unit.quorum != 0 or unit.status in ("done", "failed") or open_counts.get(unit_id) != 1:
            continue
        if needs_check(trust.valid_streak, secrets.randbelow(PPM), policy):
            checked.append(unit_id)
        else:
            fast.append((unit_id, lease_id))
    if checked:
        session.execute(
            update(UnitRow).where(UnitRow.unit_id.in_(checked)).values(quorum=policy.quorum)
        )
    if not fast:
        return set()
    session.execute(
        update(ResultRow)
        .where(ResultRow.lease_id.in_([lease_id for _, lease_id in fast]))
        .values(status="valid", validated_at_ms=now_ms)
    )
    units_table = cast(Table, UnitRow.__table__)  # Core: one executemany, no ORM bookkeeping
    session.execute(
        update(units_table)
        .where(units_table.c.unit_id == bindparam("b_unit_id"))
        .values(
            status="done",
            quorum=1,
            canonical_lease_id=bindparam("b_lease_id"),
            done_by_node_id=node_id,
        ),
        [{"b_unit_id": unit_id, "b_lease_id": lease_id} for unit_id, lease_id in fast],
    )
    by_job: dict[str, list[int]] = {}
    for unit_id, _ in fast:
        by_job.setdefault(units[unit_id].job_id, []).append(units[unit_id].work_flops)
    for job_id, flops in sorted(by_job.items()):
        _count_done(session, job_id, flops)
    trust.valid_streak += len(fast)
    trust.valid_total += len(fast)
    return {unit_id for unit_id, _ in fast}


def _count_done(session: Session, job_id: str, units_work_flops: list[int]) -> None:
    """Count newly valid units in their job; its last one makes the job ready to merge."""
    job = session.get(JobRow, job_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    assert job is not None
    job.units_done += len(units_work_flops)
    job.work_flops_done = job.work_flops_done + sum(units_work_flops)
    assert job.units_done <= job.units_total, "a unit is counted once"
    if job.units_done == job.units_total and job.status == "running":
        job.status = "merging"


def settle_unit(
    session: Session,
    unit_id: int,
    policy: ValidationPolicy,
    now_ms: int,
    *,
    include_user: bool,
) -> str:
    """Decide a unit after a result arrived; returns its status afterwards.

    The unit's first result decides whether it is checked (adaptive replication on the
    node's streak, with an unpredictable draw); then its open results are resolved.
    """
    # the caller's UPDATE of the unit already holds its row lock
    unit = session.get(UnitRow, unit_id, populate_existing=True)
    assert unit is not None
    rows = session.execute(
        select(ResultRow.lease_id, ResultRow.node_id, NodeRow.username, ResultDataRow.data)
        .join(NodeRow, NodeRow.node_id == ResultRow.node_id)
        .join(ResultDataRow, ResultDataRow.lease_id == ResultRow.lease_id)
        .where(ResultRow.unit_id == unit_id, ResultRow.status.in_(OPEN_RESULT_STATUSES))
        .order_by(ResultRow.received_at_ms, ResultRow.lease_id)
    ).all()
    if not rows:
        return unit.status
    if unit.status == "done":
        _judge_late(session, unit, rows, now_ms, include_user=include_user)
        return unit.status
    if unit.status == "failed":
        _void(
            session,
            [row.lease_id for row in rows if row.lease_id != unit.canonical_lease_id],
            now_ms,
        )
        return unit.status
    if unit.quorum == 0:
        streak = trust_of(session, rows[0].node_id).valid_streak
        checked = needs_check(streak, secrets.randbelow(PPM), policy)
        unit.quorum = policy.quorum if checked else 1
    data = {row.lease_id: row.data for row in rows}
    node_of = {row.lease_id: row.node_id for row in rows}
    resolution = resolve(
        [Candidate(row.lease_id, row.username) for row in rows[: policy.results_per_unit_max]],
        lambda a, b: atlas_jobs.results_agree(unit.spec_json, data[a], data[b]),
        unit.quorum,
        policy.results_per_unit_max,
    )
    if resolution.outcome == "need_more":
        unit.results_wanted += 1
        unit.status = "queued" if unit.leases_active < unit.results_wanted else "leased"
        return unit.status
    if resolution.outcome == "no_quorum":
        _void(session, list(data), now_ms)
        _fail_unit(session, unit)
        return unit.status
    _mark(session, list(resolution.valid), "valid", now_ms)
    _mark(session, list(resolution.invalid), "invalid", now_ms)
    unit.status = "done"
    unit.canonical_lease_id = resolution.valid[0]
    unit.done_by_node_id = node_of[resolution.valid[0]]
    _count_done(session, unit.job_id, [unit.work_flops])
    for lease_id in resolution.valid:
        trust = trust_of(session, node_of[lease_id])
        trust.valid_streak = streak_after(trust.valid_streak, valid=True)
        trust.valid_total += 1
    resumed = set(
        session.scalars(
            select(LeaseRow.lease_id).where(
                LeaseRow.lease_id.in_(resolution.invalid), LeaseRow.resumed_from.is_not(None)
            )
        )
    )
    for lease_id in resolution.invalid:
        if lease_id in resumed:
            # resumed from another node's checkpoint: the evidence does not say whose
            # rows were wrong, so no credit and no trust, but no blacklisting either
            trust = trust_of(session, node_of[lease_id])
            trust.valid_streak = streak_after(trust.valid_streak, valid=False)
            trust.invalid_total += 1
            continue
        evidence = {
            "job_id": unit.job_id,
            "unit_id": unit_id,
            "lease_id": lease_id,
            "quorum_lease_ids": list(resolution.valid),
        }
        catch_node(
            session,
            Caught(node_of[lease_id], "contradicted_by_quorum", evidence),
            now_ms,
            include_user=include_user,
        )
    return unit.status


def _judge_late(
    session: Session, unit: UnitRow, rows: Sequence[Any], now_ms: int, *, include_user: bool
) -> None:
    """A result for a unit already decided (a spot check, whose answer is known, or a
    replica leased before the quorum formed): held against the unit's answer."""
    assert unit.canonical_lease_id is not None
    canonical = session.scalar(
        select(ResultDataRow.data).where(ResultDataRow.lease_id == unit.canonical_lease_id)
    )
    assert canonical is not None
    for row in rows:
        if row.lease_id == unit.canonical_lease_id:
            continue
        status = session.scalar(select(ResultRow.status).where(ResultRow.lease_id == row.lease_id))
        if status != "pending":
            continue
        if atlas_jobs.results_agree(unit.spec_json, canonical, row.data):
            _mark(session, [row.lease_id], "valid", now_ms)
            trust = trust_of(session, row.node_id)
            trust.valid_streak = streak_after(trust.valid_streak, valid=True)
            trust.valid_total += 1
        else:
            _mark(session, [row.lease_id], "invalid", now_ms)
            evidence = {
                "job_id": unit.job_id,
                "unit_id": unit.unit_id,
                "lease_id": row.lease_id,
                "quorum_lease_ids": [unit.canonical_lease_id],
            }
            spot = session.scalar(
                select(LeaseRow.spot_check).where(LeaseRow.lease_id == row.lease_id)
            )
            reason = "spot_check_failed" if spot else "contradicted_by_quorum"
            catch_node(
                session, Caught(row.node_id, reason, evidence), now_ms, include_user=include_user
            )


def catch_node(session: Session, caught: Caught, now_ms: int, *, include_user: bool) -> int:
    """Blacklist a node and forfeit its unpaid work, in the caller's transaction.

    Its open results become ``forfeited``. A unit that was valid on its word alone goes
    back to the queue (and out of its job's count) to be computed again; a unit that an
    honest quorum validated stays done, and the honest replicas keep their credit.
    Returns the blacklist entry's id.
    """
    entry = blacklist.list_node(
        session,
        caught.node_id,
        caught.reason_code,
        caught.evidence,
        now_ms,
        include_user=include_user,
    )
    trust = trust_of(session, caught.node_id)
    trust.valid_streak = streak_after(trust.valid_streak, valid=False)
    trust.invalid_total += 1
    _revoke_leases(session, caught.node_id, now_ms)
    paid_until = paid_until_ms(session)  # work in settled epochs was paid: it stays paid
    forfeited = session.execute(
        update(ResultRow)
        .where(
            ResultRow.node_id == caught.node_id,
            ResultRow.status.in_(OPEN_RESULT_STATUSES),
            (ResultRow.status == "pending") | (ResultRow.validated_at_ms >= paid_until),
        )
        .values(status="forfeited", validated_at_ms=now_ms)
        .returning(ResultRow.lease_id, ResultRow.unit_id)
    ).all()
    for lease_id, unit_id in sorted(forfeited, key=lambda row: row[1]):
        _reopen_if_vouched_alone(session, unit_id, lease_id)
    return entry.entry_id


def _revoke_leases(session: Session, node_id: str, now_ms: int) -> None:
    """End a caught node's active leases now, so their units go to honest nodes at once
    (and the lapse is not counted against the units' attempts)."""
    revoked = session.execute(
        update(LeaseRow)
        .where(LeaseRow.node_id == node_id, LeaseRow.status == "active")
        .values(status="revoked", ended_at_ms=now_ms)
        .returning(LeaseRow.unit_id)
    ).all()
    for (unit_id,) in sorted(revoked):
        unit = session.get(UnitRow, unit_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
        assert unit is not None
        unit.leases_active -= 1
        assert unit.leases_active >= 0
        if unit.status == "leased" and unit.leases_active < unit.results_wanted:
            unit.status = "queued"


def _reopen_if_vouched_alone(session: Session, unit_id: int, lease_id: str) -> None:
    unit = session.get(UnitRow, unit_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    assert unit is not None
    if unit.status != "done" or unit.canonical_lease_id != lease_id:
        return
    others = session.scalar(
        select(ResultRow.lease_id)
        .where(ResultRow.unit_id == unit_id, ResultRow.status == "valid")
        .order_by(ResultRow.received_at_ms, ResultRow.lease_id)
        .limit(1)
    )
    if others is not None:  # an honest replica agreed: it becomes the answer
        unit.canonical_lease_id = others
        return
    job = session.get(JobRow, unit.job_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    assert job is not None
    if job.status not in ("running", "merging"):
        return  # merged already: the product stands; the blacklist entry is the record
    job.units_done -= 1
    job.work_flops_done = job.work_flops_done - unit.work_flops
    job.status = "running"
    unit.status = "queued" if unit.leases_active < 1 else "leased"
    unit.results_wanted = 1
    unit.quorum = 0
    unit.canonical_lease_id = None
    unit.done_by_node_id = None


def _mark(session: Session, lease_ids: list[str], status: str, now_ms: int) -> None:
    if lease_ids:
        session.execute(
            update(ResultRow)
            .where(ResultRow.lease_id.in_(lease_ids))
            .values(status=status, validated_at_ms=now_ms)
        )


def _void(session: Session, lease_ids: list[str], now_ms: int) -> None:
    """Results of a unit that found no quorum: no credit, and no blame either."""
    _mark(session, lease_ids, "void", now_ms)


def _fail_unit(session: Session, unit: UnitRow) -> None:
    unit.status = "failed"
    job = session.get(JobRow, unit.job_id, with_for_update=NO_KEY_UPDATE, populate_existing=True)
    assert job is not None
    job.units_failed += 1
    job.status = "failed"
