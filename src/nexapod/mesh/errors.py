"""Errors of jobs, leases and results."""

from __future__ import annotations

from nexapod.errors import AuthError, MeshError, ProtocolError
from nexapod.protocol.v1 import HEADER_RESULT_DOCUMENT

__all__ = [
    "capacity_need_invalid",
    "unit_unknown",
    "result_implausible",
    "runner_changed",
    "job_unknown",
    "lease_expired",
    "lease_not_yours",
    "lease_unknown",
    "product_not_ready",
    "result_conflict",
    "result_document_invalid",
    "result_encoding",
    "result_hash_mismatch",
    "result_lease_mismatch",
    "result_mismatch",
    "result_node_mismatch",
    "result_signature_invalid",
    "result_too_large",
    "spectrum_out_of_range",
    "too_many_results",
    "block_unknown",
    "not_a_node",
    "not_a_user",
]


def job_unknown(job_id: str) -> MeshError:
    return MeshError("job_unknown", f"no job with id {job_id!r}", status=404)


def block_unknown(job_id: str, block_index: int) -> MeshError:
    return MeshError("block_unknown", f"job {job_id} has no block {block_index}", status=404)


def lease_unknown(lease_id: str, item_index: int) -> MeshError:
    return MeshError(
        "lease_unknown", f"no lease with id {lease_id!r}", status=404, item_index=item_index
    )


def lease_not_yours(lease_id: str, item_index: int) -> MeshError:
    return MeshError(
        "lease_not_yours",
        f"lease {lease_id} was granted to another node",
        status=403,
        item_index=item_index,
    )


def lease_expired(lease_id: str, item_index: int) -> MeshError:
    return MeshError(
        "lease_expired",
        f"lease {lease_id} has expired and its unit went back to the queue; lease new work",
        status=410,
        item_index=item_index,
    )


def result_mismatch(lease_id: str, item_index: int) -> MeshError:
    return MeshError(
        "result_mismatch",
        f"the result names a job or unit other than lease {lease_id}'s",
        status=422,
        item_index=item_index,
    )


def result_node_mismatch(item_index: int) -> AuthError:
    return AuthError(
        "result_node_mismatch",
        "the result document names a node other than the request's signer",
        status=403,
        item_index=item_index,
    )


def result_signature_invalid(item_index: int) -> AuthError:
    return AuthError(
        "result_signature_invalid",
        "the result signature does not verify with the node's key",
        item_index=item_index,
    )


def result_encoding(item_index: int) -> ProtocolError:
    return ProtocolError(
        "result_encoding",
        "result_b64 is not unpadded URL-safe base64",
        status=422,
        item_index=item_index,
    )


def result_document_invalid(detail: str) -> ProtocolError:
    return ProtocolError(
        "result_document_invalid",
        f"the {HEADER_RESULT_DOCUMENT} header must be unpadded URL-safe base64 of a signed "
        f"result document's JSON: {detail}",
        status=422,
    )


def result_lease_mismatch(document_lease_id: str, path_lease_id: str) -> ProtocolError:
    return ProtocolError(
        "result_lease_mismatch",
        f"the result document names lease {document_lease_id}, uploaded to lease {path_lease_id}",
        status=422,
    )


def result_too_large(size_bytes: int, size_bytes_max: int, item_index: int) -> ProtocolError:
    return ProtocolError(
        "result_too_large",
        f"the result has {size_bytes} bytes; at most {size_bytes_max} are accepted",
        status=413,
        item_index=item_index,
    )


def result_hash_mismatch(item_index: int) -> ProtocolError:
    return ProtocolError(
        "result_hash_mismatch",
        "the SHA-256 of the result bytes differs from result_sha256",
        status=422,
        item_index=item_index,
    )


def result_conflict(lease_id: str, item_index: int) -> MeshError:
    return MeshError(
        "result_conflict",
        f"lease {lease_id} already has a different result",
        status=409,
        item_index=item_index,
    )


def too_many_results(count: int, count_max: int) -> ProtocolError:
    return ProtocolError(
        "too_many_results",
        f"{count} results in one request; at most {count_max}",
        status=413,
    )


def product_not_ready(job_id: str, status: str) -> MeshError:
    return MeshError(
        "product_not_ready",
        f"job {job_id} is {status}; its product exists once it is done",
        status=409,
    )


def spectrum_out_of_range(index: int, count: int) -> MeshError:
    return MeshError(
        "spectrum_out_of_range",
        f"spectrum {index} is outside the job's {count} spectra",
        status=404,
    )


def not_a_node() -> AuthError:
    return AuthError("node_required", "this request must be signed by a node key", status=403)


def not_a_user() -> AuthError:
    return AuthError("user_required", "this request must be signed by a user key", status=403)


def runner_changed(registered: str, reported: str, item_index: int) -> MeshError:
    return MeshError(
        "runner_changed",
        f"the result was computed by runner {reported[:16]}..., but this node registered "
        f"runner {registered[:16]}...: a runner that changes while a node runs is tampering",
        status=403,
        item_index=item_index,
    )


def result_implausible(reason: str, item_index: int) -> MeshError:
    return MeshError(
        "result_implausible",
        f"the result came back faster than the unit can be computed: {reason}",
        status=403,
        item_index=item_index,
    )


def unit_unknown(job_id: str, unit_id: int) -> MeshError:
    return MeshError("unit_unknown", f"job {job_id} has no unit {unit_id}", status=404)


def capacity_need_invalid(text: str, capacity_flops_per_s_max: int) -> MeshError:
    return MeshError(
        "capacity_need_invalid",
        f"capacity_flops_per_s_min = {text} is not a capacity this coordinator can make up: "
        f"give a whole number of FLOP/s from 1 to {capacity_flops_per_s_max}, or leave it out",
        status=422,
        capacity_flops_per_s_max=str(capacity_flops_per_s_max),
    )
