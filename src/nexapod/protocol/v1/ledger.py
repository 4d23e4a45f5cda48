"""The ledger: batches of transfers, accounts and their transfer history.

Amounts are whole numbers of the asset's base unit (micro-NXC, micro-USDC, cents) and
travel as decimal text, since they may pass 2^64 and JSON numbers are exact only to
2^53. A batch is applied all or nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from nexapod.protocol.v1._base import WireModel
from nexapod.protocol.v1.ledger_log import Receipt

__all__ = [
    "AMOUNT_TEXT_PATTERN",
    "AccountView",
    "TransferBatchRequest",
    "TransferBatchResponse",
    "TransferItem",
    "TransferOutcome",
    "TransferPage",
    "TransferView",
]

AMOUNT_TEXT_PATTERN = r"^(0|[1-9][0-9]{0,59})$"  # canonical decimal text, at most 60 digits
AmountText = Annotated[str, Field(pattern=AMOUNT_TEXT_PATTERN, examples=["1500000"])]
SignedAmountText = Annotated[str, Field(pattern=r"^(0|-?[1-9][0-9]{0,77})$")]
TotalText = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,77})$")]
Phase = Literal["single", "pending", "post_pending", "void_pending"]
# The ledger checks ids itself, so that a bad one is refused with the transfer's index.
IdText = Annotated[str, Field(min_length=1, max_length=64)]
AccountIdText = Annotated[str, Field(min_length=1, max_length=64)]


class TransferItem(WireModel):
    """One transfer of a batch.

    ``transfer_id`` is chosen by the client (32 lower-case hex, not all zero): sending
    the same id and body again is answered with the first result, never applied twice.
    ``post_pending`` and ``void_pending`` name the hold in ``pending_id``; their accounts
    may be left out, and a post's amount defaults to the whole hold.
    """

    transfer_id: IdText
    phase: Phase = "single"
    debit_account_id: AccountIdText | None = None
    credit_account_id: AccountIdText | None = None
    amount: AmountText | None = None
    pending_id: IdText | None = None
    timeout_s: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    code: Annotated[str, Field(min_length=1, max_length=32)] = "transfer"


class TransferBatchRequest(WireModel):
    transfers: Annotated[list[TransferItem], Field(min_length=1)]


class TransferView(WireModel):
    transfer_id: str
    phase: Phase
    debit_account_id: str
    credit_account_id: str
    asset: str
    amount: AmountText
    pending_id: str | None
    timeout_s: int
    code: str
    timestamp_ms: int
    log_index: int
    pending_status: Literal["pending", "posted", "voided", "expired"] | None
    expires_at_ms: int | None


class TransferOutcome(WireModel):
    """``created`` by this request, or ``exists``: the transfer as first committed."""

    status: Literal["created", "exists"]
    transfer: TransferView


class TransferBatchResponse(WireModel):
    """Each transfer's outcome; with ``?receipts=true``, a receipt per transfer as well
    (entry, inclusion proof and signed checkpoint: ``nexapod ledger receipt verify``)."""

    results: list[TransferOutcome]
    receipts: list[Receipt] | None = None


class TransferPage(WireModel):
    """An account's transfers, newest first; pass ``next_cursor`` for the next page."""

    account_id: str
    transfers: list[TransferView]
    next_cursor: str | None


class AccountView(WireModel):
    """An account's totals; ``balance`` is credits_posted - debits_posted, and
    ``available`` is balance - debits_pending (what a new transfer may debit)."""

    account_id: str
    asset: Literal["NXC", "USDC", "USD"]
    owner: str
    may_go_negative: bool
    debits_pending: TotalText
    debits_posted: TotalText
    credits_pending: TotalText
    credits_posted: TotalText
    balance: SignedAmountText
    available: SignedAmountText
    opened_at_ms: int | None
