"""Each account's history: indexed after commit by the integrator, read with its tail.

A transfer commits as its log entry (a row keyed by log index, so the commit appends,
which also holds the transfer's id and its two accounts' keys), and nothing else per
account: indexing every transfer under both of its accounts at commit would be two
random-key B-tree inserts per transfer, the largest cost of a commit after the id's. As a
Certificate Transparency log integrates entries after sequencing them, the history index
(``ledger_account_history``: account key, log index) is written by the log's integrator,
in the transaction that signs the checkpoint, sorted, a second's transfers at a time
(:func:`index_history`). So the index covers exactly the entries the newest checkpoint
covers.

A read (:func:`history_page`) is never stale for it: below the newest checkpoint's size it
reads the index; at and past it (the tail the integrator has not reached, normally under a
second of transfers) it scans ``ledger_log_entries`` by log index, whose transfer rows
hold their two account keys. The two ranges do not overlap, and a transfer's row exists
from its commit on, so a page shows every committed transfer exactly once, whichever
checkpoint the read saw. Waiting for the integrator instead would make every read after a
write wait up to a second. The tail is bounded: when it is longer than
:data:`HISTORY_TAIL_ENTRIES_MAX` (the integrator stopped or fell far behind) a read is
refused with 503 ``ledger.history_behind`` rather than scan without limit.
"""

from __future__ import annotations

import itertools

from sqlalchemy import text
from sqlalchemy.orm import Session

from nexapod.ledger import errors
from nexapod.storage.driver import Driver

__all__ = ["HISTORY_TAIL_ENTRIES_MAX", "LOG_INDEX_END", "history_page", "index_history"]

HISTORY_TAIL_ENTRIES_MAX = 500_000
LOG_INDEX_END = 2**62  # past any log index: "no cursor yet"
_RETRY_AFTER_S = 1

_INDEX = text(
    "INSERT INTO ledger_account_history (account_key, log_index) "
    "SELECT account_key, log_index FROM ("
    " SELECT debit_key AS account_key, leaf_index AS log_index FROM ledger_log_entries"
    "  WHERE leaf_index >= :start AND leaf_index < :stop AND debit_key IS NOT NULL"
    " UNION ALL"
    " SELECT credit_key AS account_key, leaf_index AS log_index FROM ledger_log_entries"
    "  WHERE leaf_index >= :start AND leaf_index < :stop AND credit_key IS NOT NULL"
    ") AS sides WHERE true ORDER BY account_key, log_index "
    "ON CONFLICT DO NOTHING"  # (WHERE true: SQLite's upsert after a SELECT needs one)
)


def index_history(session: Session, start: int, stop: int) -> int:
    """Index the transfers logged at ``start <= index < stop`` under both their accounts,
    in key order (so the B-tree fills at each account's end); returns the rows added.

    Rows already there are kept (an operator who rebuilds tiles and checkpoints from the
    entries integrates from 0 again over an index that already holds them).
    """
    assert 0 <= start <= stop
    if start == stop:
        return 0
    result = session.execute(_INDEX, {"start": start, "stop": stop})
    added = int(result.rowcount)  # type: ignore[attr-defined]
    assert 0 <= added <= 2 * (stop - start), "at most two rows per entry"
    return added


def history_page(
    d: Driver,
    account_key: int,
    indexed_size: int,
    tree_size: int,
    before: int,
    count: int,
) -> list[int]:
    """The log indexes of the account's newest ``count`` transfers below ``before``,
    newest first: from the tail (``indexed_size`` on) and then from the index."""
    assert 0 <= indexed_size <= tree_size
    assert count > 0
    if tree_size - indexed_size > HISTORY_TAIL_ENTRIES_MAX:
        raise errors.history_behind(
            tree_size - indexed_size, HISTORY_TAIL_ENTRIES_MAX, _RETRY_AFTER_S
        )
    found: list[int] = []
    if before > indexed_size:
        d.cursor.execute(
            d.sql(
                "SELECT leaf_index FROM ledger_log_entries WHERE leaf_index >= ? "
                "AND leaf_index < ? AND (debit_key = ? OR credit_key = ?) "
                "ORDER BY leaf_index DESC LIMIT ?"
            ),
            (indexed_size, before, account_key, account_key, count),
        )
        found.extend(int(index) for (index,) in d.cursor.fetchall())
    if len(found) < count:
        d.cursor.execute(
            d.sql(
                "SELECT log_index FROM ledger_account_history WHERE account_key = ? "
                "AND log_index < ? ORDER BY log_index DESC LIMIT ?"
            ),
            (account_key, min(before, indexed_size), count - len(found)),
        )
        found.extend(int(index) for (index,) in d.cursor.fetchall())
    assert all(a > b for a, b in itertools.pairwise(found)), "newest first, once"
    return found
