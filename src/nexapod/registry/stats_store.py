"""Tables of the leaderboard's snapshots: one row per snapshot, one per contributor in it.

A snapshot is immutable once written; the newest few are kept (``stats.SNAPSHOTS_KEPT``)
so that a reader paging through one, or streaming its export, is not cut short by the
next refresh.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base
from nexapod.storage.types import ExactInteger

__all__ = ["STATS_ENTRIES", "StatsEntryRow", "StatsSnapshotRow"]


class StatsSnapshotRow(Base):
    """A snapshot's header: when it was made, and with which half-life."""

    __tablename__ = "stats_snapshots"

    snapshot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    generated_at_ms: Mapped[int] = mapped_column(BigInteger)
    recent_half_life_s: Mapped[int] = mapped_column(Integer)
    users_total: Mapped[int] = mapped_column(Integer)
    verified_flops_total: Mapped[int] = mapped_column(ExactInteger())


class StatsEntryRow(Base):
    """One contributor's line in a snapshot, at ``row_index`` in rank order."""

    __tablename__ = "stats_entries"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("stats_snapshots.snapshot_id"), primary_key=True
    )
    row_index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rank: Mapped[int] = mapped_column(Integer)
    username: Mapped[str] = mapped_column(String(32))
    verified_flops: Mapped[int] = mapped_column(ExactInteger())
    recent_avg_flops_per_day: Mapped[int] = mapped_column(ExactInteger())
    nodes: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("uq_stats_entries_snapshot_username", "snapshot_id", "username", unique=True),
    )


STATS_ENTRIES = cast(Table, StatsEntryRow.__table__)  # Core: bulk inserts skip the ORM
