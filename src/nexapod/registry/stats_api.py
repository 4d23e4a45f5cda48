"""HTTP routes of the leaderboard, contributor status pages and the stats export (thin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from nexapod.coordinator.context import ContextDep
from nexapod.coordinator.openapi import PROBLEM_RESPONSES
from nexapod.protocol.v1 import (
    LEADERBOARD_CURSOR_PATTERN,
    LeaderboardPage,
    Problem,
    StatsExport,
    UserStatus,
)
from nexapod.registry import stats_export, stats_read, status
from nexapod.registry.stats import StatsConfig

__all__ = ["router"]

STATS_PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    503: {
        "model": Problem,
        "content": {"application/problem+json": {}},
        "description": "More contributors than stats_users_max: no snapshot can be made",
    },
}
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "The table as CSV: a header line, then one line per contributor",
    }
}
router = APIRouter(prefix="/v1", tags=["leaderboard"], responses=STATS_PROBLEM_RESPONSES)
SnapshotIdQuery = Annotated[
    int | None,
    Query(ge=1, le=2**62, description="Export this snapshot (one of the newest few)."),
]


@router.get("/leaderboard")
def get_leaderboard(
    ctx: ContextDep,
    cursor: Annotated[str | None, Query(pattern=LEADERBOARD_CURSOR_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> LeaderboardPage:
    """Contributors by cumulative verified FLOPs, with their recent average (FLOPs a
    day, half-life ``stats_recent_half_life_s``), from the hourly snapshot; ``limit`` is
    capped by the coordinator's page size, and ``next_cursor`` pages the same snapshot."""
    config = StatsConfig.from_settings(ctx.settings)
    return stats_read.leaderboard_page(
        ctx.uow_factory, ctx.read_uow_factory, ctx.clock_ms(), config, cursor, limit
    )


@router.get("/users/{username}/status")
def get_user_status(username: str, ctx: ContextDep) -> UserStatus:
    """A contributor's status: nodes and profiles, pools, verified FLOPs, balances,
    warm opt-in (live), and their leaderboard line (as of its snapshot)."""
    config = StatsConfig.from_settings(ctx.settings)
    return status.user_status(
        ctx.uow_factory, ctx.read_uow_factory, username, ctx.clock_ms(), config
    )


@router.get("/stats/export", response_model=StatsExport)
def export_json(ctx: ContextDep, snapshot_id: SnapshotIdQuery = None) -> StreamingResponse:
    """The whole leaderboard table of the newest snapshot (or ``snapshot_id``) as one
    JSON document, streamed; headers name the snapshot and its row count."""
    now_ms = ctx.clock_ms()
    config = StatsConfig.from_settings(ctx.settings)
    snapshot = stats_read.export_snapshot(
        ctx.uow_factory, ctx.read_uow_factory, now_ms, config, snapshot_id
    )
    chunks = stats_read.export_entries(ctx.read_uow_factory, snapshot)
    return StreamingResponse(
        stats_export.json_chunks(snapshot, chunks),
        media_type=stats_export.JSON_MEDIA_TYPE,
        headers=stats_export.export_headers(snapshot, now_ms, "stats.json"),
    )


@router.get("/stats/export.csv", response_class=StreamingResponse, responses=CSV_RESPONSE)
def export_csv(ctx: ContextDep, snapshot_id: SnapshotIdQuery = None) -> StreamingResponse:
    """The same table as CSV (columns: rank, username, verified_flops,
    recent_avg_flops_per_day, nodes), streamed; the snapshot is in the headers."""
    now_ms = ctx.clock_ms()
    config = StatsConfig.from_settings(ctx.settings)
    snapshot = stats_read.export_snapshot(
        ctx.uow_factory, ctx.read_uow_factory, now_ms, config, snapshot_id
    )
    chunks = stats_read.export_entries(ctx.read_uow_factory, snapshot)
    return StreamingResponse(
        stats_export.csv_chunks(snapshot, chunks),
        media_type=stats_export.CSV_MEDIA_TYPE,
        headers=stats_export.export_headers(snapshot, now_ms, "stats.csv"),
    )
