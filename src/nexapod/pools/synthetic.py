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

from sqlalchemy import insert
from sqlalchemy.orm import Session

from nexapod.mesh.store import JobRow, LeaseRow, ResultRow, UnitRow
from nexapod.registry.store import NodeRow, UserRow

__all__ = [
    "ROWS_PER_INSERT_MAX",
    "SYNTHETIC_JOB_ID",
    "add_nodes",
    "add_users",
    "add_validated_work",
]

ROWS_PER_INSERT_MAX = 5000
SYNTHETIC_JOB_ID = "5" * 32
_PLACEHOLDER = "synthetic"


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
    unit_ids: list[int] = []
    for chunk in _chunks(units):
        unit_ids.extend(
            session.scalars(
                insert(UnitRow).returning(UnitRow.unit_id, sort_by_parameter_order=True), chunk
            )
        )
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
                "data": b"",
                "status": "valid",
                "validated_at_ms": at_ms,
            }
        )
    for chunk in _chunks(leases):
        session.execute(insert(LeaseRow), chunk)
    for chunk in _chunks(results):
        session.execute(insert(ResultRow), chunk)
    return first_unit_index + len(work)
