"""Tables of the ledger: accounts, transfers, and the append-only log of entries.

``ledger_log_entries`` holds exactly what the public log shows (the entry bytes and the
RFC 9162 leaf hash, at its index); ``ledger_log_head`` is one row holding the log's size,
so an append reads its next index without scanning. Amounts and totals are
``ExactInteger`` (NUMERIC(78) on PostgreSQL, decimal text on SQLite).
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
    "LOG_ENTRIES",
    "LOG_HEAD",
    "LOG_HEAD_ID",
    "TRANSFERS",
    "AccountRow",
    "LogEntryRow",
    "LogHeadRow",
    "TransferRow",
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


class TransferRow(Base):
    """A committed transfer; ``log_index`` is the index of its entry in the log."""

    __tablename__ = "ledger_transfers"

    transfer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    phase: Mapped[str] = mapped_column(String(16))
    debit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"))
    credit_account_id: Mapped[str] = mapped_column(ForeignKey("ledger_accounts.account_id"))
    asset: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(ExactInteger())
    pending_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    timeout_s: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(32))
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    log_index: Mapped[int] = mapped_column(BigInteger)
    pending_status: Mapped[str | None] = mapped_column(String(8), nullable=True)
    expires_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        Index("ix_ledger_transfers_debit", "debit_account_id", "log_index"),
        Index("ix_ledger_transfers_credit", "credit_account_id", "log_index"),
        # only holds still pending: what the expiry pass scans
        Index(
            "ix_ledger_transfers_expiry",
            "expires_at_ms",
            sqlite_where=text("pending_status = 'pending'"),
            postgresql_where=text("pending_status = 'pending'"),
        ),
    )


class LogEntryRow(Base):
    """One log entry: canonical JSON bytes, and their leaf hash (RFC 9162 §2.1)."""

    __tablename__ = "ledger_log_entries"

    leaf_index: Mapped[int] = mapped_column(_ROW_ID, primary_key=True, autoincrement=False)
    entry: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class LogHeadRow(Base):
    """The single row (``head_id`` 0) holding the log's ``tree_size``."""

    __tablename__ = "ledger_log_head"

    head_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_size: Mapped[int] = mapped_column(BigInteger)


# The Core tables, for set-based statements (bulk inserts skip the ORM's bookkeeping).
ACCOUNTS = cast(Table, AccountRow.__table__)
TRANSFERS = cast(Table, TransferRow.__table__)
LOG_ENTRIES = cast(Table, LogEntryRow.__table__)
LOG_HEAD = cast(Table, LogHeadRow.__table__)
