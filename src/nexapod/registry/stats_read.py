"""Reading the leaderboard's snapshots: pages in rank order, a contributor's line, and the
whole table a chunk at a time for the export (docs/leaderboard.md)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from nexapod.protocol.v1 import LeaderboardEntry, LeaderboardPage, StatsSnapshotView, UserRanking
from nexapod.registry import errors
from nexapod.registry.stats import StatsConfig, current_snapshot, snapshot_view
from nexapod.registry.stats_store import StatsEntryRow, StatsSnapshotRow
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EXPORT_CHUNK_ROWS",
    "export_entries",
    "export_snapshot",
    "leaderboard_page",
    "ranking_of",
]

EXPORT_CHUNK_ROWS = 1000  # entries a streamed export holds in memory at a time


def export_snapshot(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    now_ms: int,
    config: StatsConfig,
    snapshot_id: int | None,
) -> StatsSnapshotView:
    """The snapshot an export streams: the one named, or the newest."""
    if snapshot_id is None:
        return current_snapshot(uow_factory, read_uow_factory, now_ms, config)
    with read_uow_factory() as uow:
        return snapshot_view(_pinned(uow.session, snapshot_id), config)


def leaderboard_page(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    now_ms: int,
    config: StatsConfig,
    cursor: str | None,
    limit: int,
) -> LeaderboardPage:
    """Entries in rank order from the newest snapshot, or from where ``cursor`` left off
    in its own snapshot (``snapshot_id:row_index``); at most ``page_size_max``."""
    assert limit >= 1
    size = min(limit, config.page_size_max)
    if cursor is None:
        snapshot = current_snapshot(uow_factory, read_uow_factory, now_ms, config)
        start = 0
    else:
        snapshot_text, _, start_text = cursor.partition(":")
        start = int(start_text)
        with read_uow_factory() as uow:
            snapshot = snapshot_view(_pinned(uow.session, int(snapshot_text)), config)
    with read_uow_factory() as uow:
        entries = _entries(uow.session, snapshot.snapshot_id, start, size)
    assert len(entries) <= max(0, snapshot.users_total - start)  # past the end: none
    end = start + len(entries)
    more = len(entries) == size and end < snapshot.users_total
    return LeaderboardPage(
        snapshot=snapshot,
        entries=entries,
        next_cursor=f"{snapshot.snapshot_id}:{end}" if more else None,
    )


def export_entries(
    read_uow_factory: UnitOfWorkFactory, snapshot: StatsSnapshotView
) -> Iterator[list[LeaderboardEntry]]:
    """Every entry of ``snapshot`` in rank order, :data:`EXPORT_CHUNK_ROWS` at a time,
    each chunk read in its own short transaction (a long stream holds no snapshot of
    the database open). A snapshot forgotten mid-stream ends it with an error."""
    for start in range(0, snapshot.users_total, EXPORT_CHUNK_ROWS):
        with read_uow_factory() as uow:
            chunk = _entries(uow.session, snapshot.snapshot_id, start, EXPORT_CHUNK_ROWS)
        if len(chunk) != min(EXPORT_CHUNK_ROWS, snapshot.users_total - start):
            raise errors.stats_snapshot_unknown(snapshot.snapshot_id)
        yield chunk


def ranking_of(uow: UnitOfWork, snapshot: StatsSnapshotView, username: str) -> UserRanking | None:
    """``username``'s line in ``snapshot``; None if it registered after the snapshot."""
    row = uow.session.scalar(
        select(StatsEntryRow).where(
            StatsEntryRow.snapshot_id == snapshot.snapshot_id, StatsEntryRow.username == username
        )
    )
    if row is None:
        return None
    assert row.rank <= snapshot.users_total
    return UserRanking(
        snapshot_id=snapshot.snapshot_id,
        generated_at_ms=snapshot.generated_at_ms,
        next_refresh_at_ms=snapshot.next_refresh_at_ms,
        rank=row.rank,
        users_total=snapshot.users_total,
        verified_flops=str(row.verified_flops),
        recent_avg_flops_per_day=str(row.recent_avg_flops_per_day),
    )


def _entries(session: Session, snapshot_id: int, start: int, count: int) -> list[LeaderboardEntry]:
    rows = session.scalars(
        select(StatsEntryRow)
        .where(StatsEntryRow.snapshot_id == snapshot_id, StatsEntryRow.row_index >= start)
        .order_by(StatsEntryRow.row_index)
        .limit(count)
    )
    return [
        LeaderboardEntry(
            rank=row.rank,
            username=row.username,
            verified_flops=str(row.verified_flops),
            recent_avg_flops_per_day=str(row.recent_avg_flops_per_day),
            nodes=row.nodes,
        )
        for row in rows
    ]


def _pinned(session: Session, snapshot_id: int) -> StatsSnapshotRow:
    row = session.get(StatsSnapshotRow, snapshot_id)
    if row is None:
        raise errors.stats_snapshot_unknown(snapshot_id)
    return row
