"""Signed runner releases over the API, on both databases: publish, list, fetch, admit.

Every refusal answers problem+json with its code and leaves the store as it was.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from nexapod.coordinator.app import create_app
from nexapod.crypto import (
    PURPOSE_RELEASE,
    ManifestVerdict,
    ReleaseManifest,
    SigningKey,
    parse_manifest,
    sign_document,
    sign_manifest,
    sign_request,
    verify_manifest,
)
from nexapod.node.home import node_registration
from nexapod.settings import Settings
from tests.factories import PROFILE, TREE_HASH, make_node, make_user, signed

SIGNED_AT_S = 1_790_000_000


def _files(seed: str) -> dict[str, str]:
    return {
        "__init__.py": hashlib.sha256(seed.encode()).hexdigest(),
        "workloads/atlas/unit.py": hashlib.sha256(b"unit " + seed.encode()).hexdigest(),
    }


def _manifest(key: SigningKey, seed: str = "one", version: str = "1.0.0") -> ReleaseManifest:
    return sign_manifest(key, version, _files(seed), SIGNED_AT_S)


@pytest.fixture
def release_key() -> SigningKey:
    return SigningKey.generate()


def _client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, run_maintenance=False), raise_server_exceptions=False)


@pytest.fixture
def enforcing(settings: Settings, release_key: SigningKey) -> Iterator[TestClient]:
    """The coordinator configured with one release key (admission enforced)."""
    configured = settings.with_overrides(release_public_keys=[release_key.public_key_b64])
    with _client(configured) as client:
        yield client


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _listed(api: TestClient) -> list[dict[str, Any]]:
    releases: list[dict[str, Any]] = api.get("/v1/releases").json()["releases"]
    return releases


def test_publish_list_and_fetch(enforcing: TestClient, release_key: SigningKey) -> None:
    manifest = _manifest(release_key)
    first = enforcing.post("/v1/releases", json=manifest.to_json())
    assert first.status_code == 201, first.text
    view = first.json()
    assert view["tree_hash"] == manifest.tree_hash
    assert view["version"] == "1.0.0"
    assert view["release_public_key"] == release_key.public_key_b64
    assert view["trusted"] is True

    again = enforcing.post("/v1/releases", json=manifest.to_json())
    assert again.status_code == 200, "the same manifest again is accepted and changes nothing"
    assert again.json() == view

    listing = enforcing.get("/v1/releases").json()
    assert listing["enforced"] is True
    assert listing["release_public_keys"] == [release_key.public_key_b64]
    assert listing["releases"] == [view]
    assert listing["next_cursor"] is None

    fetched = enforcing.get(f"/v1/releases/{manifest.tree_hash}")
    assert fetched.status_code == 200
    assert fetched.json() == manifest.to_json()
    parsed = parse_manifest(fetched.json())
    assert verify_manifest(parsed, {release_key.public_key_b64}) is ManifestVerdict.OK


def test_listing_pages_newest_first(enforcing: TestClient, release_key: SigningKey) -> None:
    hashes = []
    for seed in ("a", "b", "c"):
        manifest = _manifest(release_key, seed)
        assert enforcing.post("/v1/releases", json=manifest.to_json()).status_code == 201
        hashes.append(manifest.tree_hash)
    first = enforcing.get("/v1/releases?limit=2").json()
    assert len(first["releases"]) == 2
    assert first["next_cursor"] == first["releases"][-1]["tree_hash"]
    rest = enforcing.get(f"/v1/releases?limit=2&cursor={first['next_cursor']}").json()
    assert rest["next_cursor"] is None
    seen = [r["tree_hash"] for r in first["releases"] + rest["releases"]]
    assert sorted(seen) == sorted(hashes)
    assert len(set(seen)) == 3
    times = [r["published_at_ms"] for r in first["releases"] + rest["releases"]]
    assert times == sorted(times, reverse=True)
    _problem(enforcing.get(f"/v1/releases?cursor={'0' * 64}"), 404, "registry.release_unknown")


def test_a_manifest_signed_by_an_unconfigured_key_is_refused(enforcing: TestClient) -> None:
    stranger = _manifest(SigningKey.generate())
    body = _problem(
        enforcing.post("/v1/releases", json=stranger.to_json()), 403, "registry.release_key_unknown"
    )
    assert "does not trust" in body["detail"]
    assert _listed(enforcing) == []
    _problem(enforcing.get(f"/v1/releases/{stranger.tree_hash}"), 404, "registry.release_unknown")


def test_a_forged_signature_is_refused(enforcing: TestClient, release_key: SigningKey) -> None:
    forged = _manifest(SigningKey.generate()).to_json()
    forged["release_public_key"] = release_key.public_key_b64  # claims the trusted key
    _problem(enforcing.post("/v1/releases", json=forged), 403, "registry.release_signature_invalid")
    edited = _manifest(release_key).to_json()
    edited["document"]["version"] = "9.9.9"  # changed after signing
    _problem(enforcing.post("/v1/releases", json=edited), 403, "registry.release_signature_invalid")
    assert _listed(enforcing) == []


def test_a_tree_hash_that_disagrees_with_the_files_is_refused(
    enforcing: TestClient, release_key: SigningKey
) -> None:
    document = _manifest(release_key).document()
    document["tree_hash"] = "0" * 64
    body = {
        "document": document,
        "signature": sign_document(release_key, PURPOSE_RELEASE, document),
        "release_public_key": release_key.public_key_b64,
    }
    problem = _problem(
        enforcing.post("/v1/releases", json=body), 422, "registry.release_tree_hash_mismatch"
    )
    assert problem["files_tree_hash"] == _manifest(release_key).tree_hash
    assert _listed(enforcing) == []


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("../escape.py", "00" * 32, "registry.release_manifest_invalid"),
        ("a//b.py", "00" * 32, "registry.release_manifest_invalid"),
        ("ok.py", "not hex", "protocol.invalid_request"),
    ],
)
def test_a_malformed_manifest_is_refused(
    enforcing: TestClient, release_key: SigningKey, path: str, value: str, code: str
) -> None:
    files = {**_files("one"), path: value}
    document = {**_manifest(release_key).document(), "files": files}
    body = {
        "document": document,
        "signature": sign_document(release_key, PURPOSE_RELEASE, document),
        "release_public_key": release_key.public_key_b64,
    }
    _problem(enforcing.post("/v1/releases", json=body), 422, code)
    assert _listed(enforcing) == []


def test_another_manifest_of_a_published_tree_conflicts(
    enforcing: TestClient, release_key: SigningKey
) -> None:
    original = _manifest(release_key, version="1.0.0")
    assert enforcing.post("/v1/releases", json=original.to_json()).status_code == 201
    renamed = _manifest(release_key, version="1.0.1")  # same files, so the same tree hash
    assert renamed.tree_hash == original.tree_hash
    _problem(
        enforcing.post("/v1/releases", json=renamed.to_json()), 409, "registry.release_conflict"
    )
    assert enforcing.get(f"/v1/releases/{original.tree_hash}").json() == original.to_json()
    assert [r["version"] for r in _listed(enforcing)] == ["1.0.0"]


def test_releases_are_bounded(settings: Settings, release_key: SigningKey) -> None:
    configured = settings.with_overrides(
        release_public_keys=[release_key.public_key_b64], releases_max=1
    )
    with _client(configured) as api:
        assert (
            api.post("/v1/releases", json=_manifest(release_key, "a").to_json()).status_code == 201
        )
        second = _manifest(release_key, "b").to_json()
        _problem(api.post("/v1/releases", json=second), 409, "registry.releases_full")
        assert len(_listed(api)) == 1


def test_without_release_keys_admission_is_open_and_publishing_refused(
    api: TestClient, release_key: SigningKey
) -> None:
    listing = api.get("/v1/releases").json()
    assert listing == {
        "enforced": False,
        "release_public_keys": [],
        "releases": [],
        "next_cursor": None,
    }
    _problem(
        api.post("/v1/releases", json=_manifest(release_key).to_json()),
        403,
        "registry.release_key_unknown",
    )
    user = make_user(api, "alice")
    node = make_node(api, user, runner_tree_hash="12" * 32)  # any runner at all
    assert signed(api, node, "POST", "/v1/leases", {"units_max": 1}).status_code == 200


def test_enforced_admission_refuses_an_unreleased_runner(
    enforcing: TestClient, release_key: SigningKey
) -> None:
    user = make_user(enforcing, "alice")
    key = SigningKey.generate()
    state = {
        "public_key": key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": "cd" * 32,
        "runner_tree_hash": TREE_HASH,
    }
    request = node_registration(state, key, "alice", user.key, 10**9)
    body = _problem(
        enforcing.post("/v1/nodes", json=request.model_dump()), 403, "registry.runner_not_released"
    )
    assert "install a signed release" in body["detail"]
    assert "publish" in body["detail"]
    assert body["runner_tree_hash"] == TREE_HASH
    assert enforcing.get("/v1/users/alice").json()["node_ids"] == [], "nothing registered"

    manifest = _manifest(release_key)
    assert enforcing.post("/v1/releases", json=manifest.to_json()).status_code == 201
    node = make_node(enforcing, user, runner_tree_hash=manifest.tree_hash)
    assert signed(enforcing, node, "POST", "/v1/leases", {"units_max": 1}).status_code == 200


def test_leases_are_refused_to_a_node_registered_before_enforcement(
    settings: Settings, release_key: SigningKey
) -> None:
    manifest = _manifest(release_key)
    with _client(settings) as open_api:  # no keys: this node gets in with any runner
        user = make_user(open_api, "alice")
        unreleased = make_node(open_api, user, runner_tree_hash="12" * 32)
        released = make_node(
            open_api, user, fingerprint="ee" * 32, runner_tree_hash=manifest.tree_hash
        )
    configured = settings.with_overrides(release_public_keys=[release_key.public_key_b64])
    with _client(configured) as api:
        assert api.post("/v1/releases", json=manifest.to_json()).status_code == 201
        lease = {"units_max": 1}
        _problem(
            signed(api, unreleased, "POST", "/v1/leases", lease),
            403,
            "registry.runner_not_released",
        )
        assert signed(api, released, "POST", "/v1/leases", lease).status_code == 200
        # The refusal recorded nothing, not even the nonce: the very same signed request
        # is refused again for the same reason, not as a replay.
        content = json.dumps(lease).encode()
        headers = {
            "content-type": "application/json",
            **sign_request(
                unreleased.key,
                key_id=unreleased.key_id,
                method="POST",
                path="/v1/leases",
                body=content,
                timestamp_s=int(time.time()),
            ).headers(),
        }
        for _ in range(2):
            response = api.post("/v1/leases", content=content, headers=headers)
            _problem(response, 403, "registry.runner_not_released")


def test_a_release_whose_key_is_no_longer_configured_admits_nobody(
    settings: Settings, release_key: SigningKey
) -> None:
    manifest = _manifest(release_key)
    with _client(settings.with_overrides(release_public_keys=[release_key.public_key_b64])) as api:
        assert api.post("/v1/releases", json=manifest.to_json()).status_code == 201
        node = make_node(api, make_user(api, "alice"), runner_tree_hash=manifest.tree_hash)
    other_key = SigningKey.generate()
    with _client(settings.with_overrides(release_public_keys=[other_key.public_key_b64])) as api:
        (view,) = _listed(api)
        assert view["trusted"] is False
        _problem(
            signed(api, node, "POST", "/v1/leases", {"units_max": 1}),
            403,
            "registry.runner_not_released",
        )
