"""Status pages, the leaderboard and the stats export through the HTTP API, on SQLite and
PostgreSQL: exact figures as decimal text, paging one snapshot, JSON and CSV that agree,
the hourly refresh, and problems for unknown users and snapshots."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nexapod.coordinator.app import create_app
from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import run_maintenance_once
from nexapod.protocol.v1 import STATS_CSV_COLUMNS, StatsExport, UserStatus
from nexapod.registry.stats_store import StatsSnapshotRow
from nexapod.settings import Settings
from tests.factories import PROFILE, fund, make_node, make_user, result_item
from tests.mesh.test_mesh_api import Clock, _compute, _lease, _submit, _submit_results
from tests.registry.credits import credit, place

PAGE_SIZE = 2
HOUR_MS = 3_600_000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def stats_api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(
        settings.with_overrides(page_size_max=PAGE_SIZE), clock_ms=clock, run_maintenance=False
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _ctx(api: TestClient) -> Context:
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    return ctx


def _snapshots(api: TestClient) -> int:
    with _ctx(api).read_uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(StatsSnapshotRow)) or 0)


def _contributors(api: TestClient, clock: Clock, flops: dict[str, int]) -> dict[str, str]:
    """A user with one node per entry of ``flops``, credited that much now; returns node ids."""
    nodes = {}
    for name, amount in flops.items():
        node = make_node(api, make_user(api, name)).name
        nodes[name] = node
        left = amount
        while left:  # one result holds less than 2^63
            part = min(left, 2**62)
            credit(_ctx(api).uow_factory, node, name, part, clock())
            left -= part
    return nodes


def _problem(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_status_page_shows_nodes_pools_flops_and_exact_balances(
    stats_api: TestClient, clock: Clock
) -> None:
    alice = make_user(stats_api, "alice")
    first = make_node(stats_api, alice, capacity_flops_per_s=2**60).name
    second = make_node(stats_api, alice).name
    third = make_node(stats_api, alice).name
    _contributors(stats_api, clock, {"bob": 10**9})
    ctx = _ctx(stats_api)
    big = 2**63 - 1
    for _ in range(3):
        credit(ctx.uow_factory, first, "alice", big, clock())
    credit(ctx.uow_factory, second, "alice", 5, clock())
    credit(ctx.uow_factory, second, "alice", 7, clock(), status="invalid")
    place(ctx.uow_factory, first, "alice", "hot", warm=True)
    place(ctx.uow_factory, second, "alice", "warm", warm=False)
    fund(ctx.uow_factory, "user:alice:NXC", 2**64 + 5)
    fund(ctx.uow_factory, "user:alice:USDC", 2**70 + 3)

    response = stats_api.get("/v1/users/alice/status")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified_flops"] == str(3 * big + 5)
    assert body["results_valid"] == 4
    assert body["pools"] == ["hot", "none", "warm"]
    assert body["warm_opt_in"] is True
    assert body["nodes_total"] == 3
    assert [n["node_id"] for n in body["nodes"]] == sorted([first, second, third])[:PAGE_SIZE]
    expected = {
        first: (str(2**60), str(3 * big), 3, "hot", True),
        second: (str(10**10), "5", 1, "warm", False),
        third: (str(10**10), "0", 0, "none", False),
    }
    for node in body["nodes"]:
        shown = (
            node["capacity_flops_per_s"],
            node["verified_flops"],
            node["results_valid"],
            node["pool"],
            node["warm_opt_in"],
        )
        assert shown == expected[node["node_id"]]
        assert node["profile"] == PROFILE
    balances = {b["asset"]: (b["balance"], b["available"]) for b in body["balances"]}
    assert balances == {
        "NXC": (str(2**64 + 5), str(2**64 + 5)),
        "USDC": (str(2**70 + 3), str(2**70 + 3)),
        "USD": ("0", "0"),
    }
    ranking = body["ranking"]
    assert (ranking["rank"], ranking["users_total"]) == (1, 2)
    assert ranking["verified_flops"] == str(3 * big + 5)
    assert ranking["next_refresh_at_ms"] == ranking["generated_at_ms"] + 3600 * 1000
    UserStatus.model_validate_json(response.content)


def test_unknown_user_is_a_404_problem_and_changes_nothing(stats_api: TestClient) -> None:
    _problem(stats_api.get("/v1/users/nobody/status"), 404, "registry.user_unknown")
    assert _snapshots(stats_api) == 0


def test_a_new_contributor_has_no_rank_until_the_next_snapshot(
    stats_api: TestClient, clock: Clock
) -> None:
    _contributors(stats_api, clock, {"alice": 10})
    assert stats_api.get("/v1/users/alice/status").json()["ranking"]["rank"] == 1
    _contributors(stats_api, clock, {"bob": 100})
    assert stats_api.get("/v1/users/bob/status").json()["ranking"] is None
    clock.offset_ms += HOUR_MS
    ranking = stats_api.get("/v1/users/bob/status").json()["ranking"]
    assert (ranking["rank"], ranking["users_total"]) == (1, 2)


def test_leaderboard_pages_through_one_snapshot(stats_api: TestClient, clock: Clock) -> None:
    flops = {"alice": 50, "bob": 40, "carol": 40, "dave": 10, "erin": 0}
    _contributors(stats_api, clock, flops)
    first = stats_api.get("/v1/leaderboard?limit=100").json()
    assert first["snapshot"]["users_total"] == 5
    assert first["snapshot"]["verified_flops_total"] == "140"
    assert len(first["entries"]) == PAGE_SIZE, "limit is capped by the page size"
    entries = list(first["entries"])
    cursor = first["next_cursor"]
    credit(
        _ctx(stats_api).uow_factory,
        make_node(stats_api, make_user(stats_api, "zed")).name,
        "zed",
        99,
        clock(),
    )
    clock.offset_ms += HOUR_MS  # a new snapshot is due: the cursor stays on its own
    while cursor is not None:
        page = stats_api.get(f"/v1/leaderboard?limit=100&cursor={cursor}").json()
        assert page["snapshot"]["snapshot_id"] == first["snapshot"]["snapshot_id"]
        entries.extend(page["entries"])
        cursor = page["next_cursor"]
    assert [(e["rank"], e["username"], e["verified_flops"]) for e in entries] == [
        (1, "alice", "50"),
        (2, "bob", "40"),
        (2, "carol", "40"),
        (4, "dave", "10"),
        (5, "erin", "0"),
    ]
    past_the_end = f"{first['snapshot']['snapshot_id']}:99"
    beyond = stats_api.get(f"/v1/leaderboard?cursor={past_the_end}").json()
    assert (beyond["entries"], beyond["next_cursor"]) == ([], None)
    newest = stats_api.get("/v1/leaderboard").json()
    assert newest["snapshot"]["snapshot_id"] == first["snapshot"]["snapshot_id"] + 1
    assert newest["entries"][0]["username"] == "zed"


def test_bad_cursors_and_snapshots_are_problems(stats_api: TestClient) -> None:
    _problem(stats_api.get("/v1/leaderboard?cursor=nope"), 422, "protocol.invalid_request")
    _problem(stats_api.get("/v1/leaderboard?limit=0"), 422, "protocol.invalid_request")
    _problem(stats_api.get("/v1/leaderboard?cursor=7:0"), 404, "registry.stats_snapshot_unknown")
    _problem(
        stats_api.get("/v1/stats/export?snapshot_id=7"), 404, "registry.stats_snapshot_unknown"
    )
    _problem(stats_api.get("/v1/stats/export.csv?snapshot_id=0"), 422, "protocol.invalid_request")
    assert _snapshots(stats_api) == 0


def test_export_json_and_csv_are_the_same_table(stats_api: TestClient, clock: Clock) -> None:
    flops = {f"user{i:02d}": (i % 4) * 2**62 for i in range(7)}
    _contributors(stats_api, clock, flops)
    exported = stats_api.get("/v1/stats/export")
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/json"
    document = StatsExport.model_validate_json(exported.content)
    snapshot = document.snapshot
    assert snapshot.users_total == len(document.entries) == 7
    assert int(snapshot.verified_flops_total) == sum(flops.values())
    assert {e.username: int(e.verified_flops) for e in document.entries} == flops
    assert exported.headers["NexaPod-Stats-Snapshot-Id"] == str(snapshot.snapshot_id)
    assert exported.headers["NexaPod-Stats-Rows"] == "7"
    assert exported.headers["Cache-Control"] == "public, max-age=3600"

    table = stats_api.get(f"/v1/stats/export.csv?snapshot_id={snapshot.snapshot_id}")
    assert table.status_code == 200, table.text
    assert table.headers["content-type"] == "text/csv; charset=utf-8"
    assert table.headers["NexaPod-Stats-Snapshot-Id"] == str(snapshot.snapshot_id)
    rows = list(csv.reader(io.StringIO(table.text)))
    assert tuple(rows[0]) == STATS_CSV_COLUMNS
    as_json = [[str(v) for v in e.model_dump().values()] for e in document.entries]
    assert rows[1:] == as_json
    assert table.content.count(b"\r\n") == 8


def test_export_is_refreshed_hourly(stats_api: TestClient, clock: Clock) -> None:
    nodes = _contributors(stats_api, clock, {"alice": 10})
    first = json.loads(stats_api.get("/v1/stats/export").content)["snapshot"]
    credit(_ctx(stats_api).uow_factory, nodes["alice"], "alice", 5, clock())
    clock.offset_ms += HOUR_MS - 60_000
    same = json.loads(stats_api.get("/v1/stats/export").content)["snapshot"]
    assert same == first
    clock.offset_ms += 60_000
    table = stats_api.get("/v1/stats/export.csv")
    assert table.headers["NexaPod-Stats-Snapshot-Id"] == str(first["snapshot_id"] + 1)
    assert table.text.splitlines()[1].startswith("1,alice,15,")
    second = json.loads(stats_api.get("/v1/stats/export").content)["snapshot"]
    assert second["snapshot_id"] == first["snapshot_id"] + 1
    assert second["verified_flops_total"] == "15"
    assert second["generated_at_ms"] >= first["next_refresh_at_ms"]


def test_too_many_contributors_is_a_503_problem(settings: Settings) -> None:
    app = create_app(settings.with_overrides(stats_users_max=1), run_maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as api:
        make_user(api, "alice")
        make_user(api, "bob")
        _problem(api.get("/v1/stats/export"), 503, "registry.stats_users_max_exceeded")
        _problem(api.get("/v1/users/alice/status"), 503, "registry.stats_users_max_exceeded")
        run_maintenance_once(_ctx(api))  # logs the failure, and carries on
        assert _snapshots(api) == 0


def test_work_verified_through_the_mesh_is_on_the_status_page(
    stats_api: TestClient, clock: Clock
) -> None:
    alice = make_user(stats_api, "alice")
    node = make_node(stats_api, alice)
    _submit(stats_api, alice, clock)
    grants = _lease(stats_api, node, clock, 3)
    items = [result_item(node, g, _compute(stats_api, g)) for g in grants]
    assert _submit_results(stats_api, node, clock, items).status_code == 200
    verified = stats_api.get(f"/v1/nodes/{node.name}").json()["verified_flops"]
    assert verified > 0
    status = stats_api.get("/v1/users/alice/status").json()
    assert status["verified_flops"] == str(verified)
    assert status["results_valid"] == len(grants)
    assert status["ranking"]["verified_flops"] == str(verified)
    assert int(status["ranking"]["recent_avg_flops_per_day"]) > 0
