"""Disruptions through the pool manager on a real store (SQLite and PostgreSQL): a job's
capacity need promotes cold nodes and returns them once met or over; a lost node never
back is written off and its stand-ins return; stand-ins are chosen within the share cap.
Every move and write-off is an entry in the log."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import update

from nexapod.ledger import log_store
from nexapod.mesh.store import JobRow
from nexapod.policy import default_policy
from nexapod.pools import synthetic
from nexapod.pools.membership import apply_moves, gate_for_lease, manage_pools
from nexapod.pools.rules import Move, Pool
from nexapod.pools.service import pool_summary
from nexapod.pools.store import PoolMemberRow
from nexapod.registry.store import NodeRow
from nexapod.storage.uow import UnitOfWorkFactory
from tests.pools.seeding import seed_world

POLICY = default_policy()
T = 10**12
LOST_S = 120
WRITE_OFF_S = 3600
HOT = [
    ("h1", "alice", 10 * T),
    ("h2", "bob", 10 * T),
    ("h3", "carol", 10 * T),
    ("h4", "dan", 10 * T),
]


def _place(uow_factory: UnitOfWorkFactory, nodes: list[tuple[str, str, int]], pool: Pool) -> None:
    reason = "admission" if pool == "hot" else "cold_band"
    with uow_factory() as uow:
        moves = [Move(node_id, "none", pool, reason) for node_id, *_ in nodes]
        apply_moves(uow.session, moves, {n: user for n, user, _ in nodes}, 1_000)
        uow.commit()


def _job(uow_factory: UnitOfWorkFactory, status: str, need_flops_per_s: int | None) -> None:
    """The one (synthetic) job, with its status and capacity need."""
    with uow_factory() as uow:
        synthetic.set_job_status(uow.session, "alice", status, 1_000)
        uow.session.execute(
            update(JobRow)
            .where(JobRow.job_id == synthetic.SYNTHETIC_JOB_ID)
            .values(capacity_flops_per_s_min=need_flops_per_s)
        )
        uow.commit()


def _manage(
    uow_factory: UnitOfWorkFactory, now_ms: int, availability_ppm: dict[str, int] | None = None
) -> list[tuple[str, str, str, str]]:
    with uow_factory() as uow:
        moves = manage_pools(
            uow.session,
            POLICY,
            now_ms,
            idle_s=10**6,
            lost_s=LOST_S,
            write_off_s=WRITE_OFF_S,
            availability_ppm=availability_ppm,
        )
        uow.commit()
    return sorted((m.node_id, m.from_pool, m.to_pool, m.reason) for m in moves)


def _entries(uow_factory: UnitOfWorkFactory, kind: str) -> list[dict[str, Any]]:
    with uow_factory() as uow:
        size = log_store.read_tree_size(uow.session)
        bodies = [json.loads(e) for _, e, _ in log_store.read_entries(uow.session, 0, size)]
    return [body for body in bodies if body["kind"] == kind]


def _summary(uow_factory: UnitOfWorkFactory) -> Any:
    with uow_factory() as uow:
        return pool_summary(uow, POLICY)


def test_a_capacity_need_promotes_cold_nodes_and_returns_them_once_met_or_over(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cold = [("c1", "erin", 2 * T), ("c2", "fay", 2 * T), ("c3", "gus", 2 * T)]
    seed_world(uow_factory, [*HOT, *cold, ("h5", "hank", 3 * T)], [])
    _place(uow_factory, HOT, "hot")  # 40 TFLOP/s: the cold band is 4 to 8
    _place(uow_factory, cold, "cold")  # 6: inside it
    _job(uow_factory, "running", None)
    assert _manage(uow_factory, 2_000) == []  # a job without a need: nothing to do
    _job(uow_factory, "running", 46 * T)  # 6 short
    assert _manage(uow_factory, 3_000) == [
        (node_id, "cold", "hot", "capacity_need") for node_id, *_ in cold
    ]
    summary = _summary(uow_factory)
    assert summary.disrupted and summary.capacity_need_flops_per_s == str(46 * T)
    assert summary.stand_ins_owed_flops_per_s == str(6 * T)
    assert _manage(uow_factory, 4_000) == []  # met: nothing moves (no flapping)
    # hank's 3 TFLOP/s joins hot: 3 short, so one 2-TFLOP/s stand-in is no longer needed
    _place(uow_factory, [("h5", "hank", 3 * T)], "hot")
    back = _manage(uow_factory, 5_000)
    assert [(m[2], m[3]) for m in back] == [("cold", "disruption_over")]
    # the job ends: the others return too
    _job(uow_factory, "done", 46 * T)
    back += _manage(uow_factory, 6_000)
    assert sorted(m[0] for m in back) == ["c1", "c2", "c3"]
    assert not _summary(uow_factory).disrupted
    logged = [(e["node_id"], e["reason"]) for e in _entries(uow_factory, "pool_transition")]
    assert [r for _, r in logged].count("capacity_need") == 3
    assert [r for _, r in logged].count("disruption_over") == 3


def test_a_lost_node_never_back_is_written_off_and_its_stand_ins_return(
    uow_factory: UnitOfWorkFactory,
) -> None:
    cold = [("c1", "erin", 3 * T), ("c2", "fay", 3 * T)]
    seed_world(uow_factory, [*HOT, *cold], [])
    _place(uow_factory, HOT, "hot")
    _place(uow_factory, cold, "cold")
    _job(uow_factory, "running", None)
    with uow_factory() as uow:  # h1 fails mid-unit: its lease lapses, it goes silent
        synthetic.add_lapsed_leases(uow.session, [("h1", "alice", 1_500, 60_000)], 0)
        uow.commit()
    lost_at_ms = 200_000
    moves = _manage(uow_factory, lost_at_ms)
    assert ("h1", "hot", "none", "lost") in moves
    assert {m[0] for m in moves if m[3] == "failover"} == {"c1", "c2"}  # 6 of 10 owed
    assert _manage(uow_factory, lost_at_ms + WRITE_OFF_S * 1000 - 1) == []  # still owed
    moves = _manage(uow_factory, lost_at_ms + WRITE_OFF_S * 1000)
    assert {(m[0], m[2], m[3]) for m in moves if m[3] == "disruption_over"} == {
        ("c1", "cold", "disruption_over"),
        ("c2", "cold", "disruption_over"),
    }
    (entry,) = _entries(uow_factory, "pool_write_off")
    assert (entry["node_id"], entry["lost_at_ms"]) == ("h1", lost_at_ms)
    with uow_factory() as uow:
        row = uow.session.get(PoolMemberRow, "h1")
        assert row is not None and (row.pool, row.reason) == ("none", "written_off")
        assert row.log_index == log_store.read_tree_size(uow.session) - len(moves) - 1
    assert not _summary(uow_factory).disrupted
    # it comes back after all: it rejoins like any node, and no disruption starts again
    with uow_factory() as uow:
        node = uow.session.get(NodeRow, "h1")
        assert node is not None
        gate = gate_for_lease(uow.session, node, lost_at_ms + 10**7, POLICY)
        uow.commit()
    assert (gate.may_work, gate.pool, gate.reason) == (True, "hot", "admission")
    assert _manage(uow_factory, lost_at_ms + 10**7 + 1) == []
    assert len(_entries(uow_factory, "pool_write_off")) == 1


def test_stand_ins_are_chosen_within_the_share_cap(uow_factory: UnitOfWorkFactory) -> None:
    hot = [("a1", "alice", 34 * T), ("b1", "bob", 33 * T), ("c1", "carol", 33 * T)]
    cold = [("a2", "alice", 10 * T), ("d1", "dave", 10 * T)]
    seed_world(uow_factory, [*hot, *cold], [])
    _place(uow_factory, hot, "hot")
    _place(uow_factory, cold, "cold")
    _job(uow_factory, "running", 120 * T)  # 20 short
    # alice's standby is the more available, but 44 of 110 (or 120) would pass 0.35
    moves = _manage(uow_factory, 2_000, availability_ppm={"a2": 1_000_000, "d1": 900_000})
    assert moves == [("d1", "cold", "hot", "capacity_need")]
    summary = _summary(uow_factory)
    assert summary.stand_ins_owed_flops_per_s == str(20 * T)  # 10 of it unreplaced
    assert max(float(user.share) for user in summary.top_users) <= 0.35
