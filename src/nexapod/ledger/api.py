"""HTTP routes of the ledger: batches of transfers, accounts and their history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from nexapod.coordinator.auth import SignedRequestDep, authenticate, require_user
from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import PROBLEM_RESPONSES, SIGNED_PROBLEM_RESPONSES
from nexapod.ledger import log_service, service
from nexapod.ledger.accounts import ACCOUNT_ID_PATTERN
from nexapod.protocol.v1 import (
    AccountView,
    TransferBatchRequest,
    TransferBatchResponse,
    TransferPage,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["ledger"])

AccountIdPath = Annotated[str, Path(pattern=ACCOUNT_ID_PATTERN, max_length=48)]


@router.post(
    "/transfers",
    status_code=201,
    responses=SIGNED_PROBLEM_RESPONSES,
    response_model=TransferBatchResponse,
)
def create_transfers(
    body: TransferBatchRequest,
    signed: SignedRequestDep,
    ctx: ContextDep,
    receipts: Annotated[
        bool, Query(description="Wait for a checkpoint and return a receipt per transfer.")
    ] = False,
) -> Response:
    """Apply a batch of transfers, all or nothing (signed by a registered user).

    The user may debit only their own accounts. Each result says whether the transfer
    was ``created`` now or ``exists`` from an earlier request with the same id and body,
    and gives its index in the ledger's log. A refused batch changes nothing; the
    problem names the transfer at fault (``item_index``) and a ``ledger.*`` code.

    With ``receipts=true`` the log is integrated at once and each transfer comes with
    its receipt, checkable offline; ``receipts`` is null if no checkpoint covered them
    within 10 s (fetch them later from ``/v1/ledger/receipts/{log_index}``).
    """
    skew_s_max = ctx.settings.request_skew_s_max
    with ctx.read_uow() as uow:  # the signature check, without the write lock
        require_user(authenticate(uow, signed, ctx.clock_ms(), skew_s_max))
    with ctx.uow() as uow:
        now_ms = ctx.clock_ms()
        username = require_user(
            authenticate(uow, signed, now_ms, skew_s_max, signature_checked=True)
        )
        response = service.submit_transfers(uow, username, body, now_ms)
    if receipts:
        found = log_service.await_receipts(
            ctx.uow_factory,
            ctx.read_uow_factory,
            ctx.log,
            [outcome.transfer.log_index for outcome in response.results],
            ctx.clock_ms,
            ctx.settings.ledger_integrate_entries_max,
        )
        response = response.model_copy(update={"receipts": found})
    return Response(response.model_dump_json(), status_code=201, media_type="application/json")


@router.get("/accounts/{account_id}", responses=PROBLEM_RESPONSES)
def get_account(account_id: AccountIdPath, ctx: ContextDep) -> AccountView:
    """An account's totals, balance and available balance (decimal text, base units)."""
    with ctx.read_uow() as uow:
        return service.account_view(uow, account_id)


@router.get("/accounts/{account_id}/transfers", responses=PROBLEM_RESPONSES)
def list_transfers(
    account_id: AccountIdPath,
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> TransferPage:
    """An account's transfers, newest first; ``limit`` is capped by the page size."""
    with ctx.read_uow() as uow:
        return service.list_transfers(uow, account_id, cursor, limit, ctx.settings.page_size_max)
