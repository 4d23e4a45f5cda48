"""Leaderboard snapshots at the service layer, on SQLite and PostgreSQL: ranks and recent
averages from stored results, exact FLOPs past 2^64, at most one snapshot per refresh
interval (also when two coordinators race), pruning, and the contributor limit."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import run_maintenance_once
from nexapod.errors import RegistryError
from nexapod.registry import stats, stats_read
from nexapod.registry.leaderboard import DAY_MS, HOUR_MS, RECENT_HALF_LIVES_MAX
from nexapod.registry.stats import SNAPSHOTS_KEPT, StatsConfig
from nexapod.registry.stats_store import StatsEntryRow, StatsSnapshotRow
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory
from tests.factories import make_node, make_user
from tests.registry.credits import credit

NOW_MS = 20_000 * HOUR_MS  # an hour's start
WEEK_MS = 7 * DAY_MS
RATE_PER_DAY = math.log(2) / 7
CONFIG = StatsConfig(refresh_s=3600, recent_half_life_s=7 * 86_400, users_max=100, page_size_max=50)


@dataclass(frozen=True)
class World:
    ctx: Context
    nodes: dict[str, str]  # username -> node id

    def refresh(self, now_ms: int, config: StatsConfig = CONFIG) -> tuple[int, bool]:
        view, made = stats.refresh_if_due(
            self.ctx.uow_factory, self.ctx.read_uow_factory, now_ms, config
        )
        return view.snapshot_id, made

    def credit(self, username: str, flops: int, at_ms: int | None, status: str = "valid") -> None:
        credit(self.ctx.uow_factory, self.nodes[username], username, flops, at_ms, status)

    def page(self, now_ms: int = NOW_MS) -> list[tuple[int, str, int, int, int]]:
        page = stats_read.leaderboard_page(
            self.ctx.uow_factory, self.ctx.read_uow_factory, now_ms, CONFIG, None, 50
        )
        return [
            (
                e.rank,
                e.username,
                int(e.verified_flops),
                int(e.recent_avg_flops_per_day),
                e.nodes,
            )
            for e in page.entries
        ]


@pytest.fixture
def world(api: TestClient) -> World:
    """alice, bob and carol with a node each, and dave with none."""
    nodes = {}
    for name in ("alice", "bob", "carol"):
        nodes[name] = make_node(api, make_user(api, name)).name
    make_user(api, "dave")
    return World(api.app.state.context, nodes)  # type: ignore[attr-defined]


def _count(uow_factory: UnitOfWorkFactory, table: type[StatsSnapshotRow | StatsEntryRow]) -> int:
    uow: UnitOfWork
    with uow_factory() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(table)) or 0)


def test_ranks_and_recent_averages_from_stored_results(world: World) -> None:
    flops = 7 * 10**12
    world.credit("alice", flops, NOW_MS)
    world.credit("alice", flops, NOW_MS - WEEK_MS)  # one half-life old: weighs half
    world.credit("bob", 3 * flops, NOW_MS - 30 * DAY_MS)
    old = NOW_MS - RECENT_HALF_LIVES_MAX * WEEK_MS - HOUR_MS  # past the horizon
    world.credit("carol", 2 * flops, old)
    world.credit("carol", flops, None)  # validated before times were kept
    world.credit("carol", 10 * flops, NOW_MS, status="pending")  # not (yet) verified
    world.credit("bob", 5 * flops, NOW_MS, status="forfeited")  # blacklisted: no credit
    assert world.refresh(NOW_MS) == (1, True)
    assert world.page() == [
        (1, "bob", 3 * flops, round(3 * flops * RATE_PER_DAY * 2 ** (-30 / 7)), 1),
        (1, "carol", 3 * flops, 0, 1),
        (3, "alice", 2 * flops, round(flops * RATE_PER_DAY * 1.5), 1),
        (4, "dave", 0, 0, 0),
    ]


def test_flops_past_2_64_are_exact(world: World) -> None:
    big = 2**63 - 1  # the most one result holds; three in one hour pass 2^64
    for _ in range(3):
        world.credit("alice", big, NOW_MS + 1)
    world.credit("alice", big, NOW_MS - 400 * DAY_MS)  # past the horizon
    world.refresh(NOW_MS)
    ((rank, name, flops, recent, _),) = [row for row in world.page() if row[1] == "alice"]
    assert (rank, name, flops) == (1, "alice", 4 * big)
    assert flops > 2**64
    assert recent == pytest.approx(3 * big * RATE_PER_DAY, rel=1e-12)
    with world.ctx.read_uow() as uow:
        snapshot = uow.session.get(StatsSnapshotRow, 1)
        assert snapshot is not None
        assert snapshot.verified_flops_total == 4 * big


def test_a_snapshot_is_made_once_per_refresh_interval(world: World) -> None:
    world.credit("alice", 1000, NOW_MS - HOUR_MS)
    assert world.refresh(NOW_MS) == (1, True)
    world.credit("bob", 5000, NOW_MS)
    just_before = NOW_MS + CONFIG.refresh_s * 1000 - 1
    assert world.refresh(just_before) == (1, False)
    assert world.page(just_before)[0][1] == "alice", "the hour's snapshot stands"
    after = NOW_MS + CONFIG.refresh_s * 1000
    assert world.refresh(after) == (2, True)
    assert world.page(after)[0][:3] == (1, "bob", 5000)
    assert world.refresh(after + 1) == (2, False)


def test_old_snapshots_are_forgotten(world: World) -> None:
    for index in range(SNAPSHOTS_KEPT + 2):
        assert world.refresh(NOW_MS + index * CONFIG.refresh_s * 1000) == (index + 1, True)
    assert _count(world.ctx.read_uow_factory, StatsSnapshotRow) == SNAPSHOTS_KEPT
    assert _count(world.ctx.read_uow_factory, StatsEntryRow) == SNAPSHOTS_KEPT * 4
    with pytest.raises(RegistryError) as caught:
        stats_read.export_snapshot(
            world.ctx.uow_factory, world.ctx.read_uow_factory, NOW_MS, CONFIG, 1
        )
    assert caught.value.code == "registry.stats_snapshot_unknown"
    assert caught.value.http_status == 404


def test_racing_coordinators_store_one_snapshot(world: World) -> None:
    """Another coordinator stores the snapshot while this one computes it: this one's
    write collides on the id, and it answers with the stored one."""
    world.credit("alice", 1000, NOW_MS)
    ctx = world.ctx
    raced = []

    def racing_writes() -> UnitOfWork:
        if not raced:
            raced.append(
                stats.refresh_if_due(ctx.uow_factory, ctx.read_uow_factory, NOW_MS, CONFIG)
            )
        return ctx.uow_factory()

    view, made = stats.refresh_if_due(racing_writes, ctx.read_uow_factory, NOW_MS, CONFIG)
    assert raced[0][1] is True
    assert (view.snapshot_id, made) == (1, False)
    assert view == raced[0][0]
    assert _count(ctx.read_uow_factory, StatsSnapshotRow) == 1
    assert _count(ctx.read_uow_factory, StatsEntryRow) == 4


def test_more_contributors_than_the_limit_is_an_error(world: World) -> None:
    config = StatsConfig(
        refresh_s=3600, recent_half_life_s=WEEK_MS // 1000, users_max=3, page_size_max=50
    )
    with pytest.raises(RegistryError) as caught:
        world.refresh(NOW_MS, config)
    assert caught.value.code == "registry.stats_users_max_exceeded"
    assert caught.value.http_status == 503
    assert _count(world.ctx.read_uow_factory, StatsSnapshotRow) == 0


def test_maintenance_makes_the_snapshot_when_due(world: World) -> None:
    world.ctx.clock_ms = lambda: NOW_MS
    run_maintenance_once(world.ctx)
    run_maintenance_once(world.ctx)
    assert _count(world.ctx.read_uow_factory, StatsSnapshotRow) == 1
    world.ctx.clock_ms = lambda: NOW_MS + 3600 * 1000
    run_maintenance_once(world.ctx)
    assert _count(world.ctx.read_uow_factory, StatsSnapshotRow) == 2
