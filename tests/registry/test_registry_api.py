"""Registration of users and nodes, and signed-request authentication, on both databases."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from nexapod.crypto import SigningKey
from nexapod.node.home import node_registration, user_registration
from tests.factories import PROFILE, TREE_HASH, make_node, make_user, signed


def _count(api: TestClient, path: str) -> int:
    return int(api.get(path).status_code)


def test_user_registration_is_signed_and_idempotent(api: TestClient) -> None:
    key = SigningKey.generate()
    request = user_registration("alice", key)
    first = api.post("/v1/users", json=request.model_dump())
    assert first.status_code == 201
    again = api.post("/v1/users", json=request.model_dump())
    assert again.status_code == 201
    assert again.json() == first.json()
    view = api.get("/v1/users/alice").json()
    assert view["public_key"] == key.public_key_b64
    assert len(view["registration_sha256"]) == 64


def test_username_taken_by_another_key_is_refused(api: TestClient) -> None:
    make_user(api, "alice")
    response = api.post(
        "/v1/users", json=user_registration("alice", SigningKey.generate()).model_dump()
    )
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "registry.username_taken"


def test_forged_user_document_is_refused_and_changes_nothing(api: TestClient) -> None:
    key = SigningKey.generate()
    request = user_registration("mallory", key).model_dump()
    request["document"]["username"] = "malloryx"  # the signature covered "mallory"
    response = api.post("/v1/users", json=request)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.signature_invalid"
    assert api.get("/v1/users/malloryx").status_code == 404
    assert api.get("/v1/users/mallory").status_code == 404


def test_node_registration_needs_both_signatures(api: TestClient) -> None:
    alice = make_user(api, "alice")
    node_key = SigningKey.generate()
    state = {
        "public_key": node_key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": "ef" * 32,
        "runner_tree_hash": TREE_HASH,
    }
    stranger = SigningKey.generate()  # not alice's key
    forged = node_registration(state, node_key, "alice", stranger, 10**9)
    response = api.post("/v1/nodes", json=forged.model_dump())
    assert response.status_code == 401
    assert response.json()["code"] == "auth.signature_invalid"

    good = node_registration(state, node_key, "alice", alice.key, 10**9)
    response = api.post("/v1/nodes", json=good.model_dump())
    assert response.status_code == 201
    node = response.json()
    assert node["username"] == "alice"
    assert node["capacity_flops_per_s"] == 10**9
    assert node["profile"]["cpu_model"] == "Test CPU"
    assert api.get("/v1/users/alice").json()["node_ids"] == [node["node_id"]]


def test_node_of_unknown_user_is_refused(api: TestClient) -> None:
    user_key = SigningKey.generate()
    node_key = SigningKey.generate()
    state = {
        "public_key": node_key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": "ef" * 32,
        "runner_tree_hash": TREE_HASH,
    }
    request = node_registration(state, node_key, "nobody", user_key, 10**9)
    response = api.post("/v1/nodes", json=request.model_dump())
    assert response.status_code == 404
    assert response.json()["code"] == "registry.user_unknown"


def test_large_capacity_is_stored_exactly(api: TestClient) -> None:
    alice = make_user(api, "alice")
    node = make_node(api, alice, capacity_flops_per_s=10**19 + 7)  # past 2^63
    assert api.get(f"/v1/nodes/{node.name}").json()["capacity_flops_per_s"] == 10**19 + 7


def test_signed_request_checks(api: TestClient) -> None:
    alice = make_user(api, "alice")
    node = make_node(api, alice)
    ok = signed(api, node, "POST", "/v1/leases", {"units_max": 1})
    assert ok.status_code == 200, ok.text

    unsigned = api.post("/v1/leases", json={"units_max": 1})
    assert unsigned.status_code == 401
    assert unsigned.json()["code"] == "auth.signature_missing"

    stale = signed(
        api, node, "POST", "/v1/leases", {"units_max": 1}, timestamp_s=int(time.time()) - 3600
    )
    assert stale.status_code == 401
    assert stale.json()["code"] == "auth.timestamp_skew"

    impostor = type(node)(SigningKey.generate(), node.key_id)
    forged = signed(api, impostor, "POST", "/v1/leases", {"units_max": 1})
    assert forged.status_code == 401
    assert forged.json()["code"] == "auth.signature_invalid"

    unknown = type(node)(SigningKey.generate(), "node:" + "0" * 32)
    response = signed(api, unknown, "POST", "/v1/leases", {"units_max": 1})
    assert response.json()["code"] == "auth.key_unknown"

    user_on_node_route = signed(api, alice, "POST", "/v1/leases", {"units_max": 1})
    assert user_on_node_route.status_code == 403
    assert user_on_node_route.json()["code"] == "auth.node_required"


def test_replayed_request_is_refused(api: TestClient) -> None:
    alice = make_user(api, "alice")
    node = make_node(api, alice)
    first = signed(api, node, "POST", "/v1/leases", {"units_max": 1})
    assert first.status_code == 200
    replay = api.post(
        "/v1/leases",
        content=first.request.content,
        headers={k: v for k, v in first.request.headers.items() if k.lower().startswith("nexapod")}
        | {"content-type": "application/json"},
    )
    assert replay.status_code == 401
    assert replay.json()["code"] == "auth.replayed"
