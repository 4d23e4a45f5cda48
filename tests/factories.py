"""Helpers that build real signed users, nodes and requests against a test client."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from nexapod.crypto import (
    ReleaseManifest,
    SigningKey,
    b64encode,
    package_root,
    sha256_hex,
    sign_document,
    sign_manifest,
    sign_request,
    tree_file_hashes,
)
from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.ledger.accounts import mint_account_id, parse_account_id
from nexapod.ledger.rules import NewTransfer, TransferResult
from nexapod.ledger.store import ACCOUNTS, HOLDS, LOG_ENTRIES
from nexapod.node.home import node_registration, user_registration
from nexapod.protocol.v1 import PURPOSE_RESULT, LeaseGrant, ResultDocument
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = [
    "RELEASE_SIGNED_AT_S",
    "Actor",
    "LedgerState",
    "PROFILE",
    "fund",
    "copy_package",
    "ledger_state",
    "make_node",
    "make_user",
    "new_transfer_id",
    "result_item",
    "sign_tree",
    "signed",
]

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
RELEASE_SIGNED_AT_S = 1_790_000_000


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
    api: TestClient,
    user: Actor,
    capacity_flops_per_s: int = 10**10,
    fingerprint: str | None = None,
    runner_tree_hash: str = TREE_HASH,
) -> Actor:
    """A registered node of ``user``; a machine of its own unless ``fingerprint`` says."""
    key = SigningKey.generate()
    fingerprint = fingerprint if fingerprint is not None else secrets.token_hex(32)
    state = {
        "public_key": key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": fingerprint,
        "runner_tree_hash": runner_tree_hash,
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
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A request signed by ``actor``; ``raw`` replaces the JSON body, ``headers`` add to
    (or replace) the content type."""
    content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    signature = sign_request(
        actor.key,
        key_id=actor.key_id,
        method=method,
        path=path,
        body=content,
        timestamp_s=int(time.time()) if timestamp_s is None else timestamp_s,
    )
    sent = {"content-type": "application/json", **(headers or {}), **signature.headers()}
    return api.request(method, path, content=content, headers=sent)


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


def new_transfer_id() -> str:
    """A fresh client-chosen transfer id (128 random bits, never all zero)."""
    return f"{secrets.randbits(128) | 1:032x}"


def fund(uow_factory: UnitOfWorkFactory, account_id: str, amount: int) -> TransferResult:
    """Mint ``amount`` into ``account_id`` from its asset's issuer or gateway."""
    ref = parse_account_id(account_id)
    assert ref is not None, account_id
    transfer = NewTransfer(new_transfer_id(), mint_account_id(ref.asset), account_id, amount)
    (result,) = ledger.transfer(uow_factory, [transfer], time.time_ns() // 1_000_000)
    return result


@dataclass(frozen=True)
class LedgerState:
    """Everything a refused batch must leave unchanged."""

    accounts: dict[str, tuple[int, int, int, int]]
    entries: dict[int, tuple[Any, ...]]  # every log entry's row, transfers' keys included
    holds: dict[int, tuple[Any, ...]]
    tree_size: int


def ledger_state(uow_factory: UnitOfWorkFactory) -> LedgerState:
    with uow_factory() as uow:
        session = uow.session
        accounts = {
            row[0]: tuple(row[1:])
            for row in session.execute(
                ACCOUNTS.select().with_only_columns(
                    ACCOUNTS.c.account_id,
                    ACCOUNTS.c.debits_pending,
                    ACCOUNTS.c.debits_posted,
                    ACCOUNTS.c.credits_pending,
                    ACCOUNTS.c.credits_posted,
                )
            )
        }
        entries = {row[0]: tuple(row) for row in session.execute(LOG_ENTRIES.select())}
        holds = {row[0]: tuple(row) for row in session.execute(HOLDS.select())}
        return LedgerState(accounts, entries, holds, log_store.read_tree_size(session))  # type: ignore[arg-type]


def copy_package(destination: Path) -> Path:
    """A copy of the installed nexapod package, without bytecode, to tamper with."""
    shutil.copytree(
        package_root(), destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    return destination


def sign_tree(key: SigningKey, root: Path, version: str = "1.0.0") -> ReleaseManifest:
    """A release manifest of the tree under ``root``, signed with ``key``."""
    return sign_manifest(key, version, tree_file_hashes(root), RELEASE_SIGNED_AT_S)
