"""Tables of the ledger: accounts, transfers, and the append-only log of entries.

``ledger_log_entries`` holds exactly what the public log shows (the entry bytes and the
RFC 9162 leaf hash, at its index); ``ledger_log_head`` is one row holding the log's size,
so an append reads its next index without scanning. Amounts and totals are
``ExactInteger`` (NUMERIC(78) on PostgreSQL, decimal text on SQLite).

A transfer is its log entry: the entry's canonical JSON holds every field, and its row in
``ledger_log_entries`` also carries the keys the ledger looks transfers up by: the 128-bit
id as 16 bytes (unique; the one random-key index a commit writes, which idempotency
needs) and the two accounts' small integer keys. Rows of the log are never updated; the
state of a hold (pending, then posted, voided or expired) is kept apart, in
``ledger_holds``, a row per pending transfer. ``ledger_account_history`` (account key, log
index) is each account's history, written by the log's integrator after commit, not by
the transfer (see ``ledger/history.py``).
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base
from nexapod.storage.types import ExactInteger

__all__ = [
    "ACCOUNTS",
    "ACCOUNT_HISTORY",
    "HOLDS",
    "LOG_ENTRIES",
    "LOG_HEAD",
    "LOG_HEAD_ID",
    "AccountHistoryRow",
    "AccountRow",
    "HoldRow",
    "LogEntryRow",
    "LogHeadRow",
]

LOG_HEAD_ID = 0
_ROW_ID = BigInteger().with_variant(Integer, "sqlite")  # an alias of SQLite's rowid: appends


class AccountRow(Base):
    """One account: an owner's holding of one asset, as TigerBeetle's four totals."""

    __tablename__ = "ledger_accounts"

    account_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    asset: Mapped[str] = mapped_column(String(8))
    owner: Mapped[str] = mapped_column(String(40), index=True)
    may_go_negative: Mapped[bool] = mapped_column(Boolean)
    debits_pending: Mapped[int] = mapped_column(ExactInteger())
    debits_posted: Mapped[int] = mapped_column(ExactInteger())
    credits_pending: Mapped[int] = mapped_column(ExactInteger())
    credits_posted: Mapped[int] = mapped_column(ExactInteger())
    opened_at_ms: Mapped[int] = mapped_column(BigInteger)
    # a small stable number for the account, 1, 2, ... in the order accounts open: what
    # transfer rows and the history index hold instead of the 48-character id
    account_key: Mapped[int] = mapped_column(BigInteger, unique=True)


class HoldRow(Base):
    """The state of a pending transfer (a hold), by its entry's index: ``pending`` until
    it is ``posted``, ``voided`` or ``expired``; ``expires_at_ms`` when it has a timeout."""

    __tablename__ = "ledger_holds"

    log_index: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=False)
    pending_status: Mapped[str] = mapped_column(String(8))
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        # only holds still pending: what the expiry pass scans
        Index(
            "ix_ledger_holds_expiry",
            "expires_at_ms",
            sqlite_where=text("pending_status = 'pending'"),
            postgresql_where=text("pending_status = 'pending'"),
        ),
    )


class AccountHistoryRow(Base):
    """One transfer in one account's history (two per transfer: its debit and its credit).

    Written by the integrator for the entries a checkpoint covers; newer transfers are
    found by scanning ``ledger_log_entries`` past that checkpoint (``ledger/history.py``).
    """

    __tablename__ = "ledger_account_history"

    account_key: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    log_index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)

    __table_args__ = ({"sqlite_with_rowid": False},)


class LogEntryRow(Base):
    """One log entry: canonical JSON bytes, and their leaf hash (RFC 9162 §2.1).

    The entry of a transfer also carries its id (16 bytes) and its accounts' keys, what
    the ledger finds transfers by; other entries leave them null.
    """

    __tablename__ = "ledger_log_entries"

    leaf_index: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    transfer_id: Mapped[bytes | None] = mapped_column(LargeBinary(16), nullable=True)
    debit_key: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_accounts.account_key"), nullable=True
    )
    credit_key: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_accounts.account_key"), nullable=True
    )

    __table_args__ = (Index("ix_ledger_log_entries_transfer_id", "transfer_id", unique=True),)


class LogHeadRow(Base):
    """The single row (``head_id`` 0) holding the log's ``tree_size``."""

    __tablename__ = "ledger_log_head"

    head_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)


# The Core tables, for set-based statements (bulk inserts skip the ORM's bookkeeping).
ACCOUNTS = cast(Table, AccountRow.__table__)
HOLDS = cast(Table, HoldRow.__table__)
ACCOUNT_HISTORY = cast(Table, AccountHistoryRow.__table__)
LOG_ENTRIES = cast(Table, LogEntryRow.__table__)
LOG_HEAD = cast(Table, LogHeadRow.__table__)
