"""HTTP routes of the mesh: jobs, input blocks, leases, results and products."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Response
from pydantic import BaseModel, ValidationError

from nexapod.coordinator.auth import (
    SignedRequest,
    SignedRequestDep,
    authenticate,
    require_node,
    require_user,
)
from nexapod.coordinator.context import Context, ContextDep
from nexapod.coordinator.openapi import PROBLEM_RESPONSES, SIGNED_PROBLEM_RESPONSES
from nexapod.crypto import b64decode
from nexapod.mesh import atlas_jobs, checkpoints, errors, service
from nexapod.protocol.v1 import (
    HEADER_RESULT_DOCUMENT,
    HEADER_RESULT_SIGNATURE,
    CheckpointUpload,
    ComputeRecordPage,
    FailureReport,
    JobList,
    JobView,
    LeaseRequest,
    LeaseResponse,
    NeighbourView,
    ResultAck,
    ResultDocument,
    SpectrumNeighbours,
    SubmitJobRequest,
    SubmitResultsRequest,
    SubmitResultsResponse,
    UnitView,
)
from nexapod.registry.releases import require_node_released
from nexapod.storage.retry import retrying_transient

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["mesh"])

JobIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
SIGNATURE_PATTERN = r"^[A-Za-z0-9_-]{86}$"  # an Ed25519 signature, unpadded URL-safe base64
RESULT_DOCUMENT_CHARS_MAX = 2048
LeaseIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]
OCTET_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "Bytes"}
}


@router.post("/jobs", status_code=201, responses=SIGNED_PROBLEM_RESPONSES)
def submit_job(body: SubmitJobRequest, signed: SignedRequestDep, ctx: ContextDep) -> JobView:
    """Submit a job (signed by a registered user); its units are queued at once."""
    skew_s_max = ctx.settings.request_skew_s_max
    with ctx.read_uow() as uow:  # refuse bad requests before the expensive planning
        require_user(authenticate(uow, signed, ctx.clock_ms(), skew_s_max))
    plan = service.plan_job(body, ctx.limits)
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        username = require_user(
            authenticate(uow, signed, now_ms, skew_s_max, signature_checked=True)
        )
        return service.submit_job(uow, username, body, plan, now_ms, ctx.limits)


@router.get("/jobs", responses=PROBLEM_RESPONSES)
def list_jobs(
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> JobList:
    """Jobs, newest first; ``limit`` is capped by the coordinator's page size."""
    with ctx.read_uow() as uow:
        return service.list_jobs(uow, cursor, limit, ctx.limits)


@router.get("/jobs/{job_id}", responses=PROBLEM_RESPONSES)
def get_job(job_id: JobIdPath, ctx: ContextDep) -> JobView:
    """A job's progress: units done, leased and failed, FLOPs, and each node's share."""
    with ctx.read_uow() as uow:
        return service.get_job(uow, job_id)


@router.get("/jobs/{job_id}/units/{unit_id}", responses=PROBLEM_RESPONSES)
def get_unit(
    job_id: JobIdPath, unit_id: Annotated[int, Path(ge=1, le=2**62)], ctx: ContextDep
) -> UnitView:
    """A unit's history: every lease, where it failed and why, and its results' fate."""
    with ctx.read_uow() as uow:
        return service.get_unit(uow, job_id, unit_id)


@router.get("/jobs/{job_id}/records", responses=PROBLEM_RESPONSES)
def list_records(
    job_id: JobIdPath,
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> ComputeRecordPage:
    """A job's signed compute records: each result with its node's signature and key, so
    anyone can check who computed what, on which runner, for how many FLOPs."""
    with ctx.read_uow() as uow:
        return service.list_records(uow, job_id, cursor, limit, ctx.limits)


@router.get(
    "/jobs/{job_id}/blocks/{block_index}",
    response_class=Response,
    responses={**PROBLEM_RESPONSES, **OCTET_STREAM},
)
def get_block(
    job_id: JobIdPath, block_index: Annotated[int, Path(ge=0)], ctx: ContextDep
) -> Response:
    """An input block of a job, byte for byte as its lease's SHA-256 names it."""
    with ctx.read_uow() as uow:
        data = service.get_block(uow, job_id, block_index)
    return Response(data, media_type="application/octet-stream")


@router.get(
    "/jobs/{job_id}/product",
    response_class=Response,
    responses={**PROBLEM_RESPONSES, **OCTET_STREAM},
)
def get_product(job_id: JobIdPath, ctx: ContextDep) -> Response:
    """The merged product of a finished job (for the atlas: the kNN graph as .npz)."""
    with ctx.read_uow() as uow:
        product = service.get_product(uow, job_id)
    return Response(
        product.data,
        media_type="application/octet-stream",
        headers={"ETag": f'"{product.sha256}"', "NexaPod-Product-Sha256": product.sha256},
    )


@router.get("/jobs/{job_id}/atlas/{spectrum_index}", responses=PROBLEM_RESPONSES)
def get_neighbours(
    job_id: JobIdPath, spectrum_index: Annotated[int, Path(ge=0)], ctx: ContextDep
) -> SpectrumNeighbours:
    """One spectrum and its nearest neighbours in a finished atlas."""
    with ctx.read_uow() as uow:
        product = service.get_product(uow, job_id)
    if spectrum_index >= product.n_items:
        raise errors.spectrum_out_of_range(spectrum_index, product.n_items)
    neighbours = atlas_jobs.neighbours_of(product.data, spectrum_index)
    return SpectrumNeighbours(
        job_id=job_id,
        spectrum_index=spectrum_index,
        neighbours=[NeighbourView(spectrum_index=i, similarity=f"{s:.6f}") for i, s in neighbours],
    )


@router.post("/leases", responses=SIGNED_PROBLEM_RESPONSES, response_model=LeaseResponse)
def lease_units(body: LeaseRequest, signed: SignedRequestDep, ctx: ContextDep) -> Response:
    """Lease up to ``units_max`` work units to the signing node, each with a deadline.

    Where release keys are configured, only a node whose registered runner is a published
    release gets work.
    """
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        node_id = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        require_node_released(uow, node_id, ctx.releases)
        leases = service.lease_units(uow, node_id, body.units_max, now_ms, ctx.limits)
    return _json(leases)


def _json(model: BaseModel) -> Response:
    """A model built by the service, serialised once (FastAPI would validate it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


@router.post("/results", responses=SIGNED_PROBLEM_RESPONSES, response_model=SubmitResultsResponse)
def submit_results(
    body: SubmitResultsRequest, signed: SignedRequestDep, ctx: ContextDep
) -> Response:
    """Upload signed results; all are accepted or none is. Resubmission is idempotent."""
    return _accept(lambda: service.decode_result_items(list(body.results), ctx.limits), signed, ctx)


@router.post(
    "/leases/{lease_id}/result",
    responses=SIGNED_PROBLEM_RESPONSES,
    response_model=SubmitResultsResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
def upload_result(
    lease_id: LeaseIdPath,
    document: Annotated[
        str, Header(alias=HEADER_RESULT_DOCUMENT, max_length=RESULT_DOCUMENT_CHARS_MAX)
    ],
    signature: Annotated[str, Header(alias=HEADER_RESULT_SIGNATURE, pattern=SIGNATURE_PATTERN)],
    signed: SignedRequestDep,
    ctx: ContextDep,
) -> Response:
    """Upload one signed result as raw bytes (the body), its signed document in headers:
    the same checks and answer as ``POST /v1/results``, without base64 or JSON around
    megabytes of result."""
    return _accept(
        lambda: [
            service.ResultUpload(_result_document(document, lease_id), signature, signed.body)
        ],
        signed,
        ctx,
    )


def _result_document(header: str, lease_id: str) -> ResultDocument:
    try:
        raw = b64decode(header)
    except ValueError as exc:
        raise errors.result_document_invalid("not base64") from exc
    try:
        document = ResultDocument.model_validate_json(raw)
    except ValidationError as exc:
        raise errors.result_document_invalid(exc.errors()[0]["msg"]) from exc
    if document.lease_id != lease_id:
        raise errors.result_lease_mismatch(document.lease_id, lease_id)
    return document


def _accept(
    uploads: Callable[[], list[service.ResultUpload]], signed: SignedRequest, ctx: Context
) -> Response:
    """Check results without the write lock, then record them; tampering blacklists.

    ``uploads`` parses what was sent, once the request's signature has been checked.
    """
    skew_s_max = ctx.settings.request_skew_s_max
    try:
        with ctx.read_uow() as uow:  # the expensive checks, without the write lock
            node_id = require_node(authenticate(uow, signed, ctx.clock_ms(), skew_s_max))
            checked = service.check_results(uow, node_id, uploads(), ctx.limits)

        def record() -> tuple[list[ResultAck], list[str]]:
            with ctx.uow() as uow:
                now_ms = ctx.clock_ms()
                node_id = require_node(
                    authenticate(uow, signed, now_ms, skew_s_max, signature_checked=True)
                )
                return service.record_results(uow, node_id, checked, now_ms, ctx.limits)

        acks, completed_jobs = retrying_transient(record)
    except service.TamperingDetected as tampering:
        with ctx.uow() as uow:  # the refusal changes nothing but the blacklist
            service.blacklist_caught(uow, tampering.caught, ctx.clock_ms(), ctx.limits)
        raise tampering.error from None
    if completed_jobs:
        ctx.jobs_to_merge.set()
    return _json(SubmitResultsResponse(acks=acks))


@router.post("/leases/{lease_id}/checkpoint", status_code=204, responses=SIGNED_PROBLEM_RESPONSES)
def submit_checkpoint(
    lease_id: LeaseIdPath,
    body: CheckpointUpload,
    signed: SignedRequestDep,
    ctx: ContextDep,
) -> Response:
    """A node's signed checkpoint of a long unit it holds a lease on (the latest is kept)."""
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        node_id = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        checkpoints.record_checkpoint(
            uow, node_id, lease_id, body, now_ms, ctx.limits.checkpoint_bytes_max
        )
    return Response(status_code=204)


@router.get(
    "/checkpoints/{lease_id}",
    response_class=Response,
    responses={**PROBLEM_RESPONSES, **OCTET_STREAM},
)
def get_checkpoint(lease_id: LeaseIdPath, ctx: ContextDep) -> Response:
    """A kept checkpoint, byte for byte as the grant that resumes from it names it."""
    with ctx.read_uow() as uow:
        data = checkpoints.get_checkpoint(uow, lease_id)
    return Response(data, media_type="application/octet-stream")


@router.post("/leases/{lease_id}/failure", status_code=204, responses=SIGNED_PROBLEM_RESPONSES)
def report_failure(
    lease_id: LeaseIdPath,
    body: FailureReport,
    signed: SignedRequestDep,
    ctx: ContextDep,
) -> Response:
    """A node reports a unit that failed on it; the unit returns to the queue."""
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        node_id = require_node(authenticate(uow, signed, now_ms, ctx.settings.request_skew_s_max))
        service.report_failure(uow, node_id, lease_id, body.code, body.detail, now_ms, ctx.limits)
    return Response(status_code=204)
