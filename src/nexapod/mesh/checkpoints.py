"""Checkpoints of long units: accept signed ones, and hand the best to the next node.

A node running a chunked unit (``workloads.atlas._checkpoint``) uploads the unit's state
now and then, signed with its key. The coordinator checks it like a result (the node's
own active lease, the document bound to it, the runner, the signature, and the bytes
decoded strictly against the unit's shape and chunks) and keeps the latest per lease.
When a unit's lease is lost (expired, or given back), the next grant of that unit names
the furthest checkpoint of a lost lease as an input, and the new node resumes from it.
A checkpoint that does not verify is refused and never stored, so a resumption only
ever starts from one that did: the previous one, or the unit's beginning.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nexapod.crypto import Base64TooLargeError, b64decode_at_most, sha256_hex, verify_document
from nexapod.errors import AuthError, MeshError, ProtocolError, WorkloadError
from nexapod.mesh import errors
from nexapod.mesh.store import CheckpointRow, LeaseRow, UnitRow
from nexapod.protocol.v1 import PURPOSE_CHECKPOINT, CheckpointUpload, InputRef
from nexapod.registry import blacklist
from nexapod.registry import errors as registry_errors
from nexapod.registry.store import NodeRow
from nexapod.storage.uow import UnitOfWork
from nexapod.workloads import atlas

__all__ = ["get_checkpoint", "record_checkpoint", "resume_inputs"]

CHECKPOINT_NAME = "checkpoint"


def record_checkpoint(
    uow: UnitOfWork,
    node_id: str,
    lease_id: str,
    upload: CheckpointUpload,
    now_ms: int,
    bytes_max: int,
) -> int:
    """Check and keep a node's checkpoint for its active lease; returns its rows_done.

    Idempotent: a checkpoint no further than the one kept changes nothing.
    """
    session = uow.session
    node = session.get(NodeRow, node_id)
    if node is None:
        raise registry_errors.node_unknown(node_id)
    lease = session.get(LeaseRow, lease_id)
    if lease is None:
        raise errors.lease_unknown(lease_id, 0)
    if lease.node_id != node_id:
        raise errors.lease_not_yours(lease_id, 0)
    if lease.status != "active" or lease.deadline_at_ms < now_ms:
        raise errors.lease_expired(lease_id, 0)
    document = upload.document
    if (document.node_id, document.job_id, document.unit_id, document.lease_id) != (
        node_id,
        lease.job_id,
        lease.unit_id,
        lease_id,
    ):
        raise MeshError(
            "checkpoint_mismatch", "the checkpoint document names another lease", status=422
        )
    if document.runner_tree_hash != node.runner_tree_hash:
        raise errors.runner_changed(node.runner_tree_hash, document.runner_tree_hash, 0)
    try:
        data = b64decode_at_most(upload.checkpoint_b64, bytes_max)
    except Base64TooLargeError as exc:
        raise ProtocolError(
            "checkpoint_too_large", f"a checkpoint is at most {bytes_max} bytes", status=413
        ) from exc
    except ValueError as exc:
        raise ProtocolError(
            "checkpoint_encoding", "checkpoint_b64 is not base64", status=422
        ) from exc
    if sha256_hex(data) != document.checkpoint_sha256:
        raise ProtocolError(
            "checkpoint_hash_mismatch", "the bytes are not the signed hash", status=422
        )
    if not verify_document(
        node.public_key, upload.signature, PURPOSE_CHECKPOINT, document.model_dump()
    ):
        raise AuthError("checkpoint_signature_invalid", "the checkpoint signature does not verify")
    unit = session.get(UnitRow, lease.unit_id)
    assert unit is not None
    state = _decode(unit.spec_json, data)
    if state.rows_done != document.rows_done:
        raise WorkloadError("checkpoint_invalid", "rows_done differs from the bytes'")
    kept = session.get(CheckpointRow, lease_id)
    if kept is not None and kept.rows_done >= document.rows_done:
        return kept.rows_done
    if kept is None:
        kept = CheckpointRow(lease_id=lease_id, unit_id=lease.unit_id, node_id=node_id)
        session.add(kept)
    kept.rows_done = document.rows_done
    kept.sha256 = document.checkpoint_sha256
    kept.signature = upload.signature
    kept.received_at_ms = now_ms
    kept.data = data
    uow.commit()
    return document.rows_done


def _decode(spec_json: str, data: bytes) -> atlas.Checkpoint:
    spec = json.loads(spec_json)
    chunk_rows = spec.get("chunk_rows", 0)
    if not chunk_rows:
        raise WorkloadError("checkpoint_invalid", "this unit is not computed in chunks")
    shape = atlas.UnitShape.from_dict(spec["shape"])
    k = atlas.AtlasParams.from_dict(spec["params"]).k
    return atlas.decode_checkpoint(data, shape, k, chunk_rows)


def resume_inputs(session: Session, unit_ids: list[int]) -> dict[int, tuple[str, InputRef]]:
    """For each unit that has one, the furthest checkpoint of a lost lease (from a node
    not blacklisted), as (its lease id, an input of the next grant). One query."""
    if not unit_ids:
        return {}
    rows = session.execute(
        select(
            CheckpointRow.unit_id,
            CheckpointRow.lease_id,
            CheckpointRow.sha256,
            func.length(CheckpointRow.data).label("size_bytes"),
        )
        .join(LeaseRow, LeaseRow.lease_id == CheckpointRow.lease_id)
        .where(
            CheckpointRow.unit_id.in_(unit_ids),
            LeaseRow.status.in_(("expired", "failed")),
            CheckpointRow.node_id.not_in(blacklist.listed_node_ids()),
        )
        .order_by(
            CheckpointRow.unit_id, CheckpointRow.rows_done.desc(), CheckpointRow.received_at_ms
        )
    ).all()
    found: dict[int, tuple[str, InputRef]] = {}
    for row in rows:
        if row.unit_id in found:
            continue  # the first of each unit is its furthest
        found[row.unit_id] = (
            row.lease_id,
            InputRef(
                name=CHECKPOINT_NAME,
                path=f"/v1/checkpoints/{row.lease_id}",
                sha256=row.sha256,
                size_bytes=int(row.size_bytes),
            ),
        )
    return found


def get_checkpoint(uow: UnitOfWork, lease_id: str) -> bytes:
    row = uow.session.get(CheckpointRow, lease_id)
    if row is None:
        raise MeshError("checkpoint_unknown", f"no checkpoint of lease {lease_id}", status=404)
    return bytes(row.data)
