"""Contributor status pages, the leaderboard and its export (docs/leaderboard.md).

FLOPs are exact integers that pass 2^53, so they travel as decimal text, as ledger
amounts do. The leaderboard is read from a snapshot made at most once per
``refresh_s``; a status page's node list, balances and verified FLOPs are live.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from nexapod.protocol.v1._base import WireModel
from nexapod.protocol.v1.ledger import AccountView
from nexapod.protocol.v1.registry import HardwareProfile

__all__ = [
    "LEADERBOARD_CURSOR_PATTERN",
    "STATS_CSV_COLUMNS",
    "LeaderboardEntry",
    "LeaderboardPage",
    "NodeStatus",
    "StatsExport",
    "StatsSnapshotView",
    "UserRanking",
    "UserStatus",
]

FlopsText = Annotated[str, Field(pattern=r"^(0|[1-9][0-9]{0,77})$", examples=["1500000000"])]
Millis = Annotated[int, Field(ge=0)]
LEADERBOARD_CURSOR_PATTERN = r"^[1-9][0-9]{0,17}:[0-9]{1,10}$"  # snapshot_id:row_index
# The CSV export's header line: LeaderboardEntry's fields, in this order.
STATS_CSV_COLUMNS = ("rank", "username", "verified_flops", "recent_avg_flops_per_day", "nodes")


class StatsSnapshotView(WireModel):
    """One leaderboard snapshot: made at ``generated_at_ms``, replaced once
    ``next_refresh_at_ms`` has passed (at the next request or maintenance pass)."""

    snapshot_id: Annotated[int, Field(ge=1)]
    generated_at_ms: Millis
    next_refresh_at_ms: Millis
    refresh_s: Annotated[int, Field(ge=1)]
    recent_half_life_s: Annotated[int, Field(ge=1)]
    users_total: Annotated[int, Field(ge=0)]
    verified_flops_total: FlopsText


class LeaderboardEntry(WireModel):
    """A contributor's line: rank by cumulative verified FLOPs (ties share a rank), and
    the recent average in FLOPs a day."""

    rank: Annotated[int, Field(ge=1)]
    username: str
    verified_flops: FlopsText
    recent_avg_flops_per_day: FlopsText
    nodes: Annotated[int, Field(ge=0)]


class LeaderboardPage(WireModel):
    """Entries in rank order; pass ``next_cursor`` for the next page of the same snapshot."""

    snapshot: StatsSnapshotView
    entries: list[LeaderboardEntry]
    next_cursor: str | None


class StatsExport(WireModel):
    """The whole table of one snapshot, as ``GET /v1/stats/export`` streams it."""

    snapshot: StatsSnapshotView
    entries: list[LeaderboardEntry]


class NodeStatus(WireModel):
    """One of a contributor's nodes: its signed hardware profile, pool, and verified work.

    ``pool`` is ``hot``, ``warm``, ``cold``, ``institutional`` or ``none`` (not yet placed).
    """

    node_id: str
    pool: str
    warm_opt_in: bool
    cold_opt_in: bool
    capacity_flops_per_s: FlopsText
    profile: HardwareProfile
    registered_at_ms: Millis
    last_seen_at_ms: Millis
    verified_flops: FlopsText
    results_valid: Annotated[int, Field(ge=0)]


class UserRanking(WireModel):
    """A contributor's line in the newest snapshot (absent if registered after it)."""

    snapshot_id: Annotated[int, Field(ge=1)]
    generated_at_ms: Millis
    next_refresh_at_ms: Millis
    rank: Annotated[int, Field(ge=1)]
    users_total: Annotated[int, Field(ge=1)]
    verified_flops: FlopsText
    recent_avg_flops_per_day: FlopsText


class UserStatus(WireModel):
    """A contributor's status page.

    ``verified_flops`` and ``results_valid`` count every node's valid results now;
    ``ranking`` is as of its snapshot. ``nodes`` lists the first ``page_size_max`` nodes
    by id (``nodes_total`` counts them all); ``pools`` are the distinct pools of all of
    them; ``warm_opt_in`` is true when at least one node stays in the warm pool for
    resale after a job. ``balances`` are the NXC, USDC and USD accounts, zero until
    first used.
    """

    username: str
    registered_at_ms: Millis
    as_of_ms: Millis
    verified_flops: FlopsText
    results_valid: Annotated[int, Field(ge=0)]
    pools: list[str]
    warm_opt_in: bool
    nodes_total: Annotated[int, Field(ge=0)]
    nodes: list[NodeStatus]
    balances: list[AccountView]
    ranking: UserRanking | None
