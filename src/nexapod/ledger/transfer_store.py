"""Accounts and transfers through the database driver: the rows of the ledger's commits.

A batch of transfers reads its accounts and the transfers it names, and writes its log
entries (``log_store.append_encoded``, with each transfer's keys), a row per hold, and
the accounts' changed totals. At tens of thousands of transfers a second SQLAlchemy's
per-row work would cost more than the database's, so these statements go to the driver
(``storage.driver``) with prepared tuples, in the unit of work's transaction. Amounts
are exact on both stores: NUMERIC(78) on PostgreSQL (written as ``int``, read as
``Decimal``), decimal text on SQLite (never SQLite's 64-bit integers, which turn larger
values into floats); see ``storage.types.ExactInteger``.

A transfer's fields live in its log entry; a transfer is read as its entry (found by the
id or the index) with the state of its hold, if it is one
(``transfer_entry.decode_transfer_entry``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from nexapod.ledger.accounts import may_go_negative, parse_account_id
from nexapod.ledger.rules import Account, Transfer
from nexapod.ledger.transfer_entry import decode_transfer_entry
from nexapod.storage.driver import Driver

__all__ = [
    "IN_LIST_MAX",
    "HoldRow",
    "account_keys_max",
    "due_holds",
    "find_transfers",
    "insert_accounts",
    "insert_holds",
    "read_accounts",
    "set_pending_status",
    "transfers_at",
    "update_totals",
]

IN_LIST_MAX = 900  # values per IN (...) list: inside SQLite's oldest bind limit (999)

HoldRow = tuple[int, str, int | None]
"""(log_index, pending_status, expires_at_ms) of a pending transfer"""

_TRANSFER_SELECT = (
    "SELECT e.leaf_index, h.pending_status, h.expires_at_ms, e.entry "
    "FROM ledger_log_entries e LEFT JOIN ledger_holds h ON h.log_index = e.leaf_index "
)
_ACCOUNT_SELECT = (
    "SELECT account_id, debits_pending, debits_posted, credits_pending, credits_posted, "
    "opened_at_ms, account_key FROM ledger_accounts "
)


def _chunks(values: Iterable[Any], *, ordered: bool = True) -> Iterable[list[Any]]:
    """IN-lists of at most IN_LIST_MAX values, in order when ``ordered`` (row locks are
    taken in one global order; plain lookups need none)."""
    listed = sorted(values) if ordered else list(values)
    for start in range(0, len(listed), IN_LIST_MAX):
        yield listed[start : start + IN_LIST_MAX]


def _marks(count: int) -> str:
    assert 0 < count <= IN_LIST_MAX
    return ", ".join("?" * count)


def _transfers(rows: Iterable[Sequence[Any]]) -> list[Transfer]:
    return [
        decode_transfer_entry(bytes(entry), int(log_index), status, expires_at_ms)
        for log_index, status, expires_at_ms, entry in rows
    ]


def find_transfers(d: Driver, transfer_ids: Iterable[str]) -> dict[str, Transfer]:
    """The committed transfers among ``transfer_ids`` (32-hex ids), by id."""
    found: dict[str, Transfer] = {}
    for chunk in _chunks((bytes.fromhex(tid) for tid in transfer_ids), ordered=False):
        d.cursor.execute(
            d.sql(f"{_TRANSFER_SELECT}WHERE e.transfer_id IN ({_marks(len(chunk))})"), chunk
        )
        for transfer in _transfers(d.cursor.fetchall()):
            found[transfer.transfer_id] = transfer
    return found


def transfers_at(d: Driver, log_indexes: Iterable[int]) -> dict[int, Transfer]:
    """The transfers whose entries are at ``log_indexes``, by index."""
    found: dict[int, Transfer] = {}
    for chunk in _chunks(log_indexes):
        d.cursor.execute(
            d.sql(
                f"{_TRANSFER_SELECT}WHERE e.leaf_index IN ({_marks(len(chunk))}) "
                "AND e.transfer_id IS NOT NULL"
            ),
            chunk,
        )
        found.update((t.log_index, t) for t in _transfers(d.cursor.fetchall()))
    return found


def due_holds(d: Driver, now_ms: int, limit: int) -> list[Transfer]:
    """Holds still pending whose timeout is at or before ``now_ms``, oldest deadline first."""
    assert limit > 0
    d.cursor.execute(
        d.sql(
            f"{_TRANSFER_SELECT}WHERE h.pending_status = 'pending' AND h.expires_at_ms <= ? "
            "ORDER BY h.expires_at_ms, h.log_index LIMIT ?"
        ),
        (now_ms, limit),
    )
    return _transfers(d.cursor.fetchall())


def read_accounts(d: Driver, account_ids: Iterable[str], *, lock: bool) -> dict[str, Account]:
    """Accounts by id (with their ``account_key``); ``lock`` takes their row locks on
    PostgreSQL, in id order (SQLite's write transaction already excludes other writers)."""
    found: dict[str, Account] = {}
    suffix = " ORDER BY account_id FOR UPDATE" if lock and not d.sqlite else ""
    for chunk in _chunks(account_ids):
        d.cursor.execute(
            d.sql(f"{_ACCOUNT_SELECT}WHERE account_id IN ({_marks(len(chunk))}){suffix}"), chunk
        )
        for account_id, dp, dpo, cp, cpo, opened_at_ms, key in d.cursor.fetchall():
            ref = parse_account_id(account_id)
            assert ref is not None, "stored accounts have well-formed ids"
            found[account_id] = Account(
                account_id,
                ref.asset,
                ref.owner,
                may_go_negative(account_id),
                int(dp),  # decimal text (SQLite) or a Decimal of scale 0 (PostgreSQL)
                int(dpo),
                int(cp),
                int(cpo),
                int(opened_at_ms),
                int(key),
            )
            if not d.sqlite:
                assert (dp, dpo, cp, cpo) == _totals(found[account_id]), "whole numbers"
    return found


def _totals(account: Account) -> tuple[int, int, int, int]:
    a = account
    return (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)


def account_keys_max(d: Driver) -> int:
    """The largest account key given so far (0 for none): keys are given under the log
    lock, so the next account opened takes this plus one."""
    d.cursor.execute("SELECT max(account_key) FROM ledger_accounts")
    (largest,) = d.cursor.fetchone()
    return 0 if largest is None else int(largest)


def insert_accounts(d: Driver, accounts: Sequence[Account]) -> None:
    """New accounts, with their keys already given."""
    rows = []
    for a in accounts:
        assert a.account_key is not None and a.opened_at_ms is not None
        totals = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        rows.append(
            (
                a.account_id,
                a.asset,
                a.owner,
                a.may_go_negative,
                *_amounts(d, totals),
                a.opened_at_ms,
                a.account_key,
            )
        )
    d.cursor.executemany(
        d.sql(
            "INSERT INTO ledger_accounts (account_id, asset, owner, may_go_negative, "
            "debits_pending, debits_posted, credits_pending, credits_posted, opened_at_ms, "
            "account_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        rows,
    )


def _amounts(d: Driver, values: Iterable[int]) -> list[int | str]:
    if d.sqlite:
        return [str(value) for value in values]
    return list(values)


def insert_holds(d: Driver, rows: Sequence[HoldRow]) -> None:
    """The state of new holds (a hold made and resolved in one batch arrives resolved)."""
    d.cursor.executemany(
        d.sql(
            "INSERT INTO ledger_holds (log_index, pending_status, expires_at_ms) VALUES (?, ?, ?)"
        ),
        rows,
    )


def set_pending_status(d: Driver, statuses: dict[int, str]) -> None:
    """Resolve holds (log index -> posted, voided or expired); each was still pending."""
    if not statuses:
        return
    rows = [(status, log_index) for log_index, status in sorted(statuses.items())]
    d.cursor.executemany(
        d.sql(
            "UPDATE ledger_holds SET pending_status = ? "
            "WHERE log_index = ? AND pending_status = 'pending'"
        ),
        rows,
    )
    assert d.cursor.rowcount == len(rows), "a hold is resolved once"


def update_totals(d: Driver, accounts: Sequence[Account]) -> None:
    """Write the four totals of each account (the caller passes those that changed)."""
    if d.sqlite:  # decimal text: SQLite's own integers stop at 2^63
        rows: list[tuple[object, ...]] = [
            (
                str(a.debits_pending),
                str(a.debits_posted),
                str(a.credits_pending),
                str(a.credits_posted),
                a.account_id,
            )
            for a in accounts
        ]
    else:
        rows = [(*_totals(a), a.account_id) for a in accounts]
    d.cursor.executemany(
        d.sql(
            "UPDATE ledger_accounts SET debits_pending = ?, debits_posted = ?, "
            "credits_pending = ?, credits_posted = ? WHERE account_id = ?"
        ),
        rows,
    )
    assert d.cursor.rowcount == len(rows), "every account updated exists"
