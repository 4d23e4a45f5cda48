"""Institutions: an operator's verification moves the pooled nodes to institutional,
grants the Atlas++ entitlements once, and logs it; capacity alone does the same."""

from __future__ import annotations

import json

import pytest

from nexapod.errors import NexaPodError
from nexapod.ledger import log_store
from nexapod.policy import default_policy
from nexapod.pools import service
from nexapod.pools.membership import apply_moves, manage_pools
from nexapod.pools.rules import Move
from nexapod.pools.store import EntitlementRow, PoolMemberRow
from nexapod.storage.uow import UnitOfWorkFactory
from tests.pools.seeding import seed_world

POLICY = default_policy()
T = 10**12


def _kinds(uow_factory: UnitOfWorkFactory) -> list[str]:
    with uow_factory() as uow:
        size = log_store.read_tree_size(uow.session)
        return [json.loads(e)["kind"] for _, e, _ in log_store.read_entries(uow.session, 0, size)]


def _pools(uow_factory: UnitOfWorkFactory) -> dict[str, str]:
    with uow_factory() as uow:
        return {r.node_id: r.pool for r in uow.session.query(PoolMemberRow)}


def test_an_operator_verifies_an_institution(uow_factory: UnitOfWorkFactory) -> None:
    seed_world(
        uow_factory, [("lab-1", "lab", 50 * T), ("lab-2", "lab", 50 * T), ("x-1", "sam", T)], []
    )
    with uow_factory() as uow:
        apply_moves(uow.session, [Move("lab-1", "none", "hot", "admission")], {"lab-1": "lab"}, 10)
        uow.commit()
    with uow_factory() as uow:
        moves = service.verify_institution(uow, "lab", "  Lab of Spectra ", POLICY, 20)
    assert [(m.node_id, m.to_pool, m.reason) for m in moves] == [
        ("lab-1", "institutional", "institution")
    ]
    assert _pools(uow_factory) == {"lab-1": "institutional"}
    with uow_factory() as uow:
        kinds = {(r.username, r.kind) for r in uow.session.query(EntitlementRow)}
        assert service.verify_institution(uow, "lab", "Lab of Spectra", POLICY, 30) == []  # once
    assert kinds == {("lab", "unlimited"), ("lab", "early_access")}
    assert _kinds(uow_factory)[-4:] == [
        "institution_verified",
        "pool_transition",
        "atlas_entitlement",
        "atlas_entitlement",
    ]
    size = len(_kinds(uow_factory))
    for username, name, code in (
        ("nobody", "X", "registry.user_unknown"),
        ("sam", "", "pools.institution_name_invalid"),
    ):
        with uow_factory() as uow, pytest.raises(NexaPodError) as caught:
            service.verify_institution(uow, username, name, POLICY, 40)
        assert caught.value.code == code
    assert len(_kinds(uow_factory)) == size  # nothing changed


def test_capacity_past_the_floor_makes_a_contributor_institutional(
    uow_factory: UnitOfWorkFactory,
) -> None:
    big = POLICY.institutional_min_flops_per_s // 2 + 1  # two such nodes pass the floor
    seed_world(uow_factory, [("big-1", "hpc", big), ("big-2", "hpc", big), ("small", "sam", T)], [])
    with uow_factory() as uow:
        apply_moves(
            uow.session,
            [Move("big-1", "none", "hot", "admission"), Move("small", "none", "hot", "admission")],
            {"big-1": "hpc", "small": "sam"},
            10,
        )
        uow.commit()
    with uow_factory() as uow:
        moves = manage_pools(
            uow.session, POLICY, 20, idle_s=10**6, lost_s=10**6, write_off_s=86_400
        )
        uow.commit()
    assert [(m.node_id, m.to_pool, m.reason) for m in moves] == [
        ("big-1", "institutional", "capacity")
    ]
    with uow_factory() as uow:
        assert {r.kind for r in uow.session.query(EntitlementRow)} == {"unlimited", "early_access"}


def test_many_users_are_sieved_by_the_database_and_judged_exactly(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Past IN_LIST_MAX users the database picks the users whose nodes come near the floor
    and Python sums theirs exactly: the same answer as the exact sums of everyone."""
    from nexapod.pools.membership import IN_LIST_MAX, institutional_map
    from nexapod.pools.synthetic import add_nodes, add_users

    floor = POLICY.institutional_min_flops_per_s
    half = floor // 2
    many = [f"user{i:04d}" for i in range(IN_LIST_MAX + 50)]
    nodes = [(f"n-{name}", name, T) for name in many]
    nodes += [("hpc-1", "user0001", half), ("hpc-2", "user0001", half + 1)]  # above, with T
    nodes += [("at-1", "user0002", floor - T)]  # exactly at the floor with its T: not above
    nodes += [("lab-1", "user0003", 10**30)]  # one giant node
    with uow_factory() as uow:
        add_users(uow.session, [*many, "lonely"], 0)
        add_nodes(uow.session, nodes, 0)
        uow.commit()
    with uow_factory() as uow:
        everyone = institutional_map(uow.session, POLICY, many)
        one_by_one = {}
        for name in ("user0001", "user0002", "user0003", "user0004"):
            one_by_one.update(institutional_map(uow.session, POLICY, [name]))
    assert everyone == one_by_one == {"user0001": "capacity", "user0003": "capacity"}
