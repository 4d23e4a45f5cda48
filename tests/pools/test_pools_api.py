"""Pools through the HTTP API, on SQLite and PostgreSQL: the lease gate admits nodes to
hot under the share cap, parks the rest in warm with the reason, preferences are signed
and logged, the manager returns idle nodes and replaces lost ones from cold, and a
settled epoch pays the work through the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.mesh import service as mesh
from nexapod.pools.membership import manage_pools
from nexapod.pools.settle import epoch_of
from nexapod.pools.settling import fund_treasury, settle_due_epochs
from nexapod.registry import blacklist
from nexapod.settings import Settings
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import Actor, make_node, make_user, result_item, signed
from tests.mesh.test_mesh_api import Clock, _compute, _lease, _submit, _submit_results
from tests.mesh.test_validation_api import _api


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    yield from _api(settings, clock)


def _ctx(api: TestClient) -> Any:
    return api.app.state.context  # type: ignore[attr-defined]


def _uow_factory(api: TestClient) -> UnitOfWorkFactory:
    return _ctx(api).uow_factory  # type: ignore[no-any-return]


def _pool(api: TestClient, node: Actor) -> dict[str, Any]:
    response = api.get(f"/v1/nodes/{node.name}/pool")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _lease_raw(api: TestClient, node: Actor, clock: Clock) -> dict[str, Any]:
    response = signed(api, node, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=clock.s)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _manage(api: TestClient, clock: Clock, **kw: int) -> list[Any]:
    ctx = _ctx(api)
    with ctx.uow() as uow:
        moves = manage_pools(
            uow.session,
            ctx.policy,
            clock(),
            idle_s=kw.get("idle_s", 300),
            lost_s=kw.get("lost_s", 120),
            write_off_s=kw.get("write_off_s", 86_400),
        )
        uow.commit()
    return moves


def _kinds(api: TestClient) -> list[dict[str, Any]]:
    with _uow_factory(api)() as uow:
        size = log_store.read_tree_size(uow.session)
        return [json.loads(e) for _, e, _ in log_store.read_entries(uow.session, 0, size)]


def test_the_share_cap_parks_a_node_in_warm_with_the_reason(api: TestClient, clock: Clock) -> None:
    users = [make_user(api, name) for name in ("alice", "bob", "carol")]
    alice_1, bob_1, carol_1 = (make_node(api, user) for user in users)
    alice_2 = make_node(api, users[0])
    idle = _lease_raw(api, alice_1, clock)  # no job yet: no admission, no flapping
    assert idle["leases"] == [] and idle["pool"] == "none"
    _submit(api, users[0], clock)
    for node in (alice_1, bob_1, carol_1):
        answer = _lease_raw(api, node, clock)
        assert answer["pool"] == "hot" and len(answer["leases"]) == 1
    parked = _lease_raw(api, alice_2, clock)  # alice would hold 2 of 4 equal nodes: 50 %
    assert (parked["leases"], parked["pool"], parked["pool_reason"]) == ([], "warm", "share_cap")
    again = _lease_raw(api, alice_2, clock)
    assert again["pool_reason"] == "share_cap"
    transitions = [e for e in _kinds(api) if e["kind"] == "pool_transition"]
    assert [(t["to"], t["reason"]) for t in transitions] == [
        ("hot", "admission"),
        ("hot", "admission"),
        ("hot", "admission"),
        ("warm", "share_cap"),
    ]  # the second refusal is not logged again
    summary = api.get("/v1/pools").json()
    assert summary["share_cap_binds"] is True
    assert {p["pool"]: p["nodes"] for p in summary["pools"]}["hot"] == 3
    assert _pool(api, alice_2)["transitions"][0]["reason"] == "share_cap"


def test_preferences_are_signed_by_the_node_and_bad_ones_change_nothing(
    api: TestClient, clock: Clock
) -> None:
    alice, bob = make_user(api, "alice"), make_user(api, "bob")
    node, other = make_node(api, alice), make_node(api, bob)
    path = f"/v1/nodes/{node.name}/pool"
    size = len(_kinds(api))
    foreign = signed(api, other, "POST", path, {"warm_opt_in": True}, timestamp_s=clock.s)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "pools.not_your_node")
    empty = signed(api, node, "POST", path, {}, timestamp_s=clock.s)
    assert (empty.status_code, empty.json()["code"]) == (422, "pools.preference_empty")
    unknown = api.get("/v1/nodes/nope/pool")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "registry.node_unknown")
    assert len(_kinds(api)) == size  # nothing logged
    ok = signed(
        api, node, "POST", path, {"warm_opt_in": True, "cold_opt_in": True}, timestamp_s=clock.s
    )
    assert ok.status_code == 200, ok.text
    assert (ok.json()["pool"], ok.json()["warm_opt_in"], ok.json()["cold_opt_in"]) == (
        "warm",
        True,
        True,
    )
    kinds = [e["kind"] for e in _kinds(api)[size:]]
    assert kinds == ["pool_preference", "pool_transition"]
    with _uow_factory(api)() as uow:
        blacklist.list_node(uow.session, other.name, "test", {}, clock(), include_user=False)
        uow.commit()
    barred = signed(
        api,
        other,
        "POST",
        f"/v1/nodes/{other.name}/pool",
        {"warm_opt_in": True},
        timestamp_s=clock.s,
    )
    assert barred.status_code == 403 and barred.json()["code"] == "registry.blacklisted"


def test_idle_nodes_leave_hot_and_lost_ones_are_replaced_from_cold(
    api: TestClient, clock: Clock
) -> None:
    users = [make_user(api, name) for name in ("alice", "bob", "carol", "dave")]
    hot_a, hot_b = make_node(api, users[0]), make_node(api, users[1])
    cold_c = make_node(api, users[2], capacity_flops_per_s=2 * 10**9)
    warm_d = make_node(api, users[3], capacity_flops_per_s=10**9)
    for node in (cold_c, warm_d):
        response = signed(
            api,
            node,
            "POST",
            f"/v1/nodes/{node.name}/pool",
            {"cold_opt_in": True, "warm_opt_in": True},
            timestamp_s=clock.s,
        )
        assert response.status_code == 200
    _submit(api, users[0], clock)
    (grant_a,) = _lease(api, hot_a, clock, 1)
    (grant_b,) = _lease(api, hot_b, clock, 1)
    moves = _manage(api, clock)  # hot 2 x 10 GFLOP/s: band 2 to 4, target 3: both fit
    assert sorted((m.node_id, m.to_pool, m.reason) for m in moves) == sorted(
        [(cold_c.name, "cold", "cold_band"), (warm_d.name, "cold", "cold_band")]
    )
    assert _lease_raw(api, cold_c, clock)["pool"] == "cold"  # a standby gets no work
    # hot_b goes silent: its lease lapses and it is not heard from
    done = _submit_results(api, hot_a, clock, [result_item(hot_a, grant_a, _compute(api, grant_a))])
    assert done.status_code == 200
    clock.offset_ms += 200_000
    with _uow_factory(api)() as uow:  # the maintenance pass expires b's lease
        assert mesh.expire_overdue_leases(uow, clock(), 5) == 1
        uow.commit()
    moves = _manage(api, clock)
    reasons = {(m.node_id, m.from_pool, m.to_pool, m.reason) for m in moves}
    assert (hot_b.name, "hot", "none", "lost") in reasons
    # one stand-in (the first of two equally available): the second would make a third
    # user in hot, so the cap would bind with alice far above it; it stays cold
    (stand_in,) = [node for node in (cold_c, warm_d) if _pool(api, node)["promoted"]]
    (standby,) = [node for node in (cold_c, warm_d) if node is not stand_in]
    assert (stand_in.name, "cold", "hot", "failover") in reasons
    assert _pool(api, standby)["pool"] == "cold"
    summary = api.get("/v1/pools").json()
    assert summary["disrupted"] is True
    assert summary["stand_ins_owed_flops_per_s"] == str(10**10)  # hot_b's capacity
    promoted = _lease_raw(api, stand_in, clock)  # the stand-in resumes the lost unit
    assert promoted["pool"] == "hot" and promoted["leases"][0]["unit_id"] == grant_b.unit_id
    assert grant_b.unit_id != grant_a.unit_id


def test_a_settled_epoch_pays_the_validated_work(api: TestClient, clock: Clock) -> None:
    alice, bob = make_user(api, "alice"), make_user(api, "bob")
    node_a, node_b = make_node(api, alice), make_node(api, bob)
    _submit(api, alice, clock)
    paid_flops = {}
    for node in (node_a, node_b):
        (grant,) = _lease(api, node, clock, 1)
        response = _submit_results(
            api, node, clock, [result_item(node, grant, _compute(api, grant))]
        )
        assert response.status_code == 200
        paid_flops[node.name] = grant.work_flops
    ctx = _ctx(api)
    fund_treasury(ctx.uow_factory, 10**9, "seed", clock())
    epoch = epoch_of(clock(), ctx.policy.epoch_s)
    assert settle_due_epochs(ctx.uow_factory, ctx.policy, clock()) == []  # still open
    clock.offset_ms += ctx.policy.epoch_s * 1000
    (report,) = settle_due_epochs(ctx.uow_factory, ctx.policy, clock())
    assert report.epoch_index == epoch and report.nodes_paid == 2
    view = api.get(f"/v1/rewards/epochs/{epoch}").json()
    assert {line["node_id"]: int(line["flops"]) for line in view["lines"]} == paid_flops
    with ctx.uow_factory() as uow:
        nxc = ledger.get_account(uow, "user:alice:NXC").balance
    assert str(nxc) == next(
        line["nxc_micro"] for line in view["lines"] if line["username"] == "alice"
    )
    assert int(api.get("/v1/treasury").json()["available_micro_usdc"]) == 10**9 - int(
        view["usdc_paid_micro_total"]
    )
    missing = api.get(f"/v1/rewards/epochs/{epoch + 1}")
    assert (missing.status_code, missing.json()["code"]) == (404, "pools.epoch_unknown")
