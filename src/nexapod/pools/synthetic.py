"""Synthetic contributors and validated work, written straight into a store.

For the economy simulator and the settlement benchmark only: they need 10^4 to 10^5
nodes with validated work on a throwaway store, which signed registration and real
sandboxed units would take hours to produce. Everything downstream (pools, settlement,
the ledger, the log) is the real code reading these rows. A coordinator serving real
nodes never calls this.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import cast

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.orm import Session

from nexapod.crypto import sha256_hex
from nexapod.mesh.store import JobRow, LeaseRow, ResultRow, UnitRow
from nexapod.pools.store import ColdChallengeRow
from nexapod.registry.store import NodeRow, UserRow

__all__ = [
    "ROWS_PER_INSERT_MAX",
    "SYNTHETIC_JOB_ID",
    "add_cold_challenges",
    "add_lapsed_leases",
    "add_nodes",
    "add_users",
    "add_validated_work",
    "delete_work_before",
    "set_job_status",
]

ROWS_PER_INSERT_MAX = 5000
SYNTHETIC_JOB_ID = "5" * 32
_PLACEHOLDER = "synthetic"
# Core tables, not ORM bulk inserts: the simulator writes ~10^4 rows of each every epoch.
_UNITS = cast(Table, UnitRow.__table__)
_LEASES = cast(Table, LeaseRow.__table__)
_RESULTS = cast(Table, ResultRow.__table__)
_CHALLENGES = cast(Table, ColdChallengeRow.__table__)


def _chunks(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [rows[i : i + ROWS_PER_INSERT_MAX] for i in range(0, len(rows), ROWS_PER_INSERT_MAX)]


def add_users(session: Session, usernames: Sequence[str], now_ms: int) -> None:
    rows: list[dict[str, object]] = [
        {
            "username": name,
            "public_key": secrets.token_hex(22)[:43] + "=",
            "registration_document": _PLACEHOLDER,
            "registration_signature": _PLACEHOLDER,
            "registration_sha256": "0" * 64,
            "registered_at_ms": now_ms,
        }
        for name in usernames
    ]
    for chunk in _chunks(rows):
        session.execute(insert(UserRow), chunk)


def add_nodes(session: Session, nodes: Sequence[tuple[str, str, int]], now_ms: int) -> None:
    """(node_id, username, capacity_flops_per_s) each."""
    rows: list[dict[str, object]] = [
        {
            "node_id": node_id,
            "username": username,
            "public_key": secrets.token_hex(22)[:43] + "=",
            "registration_document": _PLACEHOLDER,
            "node_signature": _PLACEHOLDER,
            "user_signature": _PLACEHOLDER,
            "fingerprint": secrets.token_hex(32),
            "capacity_flops_per_s": capacity,
            "runner_tree_hash": "0" * 64,
            "registered_at_ms": now_ms,
            "last_seen_at_ms": now_ms,
        }
        for node_id, username, capacity in nodes
    ]
    for chunk in _chunks(rows):
        session.execute(insert(NodeRow), chunk)


def _ensure_job(session: Session, submitted_by: str, now_ms: int) -> None:
    if session.get(JobRow, SYNTHETIC_JOB_ID) is None:
        session.add(
            JobRow(
                job_id=SYNTHETIC_JOB_ID,
                workload="synthetic",
                params_json="{}",
                dataset_json="{}",
                n_items=0,
                submitted_by=submitted_by,
                status="done",
                units_total=0,
                units_done=0,
                units_failed=0,
                work_flops_total=0,
                work_flops_done=0,
                created_at_ms=now_ms,
            )
        )
        session.flush()


def _insert_units(session: Session, units: list[dict[str, object]], first_index: int) -> list[int]:
    """Insert units numbered from ``first_index`` on; their ids, in order.

    One plain batch insert, then one read of the ids by (job, index) through the unique
    index: an INSERT ... RETURNING in parameter order runs row by row on SQLite.
    """
    for chunk in _chunks(units):
        session.execute(insert(_UNITS), chunk)
    last_index = first_index + len(units) - 1
    rows = session.execute(
        select(_UNITS.c.unit_index, _UNITS.c.unit_id)
        .where(
            _UNITS.c.job_id == SYNTHETIC_JOB_ID,
            _UNITS.c.unit_index >= first_index,
            _UNITS.c.unit_index <= last_index,
        )
        .order_by(_UNITS.c.unit_index)
    ).all()
    assert [index for index, _ in rows] == list(range(first_index, last_index + 1))
    return [int(unit_id) for _, unit_id in rows]


def add_validated_work(
    session: Session, work: Sequence[tuple[str, str, int, int]], first_unit_index: int
) -> int:
    """(node_id, username, flops, validated_at_ms) each: one valid result per item.

    Each item becomes a unit of the one synthetic job, a completed lease and a valid
    result, as validation would leave them. Returns the next free unit index.
    """
    if not work:
        return first_unit_index
    _ensure_job(session, work[0][1], work[0][3])
    units: list[dict[str, object]] = []
    for offset, (_node, _user, flops, _at) in enumerate(work):
        units.append(
            {
                "job_id": SYNTHETIC_JOB_ID,
                "unit_index": first_unit_index + offset,
                "spec_json": "{}",
                "inputs_json": "[]",
                "work_flops": flops,
                "status": "done",
                "attempts": 1,
            }
        )
    unit_ids = _insert_units(session, units, first_unit_index)
    leases: list[dict[str, object]] = []
    results: list[dict[str, object]] = []
    for unit_id, (node_id, username, flops, at_ms) in zip(unit_ids, work, strict=True):
        lease_id = secrets.token_hex(16)
        leases.append(
            {
                "lease_id": lease_id,
                "unit_id": unit_id,
                "job_id": SYNTHETIC_JOB_ID,
                "node_id": node_id,
                "username": username,
                "status": "completed",
                "granted_at_ms": at_ms,
                "deadline_at_ms": at_ms,
                "ended_at_ms": at_ms,
            }
        )
        results.append(
            {
                "lease_id": lease_id,
                "unit_id": unit_id,
                "job_id": SYNTHETIC_JOB_ID,
                "node_id": node_id,
                "result_sha256": "0" * 64,
                "signature": _PLACEHOLDER,
                "runner_tree_hash": "0" * 64,
                "work_flops": flops,
                "compute_ms": 0,
                "received_at_ms": at_ms,
                "status": "valid",
                "validated_at_ms": at_ms,
            }
        )
    for chunk in _chunks(leases):
        session.execute(insert(_LEASES), chunk)
    for chunk in _chunks(results):
        session.execute(insert(_RESULTS), chunk)
    return first_unit_index + len(work)


def set_job_status(session: Session, submitted_by: str, status: str, now_ms: int) -> None:
    """The synthetic job's status (the simulator keeps it ``running``: a job that runs is
    what makes a lost hot node a disruption)."""
    _ensure_job(session, submitted_by, now_ms)
    session.execute(update(JobRow).where(JobRow.job_id == SYNTHETIC_JOB_ID).values(status=status))


def add_lapsed_leases(
    session: Session, lapses: Sequence[tuple[str, str, int, int]], first_unit_index: int
) -> int:
    """(node_id, username, granted_at_ms, ended_at_ms) each: a node that failed mid-unit.

    Each item becomes a queued unit of the synthetic job and an ``expired`` lease, and the
    node is last seen when the lease was granted: what the pool manager reads as a lost
    hot node. Returns the next free unit index.
    """
    if not lapses:
        return first_unit_index
    _ensure_job(session, lapses[0][1], lapses[0][2])
    units: list[dict[str, object]] = [
        {
            "job_id": SYNTHETIC_JOB_ID,
            "unit_index": first_unit_index + offset,
            "spec_json": "{}",
            "inputs_json": "[]",
            "work_flops": 1,
            "status": "queued",
            "attempts": 1,
        }
        for offset in range(len(lapses))
    ]
    unit_ids = _insert_units(session, units, first_unit_index)
    leases: list[dict[str, object]] = [
        {
            "lease_id": secrets.token_hex(16),
            "unit_id": unit_id,
            "job_id": SYNTHETIC_JOB_ID,
            "node_id": node_id,
            "username": username,
            "status": "expired",
            "granted_at_ms": granted_ms,
            "deadline_at_ms": ended_ms,
            "ended_at_ms": ended_ms,
        }
        for unit_id, (node_id, username, granted_ms, ended_ms) in zip(unit_ids, lapses, strict=True)
    ]
    for chunk in _chunks(leases):
        session.execute(insert(_LEASES), chunk)
    session.execute(
        update(NodeRow),
        [
            {"node_id": node_id, "last_seen_at_ms": granted_ms}
            for node_id, _, granted_ms, _ in lapses
        ],
    )
    return first_unit_index + len(lapses)


def add_cold_challenges(session: Session, challenges: Sequence[tuple[str, int, int, bool]]) -> None:
    """(node_id, issued_at_ms, deadline_at_ms, passed) each: liveness challenges to cold
    nodes, answered in time and right (passed) or not, as the stipend reads them."""
    rows: list[dict[str, object]] = [
        {
            "challenge_id": sha256_hex(f"synthetic/{node_id}/{issued_ms}".encode())[:32],
            "node_id": node_id,
            "seed": "0" * 64,
            "expected_sha256": "0" * 64,
            "issued_at_ms": issued_ms,
            "deadline_at_ms": deadline_ms,
            "answered_at_ms": deadline_ms if passed else None,
            "passed": passed,
        }
        for node_id, issued_ms, deadline_ms, passed in challenges
    ]
    for chunk in _chunks(rows):
        session.execute(insert(_CHALLENGES), chunk)


def delete_work_before(session: Session, unit_index: int) -> int:
    """Delete the synthetic job's units below ``unit_index``, with their leases and results.

    The simulator calls it once their epochs are settled: settlement's lines are in the
    log, and nothing downstream reads settled work again, so the store stays the size of
    a few epochs instead of growing by a result per node per epoch. Unit ids grow with
    unit indexes, so three range deletes do it. Returns the units deleted.
    """
    kept = session.scalar(
        select(func.min(UnitRow.unit_id)).where(
            UnitRow.job_id == SYNTHETIC_JOB_ID, UnitRow.unit_index >= unit_index
        )
    )
    below = select(func.max(UnitRow.unit_id) + 1).where(UnitRow.job_id == SYNTHETIC_JOB_ID)
    limit = kept if kept is not None else session.scalar(below)
    if limit is None:
        return 0
    for table in (_RESULTS, _LEASES):
        session.execute(
            delete(table).where(table.c.job_id == SYNTHETIC_JOB_ID, table.c.unit_id < limit)
        )
    deleted = session.execute(
        delete(_UNITS).where(_UNITS.c.job_id == SYNTHETIC_JOB_ID, _UNITS.c.unit_id < limit)
    )
    count: int = deleted.rowcount  # type: ignore[attr-defined]
    assert count >= 0
    return count
