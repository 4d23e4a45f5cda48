"""Use cases of the mesh: submit jobs, lease units, accept signed results, merge products."""

from __future__ import annotations

import json
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Row, Select, bindparam, case, func, insert, select, update
from sqlalchemy.orm import Session

from nexapod.crypto import Base64TooLargeError, b64decode_at_most, sha256_hex, verify_document
from nexapod.mesh import atlas_jobs, checkpoints, errors
from nexapod.mesh.rules import LeaseTiming, lease_duration_s, unit_status_after_lost_lease
from nexapod.mesh.store import (
    BlockRow,
    JobRow,
    LeaseRow,
    NodeTrustRow,
    ProductRow,
    ResultDataRow,
    ResultRow,
    UnitRow,
)
from nexapod.mesh.validating import (
    NO_KEY_UPDATE as _NO_KEY_UPDATE,
)
from nexapod.mesh.validating import (
    Caught,
    TamperingDetected,
    catch_node,
    settle_first_results,
    settle_unit,
)
from nexapod.mesh.validation import PPM, ValidationPolicy, implausibility
from nexapod.policy import Policy
from nexapod.pools.membership import gate_for_lease
from nexapod.pools.store import PoolMemberRow
from nexapod.protocol.v1 import (
    PURPOSE_RESULT,
    ComputeRecord,
    ComputeRecordPage,
    InputRef,
    JobList,
    JobView,
    LeaseGrant,
    LeaseResponse,
    NodeContribution,
    ResultAck,
    ResultDocument,
    ResultItem,
    SubmitJobRequest,
    UnitFailure,
    UnitLease,
    UnitView,
)
from nexapod.registry import blacklist
from nexapod.registry import errors as registry_errors
from nexapod.registry.store import NodeRow
from nexapod.storage.uow import UnitOfWork

__all__ = [
    "CheckedResult",
    "MeshLimits",
    "Product",
    "ResultUpload",
    "TamperingDetected",
    "blacklist_caught",
    "capacity_need_flops_per_s",
    "check_results",
    "decode_result_items",
    "expire_overdue_leases",
    "finalize_job",
    "get_block",
    "get_job",
    "get_product",
    "get_unit",
    "lease_units",
    "list_jobs",
    "list_records",
    "plan_job",
    "record_results",
    "report_failure",
    "submit_job",
]

RETRY_AFTER_IDLE_S = 2
LEASES_PER_USER_PER_UNIT_MAX = 2
RECENT_FAILURES_SHOWN_MAX = 20
EXPIRED_PER_PASS_MAX = 1000


@dataclass(frozen=True)
class MeshLimits:
    """The Settings values the mesh's use cases need."""

    timing: LeaseTiming
    leases_per_request_max: int
    results_per_request_max: int
    result_bytes_max: int
    unit_attempts_max: int
    dataset_spectra_max: int
    page_size_max: int
    validation: ValidationPolicy = field(default_factory=ValidationPolicy)
    blacklist_user_on_tampering: bool = True
    checkpoint_chunk_flops: int = 0
    checkpoint_bytes_max: int = 64 << 20
    pool_policy: Policy | None = None  # None: no pool gate (every node may work)
    job_capacity_flops_per_s_max: int = 10**20  # the largest capacity need a job may state

    def __post_init__(self) -> None:
        assert self.job_capacity_flops_per_s_max >= 1


def capacity_need_flops_per_s(request: SubmitJobRequest, limits: MeshLimits) -> int | None:
    """The job's stated capacity need, checked: None (no need) or 1 to the configured most.

    Zero is refused rather than read as "no need" (leave the field out for that), and a
    need past ``job_capacity_flops_per_s_max`` is refused because the pool manager would
    chase it with every cold node for as long as the job runs.
    """
    text = request.capacity_flops_per_s_min
    if text is None:
        return None
    need = int(text)  # the wire pattern allows canonical digits only
    assert str(need) == text
    if not 1 <= need <= limits.job_capacity_flops_per_s_max:
        raise errors.capacity_need_invalid(text, limits.job_capacity_flops_per_s_max)
    return need


def plan_job(request: SubmitJobRequest, limits: MeshLimits) -> atlas_jobs.JobPlan:
    """Check the request and embed the dataset and cut the job into units (CPU only: run
    it outside a write); a bad capacity need is refused before the expensive part."""
    capacity_need_flops_per_s(request, limits)
    return atlas_jobs.plan_job(request, limits.dataset_spectra_max, limits.checkpoint_chunk_flops)


def submit_job(
    uow: UnitOfWork,
    username: str,
    request: SubmitJobRequest,
    plan: atlas_jobs.JobPlan,
    now_ms: int,
    limits: MeshLimits,
) -> JobView:
    """Queue a planned job's blocks and units, all in one transaction."""
    capacity_need = capacity_need_flops_per_s(request, limits)
    job_id = secrets.token_hex(16)
    session = uow.session
    job = JobRow(
        job_id=job_id,
        workload=request.workload,
        params_json=json.dumps(plan.params, sort_keys=True),
        dataset_json=json.dumps(plan.dataset, sort_keys=True),
        n_items=plan.n_items,
        submitted_by=username,
        status="running",
        units_total=len(plan.units),
        units_done=0,
        units_failed=0,
        work_flops_total=plan.work_flops_total,
        work_flops_done=0,
        created_at_ms=now_ms,
        capacity_flops_per_s_min=capacity_need,
    )
    session.add(job)
    session.flush()
    for block in plan.blocks:
        session.add(
            BlockRow(
                job_id=job_id,
                block_index=block.block_index,
                n_rows=block.n_rows,
                sha256=block.sha256,
                data=block.data,
            )
        )
    session.flush()
    for unit in plan.units:
        session.add(
            UnitRow(
                job_id=job_id,
                unit_index=unit.unit_index,
                spec_json=json.dumps(unit.spec, sort_keys=True),
                inputs_json=json.dumps(_input_refs(job_id, unit.input_blocks, plan.blocks)),
                work_flops=unit.work_flops,
                status="queued",
                attempts=0,
            )
        )
    session.flush()
    view = _job_view(uow, job)
    uow.commit()
    _warm_block_cache(job_id, plan.blocks)
    return view


def _warm_block_cache(job_id: str, blocks: list[atlas_jobs.PlannedBlock]) -> None:
    """The first blocks of a job just stored, into the block cache: units are leased in
    plan order, so every node's first downloads are served without reading them back
    from the store. Half the cache at most, so a large job does not push out the rest."""
    budget_bytes = _BLOCK_CACHE.bytes_max // 2
    for block in blocks:
        if len(block.data) > budget_bytes:
            return
        budget_bytes -= len(block.data)
        _BLOCK_CACHE.put((job_id, block.block_index), block.data)


def _input_refs(
    job_id: str, block_indices: tuple[int, ...], blocks: list[atlas_jobs.PlannedBlock]
) -> list[dict[str, object]]:
    names = ("block_row", "block_col")
    refs: list[dict[str, object]] = []
    for name, block_index in zip(names, block_indices, strict=False):
        block = blocks[block_index]
        assert block.block_index == block_index
        refs.append(
            {
                "name": name,
                "path": f"/v1/jobs/{job_id}/blocks/{block_index}",
                "sha256": block.sha256,
                "size_bytes": len(block.data),
            }
        )
    return refs


def expire_overdue_leases(uow: UnitOfWork, now_ms: int, attempts_max: int) -> int:
    """Return the units of leases past their deadline to the queue (or fail them).

    Leases that another transaction holds (a result being recorded) are skipped; the
    next pass gets them if they are still overdue.
    """
    session = uow.session
    overdue = (
        select(LeaseRow.lease_id)
        .where(LeaseRow.status == "active", LeaseRow.deadline_at_ms < now_ms)
        .order_by(LeaseRow.lease_id)
        .limit(EXPIRED_PER_PASS_MAX)
    )
    if uow.dialect_name == "postgresql":
        overdue = overdue.with_for_update(skip_locked=True)
    lease_ids = list(session.scalars(overdue))
    if not lease_ids:
        return 0
    expired = session.execute(
        update(LeaseRow)
        .where(LeaseRow.lease_id.in_(lease_ids), LeaseRow.status == "active")
        .values(status="expired", ended_at_ms=now_ms)
        .returning(LeaseRow.unit_id)
    ).all()
    for unit_id in sorted(unit_id for (unit_id,) in expired):
        _release_unit(uow, unit_id, attempts_max)
    return len(expired)


def _release_unit(uow: UnitOfWork, unit_id: int, attempts_max: int) -> None:
    """A lease of the unit ended without a result: the unit wants it from another node,
    or fails once leases on ``attempts_max`` nodes were lost."""
    unit = uow.session.get(UnitRow, unit_id, with_for_update=_NO_KEY_UPDATE, populate_existing=True)
    assert unit is not None
    unit.leases_active -= 1
    assert unit.leases_active >= 0
    if unit.status in ("done", "failed"):
        return
    # leases a blacklisted node held do not count: a cheater cannot fail honest work
    lost = uow.session.scalar(
        select(func.count()).where(
            LeaseRow.unit_id == unit_id,
            LeaseRow.status.in_(("expired", "failed")),
            LeaseRow.node_id.not_in(blacklist.listed_node_ids()),
        )
    )
    unit.status = unit_status_after_lost_lease(int(lost or 0), attempts_max)
    if unit.status == "queued" and unit.leases_active >= unit.results_wanted:
        unit.status = "leased"
    if unit.status == "failed":
        job = uow.session.get(
            JobRow, unit.job_id, with_for_update=_NO_KEY_UPDATE, populate_existing=True
        )
        assert job is not None
        job.units_failed += 1
        job.status = "failed"


def lease_units(
    uow: UnitOfWork, node_id: str, units_max: int, now_ms: int, limits: MeshLimits
) -> LeaseResponse:
    """Grant the node up to ``units_max`` queued units, each under a lease with a deadline.

    The transaction does set-based writes only (one INSERT of the leases, one UPDATE of
    the units); the grants are built after it commits, so the write lock is short.
    """
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    expire_overdue_leases(uow, now_ms, limits.unit_attempts_max)
    pool: tuple[str, str] | None = None
    if limits.pool_policy is not None:
        pool = _pool_of(session, node_id)
        if pool is None or pool[0] not in ("hot", "institutional"):
            gated = _pool_gate(session, node, pool, now_ms, limits.pool_policy)
            if gated is not None:
                node.last_seen_at_ms = now_ms
                uow.commit()
                return gated
            pool = _pool_of(session, node_id)
    node.last_seen_at_ms = now_ms
    capacity_flops_per_s = node.capacity_flops_per_s
    username = node.username
    count = min(units_max, limits.leases_per_request_max)
    query = _GRANTABLE_PG if uow.dialect_name == "postgresql" else _GRANTABLE
    regular = list(session.execute(query, {"username": username, "count": count}).all())
    spot = _spot_check(session, node_id, username, limits.validation)
    if spot is not None and len(regular) >= count:
        regular.pop()
    units = regular if spot is None else [*regular, spot]
    resumes = checkpoints.resume_inputs(session, [unit.unit_id for unit in regular])
    leases = [
        {
            "lease_id": secrets.token_hex(16),
            "unit_id": unit.unit_id,
            "job_id": unit.job_id,
            "node_id": node_id,
            "username": username,
            "status": "active",
            "granted_at_ms": now_ms,
            "deadline_at_ms": now_ms
            + 1000 * lease_duration_s(unit.work_flops, capacity_flops_per_s, limits.timing),
            "spot_check": unit is spot,
            "resumed_from": resumes[unit.unit_id][0] if unit.unit_id in resumes else None,
        }
        for unit in units
    ]
    if spot is not None:  # the unit stays done; its answer is known
        session.execute(
            update(UnitRow)
            .where(UnitRow.unit_id == spot.unit_id)
            .values(leases_active=UnitRow.leases_active + 1)
        )
    if leases:
        session.execute(insert(LeaseRow), leases)
    if regular:
        session.execute(
            update(UnitRow)
            .where(UnitRow.unit_id.in_([unit.unit_id for unit in regular]))
            .values(
                status=case(
                    (UnitRow.leases_active + 1 >= UnitRow.results_wanted, "leased"),
                    else_="queued",
                ),
                leases_active=UnitRow.leases_active + 1,
                attempts=UnitRow.attempts + 1,
            )
        )
        session.execute(
            update(JobRow)
            .where(
                JobRow.job_id.in_({unit.job_id for unit in regular}),
                JobRow.started_at_ms.is_(None),
            )
            .values(started_at_ms=now_ms)
        )
    uow.commit()
    grants = [
        LeaseGrant(
            lease_id=lease["lease_id"],
            job_id=unit.job_id,
            unit_id=unit.unit_id,
            workload=unit.workload,
            unit_spec=json.loads(unit.spec_json),
            inputs=[InputRef.model_validate(ref) for ref in json.loads(unit.inputs_json)]
            + ([resumes[unit.unit_id][1]] if unit.unit_id in resumes else []),
            work_flops=unit.work_flops,
            granted_at_ms=now_ms,
            deadline_at_ms=lease["deadline_at_ms"],
        )
        for unit, lease in zip(units, leases, strict=True)
    ]
    return LeaseResponse(
        leases=grants,
        retry_after_s=0 if grants else RETRY_AFTER_IDLE_S,
        pool=None if pool is None else pool[0],
        pool_reason=None if pool is None else pool[1],
    )


def _pool_gate(
    session: Session, node: NodeRow, current: tuple[str, str] | None, now_ms: int, policy: Policy
) -> LeaseResponse | None:
    """The empty answer for a node that may not work now; None when it may ask for units.

    A node outside hot is admitted only when there is work to do, so idle polling
    does not make it flap between pools.
    """
    if current is None or current[0] != "cold":
        work_waiting = session.scalar(
            select(UnitRow.unit_id)
            .join(JobRow, JobRow.job_id == UnitRow.job_id)
            .where(UnitRow.status == "queued", JobRow.status == "running")
            .limit(1)
        )
        if work_waiting is None:
            pool, reason = current or ("none", "idle")
            return LeaseResponse(
                leases=[], retry_after_s=RETRY_AFTER_IDLE_S, pool=pool, pool_reason=reason
            )
    gate = gate_for_lease(session, node, now_ms, policy)
    if gate.may_work:
        return None
    return LeaseResponse(
        leases=[], retry_after_s=RETRY_AFTER_IDLE_S, pool=gate.pool, pool_reason=gate.reason
    )


def _pool_of(session: Session, node_id: str) -> tuple[str, str] | None:
    row = session.execute(
        select(PoolMemberRow.pool, PoolMemberRow.reason).where(PoolMemberRow.node_id == node_id)
    ).first()
    return None if row is None else (row[0], row[1])


def _grantable() -> Select[int, str, int, str, str, str]:
    """What a lease grant needs of a unit and its job."""
    return select(
        UnitRow.unit_id,
        UnitRow.job_id,
        UnitRow.work_flops,
        UnitRow.spec_json,
        UnitRow.inputs_json,
        JobRow.workload,
    ).join(JobRow, JobRow.job_id == UnitRow.job_id)


# The queued units a node may lease, oldest first (built once: a statement of this shape
# costs a quarter of a millisecond to build, on every lease request).
_GRANTABLE = (
    _grantable()
    .where(
        UnitRow.status == "queued",
        JobRow.status == "running",
        # replicas of one unit go to nodes of distinct users
        ~select(LeaseRow.lease_id)
        .where(
            LeaseRow.unit_id == UnitRow.unit_id,
            LeaseRow.username == bindparam("username"),
            LeaseRow.status.in_(("active", "completed")),
        )
        .exists(),
        # and a user who let a unit's leases lapse twice does not get it again: one user
        # alone cannot exhaust a unit's attempts by leasing and abandoning it
        select(func.count())
        .where(LeaseRow.unit_id == UnitRow.unit_id, LeaseRow.username == bindparam("username"))
        .scalar_subquery()
        < LEASES_PER_USER_PER_UNIT_MAX,
    )
    .order_by(UnitRow.unit_id)
    .limit(bindparam("count"))
)
_GRANTABLE_PG = _GRANTABLE.with_for_update(skip_locked=True, of=UnitRow, key_share=True)


def _spot_check(
    session: Session, node_id: str, username: str, policy: ValidationPolicy
) -> Row[int, str, int, str, str, str] | None:
    """Now and then, for a node trusted enough to be sampled, a unit whose answer is
    already known: the node cannot tell it from new work, and a wrong answer catches it."""
    if policy.spot_check_ppm == 0 or secrets.randbelow(PPM) >= policy.spot_check_ppm:
        return None
    trust = session.get(NodeTrustRow, node_id)
    if trust is None or trust.valid_streak < policy.trusted_after_valid:
        return None  # untrusted nodes are replicated every time already
    last = session.scalar(select(func.max(UnitRow.unit_id)).where(UnitRow.status == "done"))
    if last is None:
        return None
    start = 1 + secrets.randbelow(last)
    for low in (start, 0):  # from a random place, wrapping round once
        query = (
            _grantable()
            .where(
                UnitRow.status == "done",
                JobRow.status == "running",
                UnitRow.unit_id >= low,
                ~select(LeaseRow.lease_id)
                .where(LeaseRow.unit_id == UnitRow.unit_id, LeaseRow.username == username)
                .exists(),
            )
            .order_by(UnitRow.unit_id)
            .limit(1)
        )
        found = session.execute(query).first()
        if found is not None:
            return found
    return None


@dataclass(frozen=True)
class ResultUpload:
    """A result as a node sent it: the signed document and the bytes it names."""

    document: ResultDocument
    signature: str
    data: bytes


@dataclass(frozen=True)
class CheckedResult:
    """A result whose bytes, hash, signature and shape were checked against its lease."""

    index: int
    upload: ResultUpload


def decode_result_items(items: list[ResultItem], limits: MeshLimits) -> list[ResultUpload]:
    """The uploads of a JSON batch, their base64 decoded within the size limit."""
    if len(items) > limits.results_per_request_max:
        raise errors.too_many_results(len(items), limits.results_per_request_max)
    return [
        ResultUpload(
            item.document,
            item.signature,
            _decode_result_bytes(item.result_b64, limits.result_bytes_max, index),
        )
        for index, item in enumerate(items)
    ]


def check_results(
    uow: UnitOfWork, node_id: str, items: list[ResultUpload], limits: MeshLimits
) -> list[CheckedResult]:
    """The CPU-heavy half of accepting results, run in a read-only unit of work.

    Decoding, hashing, signature checks and the workload's strict parse happen here, so
    the write that follows (:func:`record_results`) holds the database's write lock only
    for the bookkeeping. Nothing here depends on state that can change: a lease's node,
    job and unit never change, and a unit's spec is fixed when its job is planned.
    """
    if len(items) > limits.results_per_request_max:
        raise errors.too_many_results(len(items), limits.results_per_request_max)
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    lease_ids = [item.document.lease_id for item in items]
    leases = {
        lease_id: (lease_node_id, unit_id, job_id, spec_json)
        for lease_id, lease_node_id, unit_id, job_id, spec_json in session.execute(
            select(
                LeaseRow.lease_id,
                LeaseRow.node_id,
                LeaseRow.unit_id,
                LeaseRow.job_id,
                UnitRow.spec_json,
            )
            .join(UnitRow, UnitRow.unit_id == LeaseRow.unit_id)
            .where(LeaseRow.lease_id.in_(lease_ids))
        )
    }
    checked = []
    for index, item in enumerate(items):
        document = item.document
        evidence = {"lease_id": document.lease_id, "unit_id": document.unit_id}
        if document.node_id != node_id:  # another node's signed result, replayed
            caught = Caught(node_id, "result_of_another_node", evidence)
            raise TamperingDetected(errors.result_node_mismatch(index), caught)
        lease = leases.get(document.lease_id)
        if lease is None:
            raise errors.lease_unknown(document.lease_id, index)
        lease_node_id, unit_id, job_id, spec_json = lease
        if lease_node_id != node_id:
            raise errors.lease_not_yours(document.lease_id, index)
        if unit_id != document.unit_id or job_id != document.job_id:  # signed for another unit
            caught = Caught(node_id, "result_replayed", evidence)
            raise TamperingDetected(errors.result_mismatch(document.lease_id, index), caught)
        if document.runner_tree_hash != node.runner_tree_hash:
            error = errors.runner_changed(node.runner_tree_hash, document.runner_tree_hash, index)
            caught = Caught(
                node_id,
                "runner_changed",
                {
                    **evidence,
                    "registered": node.runner_tree_hash,
                    "reported": document.runner_tree_hash,
                },
            )
            raise TamperingDetected(error, caught)
        data = item.data
        if len(data) > limits.result_bytes_max:
            raise errors.result_too_large(len(data), limits.result_bytes_max, index)
        if sha256_hex(data) != document.result_sha256:
            raise errors.result_hash_mismatch(index)
        if not verify_document(
            node.public_key, item.signature, PURPOSE_RESULT, document.model_dump()
        ):  # the request was signed by the node's key, the result was not: forged
            caught = Caught(node_id, "result_signature_forged", evidence)
            raise TamperingDetected(errors.result_signature_invalid(index), caught)
        atlas_jobs.check_result(spec_json, data)
        checked.append(CheckedResult(index, item))
    return checked


def record_results(
    uow: UnitOfWork,
    node_id: str,
    checked: list[CheckedResult],
    now_ms: int,
    limits: MeshLimits | None = None,
) -> tuple[list[ResultAck], list[str]]:
    """Record checked results and validate their units, all or nothing.

    Returns the acknowledgements and the ids of jobs whose last unit this batch
    completed (they are ready to merge). Each result is first held to plausibility (a
    result faster than the node's benchmark allows raises ``TamperingDetected``), then
    stored as pending and its unit settled by the validation rules: valid and credited,
    waiting for a replica's agreement, or contradicted (its node is then caught).
    Resubmitting a result is answered with its current status and counted once.
    """
    policy = limits.validation if limits is not None else ValidationPolicy(quorum=1)
    include_user = limits.blacklist_user_on_tampering if limits is not None else True
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    node.last_seen_at_ms = now_ms
    lease_ids = [c.upload.document.lease_id for c in checked]
    # Lock the batch's leases (in a fixed order): a concurrent expiry then waits for this
    # transaction, or this one sees the lease it expired. SQLite serialises writers anyway.
    lease_query = (
        select(
            LeaseRow.lease_id,
            LeaseRow.node_id,
            LeaseRow.status,
            LeaseRow.granted_at_ms,
            LeaseRow.deadline_at_ms,
            UnitRow.unit_id,
            UnitRow.job_id,
            UnitRow.work_flops,
        )
        .join(UnitRow, UnitRow.unit_id == LeaseRow.unit_id)
        .where(LeaseRow.lease_id.in_(lease_ids))
        .order_by(LeaseRow.lease_id)
    )
    if uow.dialect_name == "postgresql":
        lease_query = lease_query.with_for_update(of=LeaseRow)
    leases = {row.lease_id: row for row in session.execute(lease_query)}
    if uow.dialect_name == "postgresql" and leases:
        # Then the batch's jobs, in id order, before any unit or trust row: two results of
        # one job recorded at once (a unit's replicas, from two nodes) mark each other's
        # nodes' trust, in opposite orders; taking the job first makes them queue.
        session.execute(
            select(JobRow.job_id)
            .where(JobRow.job_id.in_(sorted({row.job_id for row in leases.values()})))
            .order_by(JobRow.job_id)
            .with_for_update(key_share=True)  # FOR NO KEY UPDATE, as settling locks it
        )
    earlier: dict[str, tuple[str, str, int]] = {
        lease_id: (sha256, status, work_flops)
        for lease_id, sha256, status, work_flops in session.execute(
            select(
                ResultRow.lease_id, ResultRow.result_sha256, ResultRow.status, ResultRow.work_flops
            ).where(ResultRow.lease_id.in_(lease_ids))
        )
    }
    new_results = []
    new_data: list[dict[str, object]] = []
    seen: set[str] = set()
    for result in checked:
        document = result.upload.document
        lease = leases[document.lease_id]
        assert lease.node_id == node_id, "checked against the same lease"
        sent = earlier.get(lease.lease_id)
        if sent is not None or lease.lease_id in seen:
            if sent is not None and sent[0] != document.result_sha256:
                raise errors.result_conflict(lease.lease_id, result.index)
            continue
        if lease.status != "active" or lease.deadline_at_ms < now_ms:
            raise errors.lease_expired(lease.lease_id, result.index)
        reason = implausibility(
            lease.work_flops, now_ms - lease.granted_at_ms, node.capacity_flops_per_s, policy
        )
        if reason is not None:
            evidence = {
                "lease_id": lease.lease_id,
                "unit_id": lease.unit_id,
                "work_flops": lease.work_flops,
                "elapsed_ms": now_ms - lease.granted_at_ms,
                "capacity_flops_per_s": node.capacity_flops_per_s,
            }
            raise TamperingDetected(
                errors.result_implausible(reason, result.index),
                Caught(node_id, "implausible_time", evidence),
            )
        seen.add(lease.lease_id)
        new_results.append(
            _result_row(result, lease.unit_id, lease.job_id, lease.work_flops, node_id, now_ms)
        )
        new_data.append({"lease_id": lease.lease_id, "data": result.upload.data})
    completed_jobs: list[str] = []
    if new_results:
        completed_jobs = _store_new_results(
            uow, new_results, new_data, now_ms, policy, include_user
        )
    statuses = {
        lease_id: (status, work_flops)
        for lease_id, status, work_flops in session.execute(
            select(ResultRow.lease_id, ResultRow.status, ResultRow.work_flops).where(
                ResultRow.lease_id.in_(lease_ids)
            )
        )
    }
    acks = []
    for result in checked:
        lease = leases[result.upload.document.lease_id]
        status, work_flops = statuses[lease.lease_id]
        acks.append(
            ResultAck(
                lease_id=lease.lease_id,
                unit_id=lease.unit_id,
                status="duplicate" if lease.lease_id in earlier else _ACK_OF[status],
                verified_flops=work_flops if status == "valid" else 0,
            )
        )
    uow.commit()
    return acks, completed_jobs


_ACK_OF = {
    "valid": "accepted",
    "pending": "pending",
    "invalid": "rejected",
    "forfeited": "rejected",
    "void": "rejected",
}


def blacklist_caught(uow: UnitOfWork, caught: Caught, now_ms: int, limits: MeshLimits) -> int:
    """Blacklist a node caught by a check that refused its request (its own transaction)."""
    entry_id = catch_node(
        uow.session, caught, now_ms, include_user=limits.blacklist_user_on_tampering
    )
    uow.commit()
    return entry_id


def _result_row(
    result: CheckedResult, unit_id: int, job_id: str, work_flops: int, node_id: str, now_ms: int
) -> dict[str, object]:
    document = result.upload.document
    return {
        "lease_id": document.lease_id,
        "unit_id": unit_id,
        "job_id": job_id,
        "node_id": node_id,
        "result_sha256": document.result_sha256,
        "signature": result.upload.signature,
        "runner_tree_hash": document.runner_tree_hash,
        "work_flops": work_flops,
        "compute_ms": document.compute_ms,
        "received_at_ms": now_ms,
        "status": "pending",
    }


def _store_new_results(
    uow: UnitOfWork,
    rows: list[dict[str, object]],
    data: list[dict[str, object]],
    now_ms: int,
    policy: ValidationPolicy,
    include_user: bool,
) -> list[str]:
    """Insert results as pending (records and bytes), close their leases, and settle each
    unit in turn."""
    session = uow.session
    session.execute(insert(ResultRow), rows)
    session.execute(insert(ResultDataRow), data)
    lease_ids = [row["lease_id"] for row in rows]
    unit_ids = sorted({int(row["unit_id"]) for row in rows})  # type: ignore[call-overload]
    assert len(unit_ids) == len(rows), "one lease per unit per node"
    closed = session.execute(
        update(LeaseRow)
        .where(LeaseRow.lease_id.in_(lease_ids), LeaseRow.status == "active")
        .values(status="completed", ended_at_ms=now_ms)
    )
    assert closed.rowcount == len(rows), "every recorded lease was active"  # type: ignore[attr-defined]
    session.execute(
        update(UnitRow)
        .where(UnitRow.unit_id.in_(unit_ids))
        .values(leases_active=UnitRow.leases_active - 1, results_wanted=UnitRow.results_wanted - 1)
    )
    job_ids = sorted({str(row["job_id"]) for row in rows})
    merging_before = set(
        session.scalars(
            select(JobRow.job_id).where(JobRow.job_id.in_(job_ids), JobRow.status == "merging")
        )
    )
    node_id = str(rows[0]["node_id"])
    pairs = [(int(r["unit_id"]), str(r["lease_id"])) for r in rows]  # type: ignore[call-overload]
    settled = settle_first_results(session, node_id, pairs, policy, now_ms)
    for unit_id in unit_ids:
        if unit_id not in settled:
            settle_unit(session, unit_id, policy, now_ms, include_user=include_user)
    merging_after = session.scalars(
        select(JobRow.job_id).where(JobRow.job_id.in_(job_ids), JobRow.status == "merging")
    )
    return sorted(set(merging_after) - merging_before)


def _decode_result_bytes(text: str, size_bytes_max: int, index: int) -> bytes:
    try:
        return b64decode_at_most(text, size_bytes_max)
    except Base64TooLargeError as exc:
        raise errors.result_too_large(exc.size_bytes, size_bytes_max, index) from exc
    except ValueError as exc:
        raise errors.result_encoding(index) from exc


def report_failure(
    uow: UnitOfWork,
    node_id: str,
    lease_id: str,
    code: str,
    detail: str,
    now_ms: int,
    limits: MeshLimits,
) -> None:
    """A node reports that a unit failed on it: end the lease, requeue or fail the unit."""
    session = uow.session
    lease = session.get(LeaseRow, lease_id, with_for_update=True)
    if lease is None:
        raise errors.lease_unknown(lease_id, 0)
    if lease.node_id != node_id:
        raise errors.lease_not_yours(lease_id, 0)
    if lease.status != "active":
        if lease.status == "failed" and lease.failure_code == code:
            return  # the same report twice
        raise errors.lease_expired(lease_id, 0)
    lease.status = "failed"
    lease.ended_at_ms = now_ms
    lease.failure_code = code
    lease.failure_detail = detail
    _release_unit(uow, lease.unit_id, limits.unit_attempts_max)
    uow.commit()


def finalize_job(
    uow_read: UnitOfWork, uow_write: UnitOfWork, job_id: str, clock_ms: Callable[[], int]
) -> bool:
    """Merge a job whose units are all done into its product (idempotent).

    The merge reads in one unit of work and writes in another, so an embedded SQLite
    store is not write-locked while the merge computes. The job finishes when its
    product exists: the clock is read after the merge, so a job's wall time includes it.
    """
    with uow_read:
        job = uow_read.session.get(JobRow, job_id)
        if job is None:
            raise errors.job_unknown(job_id)
        if job.status != "merging":
            return False
        rows = uow_read.session.execute(
            select(UnitRow.spec_json, ResultDataRow.data)
            .join(ResultDataRow, ResultDataRow.lease_id == UnitRow.canonical_lease_id)
            .where(UnitRow.job_id == job_id, UnitRow.status == "done")
            .order_by(UnitRow.unit_index)
            .execution_options(yield_per=64)
        )
        params = json.loads(job.params_json)
        product = atlas_jobs.merge_results(job.n_items, params, ((s, d) for s, d in rows))
    with uow_write:
        job = uow_write.session.get(JobRow, job_id)
        assert job is not None
        if job.status != "merging":
            return False
        now_ms = clock_ms()
        uow_write.session.add(
            ProductRow(
                job_id=job_id, sha256=sha256_hex(product), created_at_ms=now_ms, data=product
            )
        )
        job.status = "done"
        job.finished_at_ms = now_ms
        uow_write.commit()
    return True


def list_records(
    uow: UnitOfWork, job_id: str, cursor: str | None, limit: int, limits: MeshLimits
) -> ComputeRecordPage:
    """A job's signed compute records, in arrival order, a page at a time (the cursor is
    the last record's lease id)."""
    session = uow.session
    if session.get(JobRow, job_id) is None:
        raise errors.job_unknown(job_id)
    size = min(limit, limits.page_size_max)
    query = (
        select(ResultRow, NodeRow.username, NodeRow.public_key)
        .join(NodeRow, NodeRow.node_id == ResultRow.node_id)
        .where(ResultRow.job_id == job_id)
        .order_by(ResultRow.received_at_ms, ResultRow.lease_id)
    )
    if cursor is not None:
        anchor = session.get(ResultRow, cursor)
        if anchor is None or anchor.job_id != job_id:
            raise errors.lease_unknown(cursor, 0)
        query = query.where(
            (ResultRow.received_at_ms > anchor.received_at_ms)
            | (
                (ResultRow.received_at_ms == anchor.received_at_ms)
                & (ResultRow.lease_id > anchor.lease_id)
            )
        )
    rows = session.execute(query.limit(size + 1)).all()
    records = [
        ComputeRecord(
            unit_id=result.unit_id,
            node_id=result.node_id,
            username=username,
            node_public_key=public_key,
            work_flops=result.work_flops,
            status=result.status,
            document=ResultDocument(
                node_id=result.node_id,
                job_id=result.job_id,
                unit_id=result.unit_id,
                lease_id=result.lease_id,
                result_sha256=result.result_sha256,
                runner_tree_hash=result.runner_tree_hash,
                compute_ms=result.compute_ms,
            ),
            signature=result.signature,
            received_at_ms=result.received_at_ms,
        )
        for result, username, public_key in rows[:size]
    ]
    next_cursor = records[-1].document.lease_id if len(rows) > size else None
    return ComputeRecordPage(job_id=job_id, records=records, next_cursor=next_cursor)


UNIT_LEASES_SHOWN_MAX = 200


def get_unit(uow: UnitOfWork, job_id: str, unit_id: int) -> UnitView:
    """A unit's history: its leases (at most UNIT_LEASES_SHOWN_MAX, oldest first) and what
    became of each, so a failed unit shows where and why it failed."""
    session = uow.session
    unit = session.get(UnitRow, unit_id)
    if unit is None or unit.job_id != job_id:
        raise errors.unit_unknown(job_id, unit_id)
    rows = session.execute(
        select(LeaseRow, ResultRow.status)
        .outerjoin(ResultRow, ResultRow.lease_id == LeaseRow.lease_id)
        .where(LeaseRow.unit_id == unit_id)
        .order_by(LeaseRow.granted_at_ms, LeaseRow.lease_id)
        .limit(UNIT_LEASES_SHOWN_MAX)
    ).all()
    return UnitView(
        job_id=job_id,
        unit_id=unit_id,
        unit_index=unit.unit_index,
        status=unit.status,
        work_flops=unit.work_flops,
        quorum=unit.quorum,
        canonical_lease_id=unit.canonical_lease_id,
        leases=[
            UnitLease(
                lease_id=lease.lease_id,
                node_id=lease.node_id,
                username=lease.username,
                status=lease.status,
                spot_check=lease.spot_check,
                resumed_from=lease.resumed_from,
                granted_at_ms=lease.granted_at_ms,
                ended_at_ms=lease.ended_at_ms,
                failure_code=lease.failure_code,
                failure_detail=lease.failure_detail,
                result_status=result_status,
            )
            for lease, result_status in rows
        ],
    )


def get_job(uow: UnitOfWork, job_id: str) -> JobView:
    job = uow.session.get(JobRow, job_id)
    if job is None:
        raise errors.job_unknown(job_id)
    return _job_view(uow, job)


def list_jobs(uow: UnitOfWork, cursor: str | None, page_size: int, limits: MeshLimits) -> JobList:
    """Jobs, newest first, a page at a time (the cursor is the last job id of a page)."""
    size = min(page_size, limits.page_size_max)
    query = select(JobRow).order_by(JobRow.created_at_ms.desc(), JobRow.job_id.desc())
    if cursor is not None:
        anchor = uow.session.get(JobRow, cursor)
        if anchor is None:
            raise errors.job_unknown(cursor)
        query = query.where(
            (JobRow.created_at_ms < anchor.created_at_ms)
            | ((JobRow.created_at_ms == anchor.created_at_ms) & (JobRow.job_id < anchor.job_id))
        )
    rows = uow.session.scalars(query.limit(size + 1)).all()
    views = [_job_view(uow, row) for row in rows[:size]]
    next_cursor = rows[size - 1].job_id if len(rows) > size else None
    return JobList(jobs=views, next_cursor=next_cursor)


def get_block(uow: UnitOfWork, job_id: str, block_index: int) -> bytes:
    """A job's input block: immutable once planned, so kept in a bounded in-memory cache
    (every node of a job fetches the same blocks, each of them megabytes)."""
    key = (job_id, block_index)
    cached = _BLOCK_CACHE.get(key)
    if cached is not None:
        return cached
    block = uow.session.get(BlockRow, key)
    if block is None:
        raise errors.block_unknown(job_id, block_index)
    data = bytes(block.data)
    _BLOCK_CACHE.put(key, data)
    return data


class _BytesCache:
    """Least recently used values, bounded by their total size in bytes. Thread-safe."""

    def __init__(self, bytes_max: int) -> None:
        assert bytes_max > 0
        self.bytes_max = bytes_max
        self._items: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, int], value: bytes) -> None:
        if len(value) > self.bytes_max:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= 0 if old is None else len(old)
            self._items[key] = value
            self._bytes += len(value)
            while self._bytes > self.bytes_max:
                _, evicted = self._items.popitem(last=False)
                self._bytes -= len(evicted)
            assert 0 <= self._bytes <= self.bytes_max


BLOCK_CACHE_BYTES_MAX = 256 * 1024 * 1024
_BLOCK_CACHE = _BytesCache(BLOCK_CACHE_BYTES_MAX)


@dataclass(frozen=True)
class Product:
    """A finished job's merged product, detached from the database."""

    job_id: str
    n_items: int
    sha256: str
    data: bytes


def get_product(uow: UnitOfWork, job_id: str) -> Product:
    job = uow.session.get(JobRow, job_id)
    if job is None:
        raise errors.job_unknown(job_id)
    product = uow.session.get(ProductRow, job_id)
    if product is None:
        raise errors.product_not_ready(job_id, job.status)
    return Product(job_id, job.n_items, product.sha256, product.data)


def _job_view(uow: UnitOfWork, job: JobRow) -> JobView:
    session = uow.session
    units_leased = session.scalar(
        select(func.count()).where(UnitRow.job_id == job.job_id, UnitRow.status == "leased")
    )
    contributions = session.execute(
        select(
            ResultRow.node_id,
            NodeRow.username,
            func.count(),
            func.coalesce(func.sum(ResultRow.work_flops), 0),
            func.coalesce(func.sum(ResultRow.compute_ms), 0),
        )
        .join(NodeRow, NodeRow.node_id == ResultRow.node_id)
        .where(ResultRow.job_id == job.job_id, ResultRow.status == "valid")
        .group_by(ResultRow.node_id, NodeRow.username)
        .order_by(ResultRow.node_id)
    ).all()
    failures = session.execute(
        select(LeaseRow)
        .where(LeaseRow.job_id == job.job_id, LeaseRow.status.in_(("failed", "expired")))
        .order_by(LeaseRow.ended_at_ms.desc(), LeaseRow.lease_id)
        .limit(RECENT_FAILURES_SHOWN_MAX)
    ).scalars()
    product_sha256 = session.scalar(
        select(ProductRow.sha256).where(ProductRow.job_id == job.job_id)
    )
    return JobView(
        job_id=job.job_id,
        workload=job.workload,
        status=job.status,  # type: ignore[arg-type]
        n_items=job.n_items,
        submitted_by=job.submitted_by,
        params=json.loads(job.params_json),
        units_total=job.units_total,
        units_done=job.units_done,
        units_leased=int(units_leased or 0),
        units_failed=job.units_failed,
        work_flops_total=job.work_flops_total,
        work_flops_done=job.work_flops_done,
        created_at_ms=job.created_at_ms,
        started_at_ms=job.started_at_ms,
        finished_at_ms=job.finished_at_ms,
        product_sha256=product_sha256,
        capacity_flops_per_s_min=None
        if job.capacity_flops_per_s_min is None
        else str(job.capacity_flops_per_s_min),
        nodes=[
            NodeContribution(
                node_id=node_id,
                username=username,
                units_done=int(units),
                verified_flops=int(flops),
                compute_ms=int(compute_ms),
            )
            for node_id, username, units, flops, compute_ms in contributions
        ],
        recent_failures=[
            UnitFailure(
                unit_id=lease.unit_id,
                node_id=lease.node_id,
                code=lease.failure_code or "lease_expired",
                detail=lease.failure_detail or "the lease passed its deadline without a result",
                at_ms=lease.ended_at_ms or lease.deadline_at_ms,
            )
            for lease in failures
        ],
    )
