"""Leases of work units and the signed results nodes return for them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from nexapod.protocol.v1._base import HEX64, SIGNATURE_B64, WireModel

__all__ = [
    "FailureReport",
    "HEADER_RESULT_DOCUMENT",
    "HEADER_RESULT_SIGNATURE",
    "InputRef",
    "LeaseGrant",
    "LeaseRequest",
    "LeaseResponse",
    "ResultAck",
    "ResultDocument",
    "ResultItem",
    "SubmitResultsRequest",
    "SubmitResultsResponse",
]

# A result uploaded as raw bytes (POST /v1/leases/{lease_id}/result) carries its signed
# ResultDocument in a header, as unpadded URL-safe base64 of the document's JSON, and
# the document's signature in another.
HEADER_RESULT_DOCUMENT = "NexaPod-Result-Document"
HEADER_RESULT_SIGNATURE = "NexaPod-Result-Signature"

LeaseId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class LeaseRequest(WireModel):
    units_max: Annotated[int, Field(ge=1, le=1024)] = 1


class InputRef(WireModel):
    """An input the node downloads and checks before running the unit."""

    name: str
    path: str
    sha256: str
    size_bytes: int


class LeaseGrant(WireModel):
    lease_id: str
    job_id: str
    unit_id: int
    workload: str
    unit_spec: dict[str, Any]
    inputs: list[InputRef]
    work_flops: int
    granted_at_ms: int
    deadline_at_ms: int


class LeaseResponse(WireModel):
    leases: list[LeaseGrant]
    retry_after_s: int
    pool: str | None = None  # the node's pool (hot, warm, cold, institutional, none)
    pool_reason: str | None = None  # why it is there (share_cap: parked in warm by the cap)


class ResultDocument(WireModel):
    """What a node signs for each result: binds node, job, unit, lease, bytes and runner."""

    node_id: Annotated[str, Field(max_length=40)]
    job_id: JobId
    unit_id: Annotated[int, Field(ge=1)]
    lease_id: LeaseId
    result_sha256: HEX64
    runner_tree_hash: HEX64
    compute_ms: Annotated[int, Field(ge=0, le=10**12)]


class ResultItem(WireModel):
    document: ResultDocument
    signature: SIGNATURE_B64
    result_b64: Annotated[str, Field(min_length=1)]


class CheckpointDocument(WireModel):
    """What a node signs for a checkpoint: the state of a unit after ``rows_done`` rows."""

    node_id: Annotated[str, Field(max_length=40)]
    job_id: JobId
    unit_id: Annotated[int, Field(ge=1)]
    lease_id: LeaseId
    rows_done: Annotated[int, Field(ge=1, le=10**9)]
    checkpoint_sha256: HEX64
    runner_tree_hash: HEX64


class CheckpointUpload(WireModel):
    document: CheckpointDocument
    signature: SIGNATURE_B64
    checkpoint_b64: Annotated[str, Field(min_length=1)]


class SubmitResultsRequest(WireModel):
    results: Annotated[list[ResultItem], Field(min_length=1)]


class ResultAck(WireModel):
    lease_id: str
    unit_id: int
    # "accepted": valid and credited; "pending": waiting for its quorum (credited once it
    # agrees); "rejected": contradicted by the quorum; "duplicate": sent before
    status: str
    verified_flops: int


class SubmitResultsResponse(WireModel):
    acks: list[ResultAck]


class FailureReport(WireModel):
    """A node tells the coordinator that a unit failed on it, and why."""

    code: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    detail: Annotated[str, Field(max_length=4096)]


class ComputeRecord(WireModel):
    """A signed compute cycle: who computed which unit, on which runner, for how many
    FLOPs (the unit's formula), with the node's own signature over its result document.
    Anyone can check it with the node's public key (``nexapod job records --verify``)."""

    unit_id: int
    node_id: str
    username: str
    node_public_key: str
    work_flops: int
    status: str  # "valid" (credited) | "pending" | "invalid" | "forfeited" | "void"
    document: ResultDocument
    signature: str
    received_at_ms: int


class ComputeRecordPage(WireModel):
    job_id: str
    records: list[ComputeRecord]
    next_cursor: str | None
