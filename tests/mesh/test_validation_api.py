"""Validation through the HTTP API: quorum over distinct users, cheaters caught and
blacklisted with their work forfeited, honest replicas paid; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nexapod.coordinator.app import create_app
from nexapod.crypto import b64encode, sha256_hex, sign_document, verify_document
from nexapod.ledger import log_store
from nexapod.protocol.v1 import PURPOSE_CHECKPOINT, PURPOSE_RESULT, LeaseGrant
from nexapod.registry import blacklist
from nexapod.settings import Settings
from nexapod.storage.uow import UnitOfWorkFactory
from nexapod.workloads import atlas
from nexapod.workloads.atlas._checkpoint import compute_unit_chunked, encode_checkpoint
from tests.adversary import nudged
from tests.factories import TREE_HASH, Actor, make_node, make_user, result_item, signed
from tests.mesh.test_mesh_api import Clock, _compute, _lease, _submit, _submit_results


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def quorum_api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """Replication on (quorum 2) and every result checked (nobody is trusted yet)."""
    yield from _api(settings, clock, validation_quorum=2)


def _api(settings: Settings, clock: Clock, **overrides: Any) -> Iterator[TestClient]:
    """The coordinator in-process on the test clock, with 30-60 s leases and ``overrides``."""
    app = create_app(
        settings.with_overrides(lease_s_min=30, lease_s_max=60, **overrides),
        clock_ms=clock,
        run_maintenance=False,
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _uow_factory(api: TestClient) -> UnitOfWorkFactory:
    return api.app.state.context.uow_factory  # type: ignore[attr-defined,no-any-return]


def _log_kinds(api: TestClient) -> list[str]:
    with _uow_factory(api)() as uow:
        size = log_store.read_tree_size(uow.session)
        entries = log_store.read_entries(uow.session, 0, size)
    return [json.loads(entry)["kind"] for _, entry, _ in entries]


def _wrong(data: bytes) -> bytes:
    """A well-formed result of the same unit with every similarity lowered: a cheat that
    passes the format checks and only a replica or a known answer can catch."""
    return nudged(data, b"wrong")


def _view(api: TestClient, job: dict[str, Any]) -> dict[str, Any]:
    return dict(api.get(f"/v1/jobs/{job['job_id']}").json())


def test_a_unit_is_valid_when_two_users_agree_and_both_are_credited(
    quorum_api: TestClient, clock: Clock
) -> None:
    alice, bob = make_user(quorum_api, "alice"), make_user(quorum_api, "bob")
    node_a, node_a2, node_b = (
        make_node(quorum_api, alice),
        make_node(quorum_api, alice),
        make_node(quorum_api, bob),
    )
    job = _submit(quorum_api, alice, clock)
    (grant,) = _lease(quorum_api, node_a, clock, 1)
    data = _compute(quorum_api, grant)
    (ack,) = _submit_results(quorum_api, node_a, clock, [result_item(node_a, grant, data)]).json()[
        "acks"
    ]
    assert ack["status"] == "pending"
    assert ack["verified_flops"] == 0
    assert _view(quorum_api, job)["units_done"] == 0
    # the replica never goes to another node of the same user
    assert grant.unit_id not in [g.unit_id for g in _lease(quorum_api, node_a2, clock, 64)]
    replicas = [g for g in _lease(quorum_api, node_b, clock, 64) if g.unit_id == grant.unit_id]
    assert len(replicas) == 1
    (ack_b,) = _submit_results(
        quorum_api, node_b, clock, [result_item(node_b, replicas[0], data)]
    ).json()["acks"]
    assert ack_b["status"] == "accepted"
    assert ack_b["verified_flops"] == grant.work_flops
    view = _view(quorum_api, job)
    assert view["units_done"] == 1
    assert view["work_flops_done"] == grant.work_flops
    credited = {n["node_id"]: n["verified_flops"] for n in view["nodes"]}
    assert credited == {node_a.name: grant.work_flops, node_b.name: grant.work_flops}
    # the first node's acknowledgement, asked again, now says accepted
    (again,) = _submit_results(
        quorum_api, node_a, clock, [result_item(node_a, grant, data)]
    ).json()["acks"]
    assert again["status"] == "duplicate"


def test_a_result_contradicted_by_the_quorum_blacklists_its_node_and_pays_the_honest(
    quorum_api: TestClient, clock: Clock
) -> None:
    users = [make_user(quorum_api, name) for name in ("alice", "mallory", "carol")]
    honest, cheater, tie_breaker = (make_node(quorum_api, user) for user in users)
    job = _submit(quorum_api, users[0], clock)
    (grant,) = _lease(quorum_api, cheater, clock, 1)
    data = _compute(quorum_api, grant)
    forged = _wrong(data)
    acks = _submit_results(quorum_api, cheater, clock, [result_item(cheater, grant, forged)])
    assert acks.json()["acks"][0]["status"] == "pending"
    for node in (honest, tie_breaker):
        replica = next(g for g in _lease(quorum_api, node, clock, 64) if g.unit_id == grant.unit_id)
        response = _submit_results(quorum_api, node, clock, [result_item(node, replica, data)])
        assert response.status_code == 200, response.text
    view = _view(quorum_api, job)
    assert view["units_done"] == 1
    credited = {n["node_id"]: n["verified_flops"] for n in view["nodes"]}
    assert credited == {honest.name: grant.work_flops, tie_breaker.name: grant.work_flops}
    with _uow_factory(quorum_api)() as uow:
        entry = blacklist.active_entry(uow.session, node_id=cheater.name)
        assert entry is not None
        assert entry.reason_code == "contradicted_by_quorum"
        assert entry.username == "mallory"
    assert "blacklist_listed" in _log_kinds(quorum_api)
    _lease(quorum_api, honest, clock, 1)  # honest nodes still work (it asserts 200)
    blocked = signed(
        quorum_api, cheater, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=clock.s
    )
    assert blocked.status_code == 403
    assert blocked.json()["code"] == "registry.blacklisted"


def _tampering_cases(
    api: TestClient, node: Actor, other: Actor, grants: list[LeaseGrant], data: bytes
) -> dict[str, tuple[list[dict[str, Any]], int, str]]:
    good = result_item(node, grants[0], data)
    return {
        "result_of_another_node": (
            [result_item(other, grants[0], data)],
            403,
            "auth.result_node_mismatch",
        ),
        "result_signature_forged": (
            [
                {
                    **good,
                    "document": {
                        **good["document"],
                        "lease_id": grants[1].lease_id,
                        "unit_id": grants[1].unit_id,
                    },
                }
            ],
            401,
            "auth.result_signature_invalid",
        ),
        "result_replayed": (
            [result_item(node, grants[1], data, document={"unit_id": grants[0].unit_id})],
            422,
            "mesh.result_mismatch",
        ),
        "runner_changed": (
            [result_item(node, grants[0], data, document={"runner_tree_hash": "0f" * 32})],
            403,
            "mesh.runner_changed",
        ),
    }


@pytest.mark.parametrize(
    "reason",
    ["result_of_another_node", "result_signature_forged", "result_replayed", "runner_changed"],
)
def test_tampering_is_refused_and_blacklists_node_machine_and_user(
    quorum_api: TestClient, clock: Clock, reason: str
) -> None:
    mallory, alice = make_user(quorum_api, "mallory"), make_user(quorum_api, "alice")
    node, second, honest = (
        make_node(quorum_api, mallory),
        make_node(quorum_api, mallory),
        make_node(quorum_api, alice),
    )
    job = _submit(quorum_api, alice, clock)
    grants = _lease(quorum_api, node, clock, 2)
    data = _compute(quorum_api, grants[0])
    items, status, code = _tampering_cases(quorum_api, node, honest, grants, data)[reason]
    response = _submit_results(quorum_api, node, clock, items)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert _view(quorum_api, job)["units_done"] == 0
    with _uow_factory(quorum_api)() as uow:
        entry = blacklist.active_entry(uow.session, node_id=node.name)
        assert entry is not None and entry.reason_code == reason
    # the user is listed by policy: its other node is refused too, another user's is not
    for blocked in (node, second):
        refused = signed(
            quorum_api, blocked, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=clock.s
        )
        assert refused.json()["code"] == "registry.blacklisted"
    assert (
        signed(
            quorum_api, honest, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=clock.s
        ).status_code
        == 200
    )
    assert _log_kinds(quorum_api).count("blacklist_listed") == 1


def test_a_result_faster_than_any_benchmark_allows_is_refused_and_blacklisted(
    quorum_api: TestClient, clock: Clock
) -> None:
    mallory = make_user(quorum_api, "mallory")
    slow = make_node(quorum_api, mallory, capacity_flops_per_s=1000)  # claims to be slow
    _submit(quorum_api, mallory, clock)
    (grant,) = _lease(quorum_api, slow, clock, 1)
    data = _compute(quorum_api, grant)
    response = _submit_results(quorum_api, slow, clock, [result_item(slow, grant, data)])
    assert response.status_code == 403
    assert response.json()["code"] == "mesh.result_implausible"
    with _uow_factory(quorum_api)() as uow:
        entry = blacklist.active_entry(uow.session, node_id=slow.name)
        assert entry is not None and entry.reason_code == "implausible_time"
        assert entry.username == "mallory"


def test_one_machine_under_a_second_user_is_refused_and_flagged(
    quorum_api: TestClient,
) -> None:
    alice, mallory = make_user(quorum_api, "alice"), make_user(quorum_api, "mallory")
    make_node(quorum_api, alice, fingerprint="aa" * 32)
    make_node(quorum_api, alice, fingerprint="aa" * 32)  # one user, several nodes: fine
    with pytest.raises(AssertionError, match=r"registry\.fingerprint_taken"):
        make_node(quorum_api, mallory, fingerprint="aa" * 32)
    assert _log_kinds(quorum_api).count("identity_flagged") == 1


def test_a_lifted_entry_lets_the_node_back_and_is_logged(
    quorum_api: TestClient, clock: Clock
) -> None:
    mallory = make_user(quorum_api, "mallory")
    slow = make_node(quorum_api, mallory, capacity_flops_per_s=1000)
    _submit(quorum_api, mallory, clock)
    (grant,) = _lease(quorum_api, slow, clock, 1)
    _submit_results(
        quorum_api, slow, clock, [result_item(slow, grant, _compute(quorum_api, grant))]
    )
    with _uow_factory(quorum_api)() as uow:
        entry = blacklist.active_entry(uow.session, node_id=slow.name)
        assert entry is not None
        entry_id = entry.entry_id
    with _uow_factory(quorum_api)() as uow:
        lifted = blacklist.lift_entry(uow, entry_id, "benchmark re-run on site", clock())
    assert lifted.lift_reason == "benchmark re-run on site"
    assert (
        signed(
            quorum_api, slow, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=clock.s
        ).status_code
        == 200
    )
    kinds = [k for k in _log_kinds(quorum_api) if k != "pool_transition"]
    assert kinds[-2:] == ["blacklist_listed", "blacklist_lifted"]


@pytest.fixture
def spot_api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """Trusted after one valid result, and a spot check on every lease request."""
    yield from _api(
        settings,
        clock,
        validation_quorum=2,
        validation_trusted_after_valid=1,
        validation_spot_check_ppm=1_000_000,
    )


def _agree_on_one_unit(
    api: TestClient, clock: Clock, first: Actor, second: Actor
) -> tuple[LeaseGrant, bytes]:
    (grant,) = _lease(api, first, clock, 1)
    data = _compute(api, grant)
    _submit_results(api, first, clock, [result_item(first, grant, data)])
    (replica,) = _lease(api, second, clock, 1)  # the waiting replica comes first
    assert replica.unit_id == grant.unit_id
    acks = _submit_results(api, second, clock, [result_item(second, replica, data)]).json()
    assert acks["acks"][0]["status"] == "accepted"
    return grant, data


def _spot_setup(api: TestClient, clock: Clock) -> tuple[Actor, Actor, LeaseGrant, bytes]:
    """alice and bob validate one unit (both now trusted), carol and alice another: bob's
    next lease is a spot check on the unit he did not touch."""
    alice, bob, carol = (make_user(api, name) for name in ("alice", "bob", "carol"))
    node_a, node_b, node_c = (make_node(api, user) for user in (alice, bob, carol))
    _submit(api, alice, clock)
    _agree_on_one_unit(api, clock, node_a, node_b)
    known, data = _agree_on_one_unit(api, clock, node_c, node_a)
    return alice, node_b, known, data


def test_a_trusted_node_gets_spot_checks_and_an_honest_answer_passes(
    spot_api: TestClient, clock: Clock
) -> None:
    alice, node_b, known, data = _spot_setup(spot_api, clock)
    job_id = known.job_id
    before = _view(spot_api, {"job_id": job_id})
    grants = _lease(spot_api, node_b, clock, 1)
    assert [g.unit_id for g in grants] == [known.unit_id], "a unit whose answer is known"
    acks = _submit_results(spot_api, node_b, clock, [result_item(node_b, grants[0], data)])
    assert acks.json()["acks"][0]["status"] == "accepted"
    after = _view(spot_api, {"job_id": job_id})
    assert after["units_done"] == before["units_done"] == 2, "a spot check is not new progress"
    with _uow_factory(spot_api)() as uow:
        assert blacklist.active_entry(uow.session, node_id=node_b.name) is None
    assert alice is not None


def test_a_wrong_answer_to_a_spot_check_blacklists_the_node(
    spot_api: TestClient, clock: Clock
) -> None:
    _, node_b, known, data = _spot_setup(spot_api, clock)
    grants = _lease(spot_api, node_b, clock, 1)
    assert [g.unit_id for g in grants] == [known.unit_id]
    acks = _submit_results(spot_api, node_b, clock, [result_item(node_b, grants[0], _wrong(data))])
    assert acks.status_code == 200, acks.text
    assert acks.json()["acks"][0]["status"] == "rejected"
    with _uow_factory(spot_api)() as uow:
        entry = blacklist.active_entry(uow.session, node_id=node_b.name)
        assert entry is not None and entry.reason_code == "spot_check_failed"
    # the unit's answer and the job's progress are untouched
    assert _view(spot_api, {"job_id": known.job_id})["units_done"] == 2


def test_signed_compute_records_verify_with_the_nodes_keys_page_by_page(
    quorum_api: TestClient, clock: Clock
) -> None:
    alice, bob = make_user(quorum_api, "alice"), make_user(quorum_api, "bob")
    node_a, node_b = make_node(quorum_api, alice), make_node(quorum_api, bob)
    job = _submit(quorum_api, alice, clock)
    for _ in range(2):
        _agree_on_one_unit(quorum_api, clock, node_a, node_b)
    seen = []
    cursor = None
    for _ in range(10):
        query = f"?limit=3&cursor={cursor}" if cursor else "?limit=3"
        page = quorum_api.get(f"/v1/jobs/{job['job_id']}/records{query}").json()
        seen.extend(page["records"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4
    assert {r["status"] for r in seen} == {"valid"}
    for record in seen:
        document = record["document"]
        assert verify_document(
            record["node_public_key"], record["signature"], PURPOSE_RESULT, document
        )
        forged = {**document, "compute_ms": document["compute_ms"] + 1}
        assert not verify_document(
            record["node_public_key"], record["signature"], PURPOSE_RESULT, forged
        )
    unknown = quorum_api.get(f"/v1/jobs/{'0' * 32}/records")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "mesh.job_unknown"


@pytest.fixture
def chunked_api(settings: Settings, clock: Clock) -> Iterator[TestClient]:
    """Off-diagonal units (256 x 256 x 128 here) are computed in 96-row chunks."""
    yield from _api(settings, clock, checkpoint_chunk_flops=96 * 2 * 256 * 128)


CHUNKED_JOB = {
    "workload": "atlas",
    "params": {"block_size": 256, "k": 5, "embedding_dim": 128},
    "dataset": {"kind": "synthetic", "n_spectra": 512, "seed": 3},
}


def _checkpoint_upload(
    node: Actor, grant: LeaseGrant, data: bytes, **document: Any
) -> dict[str, Any]:
    body = {
        "node_id": node.name,
        "job_id": grant.job_id,
        "unit_id": grant.unit_id,
        "lease_id": grant.lease_id,
        "rows_done": int.from_bytes(data[8:12], "little"),
        "checkpoint_sha256": sha256_hex(data),
        "runner_tree_hash": TREE_HASH,
        **document,
    }
    return {
        "document": body,
        "signature": sign_document(node.key, PURPOSE_CHECKPOINT, body),
        "checkpoint_b64": b64encode(data),
    }


def _first_state(api: TestClient, grant: LeaseGrant) -> bytes:
    """The unit's state after its first chunk, computed from the served blocks."""
    spec = grant.unit_spec
    assert spec["chunk_rows"] == 96
    params = atlas.AtlasParams.from_dict(spec["params"])
    shape = atlas.UnitShape.from_dict(spec["shape"])
    row, col = (
        atlas.decode_block(api.get(ref.path).content, n, params.embedding_dim)
        for ref, n in zip(grant.inputs, (shape.n_rows, shape.n_cols), strict=True)
    )
    states: list[atlas.Checkpoint] = []
    compute_unit_chunked(row, col, shape, params.k, 96, on_checkpoint=states.append)
    return encode_checkpoint(states[0])


def test_a_lost_unit_resumes_from_its_signed_checkpoint_on_another_node(
    chunked_api: TestClient, clock: Clock
) -> None:
    alice, bob = make_user(chunked_api, "alice"), make_user(chunked_api, "bob")
    node_a, node_b = make_node(chunked_api, alice), make_node(chunked_api, bob)
    response = signed(chunked_api, alice, "POST", "/v1/jobs", CHUNKED_JOB, timestamp_s=clock.s)
    assert response.status_code == 201, response.text
    grant = next(g for g in _lease(chunked_api, node_a, clock, 3) if "chunk_rows" in g.unit_spec)
    state = _first_state(chunked_api, grant)
    path = f"/v1/leases/{grant.lease_id}/checkpoint"
    refusals = [
        (
            node_a,
            {**_checkpoint_upload(node_a, grant, state), "signature": "A" * 86},
            401,
            "auth.checkpoint_signature_invalid",
        ),
        (
            node_a,
            _checkpoint_upload(node_a, grant, state[:-12]),
            422,
            "workload.checkpoint_invalid",
        ),
        (node_b, _checkpoint_upload(node_b, grant, state), 403, "mesh.lease_not_yours"),
        (
            node_a,
            _checkpoint_upload(node_a, grant, state, rows_done=192),
            422,
            "workload.checkpoint_invalid",
        ),
    ]
    for signer, body, status, code in refusals:
        refused = signed(chunked_api, signer, "POST", path, body, timestamp_s=clock.s)
        assert (refused.status_code, refused.json()["code"]) == (status, code), refused.text
    kept = signed(
        chunked_api,
        node_a,
        "POST",
        path,
        _checkpoint_upload(node_a, grant, state),
        timestamp_s=clock.s,
    )
    assert kept.status_code == 204, kept.text
    # node_a disappears: its lease runs out, and the unit goes to bob with the checkpoint
    clock.offset_ms += grant.deadline_at_ms - grant.granted_at_ms + 1000
    again = next(g for g in _lease(chunked_api, node_b, clock, 8) if g.unit_id == grant.unit_id)
    (resume,) = [ref for ref in again.inputs if ref.name == "checkpoint"]
    served = chunked_api.get(resume.path).content
    assert served == state and sha256_hex(served) == resume.sha256
    # bob resumes from it: the result is bit for bit the uninterrupted computation
    params = atlas.AtlasParams.from_dict(again.unit_spec["params"])
    shape = atlas.UnitShape.from_dict(again.unit_spec["shape"])
    row, col = (
        atlas.decode_block(chunked_api.get(ref.path).content, n, params.embedding_dim)
        for ref, n in zip(again.inputs[:2], (shape.n_rows, shape.n_cols), strict=True)
    )
    resumed = compute_unit_chunked(
        row, col, shape, params.k, 96, resume=atlas.decode_checkpoint(served, shape, params.k, 96)
    )
    whole = compute_unit_chunked(row, col, shape, params.k, 96)
    data = atlas.encode_unit_result(resumed, shape)
    assert data == atlas.encode_unit_result(whole, shape)
    acks = _submit_results(chunked_api, node_b, clock, [result_item(node_b, again, data)])
    assert acks.json()["acks"][0]["status"] == "accepted"
    # the unit's history shows both leases and what became of each
    history = chunked_api.get(f"/v1/jobs/{grant.job_id}/units/{grant.unit_id}").json()
    assert history["status"] == "done"
    assert history["canonical_lease_id"] == again.lease_id
    assert [
        (lease["node_id"], lease["status"], lease["resumed_from"], lease["result_status"])
        for lease in history["leases"]
    ] == [
        (node_a.name, "expired", None, None),
        (node_b.name, "completed", grant.lease_id, "valid"),
    ]
    unknown = chunked_api.get(f"/v1/jobs/{grant.job_id}/units/999999")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "mesh.unit_unknown")
