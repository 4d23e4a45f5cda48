"""Appending entries to the ledger's log, inside the caller's transaction.

Every event the ledger publishes (a transfer, an expired hold, and later pool
transitions, blacklistings and policy changes) is one entry: the canonical JSON
(RFC 8785) of ``{"kind": ..., "v": 1, ...body}``, at the next index, with its leaf hash
(RFC 9162 §2.1). The entry is written in the same transaction as the change it
records, so the log never shows a change that did not commit, nor misses one that did.

Appends are serialised so that indexes run 0, 1, 2, ... without gaps or repeats:

- on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` and holds the
  database's one write lock, so appends are already one at a time;
- on PostgreSQL :func:`lock_log` takes the transaction-level advisory lock
  :data:`LOG_LOCK_KEY` before the head is read, so concurrent coordinator processes
  append one transaction at a time. The lock is released at commit or rollback.

Take the log lock before any other lock a use case needs (the transfer service locks
it before the accounts it touches), so that two writers never wait on each other in
opposite orders.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from nexapod.crypto import canonical_json
from nexapod.ledger.merkle import HASH_SIZE, LEAF_PREFIX
from nexapod.ledger.store import LOG_ENTRIES, LOG_HEAD, LOG_HEAD_ID
from nexapod.storage.driver import driver

__all__ = [
    "ENTRIES_PER_APPEND_MAX",
    "ENTRY_BYTES_MAX",
    "ENTRY_VERSION",
    "LOG_LOCK_KEY",
    "READ_ENTRIES_MAX",
    "TransferKeys",
    "append_encoded",
    "append_entries",
    "lock_log",
    "read_entries",
    "read_leaf_hashes",
    "read_tree_size",
]

LOG_LOCK_KEY = int.from_bytes(b"NXLEDGER", "big")
"""The PostgreSQL advisory lock key of log appends: the ASCII bytes ``NXLEDGER``."""

ENTRY_VERSION = 1
ENTRY_BYTES_MAX = 0xFFFF  # the 16-bit length prefix of a tlog-tiles entry bundle
ENTRIES_PER_APPEND_MAX = 10_000
READ_ENTRIES_MAX = 10_000
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")

assert 0 < LOG_LOCK_KEY < 2**63, "a PostgreSQL bigint"


def lock_log(session: Session) -> None:
    """Become the log's one appender until this transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOG_LOCK_KEY})


def read_tree_size(session: Session) -> int:
    """How many entries the log holds (committed, or appended in this transaction)."""
    tree_size = session.execute(
        select(LOG_HEAD.c.tree_size).where(LOG_HEAD.c.head_id == LOG_HEAD_ID)
    ).scalar_one()
    assert tree_size >= 0
    return int(tree_size)


def append_entries(session: Session, kind: str, bodies: Sequence[Mapping[str, Any]]) -> int:
    """Append one entry per body, in order; returns the index of the first.

    A body holds integers (within 2^53), text, booleans, nulls, lists and objects;
    amounts travel as decimal text. ``kind`` and the format version ``v`` are added
    here. The caller commits (or rolls back) the transaction.
    """
    assert _KIND.fullmatch(kind), f"entry kind {kind!r}"
    assert len(bodies) <= ENTRIES_PER_APPEND_MAX, "append in smaller batches"
    entries = []
    for body in bodies:
        assert "kind" not in body, "kind is the append's"
        assert "v" not in body, "v is the append's"
        entries.append(canonical_json({"kind": kind, "v": ENTRY_VERSION, **body}))
    return append_encoded(session, entries)


TransferKeys = tuple[bytes, int, int]
"""What a transfer's entry carries beside its bytes: (16-byte id, debit key, credit key)."""


def append_encoded(
    session: Session, entries: Sequence[bytes], transfer_keys: Sequence[TransferKeys] = ()
) -> int:
    """Append entries already in canonical form, in order; returns the index of the first.

    For writers that encode their own entries on a fast path held equal to
    ``canonical_json`` by a test (the transfer service's ``transfer_entry``), and give
    each entry's transfer keys (``transfer_keys``, one per entry, or none at all). Rows go
    to the driver in one ``executemany``, with their leaf hashes; the head moves once.
    """
    assert len(entries) <= ENTRIES_PER_APPEND_MAX, "append in smaller batches"
    assert not transfer_keys or len(transfer_keys) == len(entries), "keys for every entry"
    lock_log(session)
    first_index = read_tree_size(session)
    if not entries:
        return first_index
    d = driver(session)
    sha256, prefix = hashlib.sha256, LEAF_PREFIX  # merkle.leaf_hash, inlined: a hot loop
    if transfer_keys:
        rows: list[tuple[object, ...]] = [
            (first_index + offset, entry, sha256(prefix + entry).digest(), tid, debit, credit)
            for offset, (entry, (tid, debit, credit)) in enumerate(
                zip(entries, transfer_keys, strict=True)
            )
        ]
        statement = (
            "INSERT INTO ledger_log_entries (leaf_index, entry, leaf_hash, transfer_id, "
            "debit_key, credit_key) VALUES (?, ?, ?, ?, ?, ?)"
        )
    else:
        rows = [
            (first_index + offset, entry, sha256(prefix + entry).digest())
            for offset, entry in enumerate(entries)
        ]
        statement = "INSERT INTO ledger_log_entries (leaf_index, entry, leaf_hash) VALUES (?, ?, ?)"
    assert max(map(len, entries)) <= ENTRY_BYTES_MAX, "an entry is small"
    d.cursor.executemany(d.sql(statement), rows)
    tree_size = first_index + len(rows)
    d.cursor.execute(
        d.sql("UPDATE ledger_log_head SET tree_size = ? WHERE head_id = ? AND tree_size = ?"),
        (tree_size, LOG_HEAD_ID, first_index),
    )
    assert d.cursor.rowcount == 1, "the log head moved under an append"
    return first_index


def read_entries(session: Session, start: int, stop: int) -> list[tuple[int, bytes, bytes]]:
    """Entries ``start <= index < stop`` as (index, entry bytes, leaf hash), in order."""
    assert 0 <= start <= stop
    assert stop - start <= READ_ENTRIES_MAX, "read in smaller ranges"
    rows = session.execute(
        select(LOG_ENTRIES.c.leaf_index, LOG_ENTRIES.c.entry, LOG_ENTRIES.c.leaf_hash)
        .where(LOG_ENTRIES.c.leaf_index >= start, LOG_ENTRIES.c.leaf_index < stop)
        .order_by(LOG_ENTRIES.c.leaf_index)
    ).all()
    return [(int(i), bytes(entry), bytes(hash_)) for i, entry, hash_ in rows]


def read_leaf_hashes(session: Session, start: int, stop: int) -> list[bytes]:
    """The leaf hashes of entries ``start <= index < stop``, in order (what the integrator
    hashes up into tiles: it never needs the entries themselves)."""
    assert 0 <= start <= stop
    assert stop - start <= READ_ENTRIES_MAX, "read in smaller ranges"
    d = driver(session)
    d.cursor.execute(
        d.sql(
            "SELECT leaf_hash FROM ledger_log_entries WHERE leaf_index >= ? AND leaf_index < ? "
            "ORDER BY leaf_index"
        ),
        (start, stop),
    )
    hashes = [leaf for (leaf,) in d.cursor.fetchall()]  # bytes from both drivers
    if len(hashes) != stop - start:
        raise AssertionError(f"a gap in the log: {len(hashes)} entries in {start}..{stop - 1}")
    assert sum(map(len, hashes)) == HASH_SIZE * len(hashes), "leaf hashes are SHA-256"
    return hashes
