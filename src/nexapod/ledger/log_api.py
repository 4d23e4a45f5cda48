"""HTTP routes of the ledger's log: C2SP tlog-tiles, checkpoints, the vkey, proofs, receipts.

The tlog-tiles paths are exactly the spec's, under ``/v1/ledger/log/``; tiles and entry
bundles never change once served (a partial tile of width W is the same bytes forever),
so they are sent as immutable. The checkpoint changes every time entries arrive.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import PROBLEM_RESPONSES
from nexapod.ledger import log_service
from nexapod.ledger.log_store import read_tree_size
from nexapod.ledger.tile_store import latest_checkpoint
from nexapod.protocol.v1.ledger_log import ConsistencyProof, InclusionProof, LogSize, Receipt

__all__ = ["router"]

router = APIRouter(prefix="/v1/ledger", tags=["ledger log"])

TREE_SIZE_MAX = 2**64 - 1
_TEXT = "text/plain; charset=utf-8"
_IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
_FRESH = {"Cache-Control": "no-cache"}
TreeSize = Annotated[int | None, Query(ge=0, le=TREE_SIZE_MAX)]


@router.get("/log/checkpoint", responses=PROBLEM_RESPONSES, response_class=Response)
def get_checkpoint(ctx: ContextDep) -> Response:
    """The newest checkpoint: a C2SP tlog-checkpoint in a C2SP signed note."""
    with ctx.read_uow() as uow:
        note = log_service.current_checkpoint(uow.session).note
    return Response(note, media_type=_TEXT, headers=_FRESH)


@router.get("/log/vkey", responses=PROBLEM_RESPONSES, response_class=Response)
def get_vkey(ctx: ContextDep) -> Response:
    """The checkpoint key in the signed-note vkey format: ``<name>+<keyid>+<key>``."""
    return Response(ctx.log.signer.vkey + "\n", media_type=_TEXT)


@router.get("/log/size", responses=PROBLEM_RESPONSES)
def get_log_size(ctx: ContextDep) -> LogSize:
    """How many entries are committed and how many the newest checkpoint covers (unsigned)."""
    with ctx.read_uow() as uow:
        latest = latest_checkpoint(uow.session)
        return LogSize(
            tree_size=read_tree_size(uow.session),
            checkpoint_tree_size=None if latest is None else latest.tree_size,
        )


@router.get("/log/tile/{path:path}", responses=PROBLEM_RESPONSES, response_class=Response)
def get_tile(path: str, ctx: ContextDep) -> Response:
    """A hash tile ``tile/<L>/<N>[.p/<W>]`` or entry bundle ``tile/entries/<N>[.p/<W>]``."""
    with ctx.read_uow() as uow:
        data = log_service.tile_bytes(uow.session, path)
    return Response(data, media_type="application/octet-stream", headers=_IMMUTABLE)


@router.get("/checkpoints/{tree_size}", responses=PROBLEM_RESPONSES, response_class=Response)
def get_checkpoint_at(tree_size: int, ctx: ContextDep) -> Response:
    """The checkpoint signed at ``tree_size`` (every checkpoint is kept)."""
    with ctx.read_uow() as uow:
        note = log_service.stored_checkpoint(uow.session, tree_size).note
    return Response(note, media_type=_TEXT, headers=_IMMUTABLE)


@router.get("/proofs/inclusion", responses=PROBLEM_RESPONSES)
def get_inclusion_proof(
    ctx: ContextDep,
    leaf_index: Annotated[int, Query(ge=0, le=TREE_SIZE_MAX)],
    tree_size: TreeSize = None,
) -> InclusionProof:
    """RFC 9162 inclusion proof of one entry (default: in the newest checkpoint's tree)."""
    with ctx.read_uow() as uow:
        return log_service.inclusion_proof(uow.session, leaf_index, tree_size)


@router.get("/proofs/consistency", responses=PROBLEM_RESPONSES)
def get_consistency_proof(
    ctx: ContextDep,
    old_size: Annotated[int, Query(ge=0, le=TREE_SIZE_MAX)],
    new_size: TreeSize = None,
) -> ConsistencyProof:
    """RFC 9162 consistency proof from ``old_size`` (default: to the newest checkpoint)."""
    with ctx.read_uow() as uow:
        return log_service.consistency_proof(uow.session, old_size, new_size)


@router.get("/receipts/{leaf_index}", responses=PROBLEM_RESPONSES)
def get_receipt(leaf_index: int, ctx: ContextDep) -> Receipt:
    """Entry, inclusion proof and signed checkpoint: checkable offline with the vkey.

    ``ledger.not_integrated`` (409) means the entry committed but the next checkpoint
    (signed within ``ledger_checkpoint_interval_s``) is not out yet: ask again.
    """
    with ctx.read_uow() as uow:
        return log_service.receipt(uow.session, ctx.log.origin, leaf_index)
