"""A contributor's status page (ECONOMICS §6): nodes and their signed profiles, pools,
verified FLOPs, balances, warm opt-in, and their line on the leaderboard.

Everything but the leaderboard line is read live; the line comes from the newest
snapshot (made first if it is due). Pools are read from the pools area's table: a node
without a row there is in pool ``none`` and has not opted in to anything.
"""

from __future__ import annotations

import json

from sqlalchemy import func, select

from nexapod.ledger import service as ledger
from nexapod.ledger.accounts import ASSETS, user_account_id
from nexapod.mesh.store import ResultRow
from nexapod.pools.store import PoolMemberRow
from nexapod.protocol.v1 import HardwareProfile, NodeStatus, UserStatus
from nexapod.registry import errors, stats, stats_read
from nexapod.registry.stats import StatsConfig, exact_flops_sums, joined_sum
from nexapod.registry.store import NodeRow, UserRow
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = ["POOL_NONE", "user_status"]

POOL_NONE = "none"


def user_status(
    uow_factory: UnitOfWorkFactory,
    read_uow_factory: UnitOfWorkFactory,
    username: str,
    now_ms: int,
    config: StatsConfig,
) -> UserStatus:
    """The status page of ``username`` (``registry.user_unknown`` if there is none)."""
    with read_uow_factory() as uow:
        if uow.session.get(UserRow, username) is None:
            raise errors.user_unknown(username)
    snapshot = stats.current_snapshot(uow_factory, read_uow_factory, now_ms, config)
    with read_uow_factory() as uow:
        user = uow.session.get(UserRow, username)
        assert user is not None, "users are never deleted"
        work = _work_by_node(uow, username)
        nodes = _nodes(uow, username, config.page_size_max, work)
        pools, warm_opt_in = _pools(uow, username)
        return UserStatus(
            username=username,
            registered_at_ms=user.registered_at_ms,
            as_of_ms=now_ms,
            verified_flops=str(sum(flops for flops, _ in work.values())),
            results_valid=sum(count for _, count in work.values()),
            pools=pools,
            warm_opt_in=warm_opt_in,
            nodes_total=_nodes_total(uow, username),
            nodes=nodes,
            balances=[ledger.account_view(uow, user_account_id(username, a)) for a in ASSETS],
            ranking=stats_read.ranking_of(uow, snapshot, username),
        )


def _work_by_node(uow: UnitOfWork, username: str) -> dict[str, tuple[int, int]]:
    """Each of the user's nodes with valid results: (verified FLOPs, valid results)."""
    rows = uow.session.execute(
        select(ResultRow.node_id, *exact_flops_sums(), func.count())
        .join(NodeRow, NodeRow.node_id == ResultRow.node_id)
        .where(NodeRow.username == username, ResultRow.status == "valid")
        .group_by(ResultRow.node_id)
    )
    work = {node_id: (joined_sum(high, low), int(count)) for node_id, high, low, count in rows}
    assert all(count > 0 for _, count in work.values())
    return work


def _nodes(
    uow: UnitOfWork, username: str, nodes_max: int, work: dict[str, tuple[int, int]]
) -> list[NodeStatus]:
    """The user's first ``nodes_max`` nodes by id, each with its pool membership."""
    assert nodes_max >= 1
    rows = uow.session.execute(
        select(NodeRow, PoolMemberRow)
        .outerjoin(PoolMemberRow, PoolMemberRow.node_id == NodeRow.node_id)
        .where(NodeRow.username == username)
        .order_by(NodeRow.node_id)
        .limit(nodes_max)
    )
    listed = []
    for node, member in rows:
        flops, results = work.get(node.node_id, (0, 0))
        profile = json.loads(node.registration_document)["profile"]
        listed.append(
            NodeStatus(
                node_id=node.node_id,
                pool=member.pool if member is not None else POOL_NONE,
                warm_opt_in=member is not None and member.warm_opt_in,
                cold_opt_in=member is not None and member.cold_opt_in,
                capacity_flops_per_s=str(node.capacity_flops_per_s),
                profile=HardwareProfile.model_validate(profile),
                registered_at_ms=node.registered_at_ms,
                last_seen_at_ms=node.last_seen_at_ms,
                verified_flops=str(flops),
                results_valid=results,
            )
        )
    assert len(listed) <= nodes_max
    return listed


def _nodes_total(uow: UnitOfWork, username: str) -> int:
    count = uow.session.scalar(
        select(func.count()).select_from(NodeRow).where(NodeRow.username == username)
    )
    return int(count or 0)


def _pools(uow: UnitOfWork, username: str) -> tuple[list[str], bool]:
    """The distinct pools of all the user's nodes, and whether any opted in to warm."""
    pool = func.coalesce(PoolMemberRow.pool, POOL_NONE)
    pools = uow.session.scalars(
        select(pool)
        .distinct()
        .select_from(NodeRow)
        .outerjoin(PoolMemberRow, PoolMemberRow.node_id == NodeRow.node_id)
        .where(NodeRow.username == username)
    ).all()
    warm = uow.session.scalar(
        select(func.count())
        .select_from(NodeRow)
        .join(PoolMemberRow, PoolMemberRow.node_id == NodeRow.node_id)
        .where(NodeRow.username == username, PoolMemberRow.warm_opt_in.is_(True))
    )
    return sorted(pools), bool(warm)
