"""Jobs, leases and signed results through the HTTP API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from nexapod.coordinator.app import create_app
from nexapod.coordinator.maintenance import run_maintenance_once
from nexapod.crypto import SigningKey, b64encode, sha256_hex
from nexapod.protocol.v1 import HEADER_RESULT_DOCUMENT, HEADER_RESULT_SIGNATURE, LeaseGrant
from nexapod.settings import Settings
from nexapod.workloads import atlas
from tests.factories import Actor, make_node, make_user, result_item, signed

N_SPECTRA = 200
BLOCK_SIZE = 64  # 4 blocks: 10 units
K = 5
JOB = {
    "workload": "atlas",
    "params": {"block_size": BLOCK_SIZE, "k": K, "embedding_dim": 256},
    "dataset": {"kind": "synthetic", "n_spectra": N_SPECTRA, "seed": 3},
}


class Clock:
    """Wall time plus an offset that a test moves forward."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    @property
    def s(self) -> int:
        return self() // 1000


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def mesh_api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(
        settings.with_overrides(lease_s_min=30, lease_s_max=60),
        clock_ms=clock,
        run_maintenance=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _submit(api: TestClient, user: Actor, clock: Clock) -> dict[str, Any]:
    response = signed(api, user, "POST", "/v1/jobs", JOB, timestamp_s=clock.s)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _lease(api: TestClient, node: Actor, clock: Clock, units_max: int) -> list[LeaseGrant]:
    response = signed(
        api, node, "POST", "/v1/leases", {"units_max": units_max}, timestamp_s=clock.s
    )
    assert response.status_code == 200, response.text
    return [LeaseGrant.model_validate(g) for g in response.json()["leases"]]


def _compute(api: TestClient, grant: LeaseGrant) -> bytes:
    """Compute a unit honestly from the blocks the coordinator serves."""
    spec = grant.unit_spec
    params = atlas.AtlasParams.from_dict(spec["params"])
    shape = atlas.UnitShape.from_dict(spec["shape"])
    blocks = []
    for ref in grant.inputs:
        data = api.get(ref.path).content
        assert sha256_hex(data) == ref.sha256
        assert len(data) == ref.size_bytes
        blocks.append(data)
    row = atlas.decode_block(blocks[0], shape.n_rows, params.embedding_dim)
    col = (
        row
        if shape.is_diagonal
        else atlas.decode_block(blocks[1], shape.n_cols, params.embedding_dim)
    )
    return atlas.encode_unit_result(atlas.compute_unit(row, col, shape, params.k), shape)


def _submit_results(api: TestClient, node: Actor, clock: Clock, items: list[dict[str, Any]]) -> Any:
    return signed(api, node, "POST", "/v1/results", {"results": items}, timestamp_s=clock.s)


@pytest.fixture
def actors(mesh_api: TestClient) -> tuple[Actor, Actor, Actor]:
    alice = make_user(mesh_api, "alice")
    bob = make_user(mesh_api, "bob")
    return alice, make_node(mesh_api, alice), make_node(mesh_api, bob, fingerprint="ee" * 32)


def test_job_runs_to_a_graph_equal_to_brute_force(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node_a, node_b = actors
    job = _submit(mesh_api, alice, clock)
    params = atlas.AtlasParams(**JOB["params"])
    assert job["units_total"] == 10
    assert job["work_flops_total"] == atlas.job_flops(N_SPECTRA, params)
    assert job["status"] == "running"

    for node in (node_a, node_b, node_a, node_b):
        grants = _lease(mesh_api, node, clock, 3)
        items = [result_item(node, g, _compute(mesh_api, g)) for g in grants]
        if items:
            response = _submit_results(mesh_api, node, clock, items)
            assert response.status_code == 200, response.text
            assert [a["status"] for a in response.json()["acks"]] == ["accepted"] * len(items)
    assert _lease(mesh_api, node_a, clock, 3) == []

    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 10
    assert view["status"] == "merging"
    assert run_maintenance_once(mesh_api.app.state.context) == 1
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["status"] == "done"
    assert view["work_flops_done"] == view["work_flops_total"]
    assert sum(n["verified_flops"] for n in view["nodes"]) == view["work_flops_total"]
    assert {n["username"] for n in view["nodes"]} == {"alice", "bob"}

    product = mesh_api.get(f"/v1/jobs/{job['job_id']}/product")
    assert sha256_hex(product.content) == view["product_sha256"]
    graph = atlas.decode_graph(product.content)
    embeddings = atlas.synthetic_embeddings(N_SPECTRA, 3, params)
    reference = atlas.brute_force_knn(embeddings, K)
    np.testing.assert_allclose(graph.sims, reference.sims, atol=1e-5)
    assert (graph.ids == reference.ids).mean() > 0.99  # ties may order differently

    sample = mesh_api.get(f"/v1/jobs/{job['job_id']}/atlas/17").json()
    assert [n["spectrum_index"] for n in sample["neighbours"]] == list(graph.ids[17])
    out_of_range = mesh_api.get(f"/v1/jobs/{job['job_id']}/atlas/{N_SPECTRA}")
    assert out_of_range.json()["code"] == "mesh.spectrum_out_of_range"


def test_duplicate_result_is_idempotent_and_a_different_one_conflicts(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node, _ = actors
    job = _submit(mesh_api, alice, clock)
    (grant,) = _lease(mesh_api, node, clock, 1)
    data = _compute(mesh_api, grant)
    item = result_item(node, grant, data)
    first = _submit_results(mesh_api, node, clock, [item])
    again = _submit_results(mesh_api, node, clock, [item])
    assert first.json()["acks"][0]["status"] == "accepted"
    assert again.json()["acks"][0]["status"] == "duplicate"
    assert again.json()["acks"][0]["verified_flops"] == first.json()["acks"][0]["verified_flops"]
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 1
    assert view["work_flops_done"] == grant.work_flops

    shape = atlas.UnitShape.from_dict(grant.unit_spec["shape"])
    result = atlas.decode_unit_result(data, shape, K, N_SPECTRA)
    other = atlas.encode_unit_result(
        atlas.UnitResult(
            result.row_ids,
            result.row_sims * np.float32(0.5),
            result.col_ids,
            result.col_sims * np.float32(0.5),
        ),
        shape,
    )
    conflict = _submit_results(mesh_api, node, clock, [result_item(node, grant, other)])
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "mesh.result_conflict"


def test_expired_lease_returns_unit_to_queue_and_late_result_is_refused(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node_a, node_b = actors
    job = _submit(mesh_api, alice, clock)
    (grant,) = _lease(mesh_api, node_a, clock, 1)
    assert grant.deadline_at_ms - grant.granted_at_ms >= 30_000
    clock.offset_ms += grant.deadline_at_ms - grant.granted_at_ms + 1000
    regranted = _lease(mesh_api, node_b, clock, 1)
    assert [g.unit_id for g in regranted] == [grant.unit_id]
    late = _submit_results(
        mesh_api, node_a, clock, [result_item(node_a, grant, _compute(mesh_api, grant))]
    )
    assert late.status_code == 410
    assert late.json()["code"] == "mesh.lease_expired"
    assert late.json()["item_index"] == 0
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 0
    assert view["units_leased"] == 1


def test_bad_results_are_refused_and_change_nothing(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node_a, node_b = actors
    job = _submit(mesh_api, alice, clock)
    grant_a, grant_a2 = _lease(mesh_api, node_a, clock, 2)
    data = _compute(mesh_api, grant_a)
    good = result_item(node_a, grant_a, data)

    cases: list[tuple[Actor, list[dict[str, Any]], int, str]] = [
        # another node submits for node_a's lease (signed by node_b for itself)
        (node_b, [result_item(node_b, grant_a, data)], 403, "mesh.lease_not_yours"),
        # (forged, replayed and other nodes' signed results are tampering: they
        # blacklist the node, see test_validation_api.py)
        # bytes that do not match the signed hash
        (
            node_a,
            [{**good, "result_b64": result_item(node_a, grant_a, data[:-4])["result_b64"]}],
            422,
            "protocol.result_hash_mismatch",
        ),
        # bytes that are not a result of this unit
        (node_a, [result_item(node_a, grant_a, b"not a result")], 422, "workload.result_malformed"),
        # a batch whose second item is bad: the first must not be accepted either
        (node_a, [good, result_item(node_a, grant_a2, b"junk")], 422, "workload.result_malformed"),
        (node_a, [{**good, "result_b64": "***"}], 422, "protocol.result_encoding"),
    ]
    for signer, items, status, code in cases:
        response = _submit_results(mesh_api, signer, clock, items)
        assert response.status_code == status, (code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 0
    assert view["work_flops_done"] == 0
    assert view["nodes"] == []
    ok = _submit_results(mesh_api, node_a, clock, [good])
    assert ok.status_code == 200


def test_malformed_and_oversized_requests(settings: Settings, clock: Clock) -> None:
    small = settings.with_overrides(body_bytes_max=4096, result_bytes_max=2048)
    with TestClient(
        create_app(small, clock_ms=clock, run_maintenance=False), raise_server_exceptions=False
    ) as api:
        alice = make_user(api, "alice")
        node = make_node(api, alice)
        bad_json = signed(api, node, "POST", "/v1/leases", raw=b"{not json")
        assert bad_json.status_code == 400
        assert bad_json.json()["code"] == "protocol.malformed_json"
        extra = signed(api, node, "POST", "/v1/leases", {"units_max": 1, "greedy": True})
        assert extra.status_code == 422
        assert extra.json()["code"] == "protocol.invalid_request"
        wrong_type = signed(api, node, "POST", "/v1/leases", {"units_max": "3"})
        assert wrong_type.json()["code"] == "protocol.invalid_request"
        huge = signed(api, node, "POST", "/v1/results", raw=b"x" * 5000)
        assert huge.status_code == 413
        assert huge.json()["code"] == "protocol.body_too_large"
        missing = api.get("/v1/nowhere")
        assert missing.status_code == 404
        assert missing.json()["code"] == "protocol.not_found"


def test_failure_report_requeues_then_fails_the_unit(settings: Settings, clock: Clock) -> None:
    limited = settings.with_overrides(unit_attempts_max=2)
    with TestClient(
        create_app(limited, clock_ms=clock, run_maintenance=False), raise_server_exceptions=False
    ) as api:
        alice = make_user(api, "alice")
        node = make_node(api, alice)
        job = _submit(api, alice, clock)
        (grant,) = _lease(api, node, clock, 1)
        path = f"/v1/leases/{grant.lease_id}/failure"
        report = {"code": "memory", "detail": "unit ran out of memory"}
        assert signed(api, node, "POST", path, report, timestamp_s=clock.s).status_code == 204
        (again,) = _lease(api, node, clock, 1)
        assert again.unit_id == grant.unit_id
        path = f"/v1/leases/{again.lease_id}/failure"
        assert signed(api, node, "POST", path, report, timestamp_s=clock.s).status_code == 204
        view = api.get(f"/v1/jobs/{job['job_id']}").json()
        assert view["status"] == "failed"
        assert view["units_failed"] == 1
        assert _lease(api, node, clock, 1) == []


def test_job_list_pages_are_capped(settings: Settings, clock: Clock) -> None:
    with TestClient(
        create_app(settings.with_overrides(page_size_max=2), clock_ms=clock, run_maintenance=False)
    ) as api:
        alice = make_user(api, "alice")
        ids = {_submit(api, alice, clock)["job_id"] for _ in range(3)}
        first = api.get("/v1/jobs?limit=50").json()
        assert len(first["jobs"]) == 2
        second = api.get(f"/v1/jobs?limit=50&cursor={first['next_cursor']}").json()
        assert second["next_cursor"] is None
        assert {j["job_id"] for j in first["jobs"] + second["jobs"]} == ids


def test_only_users_submit_jobs(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    _, node, _ = actors
    response = signed(mesh_api, node, "POST", "/v1/jobs", JOB, timestamp_s=clock.s)
    assert response.status_code == 403
    assert response.json()["code"] == "auth.user_required"
    bad = {**JOB, "params": {"k": 0}}
    alice_again = signed(mesh_api, actors[0], "POST", "/v1/jobs", bad, timestamp_s=clock.s)
    assert alice_again.status_code == 422
    assert alice_again.json()["code"] == "workload.params_invalid"
    assert mesh_api.get("/v1/jobs").json()["jobs"] == []


def _mgf(spectra: list[atlas.Spectrum]) -> bytes:
    lines = []
    for spectrum in spectra:
        lines += ["BEGIN IONS", f"TITLE={spectrum.identifier}", f"PEPMASS={spectrum.precursor_mz}"]
        lines += [
            f"{mz:.5f} {i:.3f}" for mz, i in zip(spectrum.mz, spectrum.intensity, strict=True)
        ]
        lines.append("END IONS")
    return "\n".join(lines).encode()


def test_mgf_job_builds_the_atlas_of_the_file(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node, _ = actors
    spectra = atlas.synthetic_spectra(90, seed=4)
    mgf = _mgf(spectra)
    body = {
        "workload": "atlas",
        "params": {"block_size": 32, "k": 3, "embedding_dim": 128},
        "dataset": {"kind": "mgf", "name": "tiny.mgf", "mgf_b64": b64encode(mgf)},
    }
    response = signed(mesh_api, alice, "POST", "/v1/jobs", body, timestamp_s=clock.s)
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["n_items"] == 90
    assert job["units_total"] == 6
    grants = _lease(mesh_api, node, clock, 6)
    items = [result_item(node, g, _compute(mesh_api, g)) for g in grants]
    assert _submit_results(mesh_api, node, clock, items).status_code == 200
    run_maintenance_once(mesh_api.app.state.context)
    graph = atlas.decode_graph(mesh_api.get(f"/v1/jobs/{job['job_id']}/product").content)
    params = atlas.AtlasParams(block_size=32, k=3, embedding_dim=128)
    reference = atlas.brute_force_knn(atlas.embed_spectra(atlas.read_mgf(mgf, 100), params), 3)
    np.testing.assert_allclose(graph.sims, reference.sims, atol=1e-5)

    broken = {**body, "dataset": {**body["dataset"], "mgf_b64": b64encode(b"BEGIN IONS\n1 2\n")}}
    refused = signed(mesh_api, alice, "POST", "/v1/jobs", broken, timestamp_s=clock.s)
    assert refused.status_code == 422
    assert refused.json()["code"] == "workload.dataset_invalid"


def _upload(
    api: TestClient,
    node: Actor,
    clock: Clock,
    grant: LeaseGrant,
    data: bytes,
    *,
    document: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """``POST /v1/leases/{id}/result``: the bytes as the body, the signed document in
    headers (``document`` overrides its fields, ``headers`` the headers)."""
    item = result_item(node, grant, data, document=document or {})
    sent = {
        "content-type": "application/octet-stream",
        HEADER_RESULT_DOCUMENT: b64encode(json.dumps(item["document"]).encode()),
        HEADER_RESULT_SIGNATURE: item["signature"],
        **(headers or {}),
    }
    path = f"/v1/leases/{grant.lease_id}/result"
    return signed(api, node, "POST", path, raw=data, headers=sent, timestamp_s=clock.s)


def test_a_result_uploaded_as_bytes_is_accepted_once(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node, _ = actors
    job = _submit(mesh_api, alice, clock)
    (grant,) = _lease(mesh_api, node, clock, 1)
    data = _compute(mesh_api, grant)

    first = _upload(mesh_api, node, clock, grant, data)
    again = _upload(mesh_api, node, clock, grant, data)

    assert first.status_code == 200, first.text
    assert first.json()["acks"] == [
        {
            "lease_id": grant.lease_id,
            "unit_id": grant.unit_id,
            "status": "accepted",
            "verified_flops": grant.work_flops,
        }
    ]
    assert again.json()["acks"][0]["status"] == "duplicate"
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 1
    assert view["work_flops_done"] == grant.work_flops


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("document not base64", 422, "protocol.result_document_invalid"),
        ("document not json", 422, "protocol.result_document_invalid"),
        ("document extra field", 422, "protocol.result_document_invalid"),
        ("document of another lease", 422, "protocol.result_lease_mismatch"),
        ("no document", 422, None),
        ("signature malformed", 422, None),
        ("bytes not the signed hash", 422, "protocol.result_hash_mismatch"),
        ("bytes malformed", 422, "workload.result_malformed"),
        ("bytes too large", 413, None),
        ("request unsigned", 401, "auth.signature_missing"),
    ],
)
def test_a_bad_byte_upload_is_refused_and_changes_nothing(
    mesh_api: TestClient,
    clock: Clock,
    actors: tuple[Actor, Actor, Actor],
    case: str,
    status: int,
    code: str | None,
) -> None:
    alice, node, _ = actors
    job = _submit(mesh_api, alice, clock)
    grant, other = _lease(mesh_api, node, clock, 2)
    data = _compute(mesh_api, grant)
    path = f"/v1/leases/{grant.lease_id}/result"
    if case == "document not base64":
        response = _upload(
            mesh_api, node, clock, grant, data, headers={HEADER_RESULT_DOCUMENT: "*"}
        )
    elif case == "document not json":
        bad = {HEADER_RESULT_DOCUMENT: b64encode(b"{not json")}
        response = _upload(mesh_api, node, clock, grant, data, headers=bad)
    elif case == "document extra field":
        response = _upload(mesh_api, node, clock, grant, data, document={"flops": 1})
    elif case == "document of another lease":
        moved = {"lease_id": other.lease_id, "unit_id": other.unit_id}
        response = _upload(mesh_api, node, clock, grant, data, document=moved)
    elif case == "no document":
        item = result_item(node, grant, data)
        headers = {HEADER_RESULT_SIGNATURE: item["signature"]}
        response = signed(mesh_api, node, "POST", path, raw=data, headers=headers)
    elif case == "signature malformed":
        bad = {HEADER_RESULT_SIGNATURE: "not-a-signature"}
        response = _upload(mesh_api, node, clock, grant, data, headers=bad)
    elif case == "bytes not the signed hash":
        response = _upload(mesh_api, node, clock, grant, data, document={"result_sha256": "0" * 64})
    elif case == "bytes malformed":
        response = _upload(mesh_api, node, clock, grant, data[:-6])
    elif case == "bytes too large":
        limit = mesh_api.app.state.context.limits.result_bytes_max
        response = _upload(mesh_api, node, clock, grant, b"\0" * (limit + 1))
    else:
        item = result_item(node, grant, data)
        headers = {
            HEADER_RESULT_DOCUMENT: b64encode(json.dumps(item["document"]).encode()),
            HEADER_RESULT_SIGNATURE: item["signature"],
        }
        response = mesh_api.post(path, content=data, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    if code is not None:
        assert response.json()["code"] == code
    view = mesh_api.get(f"/v1/jobs/{job['job_id']}").json()
    assert view["units_done"] == 0
    assert view["units_leased"] == 2
    assert _upload(mesh_api, node, clock, grant, data).json()["acks"][0]["status"] == "accepted"


def test_a_byte_upload_signed_by_another_key_blacklists_its_node(
    mesh_api: TestClient, clock: Clock, actors: tuple[Actor, Actor, Actor]
) -> None:
    alice, node, _ = actors
    _submit(mesh_api, alice, clock)
    (grant,) = _lease(mesh_api, node, clock, 1)
    data = _compute(mesh_api, grant)
    forged = result_item(Actor(SigningKey.generate(), node.key_id), grant, data)["signature"]

    response = _upload(
        mesh_api, node, clock, grant, data, headers={HEADER_RESULT_SIGNATURE: forged}
    )

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "auth.result_signature_invalid"
    again = _upload(mesh_api, node, clock, grant, data)
    assert again.json()["code"] == "registry.blacklisted"
