"""A job's capacity need through the HTTP API, on SQLite and PostgreSQL: stated at
submission as decimal text, shown in the job view and the pools' summary; a bad one is
refused as problem details with a code, and changes nothing."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from nexapod.ledger import log_store
from tests.factories import make_user, signed
from tests.mesh.test_mesh_api import JOB

NEED = str(2 * 10**15)  # 2 PFLOP/s: past 2^53, so decimal text


def _tree_size(api: TestClient) -> int:
    ctx: Any = api.app.state.context  # type: ignore[attr-defined]
    with ctx.uow_factory() as uow:
        return int(log_store.read_tree_size(uow.session))


def test_a_job_states_its_capacity_need_and_the_views_show_it(api: TestClient) -> None:
    alice = make_user(api, "alice")
    response = signed(api, alice, "POST", "/v1/jobs", {**JOB, "capacity_flops_per_s_min": NEED})
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["capacity_flops_per_s_min"] == NEED
    assert api.get(f"/v1/jobs/{job['job_id']}").json()["capacity_flops_per_s_min"] == NEED
    summary = api.get("/v1/pools").json()
    # no hot node yet: the whole need is owed to stand-ins (and no cold node to promote)
    assert summary["capacity_need_flops_per_s"] == NEED
    assert summary["stand_ins_owed_flops_per_s"] == NEED and summary["disrupted"] is True
    plain = signed(api, alice, "POST", "/v1/jobs", JOB)
    assert plain.status_code == 201 and plain.json()["capacity_flops_per_s_min"] is None
    assert api.get("/v1/pools").json()["capacity_need_flops_per_s"] == NEED  # summed


def test_a_bad_capacity_need_is_refused_and_changes_nothing(api: TestClient) -> None:
    alice = make_user(api, "alice")
    size = _tree_size(api)
    cases: list[tuple[object, str]] = [
        ("0", "mesh.capacity_need_invalid"),  # leave it out for "no need"
        (str(10**20 + 1), "mesh.capacity_need_invalid"),  # past job_capacity_flops_per_s_max
        ("007", "protocol.invalid_request"),  # not canonical
        ("2e15", "protocol.invalid_request"),
        (2 * 10**15, "protocol.invalid_request"),  # a JSON number: exact only to 2^53
        ("-5", "protocol.invalid_request"),
    ]
    for need, code in cases:
        body = {**JOB, "capacity_flops_per_s_min": need}
        response = signed(api, alice, "POST", "/v1/jobs", body)
        assert response.status_code == 422, (need, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == code, (need, problem)
        assert problem["status"] == 422 and problem["type"].endswith(code)
        if code == "mesh.capacity_need_invalid":
            assert problem["capacity_flops_per_s_max"] == str(10**20)
    assert api.get("/v1/jobs").json()["jobs"] == []
    assert _tree_size(api) == size
    assert api.get("/v1/pools").json()["capacity_need_flops_per_s"] == "0"
