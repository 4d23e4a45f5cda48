"""The leaderboard's snapshots: made at most once per ``stats_refresh_s``
(docs/leaderboard.md; ``stats_read`` reads them).

Making one reads the verified results aggregated in SQL, per contributor per hour for the
recent average and per contributor for older ones, so the rows it receives are bounded by
contributors times the hours of :data:`leaderboard.RECENT_HALF_LIVES_MAX` half-lives,
never by results (the database does the scanning). The snapshot is computed in a
read-only unit of work and written in one short write: several coordinators may compute
the same one side by side, but its id (the previous id + 1) is a primary key, so only the
first is stored and the others read it. A snapshot never changes once written; the
newest :data:`SNAPSHOTS_KEPT` are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Integer, delete, func, insert, literal, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nexapod.logs import log_event
from nexapod.mesh.store import ResultRow
from nexapod.protocol.v1 import StatsSnapshotView
from nexapod.registry import errors
from nexapod.registry.leaderboard import (
    HOUR_MS,
    RankedStanding,
    Standing,
    next_refresh_at_ms,
    rank_standings,
    recent_horizon_ms,
    recent_rate_term,
    snapshot_due,
    whole_flops_per_day,
)
from nexapod.registry.stats_store import STATS_ENTRIES, StatsEntryRow, StatsSnapshotRow
from nexapod.registry.store import NodeRow, UserRow
from nexapod.settings import Settings
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "SNAPSHOTS_KEPT",
    "StatsConfig",
    "compute_standings",
    "current_snapshot",
    "exact_flops_sums",
    "joined_sum",
    "refresh_if_due",
    "snapshot_view",
]

logger = logging.getLogger("nexapod.registry.stats")
SNAPSHOTS_KEPT = 3
INSERT_CHUNK_ROWS = 5000
STREAM_ROWS = 10_000
LOW_BITS = 32
LOW_MASK = (1 << LOW_BITS) - 1


@dataclass(frozen=True, slots=True)
class StatsConfig:
    """The settings the leaderboard obeys."""

    refresh_s: int
    recent_half_life_s: int
    users_max: int
    page_size_max: int

    @classmethod
    def from_settings(cls, settings: Settings) -> StatsConfig:
        return cls(
            refresh_s=settings.stats_refresh_s,
            recent_half_life_s=settings.stats_recent_half_life_s,
            users_max=settings.stats_users_max,
            page_size_max=settings.page_size_max,
        )


def exact_flops_sums() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """``SUM(work_flops >> 32)`` and ``SUM(work_flops & (2^32 - 1))``: SQLite's SUM fails
    past 2^63, but each half stays inside 64 bits for 2^31 rows; :func:`joined_sum`
    puts them back together exactly."""
    flops = ResultRow.work_flops
    return (
        func.sum(flops.bitwise_rshift(literal(LOW_BITS, Integer))),  # PostgreSQL: bigint >> int
        func.sum(flops.bitwise_and(LOW_MASK)),
    )


def joined_sum(high: Any, low: Any) -> int:
    """The exact sum from the two halves of :func:`exact_flops_sums` (NULL: no rows)."""
    total = (int(high or 0) << LOW_BITS) + int(low or 0)
    assert total >= 0
    return total


def compute_standings(
    uow: UnitOfWork, now_ms: int, half_life_ms: int, users_max: int
) -> list[Standing]:
    """Every contributor's cumulative verified FLOPs, recent average and node count.

    Results validated before the recent horizon (or before validation times were kept)
    count in the cumulative figure only.
    """
    assert half_life_ms > 0
    session = uow.session
    users_total = session.scalar(select(func.count()).select_from(UserRow)) or 0
    if users_total > users_max:
        raise errors.stats_users_max_exceeded(users_total, users_max)
    flops = dict.fromkeys(session.scalars(select(UserRow.username)), 0)
    nodes = {
        username: int(count)
        for username, count in session.execute(
            select(NodeRow.username, func.count()).group_by(NodeRow.username)
        )
    }
    horizon_ms = recent_horizon_ms(now_ms, half_life_ms)
    validated = ResultRow.validated_at_ms
    for username, high, low in session.execute(
        _valid_by_user(*exact_flops_sums())
        .where(or_(validated.is_(None), validated < horizon_ms))
        .group_by(NodeRow.username)
    ):
        flops[username] = flops.get(username, 0) + joined_sum(high, low)
    recent: dict[str, float] = {}
    hour = validated // HOUR_MS
    buckets = (
        _valid_by_user(hour, *exact_flops_sums())
        .where(validated >= horizon_ms)
        .group_by(NodeRow.username, hour)
        .execution_options(yield_per=STREAM_ROWS)
    )
    for username, hour_index, high, low in session.execute(buckets):
        bucket_flops = joined_sum(high, low)
        flops[username] = flops.get(username, 0) + bucket_flops
        term = recent_rate_term(bucket_flops, int(hour_index), now_ms, half_life_ms)
        recent[username] = recent.get(username, 0.0) + term
    return [
        Standing(
            username, total, whole_flops_per_day(recent.get(username, 0.0)), nodes.get(username, 0)
        )
        for username, total in flops.items()
    ]


def _valid_by_user(*columns: ColumnElement[Any]) -> Any:
    """SELECT nodes.username, *columns FROM valid results joined to their nodes."""
    return (
        select(NodeRow.username, *columns)
        .select_from(ResultRow)
        .join(NodeRow, NodeRow.node_id == ResultRow.node_id)
        .where(ResultRow.status == "valid")
    )


def refresh_if_due(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    now_ms: int,
    config: StatsConfig,
) -> tuple[StatsSnapshotView, bool]:
    """The newest snapshot, made first if it is due; and whether this call made it.

    Idempotent, and safe with several coordinators: see the module's docstring.
    """
    with read_uow_factory() as uow:
        latest = _latest(uow.session)
        due = latest is None or snapshot_due(latest.generated_at_ms, now_ms, config.refresh_s)
        if latest is not None and not due:
            return snapshot_view(latest, config), False
        half_life_ms = config.recent_half_life_s * 1000
        standings = compute_standings(uow, now_ms, half_life_ms, config.users_max)
        snapshot_id = 1 if latest is None else latest.snapshot_id + 1
    ranked = rank_standings(standings)
    header = StatsSnapshotRow(
        snapshot_id=snapshot_id,
        generated_at_ms=now_ms,
        recent_half_life_s=config.recent_half_life_s,
        users_total=len(ranked),
        verified_flops_total=sum(s.verified_flops for s in standings),
    )
    try:
        with uow_factory() as uow:
            _write(uow.session, header, ranked)
            uow.commit()
    except IntegrityError:  # another coordinator stored this snapshot first
        with read_uow_factory() as uow:
            stored = _latest(uow.session)
            assert stored is not None
            assert stored.snapshot_id >= snapshot_id
            return snapshot_view(stored, config), False
    log_event(logger, "stats.snapshot", snapshot_id=snapshot_id, users=len(ranked))
    return snapshot_view(header, config), True


def _write(session: Session, header: StatsSnapshotRow, ranked: list[RankedStanding]) -> None:
    """Insert the header (its id collides if another coordinator won), the entries in
    chunks, and forget snapshots older than the kept ones."""
    session.add(header)
    session.flush()
    for start in range(0, len(ranked), INSERT_CHUNK_ROWS):
        rows = [
            {
                "snapshot_id": header.snapshot_id,
                "row_index": r.row_index,
                "rank": r.rank,
                "username": r.standing.username,
                "verified_flops": r.standing.verified_flops,
                "recent_avg_flops_per_day": r.standing.recent_avg_flops_per_day,
                "nodes": r.standing.nodes,
            }
            for r in ranked[start : start + INSERT_CHUNK_ROWS]
        ]
        session.execute(insert(STATS_ENTRIES), rows)
    forget_through = header.snapshot_id - SNAPSHOTS_KEPT
    if forget_through >= 1:
        session.execute(delete(StatsEntryRow).where(StatsEntryRow.snapshot_id <= forget_through))
        session.execute(
            delete(StatsSnapshotRow).where(StatsSnapshotRow.snapshot_id <= forget_through)
        )


def current_snapshot(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    now_ms: int,
    config: StatsConfig,
) -> StatsSnapshotView:
    """The newest snapshot, made first if it is due (when maintenance has not yet)."""
    view, _made = refresh_if_due(uow_factory, read_uow_factory, now_ms, config)
    return view


def _latest(session: Session) -> StatsSnapshotRow | None:
    return session.scalar(
        select(StatsSnapshotRow).order_by(StatsSnapshotRow.snapshot_id.desc()).limit(1)
    )


def snapshot_view(row: StatsSnapshotRow, config: StatsConfig) -> StatsSnapshotView:
    """A stored snapshot as the API shows it (its next refresh by the current settings)."""
    return StatsSnapshotView(
        snapshot_id=row.snapshot_id,
        generated_at_ms=row.generated_at_ms,
        next_refresh_at_ms=next_refresh_at_ms(row.generated_at_ms, config.refresh_s),
        refresh_s=config.refresh_s,
        recent_half_life_s=row.recent_half_life_s,
        users_total=row.users_total,
        verified_flops_total=str(row.verified_flops_total),
    )
