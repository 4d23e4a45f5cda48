"""Pure rules of transfers, after TigerBeetle's state machine: no I/O, no clock.

An account keeps four totals (``debits_pending``, ``debits_posted``, ``credits_pending``,
``credits_posted``); ``balance = credits_posted - debits_posted`` and
``available = balance - debits_pending``. A transfer moves a positive integer amount of
one asset from a debit account to a credit account, in one of four phases:

- ``single``: posted at once;
- ``pending``: a hold (both ``*_pending`` totals grow), optionally with ``timeout_s``;
- ``post_pending``: posts at most the held amount of a pending transfer, releasing the rest;
- ``void_pending``: releases the whole hold. A hold past its timeout is voided by the
  expiry pass and can no longer be posted.

No account's available balance goes below zero unless :func:`may_go_negative` says so
(issuers and gateways). A batch is one linked chain: :func:`apply_batch` refuses the
whole batch at the first bad transfer, naming its index. A transfer id seen before
answers with the stored transfer (``exists``) when the body is the same, and is refused
(``transfer_id_conflict``) when it differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from nexapod.ledger import errors
from nexapod.ledger.accounts import ACCOUNT_ID_CHARS_MAX, parse_account_id

__all__ = [
    "AMOUNT_DIGITS_MAX",
    "AMOUNT_MAX",
    "PHASES",
    "TIMEOUT_S_MAX",
    "TOTAL_MAX",
    "TRANSFERS_PER_BATCH_MAX",
    "Account",
    "BatchPlan",
    "NewTransfer",
    "Transfer",
    "TransferResult",
    "apply_batch",
    "apply_expiry",
    "check_batch",
    "expiry_entry_body",
    "is_transfer_id",
    "transfer_entry_body",
]

Phase = Literal["single", "pending", "post_pending", "void_pending"]
PendingStatus = Literal["pending", "posted", "voided", "expired"]
PHASES: tuple[str, ...] = ("single", "pending", "post_pending", "void_pending")

TRANSFERS_PER_BATCH_MAX = 8_000
AMOUNT_DIGITS_MAX = 60
AMOUNT_MAX = 10**AMOUNT_DIGITS_MAX - 1
TOTAL_MAX = 10**78 - 1  # what ExactInteger stores; an account's totals stay below it
TIMEOUT_S_MAX = 366 * 86_400
CODE_DEFAULT = "transfer"

_PHASE_SET = frozenset(PHASES)
_CREATING = frozenset(("single", "pending"))
_RESOLVING = frozenset(("post_pending", "void_pending"))
_TRANSFER_ID = re.compile(r"[0-9a-f]{32}")
_ZERO_ID = "0" * 32
_CODE = re.compile(r"[a-z][a-z0-9_.]{0,31}")


def is_transfer_id(text: object) -> bool:
    """32 lower-case hex characters (128 bits), not all zero."""
    return isinstance(text, str) and _TRANSFER_ID.fullmatch(text) is not None and text != _ZERO_ID


class NewTransfer(NamedTuple):
    """A transfer as a client asks for it.

    For ``post_pending`` and ``void_pending`` the accounts may be left out (they are the
    pending transfer's); the amount of a post defaults to the whole hold.
    """

    transfer_id: str
    debit_account_id: str | None = None
    credit_account_id: str | None = None
    amount: int | None = None
    phase: str = "single"
    pending_id: str | None = None
    timeout_s: int = 0
    code: str = CODE_DEFAULT


class Transfer(NamedTuple):
    """A committed transfer, with the index of its entry in the ledger's log.

    (Transfers are named tuples: a batch makes thousands, and tuples build fastest.)
    """

    transfer_id: str
    phase: str
    debit_account_id: str
    credit_account_id: str
    asset: str
    amount: int
    pending_id: str | None
    timeout_s: int
    code: str
    timestamp_ms: int
    log_index: int
    pending_status: str | None = None  # of a pending transfer: pending/posted/voided/expired
    expires_at_ms: int | None = None


@dataclass(slots=True)
class Account:
    """An account's totals (mutable while a batch is applied in memory)."""

    account_id: str
    asset: str
    owner: str
    may_go_negative: bool
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    opened_at_ms: int | None = None
    account_key: int | None = None  # its number in storage, given when it is opened

    @property
    def balance(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending


class TransferResult(NamedTuple):
    status: Literal["created", "exists"]
    transfer: Transfer


@dataclass
class BatchPlan:
    """What a batch does: per-transfer results, and the writes that make it so."""

    results: list[TransferResult] = field(default_factory=list)
    created: list[Transfer] = field(default_factory=list)
    resolved: dict[str, str] = field(default_factory=dict)  # pending id -> new status
    touched: set[str] = field(default_factory=set)  # account ids whose totals changed


def check_batch(batch: Sequence[NewTransfer], debit_owner: str | None = None) -> None:
    """Refuse a batch with a malformed transfer, before any state is read.

    ``debit_owner`` (``user:<name>``), when given, may debit only its own accounts.
    """
    if len(batch) > TRANSFERS_PER_BATCH_MAX:
        raise errors.too_many_transfers(len(batch), TRANSFERS_PER_BATCH_MAX)
    seen: set[str] = set()
    for index, new in enumerate(batch):
        _check_one(index, new, debit_owner)
        if new.transfer_id in seen:
            raise errors.duplicate_transfer_id(index, new.transfer_id)
        seen.add(new.transfer_id)
    assert len(seen) == len(batch)


def _check_one(index: int, new: NewTransfer, debit_owner: str | None) -> None:
    # (fields unpacked once: this runs for every transfer the ledger ever takes)
    tid, debit_id, credit_id, amount, phase, pending_id, timeout_s, code = new
    if not is_transfer_id(tid):
        raise errors.malformed_transfer_id(index, str(tid))
    if phase not in _PHASE_SET:
        raise errors.phase_invalid(index, tid)
    if code != CODE_DEFAULT and (not isinstance(code, str) or _CODE.fullmatch(code) is None):
        raise errors.code_invalid(index, tid)
    resolving = phase in _RESOLVING
    for account_id in (debit_id, credit_id):
        if account_id is None and resolving:
            continue
        if not isinstance(account_id, str) or parse_account_id(account_id) is None:
            raise errors.malformed_account_id(index, tid, account_id)
    if debit_id is not None and debit_id == credit_id:
        raise errors.same_account(index, tid)
    if amount is not None or not resolving:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise errors.amount_not_integer(index, tid)
        if amount <= 0:
            raise errors.amount_not_positive(index, tid)
        if amount > AMOUNT_MAX:
            raise errors.amount_too_large(index, tid, AMOUNT_DIGITS_MAX)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int):
        raise errors.timeout_invalid(index, tid, TIMEOUT_S_MAX)
    if timeout_s != 0 and not (phase == "pending" and 0 < timeout_s <= TIMEOUT_S_MAX):
        raise errors.timeout_invalid(index, tid, TIMEOUT_S_MAX)
    if resolving:
        if not is_transfer_id(pending_id) or pending_id == tid:
            raise errors.pending_id_invalid(index, tid)
    elif pending_id is not None:
        raise errors.pending_id_not_allowed(index, tid)
    if debit_owner is not None and debit_id is not None:
        _check_owner(index, tid, debit_id, debit_owner)


def _check_owner(index: int, tid: str, account_id: str, debit_owner: str) -> None:
    assert len(account_id) <= ACCOUNT_ID_CHARS_MAX
    if account_id.rpartition(":")[0] != debit_owner:
        raise errors.account_not_yours(index, tid, account_id)


def apply_batch(
    batch: Sequence[NewTransfer],
    accounts: Mapping[str, Account],
    stored: Mapping[str, Transfer],
    now_ms: int,
    first_log_index: int,
    debit_owner: str | None = None,
) -> BatchPlan:
    """Apply a checked batch, in order, to ``accounts`` (changed in place).

    ``stored`` holds the committed transfers with the batch's ids and the pending
    transfers it names. Created transfers take log indexes from ``first_log_index`` on.
    Raises at the first transfer that cannot be applied; the caller then discards
    ``accounts``.
    """
    assert now_ms >= 0
    assert first_log_index >= 0
    plan = BatchPlan()
    results, created, touched = plan.results, plan.created, plan.touched
    in_batch: dict[str, Transfer] = {}
    for index, new in enumerate(batch):
        earlier = stored.get(new.transfer_id) if stored else None
        if earlier is not None:
            _check_same(index, new, earlier, debit_owner)
            results.append(TransferResult("exists", earlier))
            continue
        log_index = first_log_index + len(created)
        if new.phase in _CREATING:
            transfer = _apply_new(index, new, accounts, now_ms, log_index)
        else:
            pending = in_batch.get(new.pending_id or "") or stored.get(new.pending_id or "")
            transfer = _apply_resolution(
                index, new, pending, plan.resolved, accounts, now_ms, log_index, debit_owner
            )
        in_batch[transfer.transfer_id] = transfer
        created.append(transfer)
        results.append(TransferResult("created", transfer))
        touched.add(transfer.debit_account_id)
        touched.add(transfer.credit_account_id)
    if plan.resolved:
        _show_resolutions(plan)
    assert len(plan.results) == len(batch)
    return plan


def _show_resolutions(plan: BatchPlan) -> None:
    """A hold created and resolved in the same batch is stored as resolved."""
    for position, transfer in enumerate(plan.created):
        status = plan.resolved.get(transfer.transfer_id)
        if status is not None:
            plan.created[position] = transfer._replace(pending_status=status)
    final = {t.transfer_id: t for t in plan.created}
    plan.results = [
        TransferResult(r.status, final[r.transfer.transfer_id]) if r.status == "created" else r
        for r in plan.results
    ]


def _check_same(index: int, new: NewTransfer, earlier: Transfer, debit_owner: str | None) -> None:
    """A repeated id must repeat the body; fields left out of a post or void match."""
    if debit_owner is not None:
        _check_owner(index, new.transfer_id, earlier.debit_account_id, debit_owner)
    same = (
        new.phase == earlier.phase
        and new.pending_id == earlier.pending_id
        and new.timeout_s == earlier.timeout_s
        and new.code == earlier.code
        and new.debit_account_id in (None, earlier.debit_account_id)
        and new.credit_account_id in (None, earlier.credit_account_id)
        and new.amount in (None, earlier.amount)
    )
    if not same:
        raise errors.transfer_id_conflict(index, new.transfer_id)


def _account(accounts: Mapping[str, Account], account_id: str, index: int, tid: str) -> Account:
    account = accounts.get(account_id)
    if account is None:
        raise errors.unknown_account(account_id, index, tid)
    assert account.account_id == account_id
    return account


def _apply_new(
    index: int, new: NewTransfer, accounts: Mapping[str, Account], now_ms: int, log_index: int
) -> Transfer:
    tid, debit_id, credit_id, amount, phase, _, timeout_s, code = new
    assert debit_id is not None and credit_id is not None
    assert amount is not None
    debit = accounts.get(debit_id)
    if debit is None:
        raise errors.unknown_account(debit_id, index, tid)
    credit = accounts.get(credit_id)
    if credit is None:
        raise errors.unknown_account(credit_id, index, tid)
    asset = debit.asset
    if asset != credit.asset:
        raise errors.asset_mismatch(index, tid, asset, credit.asset)
    available = debit.credits_posted - debit.debits_posted - debit.debits_pending
    if available < amount and not debit.may_go_negative:
        raise errors.insufficient_funds(index, tid, debit_id, available, amount)
    if phase == "pending":
        if debit.debits_pending + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, debit_id)
        if credit.credits_pending + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, credit_id)
        debit.debits_pending += amount
        credit.credits_pending += amount
        status, expires_at_ms = "pending", now_ms + 1000 * timeout_s if timeout_s else None
    else:
        if debit.debits_posted + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, debit_id)
        if credit.credits_posted + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, credit_id)
        debit.debits_posted += amount
        credit.credits_posted += amount
        status, expires_at_ms = None, None
    assert available - amount >= 0 or debit.may_go_negative, "available never below zero"
    assert debit.account_id == debit_id and credit.account_id == credit_id
    return Transfer(
        tid,
        phase,
        debit_id,
        credit_id,
        asset,
        amount,
        None,
        timeout_s,
        code,
        now_ms,
        log_index,
        status,
        expires_at_ms,
    )


def _apply_resolution(
    index: int,
    new: NewTransfer,
    pending: Transfer | None,
    resolved: dict[str, str],
    accounts: Mapping[str, Account],
    now_ms: int,
    log_index: int,
    debit_owner: str | None,
) -> Transfer:
    tid = new.transfer_id
    pending_id = new.pending_id
    assert pending_id is not None
    if pending is None:
        raise errors.pending_not_found(index, tid, pending_id)
    if pending.phase != "pending":
        raise errors.transfer_not_pending(index, tid, pending_id)
    if debit_owner is not None:
        _check_owner(index, tid, pending.debit_account_id, debit_owner)
    status = resolved.get(pending_id, pending.pending_status)
    if status == "expired" or (
        status == "pending"
        and pending.expires_at_ms is not None
        and now_ms >= pending.expires_at_ms
    ):
        raise errors.pending_expired(index, tid, pending_id)
    if status != "pending":
        raise errors.pending_already_resolved(index, tid, pending_id, str(status))
    if new.debit_account_id not in (None, pending.debit_account_id) or (
        new.credit_account_id not in (None, pending.credit_account_id)
    ):
        raise errors.pending_account_mismatch(index, tid, pending_id)
    held = pending.amount
    if new.phase == "post_pending":
        amount = held if new.amount is None else new.amount
        if amount > held:
            raise errors.amount_exceeds_pending(index, tid, held)
    else:
        if new.amount not in (None, held):
            raise errors.pending_amount_mismatch(index, tid, held)
        amount = held
    debit = _account(accounts, pending.debit_account_id, index, tid)
    credit = _account(accounts, pending.credit_account_id, index, tid)
    _release(debit, credit, held)
    if new.phase == "post_pending":
        if debit.debits_posted + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, debit.account_id)
        if credit.credits_posted + amount > TOTAL_MAX:
            raise errors.balance_overflow(index, tid, credit.account_id)
        debit.debits_posted += amount
        credit.credits_posted += amount
    assert debit.may_go_negative or debit.available >= 0, "posting never lowers available"
    resolved[pending_id] = "posted" if new.phase == "post_pending" else "voided"
    return Transfer(
        tid,
        new.phase,
        debit.account_id,
        credit.account_id,
        debit.asset,
        amount,
        pending_id,
        0,
        new.code,
        now_ms,
        log_index,
    )


def _release(debit: Account, credit: Account, held: int) -> None:
    assert debit.debits_pending >= held, "a hold is counted in its debit account"
    assert credit.credits_pending >= held, "a hold is counted in its credit account"
    debit.debits_pending -= held
    credit.credits_pending -= held


def apply_expiry(pending: Transfer, accounts: Mapping[str, Account], now_ms: int) -> None:
    """Void a hold past its timeout: release it from both accounts."""
    assert pending.phase == "pending"
    assert pending.pending_status == "pending"
    assert pending.expires_at_ms is not None and pending.expires_at_ms <= now_ms
    _release(
        accounts[pending.debit_account_id], accounts[pending.credit_account_id], pending.amount
    )


def transfer_entry_body(transfer: Transfer) -> dict[str, object]:
    """The log entry of a transfer (``kind`` "transfer"), amounts as decimal text.

    ``pending_id`` appears only on a post or void, ``timeout_s`` only on a pending
    transfer (RFC 8785 sorts the keys; absent fields keep entries short).
    """
    body: dict[str, object] = {
        "transfer_id": transfer.transfer_id,
        "phase": transfer.phase,
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "asset": transfer.asset,
        "amount": str(transfer.amount),
        "code": transfer.code,
        "timestamp_ms": transfer.timestamp_ms,
    }
    if transfer.pending_id is not None:
        body["pending_id"] = transfer.pending_id
    if transfer.phase == "pending":
        body["timeout_s"] = transfer.timeout_s
    return body


def expiry_entry_body(pending: Transfer, now_ms: int) -> dict[str, object]:
    """The log entry (``kind`` "transfer_expired") of a hold voided by its timeout."""
    return {
        "pending_id": pending.transfer_id,
        "debit_account_id": pending.debit_account_id,
        "credit_account_id": pending.credit_account_id,
        "asset": pending.asset,
        "amount": str(pending.amount),
        "timestamp_ms": now_ms,
    }
