"""Use cases of the ledger: move money in batches, resolve and expire holds, read accounts.

Every movement of NXC, USDC or USD goes through :func:`create_transfers`. A batch is
checked in pure code first (``rules.check_batch``), then, inside one transaction: the
log lock is taken (PostgreSQL; SQLite's write transaction already serialises), the
batch's ids and the holds it names are looked up in one pass (IN-lists of at most
:data:`IN_LIST_MAX`), every involved account is read once (locked, in id order), the
batch is applied in memory (``rules.apply_batch``), and the results are written with
one bulk insert of transfers, one bulk insert of log entries and one bulk update of the
accounts' changed totals. The log entries commit with the transfers or not at all.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Update, bindparam, insert, select, update
from sqlalchemy.orm import Session

from nexapod.ledger import errors, log_store
from nexapod.ledger.accounts import SYSTEM_ACCOUNTS, may_go_negative, parse_account_id
from nexapod.ledger.rules import (
    Account,
    NewTransfer,
    Transfer,
    TransferResult,
    apply_batch,
    apply_expiry,
    check_batch,
    expiry_entry_body,
    transfer_entry_body,
)
from nexapod.ledger.store import ACCOUNTS, TRANSFERS
from nexapod.protocol.v1 import (
    AccountView,
    TransferBatchRequest,
    TransferBatchResponse,
    TransferOutcome,
    TransferPage,
    TransferView,
)
from nexapod.registry.store import UserRow
from nexapod.storage.types import ExactInteger
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EXPIRED_PER_PASS_MAX",
    "account_view",
    "create_transfers",
    "expire_pending_transfers",
    "get_account",
    "list_transfers",
    "open_account",
    "submit_transfers",
    "transfer",
]

IN_LIST_MAX = 900  # ids per IN (...) list: inside SQLite's oldest bind limit (999)
EXPIRED_PER_PASS_MAX = 1000
EXPIRY_PASSES_MAX = 100

_TRANSFER_COLUMNS = [
    TRANSFERS.c.transfer_id,
    TRANSFERS.c.phase,
    TRANSFERS.c.debit_account_id,
    TRANSFERS.c.credit_account_id,
    TRANSFERS.c.asset,
    TRANSFERS.c.amount,
    TRANSFERS.c.pending_id,
    TRANSFERS.c.timeout_s,
    TRANSFERS.c.code,
    TRANSFERS.c.timestamp_ms,
    TRANSFERS.c.log_index,
    TRANSFERS.c.pending_status,
    TRANSFERS.c.expires_at_ms,
]  # in the order of Transfer's fields
_ACCOUNT_COLUMNS = [
    ACCOUNTS.c.account_id,
    ACCOUNTS.c.debits_pending,
    ACCOUNTS.c.debits_posted,
    ACCOUNTS.c.credits_pending,
    ACCOUNTS.c.credits_posted,
    ACCOUNTS.c.opened_at_ms,
]  # asset, owner and may_go_negative follow from the id (and were stored from it)
_TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
Totals = tuple[int, int, int, int]
_UPDATE_PENDING_STATUS = (
    update(TRANSFERS)
    .where(
        TRANSFERS.c.transfer_id == bindparam("b_transfer_id"),
        TRANSFERS.c.pending_status == "pending",
    )
    .values(pending_status=bindparam("b_status"))
)


def transfer(
    uow_factory: UnitOfWorkFactory, batch: Sequence[NewTransfer], now_ms: int
) -> list[TransferResult]:
    """Apply a batch in its own unit of work and commit: the coordinator's own payments."""
    with uow_factory() as uow:
        results = create_transfers(uow, batch, now_ms)
        uow.commit()
    return results


def create_transfers(
    uow: UnitOfWork,
    batch: Sequence[NewTransfer],
    now_ms: int,
    *,
    debit_owner: str | None = None,
) -> list[TransferResult]:
    """Apply a batch, all or nothing, in the caller's unit of work (which commits).

    ``debit_owner`` (``user:<name>``) restricts the batch to debiting that owner's
    accounts. Raises a ``LedgerError`` naming the first bad transfer; the caller's
    rollback then leaves accounts, transfers and the log as they were.
    """
    check_batch(batch, debit_owner)
    if not batch:
        return []
    session = uow.session
    log_store.lock_log(session)
    batch_ids = {new.transfer_id for new in batch}
    stored = _load_transfers(session, batch_ids)
    pending_ids = {new.pending_id for new in batch if new.pending_id is not None}
    stored.update(_load_transfers(session, pending_ids - batch_ids - stored.keys()))
    accounts = _lock_accounts(session, _involved(batch, stored), now_ms, open_missing=True)
    read = _totals(accounts)
    first_index = log_store.read_tree_size(session)
    plan = apply_batch(batch, accounts, stored, now_ms, first_index, debit_owner)
    if plan.created:
        bodies = [transfer_entry_body(t) for t in plan.created]
        appended_at = log_store.append_entries(session, "transfer", bodies)
        assert appended_at == first_index, "the log lock is held: nobody appended meanwhile"
        session.execute(insert(TRANSFERS), [_transfer_row(t) for t in plan.created])
    created_ids = {t.transfer_id for t in plan.created}
    _set_pending_status(
        session, {pid: s for pid, s in plan.resolved.items() if pid not in created_ids}
    )
    _write_totals(session, [accounts[account_id] for account_id in sorted(plan.touched)], read)
    return plan.results


def submit_transfers(
    uow: UnitOfWork, username: str, request: TransferBatchRequest, now_ms: int
) -> TransferBatchResponse:
    """A user's batch over HTTP: it may debit only the user's own accounts. Commits."""
    batch = [
        NewTransfer(
            transfer_id=item.transfer_id,
            debit_account_id=item.debit_account_id,
            credit_account_id=item.credit_account_id,
            amount=None if item.amount is None else int(item.amount),
            phase=item.phase,
            pending_id=item.pending_id,
            timeout_s=item.timeout_s,
            code=item.code,
        )
        for item in request.transfers
    ]
    results = create_transfers(uow, batch, now_ms, debit_owner=f"user:{username}")
    uow.commit()
    return TransferBatchResponse(
        results=[
            TransferOutcome(status=result.status, transfer=_transfer_view(result.transfer))
            for result in results
        ]
    )


def expire_pending_transfers(
    uow_factory: UnitOfWorkFactory,
    now_ms: int,
    read_uow_factory: UnitOfWorkFactory | None = None,
) -> int:
    """Void every hold whose timeout has passed; returns how many (the maintenance duty).

    Each pass is one transaction of at most :data:`EXPIRED_PER_PASS_MAX` holds, and
    appends one ``transfer_expired`` log entry per hold. With ``read_uow_factory`` it
    first looks without the write lock, so an idle ledger costs writers nothing.
    """
    if read_uow_factory is not None:
        with read_uow_factory() as uow:
            due = uow.session.execute(
                select(TRANSFERS.c.transfer_id)
                .where(TRANSFERS.c.pending_status == "pending", TRANSFERS.c.expires_at_ms <= now_ms)
                .limit(1)
            ).first()
        if due is None:
            return 0
    expired_total = 0
    for _ in range(EXPIRY_PASSES_MAX):
        with uow_factory() as uow:
            expired = _expire_some(uow.session, now_ms)
            uow.commit()
        expired_total += expired
        if expired < EXPIRED_PER_PASS_MAX:
            break
    return expired_total


def _expire_some(session: Session, now_ms: int) -> int:
    log_store.lock_log(session)
    rows = session.execute(
        select(*_TRANSFER_COLUMNS)
        .where(TRANSFERS.c.pending_status == "pending", TRANSFERS.c.expires_at_ms <= now_ms)
        .order_by(TRANSFERS.c.expires_at_ms, TRANSFERS.c.transfer_id)
        .limit(EXPIRED_PER_PASS_MAX)
    ).all()
    if not rows:
        return 0
    holds = [Transfer(*row) for row in rows]
    account_ids = {h.debit_account_id for h in holds} | {h.credit_account_id for h in holds}
    accounts = _lock_accounts(session, account_ids, now_ms, open_missing=False)
    read = _totals(accounts)
    for hold in holds:
        apply_expiry(hold, accounts, now_ms)
    log_store.append_entries(
        session, "transfer_expired", [expiry_entry_body(h, now_ms) for h in holds]
    )
    _set_pending_status(session, {h.transfer_id: "expired" for h in holds})
    _write_totals(session, [accounts[account_id] for account_id in sorted(account_ids)], read)
    return len(holds)


def open_account(uow_factory: UnitOfWorkFactory, account_id: str, now_ms: int) -> Account:
    """Open an account explicitly (idempotent); a user account needs a registered user."""
    if parse_account_id(account_id) is None:
        raise errors.unknown_account(account_id)
    with uow_factory() as uow:
        log_store.lock_log(uow.session)
        accounts = _lock_accounts(uow.session, {account_id}, now_ms, open_missing=True)
        if account_id not in accounts:
            raise errors.unknown_account(account_id)
        uow.commit()
    return accounts[account_id]


def get_account(uow: UnitOfWork, account_id: str) -> Account:
    """An account's totals; one that may be opened but is not yet reads as all zero."""
    ref = parse_account_id(account_id)
    if ref is None:
        raise errors.unknown_account(account_id)
    found = _read_accounts(uow.session, [account_id], lock=False)
    if found:
        return found[0]
    if not _openable(uow.session, [account_id]):
        raise errors.unknown_account(account_id)
    return Account(account_id, ref.asset, ref.owner, may_go_negative(account_id))


def account_view(uow: UnitOfWork, account_id: str) -> AccountView:
    """An account as the API shows it: every total as decimal text."""
    account = get_account(uow, account_id)
    return AccountView(
        account_id=account.account_id,
        asset=account.asset,  # type: ignore[arg-type]
        owner=account.owner,
        may_go_negative=account.may_go_negative,
        debits_pending=str(account.debits_pending),
        debits_posted=str(account.debits_posted),
        credits_pending=str(account.credits_pending),
        credits_posted=str(account.credits_posted),
        balance=str(account.balance),
        available=str(account.available),
        opened_at_ms=account.opened_at_ms,
    )


def list_transfers(
    uow: UnitOfWork, account_id: str, cursor: str | None, limit: int, page_size_max: int
) -> TransferPage:
    """An account's transfers, newest first (by log index), a page at a time.

    The cursor is the log index of the last transfer of the previous page.
    """
    assert limit >= 1
    assert page_size_max >= 1
    get_account(uow, account_id)
    size = min(limit, page_size_max)
    before: int | None = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 19:
            raise errors.cursor_invalid(cursor)
        before = int(cursor)
    rows: list[Sequence[Any]] = []
    for column in (TRANSFERS.c.debit_account_id, TRANSFERS.c.credit_account_id):
        query = select(*_TRANSFER_COLUMNS).where(column == account_id)
        if before is not None:
            query = query.where(TRANSFERS.c.log_index < before)
        query = query.order_by(TRANSFERS.c.log_index.desc()).limit(size + 1)
        rows.extend(uow.session.execute(query).all())
    transfers = sorted((Transfer(*row) for row in rows), key=lambda t: -t.log_index)
    page = transfers[:size]
    next_cursor = str(page[-1].log_index) if len(transfers) > size else None
    return TransferPage(
        account_id=account_id,
        transfers=[_transfer_view(t) for t in page],
        next_cursor=next_cursor,
    )


def _transfer_view(t: Transfer) -> TransferView:
    return TransferView(
        transfer_id=t.transfer_id,
        phase=t.phase,  # type: ignore[arg-type]
        debit_account_id=t.debit_account_id,
        credit_account_id=t.credit_account_id,
        asset=t.asset,
        amount=str(t.amount),
        pending_id=t.pending_id,
        timeout_s=t.timeout_s,
        code=t.code,
        timestamp_ms=t.timestamp_ms,
        log_index=t.log_index,
        pending_status=t.pending_status,  # type: ignore[arg-type]
        expires_at_ms=t.expires_at_ms,
    )


def _chunks(ids: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), IN_LIST_MAX):
        yield ordered[start : start + IN_LIST_MAX]


def _load_transfers(session: Session, transfer_ids: Iterable[str]) -> dict[str, Transfer]:
    found: dict[str, Transfer] = {}
    for chunk in _chunks(transfer_ids):
        query = select(*_TRANSFER_COLUMNS).where(TRANSFERS.c.transfer_id.in_(chunk))
        for row in session.execute(query):
            found[row[0]] = Transfer(*row)
    return found


def _read_accounts(session: Session, account_ids: Iterable[str], *, lock: bool) -> list[Account]:
    """Accounts in id order; ``lock`` takes their row locks (PostgreSQL) in that order."""
    postgres = session.get_bind().dialect.name == "postgresql"
    found: list[Account] = []
    for chunk in _chunks(account_ids):
        query = (
            select(*_ACCOUNT_COLUMNS)
            .where(ACCOUNTS.c.account_id.in_(chunk))
            .order_by(ACCOUNTS.c.account_id)
        )
        if lock and postgres:
            query = query.with_for_update()
        found.extend(_account(*row) for row in session.execute(query))
    return found


def _account(
    account_id: str,
    debits_pending: int,
    debits_posted: int,
    credits_pending: int,
    credits_posted: int,
    opened_at_ms: int | None,
) -> Account:
    ref = parse_account_id(account_id)
    assert ref is not None, "stored accounts have well-formed ids"
    return Account(
        account_id,
        ref.asset,
        ref.owner,
        may_go_negative(account_id),
        debits_pending,
        debits_posted,
        credits_pending,
        credits_posted,
        opened_at_ms,
    )


def _involved(batch: Sequence[NewTransfer], stored: dict[str, Transfer]) -> set[str]:
    """Every account a batch may touch: the ones it names and those of its holds."""
    account_ids: set[str] = set()
    for new in batch:
        if new.debit_account_id is not None:
            account_ids.add(new.debit_account_id)
        if new.credit_account_id is not None:
            account_ids.add(new.credit_account_id)
    for earlier in stored.values():
        if earlier.phase == "pending":
            account_ids.add(earlier.debit_account_id)
            account_ids.add(earlier.credit_account_id)
    return account_ids


def _lock_accounts(
    session: Session, account_ids: set[str], now_ms: int, *, open_missing: bool
) -> dict[str, Account]:
    """The accounts (locked, in id order), opening missing ones that may be opened."""
    accounts = {a.account_id: a for a in _read_accounts(session, account_ids, lock=True)}
    missing = sorted(account_ids - accounts.keys())
    if missing and open_missing:
        opened = _open_accounts(session, _openable(session, missing), now_ms)
        accounts.update((a.account_id, a) for a in opened)
    assert accounts.keys() <= account_ids
    return accounts


def _open_accounts(session: Session, account_ids: list[str], now_ms: int) -> list[Account]:
    opened = []
    for account_id in account_ids:
        ref = parse_account_id(account_id)
        assert ref is not None, "only well-formed ids are openable"
        negative = may_go_negative(account_id)
        opened.append(Account(account_id, ref.asset, ref.owner, negative, opened_at_ms=now_ms))
    if opened:
        session.execute(insert(ACCOUNTS), [_account_row(a) for a in opened])
    return opened


def _openable(session: Session, account_ids: Sequence[str]) -> list[str]:
    """The ids among ``account_ids`` that may be opened: known system accounts, and
    accounts of registered users (anything else is an unknown account)."""
    usernames: dict[str, list[str]] = {}
    openable = []
    for account_id in account_ids:
        ref = parse_account_id(account_id)
        if ref is None:
            continue
        if ref.kind == "system" and account_id in SYSTEM_ACCOUNTS:
            openable.append(account_id)
        elif ref.kind == "user":
            usernames.setdefault(ref.name, []).append(account_id)
    for chunk in _chunks(usernames):
        registered = session.scalars(select(UserRow.username).where(UserRow.username.in_(chunk)))
        for username in registered:
            openable.extend(usernames[username])
    return sorted(openable)


def _account_row(account: Account) -> dict[str, object]:
    return {
        "account_id": account.account_id,
        "asset": account.asset,
        "owner": account.owner,
        "may_go_negative": account.may_go_negative,
        "debits_pending": account.debits_pending,
        "debits_posted": account.debits_posted,
        "credits_pending": account.credits_pending,
        "credits_posted": account.credits_posted,
        "opened_at_ms": account.opened_at_ms,
    }


def _transfer_row(t: Transfer) -> dict[str, object]:
    row = t._asdict()  # the fields are named as the columns
    assert len(row) == len(_TRANSFER_COLUMNS)
    return row


def _totals(accounts: dict[str, Account]) -> dict[str, Totals]:
    """The totals as read, so that only what a batch changed is written back."""
    return {
        account_id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        for account_id, a in accounts.items()
    }


@functools.cache
def _update_totals(columns: tuple[str, ...]) -> Update:
    assert columns, "an update sets something"
    assert set(columns) <= set(_TOTALS)
    return (
        update(ACCOUNTS)
        .where(ACCOUNTS.c.account_id == bindparam("b_account_id"))
        .values({name: bindparam(f"b_{name}", type_=ExactInteger()) for name in columns})
    )


def _write_totals(session: Session, accounts: list[Account], read: dict[str, Totals]) -> None:
    """Write back the totals that changed, one executemany per set of changed columns."""
    groups: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for account in accounts:
        assert account.debits_pending >= 0
        assert account.credits_pending >= 0
        assert account.may_go_negative or account.available >= 0, account.account_id
        totals = (
            account.debits_pending,
            account.debits_posted,
            account.credits_pending,
            account.credits_posted,
        )
        changed = tuple(
            name
            for name, value, before in zip(_TOTALS, totals, read[account.account_id], strict=True)
            if value != before
        )
        if changed:
            row: dict[str, object] = {"b_account_id": account.account_id}
            for name, value in zip(_TOTALS, totals, strict=True):
                if name in changed:
                    row[f"b_{name}"] = value
            groups.setdefault(changed, []).append(row)
    for columns, rows in sorted(groups.items()):
        result = session.execute(_update_totals(columns), rows)
        assert result.rowcount == len(rows), "every touched account exists"  # type: ignore[attr-defined]


def _set_pending_status(session: Session, statuses: dict[str, str]) -> None:
    if not statuses:
        return
    result = session.execute(
        _UPDATE_PENDING_STATUS,
        [{"b_transfer_id": pid, "b_status": status} for pid, status in sorted(statuses.items())],
    )
    assert result.rowcount == len(statuses), "a hold is resolved once"  # type: ignore[attr-defined]
