"""Helpers that build real signed users, nodes and requests against a test client."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi.testclient import TestClient

from nexapod.crypto import SigningKey, b64encode, sha256_hex, sign_document, sign_request
from nexapod.node.home import node_registration, user_registration
from nexapod.protocol.v1 import PURPOSE_RESULT, LeaseGrant, ResultDocument

__all__ = ["Actor", "PROFILE", "make_node", "make_user", "result_item", "signed"]

PROFILE: dict[str, Any] = {
    "cpu_model": "Test CPU",
    "cpu_cores": 2,
    "memory_bytes": 8 << 30,
    "gpus": [],
    "os": "Linux",
    "machine": "x86_64",
    "python": "3.11",
}
TREE_HASH = "ab" * 32


@dataclass(frozen=True)
class Actor:
    """A user or a node: its key and the signer name it signs as."""

    key: SigningKey
    key_id: str

    @property
    def name(self) -> str:
        return self.key_id.split(":", 1)[1]


def make_user(api: TestClient, username: str) -> Actor:
    key = SigningKey.generate()
    response = api.post("/v1/users", json=user_registration(username, key).model_dump())
    assert response.status_code == 201, response.text
    return Actor(key, f"user:{username}")


def make_node(
    api: TestClient, user: Actor, capacity_flops_per_s: int = 10**10, fingerprint: str = "cd" * 32
) -> Actor:
    key = SigningKey.generate()
    state = {
        "public_key": key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": fingerprint,
        "runner_tree_hash": TREE_HASH,
    }
    request = node_registration(state, key, user.name, user.key, capacity_flops_per_s)
    response = api.post("/v1/nodes", json=request.model_dump())
    assert response.status_code == 201, response.text
    return Actor(key, f"node:{response.json()['node_id']}")


def signed(
    api: TestClient,
    actor: Actor,
    method: str,
    path: str,
    body: Any = None,
    *,
    timestamp_s: int | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    signature = sign_request(
        actor.key,
        key_id=actor.key_id,
        method=method,
        path=path,
        body=content,
        timestamp_s=int(time.time()) if timestamp_s is None else timestamp_s,
    )
    headers = {"content-type": "application/json", **signature.headers()}
    return api.request(method, path, content=content, headers=headers)


def result_item(node: Actor, grant: LeaseGrant, data: bytes, **overrides: Any) -> dict[str, Any]:
    """A signed result for ``grant`` (fields may be overridden to forge bad ones)."""
    document = ResultDocument(
        node_id=node.name,
        job_id=grant.job_id,
        unit_id=grant.unit_id,
        lease_id=grant.lease_id,
        result_sha256=sha256_hex(data),
        runner_tree_hash=TREE_HASH,
        compute_ms=100,
    ).model_dump()
    document.update(overrides.pop("document", {}))
    item = {
        "document": document,
        "signature": sign_document(node.key, PURPOSE_RESULT, document),
        "result_b64": b64encode(data),
    }
    item.update(overrides)
    return item
