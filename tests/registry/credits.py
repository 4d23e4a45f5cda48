"""Stored verified work for leaderboard tests: a job, unit, lease and result per credit,
written straight to the store so that a test controls every FLOP count and timestamp."""

from __future__ import annotations

import secrets

from nexapod.mesh.store import JobRow, LeaseRow, ResultRow, UnitRow
from nexapod.pools.store import PoolMemberRow
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["credit", "place"]


def credit(
    uow_factory: UnitOfWorkFactory,
    node_id: str,
    username: str,
    work_flops: int,
    validated_at_ms: int | None,
    status: str = "valid",
) -> None:
    """One result of ``work_flops`` by ``node_id`` (of ``username``), in ``status``."""
    assert 0 <= work_flops < 2**63
    job_id = secrets.token_hex(16)
    lease_id = secrets.token_hex(16)
    at_ms = validated_at_ms or 0
    with uow_factory() as uow:
        session = uow.session
        session.add(
            JobRow(
                job_id=job_id,
                workload="atlas",
                params_json="{}",
                dataset_json="{}",
                n_items=1,
                submitted_by=username,
                status="done",
                units_total=1,
                units_done=1,
                units_failed=0,
                work_flops_total=work_flops,
                work_flops_done=work_flops,
                created_at_ms=at_ms,
            )
        )
        unit = UnitRow(
            job_id=job_id,
            unit_index=0,
            spec_json="{}",
            inputs_json="[]",
            work_flops=work_flops,
            status="done",
            attempts=1,
        )
        session.add(unit)
        session.flush()
        session.add(
            LeaseRow(
                lease_id=lease_id,
                unit_id=unit.unit_id,
                job_id=job_id,
                node_id=node_id,
                status="done",
                granted_at_ms=at_ms,
                deadline_at_ms=at_ms + 60_000,
            )
        )
        session.flush()
        session.add(
            ResultRow(
                lease_id=lease_id,
                unit_id=unit.unit_id,
                job_id=job_id,
                node_id=node_id,
                result_sha256="00" * 32,
                signature="A" * 86,
                runner_tree_hash="ab" * 32,
                work_flops=work_flops,
                compute_ms=1,
                received_at_ms=at_ms,
                status=status,
                validated_at_ms=validated_at_ms,
            )
        )
        uow.commit()


def place(
    uow_factory: UnitOfWorkFactory, node_id: str, username: str, pool: str, *, warm: bool
) -> None:
    """Put a node in a pool, as the pools area records it."""
    with uow_factory() as uow:
        uow.session.add(
            PoolMemberRow(
                node_id=node_id,
                username=username,
                pool=pool,
                reason="admission",
                since_ms=0,
                warm_opt_in=warm,
                log_index=0,
            )
        )
        uow.commit()
