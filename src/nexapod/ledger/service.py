"""Use cases of the ledger: move money in batches, resolve and expire holds, read accounts.

Every movement of NXC, USDC or USD goes through :func:`create_transfers`. A batch is
checked in pure code first (``rules.check_batch``), then, inside one transaction: the
log lock is taken (PostgreSQL; SQLite's write transaction already serialises), the holds
the batch names are looked up (IN-lists of at most ``transfer_store.IN_LIST_MAX``),
every involved account is read once (locked, in id order), the batch is applied in
memory (``rules.apply_batch``), and the results are written through the database driver:
one ``executemany`` of log entries (each transfer's canonical JSON, ``transfer_entry``,
with its id and account keys), one of new holds, one of changed account totals. The log
entries commit with the transfers or not at all, as they are the transfers. Account
histories are indexed after commit, by the log's integrator (``history``).

Idempotency is optimistic, as most batches are new: the batch is first applied as if
none of its ids were seen before, inside a savepoint, and the unique index on the
entries' transfer ids (which every insert probes anyway) says otherwise. Only when that
attempt fails, on a repeated id or on any refusal, is the savepoint rolled back and the
batch's ids looked up, and the batch applied again knowing the transfers that exist; a
refusal with none of its ids known is the refusal. Looking the ids up first cost about
8 % of the ledger's time (``bench/ledger.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from nexapod.ledger import errors, log_store, transfer_store
from nexapod.ledger.accounts import SYSTEM_ACCOUNTS, may_go_negative, parse_account_id
from nexapod.ledger.history import LOG_INDEX_END, history_page
from nexapod.ledger.rules import (
    Account,
    NewTransfer,
    Transfer,
    TransferResult,
    apply_batch,
    apply_expiry,
    check_batch,
    expiry_entry_body,
)
from nexapod.ledger.store import HOLDS
from nexapod.ledger.tile_store import latest_checkpoint
from nexapod.ledger.transfer_entry import encode_transfer_entry
from nexapod.protocol.v1 import (
    AccountView,
    TransferBatchRequest,
    TransferBatchResponse,
    TransferOutcome,
    TransferPage,
    TransferView,
)
from nexapod.registry.store import UserRow
from nexapod.storage.driver import Driver, driver
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

EXPIRED_PER_PASS_MAX = 1000
EXPIRY_PASSES_MAX = 100
USERNAMES_PER_QUERY_MAX = 900

Totals = tuple[int, int, int, int]


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
    d = driver(session)
    pending_ids = {new.pending_id for new in batch if new.pending_id is not None}
    holds = transfer_store.find_transfers(d, pending_ids)
    integrity_error = session.connection().dialect.loaded_dbapi.IntegrityError
    savepoint = session.begin_nested()
    try:
        results = _apply(session, d, batch, holds, now_ms, debit_owner)
    except (errors.LedgerError, integrity_error):
        savepoint.rollback()
        batch_ids = {new.transfer_id for new in batch}
        stored = transfer_store.find_transfers(d, batch_ids - holds.keys())
        stored.update(holds)
        if not stored.keys() & batch_ids:
            raise  # none of its ids is known: the refusal (or the broken key) stands
        return _apply(session, d, batch, stored, now_ms, debit_owner)
    savepoint.commit()
    return results


def _apply(
    session: Session,
    d: Driver,
    batch: Sequence[NewTransfer],
    stored: dict[str, Transfer],
    now_ms: int,
    debit_owner: str | None,
) -> list[TransferResult]:
    """Apply a checked batch given the stored transfers it names, and write it."""
    accounts = _lock_accounts(session, d, _involved(batch, stored), now_ms, open_missing=True)
    read = _totals(accounts)
    plan = apply_batch(
        batch, accounts, stored, now_ms, log_store.read_tree_size(session), debit_owner
    )
    if plan.created:
        _append(session, d, plan.created, accounts)
    if plan.resolved:  # holds of earlier batches posted or voided now
        created_ids = {t.transfer_id for t in plan.created}
        transfer_store.set_pending_status(
            d,
            {
                stored[pid].log_index: status
                for pid, status in plan.resolved.items()
                if pid not in created_ids
            },
        )
    _write_totals(d, [accounts[account_id] for account_id in sorted(plan.touched)], read)
    return plan.results


def _append(
    session: Session, d: Driver, created: list[Transfer], accounts: dict[str, Account]
) -> None:
    """The created transfers' log entries (with their keys), and the state of new holds."""
    keys: dict[str, int] = {}
    for account_id, account in accounts.items():
        assert account.account_key is not None, "read or opened with its key"
        keys[account_id] = account.account_key
    entries = [encode_transfer_entry(t) for t in created]
    transfer_keys = [
        (bytes.fromhex(t.transfer_id), keys[t.debit_account_id], keys[t.credit_account_id])
        for t in created
    ]
    first_index = log_store.append_encoded(session, entries, transfer_keys)
    assert first_index == created[0].log_index, "the log lock is held: nobody appended"
    holds = [
        (t.log_index, t.pending_status, t.expires_at_ms)
        for t in created
        if t.pending_status is not None
    ]
    if holds:
        transfer_store.insert_holds(d, holds)


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
                select(HOLDS.c.log_index)
                .where(HOLDS.c.pending_status == "pending", HOLDS.c.expires_at_ms <= now_ms)
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
    d = driver(session)
    holds = transfer_store.due_holds(d, now_ms, EXPIRED_PER_PASS_MAX)
    if not holds:
        return 0
    account_ids = {h.debit_account_id for h in holds} | {h.credit_account_id for h in holds}
    accounts = _lock_accounts(session, d, account_ids, now_ms, open_missing=False)
    read = _totals(accounts)
    for hold in holds:
        apply_expiry(hold, accounts, now_ms)
    log_store.append_entries(
        session, "transfer_expired", [expiry_entry_body(h, now_ms) for h in holds]
    )
    transfer_store.set_pending_status(d, {h.log_index: "expired" for h in holds})
    _write_totals(d, [accounts[account_id] for account_id in sorted(account_ids)], read)
    return len(holds)


def open_account(uow_factory: UnitOfWorkFactory, account_id: str, now_ms: int) -> Account:
    """Open an account explicitly (idempotent); a user account needs a registered user."""
    if parse_account_id(account_id) is None:
        raise errors.unknown_account(account_id)
    with uow_factory() as uow:
        log_store.lock_log(uow.session)
        d = driver(uow.session)
        accounts = _lock_accounts(uow.session, d, {account_id}, now_ms, open_missing=True)
        if account_id not in accounts:
            raise errors.unknown_account(account_id)
        uow.commit()
    return accounts[account_id]


def get_account(uow: UnitOfWork, account_id: str) -> Account:
    """An account's totals; one that may be opened but is not yet reads as all zero."""
    ref = parse_account_id(account_id)
    if ref is None:
        raise errors.unknown_account(account_id)
    found = transfer_store.read_accounts(driver(uow.session), [account_id], lock=False)
    if account_id in found:
        return found[account_id]
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

    The cursor is the log index of the last transfer of the previous page. Transfers the
    integrator has not indexed yet are read too (``history``): a page is never stale.
    """
    assert limit >= 1
    assert page_size_max >= 1
    account = get_account(uow, account_id)
    size = min(limit, page_size_max)
    before = LOG_INDEX_END
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 19:
            raise errors.cursor_invalid(cursor)
        before = min(int(cursor), LOG_INDEX_END)
    page: list[Transfer] = []
    more = False
    if account.account_key is not None:
        session = uow.session
        checkpoint = latest_checkpoint(session)
        indexed_size = 0 if checkpoint is None else checkpoint.tree_size
        tree_size = log_store.read_tree_size(session)
        d = driver(session)
        indexes = history_page(d, account.account_key, indexed_size, tree_size, before, size + 1)
        more = len(indexes) > size
        found = transfer_store.transfers_at(d, indexes[:size])
        page = [found[index] for index in indexes[:size]]
        assert all(account_id in (t.debit_account_id, t.credit_account_id) for t in page)
    return TransferPage(
        account_id=account_id,
        transfers=[_transfer_view(t) for t in page],
        next_cursor=str(page[-1].log_index) if more else None,
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
    session: Session, d: Driver, account_ids: set[str], now_ms: int, *, open_missing: bool
) -> dict[str, Account]:
    """The accounts (locked, in id order), opening missing ones that may be opened."""
    accounts = transfer_store.read_accounts(d, account_ids, lock=True)
    missing = sorted(account_ids - accounts.keys())
    if missing and open_missing:
        opened = _open_accounts(d, _openable(session, missing), now_ms)
        accounts.update((a.account_id, a) for a in opened)
    assert accounts.keys() <= account_ids
    return accounts


def _open_accounts(d: Driver, account_ids: list[str], now_ms: int) -> list[Account]:
    """Open accounts with the next keys (the caller holds the log lock: keys never race)."""
    opened = []
    key = transfer_store.account_keys_max(d)
    for account_id in account_ids:
        ref = parse_account_id(account_id)
        assert ref is not None, "only well-formed ids are openable"
        key += 1
        negative = may_go_negative(account_id)
        opened.append(
            Account(
                account_id, ref.asset, ref.owner, negative, opened_at_ms=now_ms, account_key=key
            )
        )
    if opened:
        transfer_store.insert_accounts(d, opened)
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
    names = sorted(usernames)
    for start in range(0, len(names), USERNAMES_PER_QUERY_MAX):
        chunk = names[start : start + USERNAMES_PER_QUERY_MAX]
        registered = session.scalars(select(UserRow.username).where(UserRow.username.in_(chunk)))
        for username in registered:
            openable.extend(usernames[username])
    return sorted(openable)


def _totals(accounts: dict[str, Account]) -> dict[str, Totals]:
    """The totals as read, so that only what a batch changed is written back."""
    return {
        account_id: (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        for account_id, a in accounts.items()
    }


def _write_totals(d: Driver, accounts: list[Account], read: dict[str, Totals]) -> None:
    """Write back the accounts whose totals changed (all four totals: the row is rewritten
    either way, and one statement shape keeps it one executemany)."""
    changed = []
    for a in accounts:
        assert a.debits_pending >= 0
        assert a.credits_pending >= 0
        assert a.may_go_negative or a.available >= 0, a.account_id
        if (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted) != read[
            a.account_id
        ]:
            changed.append(a)
    if changed:
        transfer_store.update_totals(d, changed)
