"""The ledger over HTTP, on SQLite and PostgreSQL: signed batches, accounts, history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexapod.coordinator.app import create_app
from nexapod.coordinator.context import Context
from nexapod.ledger import service
from nexapod.ledger.rules import TRANSFERS_PER_BATCH_MAX
from nexapod.settings import Settings
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import (
    Actor,
    fund,
    ledger_state,
    make_node,
    make_user,
    new_transfer_id,
    signed,
)

ALICE = "user:alice:NXC"
BOB = "user:bob:NXC"
PAGE_SIZE_MAX = 3


@pytest.fixture
def ledger_api(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.with_overrides(page_size_max=PAGE_SIZE_MAX), run_maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def world(ledger_api: TestClient) -> tuple[UnitOfWorkFactory, Actor, Actor]:
    """alice (with 1,000 NXC) and bob, and the coordinator's units of work."""
    ctx: Context = ledger_api.app.state.context  # type: ignore[attr-defined]
    alice = make_user(ledger_api, "alice")
    bob = make_user(ledger_api, "bob")
    fund(ctx.uow_factory, ALICE, 1_000)
    return ctx.uow_factory, alice, bob


def _item(
    debit: str = ALICE, credit: str = BOB, amount: Any = "1", **fields: Any
) -> dict[str, Any]:
    return {
        "transfer_id": new_transfer_id(),
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        **fields,
    }


def _post(api: TestClient, actor: Actor, *items: dict[str, Any]) -> Any:
    return signed(api, actor, "POST", "/v1/transfers", {"transfers": list(items)})


def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def test_a_signed_batch_moves_money_and_names_its_log_entries(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    _, alice, _ = world
    items = [_item(amount="100"), _item(amount="50", phase="pending", timeout_s=600)]
    response = _post(ledger_api, alice, *items)
    assert response.status_code == 201, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["created", "created"]
    assert [r["transfer"]["log_index"] for r in results] == [1, 2]  # 0 is the funding
    assert results[1]["transfer"]["pending_status"] == "pending"
    assert (
        results[1]["transfer"]["expires_at_ms"] == results[1]["transfer"]["timestamp_ms"] + 600_000
    )
    view = ledger_api.get(f"/v1/accounts/{ALICE}").json()
    assert view == {
        "account_id": ALICE,
        "asset": "NXC",
        "owner": "user:alice",
        "may_go_negative": False,
        "debits_pending": "50",
        "debits_posted": "100",
        "credits_pending": "0",
        "credits_posted": "1000",
        "balance": "900",
        "available": "850",
        "opened_at_ms": view["opened_at_ms"],
    }
    again = _post(ledger_api, alice, *items)  # a retry (a new signature and nonce)
    assert again.status_code == 201
    assert [r["status"] for r in again.json()["results"]] == ["exists", "exists"]
    assert [r["transfer"] for r in again.json()["results"]] == [r["transfer"] for r in results]
    assert ledger_api.get(f"/v1/accounts/{ALICE}").json() == view
    conflict = _post(ledger_api, alice, _item(), {**items[0], "amount": "101"})
    body = _problem(conflict, 409, "ledger.transfer_id_conflict")
    assert (body["item_index"], body["transfer_id"]) == (1, items[0]["transfer_id"])


def test_amounts_are_decimal_text_of_any_size(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    uow_factory, alice, _ = world
    fund(uow_factory, ALICE, 2**130)
    amount = str(2**129 + 1)
    response = _post(ledger_api, alice, _item(amount=amount))
    assert response.status_code == 201, response.text
    assert response.json()["results"][0]["transfer"]["amount"] == amount
    assert ledger_api.get(f"/v1/accounts/{BOB}").json()["balance"] == amount
    before = ledger_state(uow_factory)
    for bad in (5, 5.0, "1.5", "-5", "1e3", " 5", "007", "", "9" * 61, True):
        response = _post(ledger_api, alice, _item(), _item(amount=bad))
        body = _problem(response, 422, "protocol.invalid_request")
        assert "transfers.1.amount" in body["detail"], (bad, body)
    body = _problem(
        _post(ledger_api, alice, _item(), _item(amount="0")), 422, "ledger.amount_not_positive"
    )
    assert body["item_index"] == 1
    missing = _problem(
        _post(ledger_api, alice, _item(amount=None)), 422, "ledger.amount_not_integer"
    )
    assert missing["item_index"] == 0
    assert ledger_state(uow_factory) == before


def test_a_user_debits_only_their_own_accounts(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    uow_factory, alice, bob = world
    fund(uow_factory, BOB, 10)
    hold = _item(debit=BOB, credit=ALICE, amount="5", phase="pending")
    assert _post(ledger_api, bob, hold).status_code == 201
    before = ledger_state(uow_factory)
    body = _problem(
        _post(ledger_api, alice, _item(), _item(debit=BOB, credit=ALICE)),
        403,
        "ledger.account_not_yours",
    )
    assert body["item_index"] == 1
    steal = {"transfer_id": new_transfer_id(), "phase": "post_pending"}
    _problem(
        _post(ledger_api, alice, {**steal, "pending_id": hold["transfer_id"]}),
        403,
        "ledger.account_not_yours",
    )
    _problem(
        _post(ledger_api, alice, _item(debit="system:issuance:NXC")),
        403,
        "ledger.account_not_yours",
    )
    node = make_node(ledger_api, alice)
    _problem(_post(ledger_api, node, _item()), 403, "auth.user_required")
    unsigned = ledger_api.post("/v1/transfers", json={"transfers": [_item()]})
    _problem(unsigned, 401, "auth.signature_missing")
    assert ledger_state(uow_factory) == before
    # bob posts his own hold
    post = {**steal, "pending_id": hold["transfer_id"], "amount": "2"}
    response = _post(ledger_api, bob, post)
    assert response.status_code == 201, response.text
    assert ledger_api.get(f"/v1/accounts/{BOB}").json()["balance"] == "8"


def test_one_bad_transfer_refuses_the_whole_batch(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    uow_factory, alice, _ = world
    before = ledger_state(uow_factory)
    cases = [
        ([_item(), _item(), _item(amount="1000")], 409, "ledger.insufficient_funds"),
        ([_item(), _item(credit="user:nobody:NXC")], 404, "ledger.unknown_account"),
        ([_item(), _item(credit="user:bob:USDC")], 422, "ledger.asset_mismatch"),
        ([_item(), _item(transfer_id="0" * 32)], 422, "ledger.malformed_transfer_id"),
        ([_item(), _item(transfer_id="X" * 32)], 422, "ledger.malformed_transfer_id"),
        ([_item(), _item(credit=ALICE)], 422, "ledger.same_account"),
        ([_item(), _item(credit="bob")], 422, "ledger.malformed_account_id"),
        (
            [
                _item(),
                {
                    "transfer_id": new_transfer_id(),
                    "phase": "void_pending",
                    "pending_id": new_transfer_id(),
                },
            ],
            404,
            "ledger.pending_not_found",
        ),
    ]
    for items, status, code in cases:
        body = _problem(_post(ledger_api, alice, *items), status, code)
        assert body["item_index"] == len(items) - 1, body
        assert body["instance"] == "/v1/transfers"
    assert ledger_state(uow_factory) == before
    _problem(
        signed(ledger_api, alice, "POST", "/v1/transfers", {"transfers": []}),
        422,
        "protocol.invalid_request",
    )
    too_many = [_item() for _ in range(TRANSFERS_PER_BATCH_MAX + 1)]
    body = _problem(_post(ledger_api, alice, *too_many), 413, "ledger.too_many_transfers")
    assert body["transfers_max"] == TRANSFERS_PER_BATCH_MAX
    extra = {"transfers": [_item()], "memo": "x"}
    _problem(
        signed(ledger_api, alice, "POST", "/v1/transfers", extra), 422, "protocol.invalid_request"
    )
    assert ledger_state(uow_factory) == before


def test_holds_over_http_post_void_and_expire(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    uow_factory, alice, _ = world
    hold = _item(amount="300", phase="pending", timeout_s=1)
    other = _item(amount="200", phase="pending")
    response = _post(ledger_api, alice, hold, other)
    assert response.status_code == 201, response.text
    expires_at_ms = response.json()["results"][0]["transfer"]["expires_at_ms"]
    void = {
        "transfer_id": new_transfer_id(),
        "phase": "void_pending",
        "pending_id": other["transfer_id"],
    }
    assert _post(ledger_api, alice, void).status_code == 201
    assert ledger_api.get(f"/v1/accounts/{ALICE}").json()["available"] == "700"
    assert service.expire_pending_transfers(uow_factory, expires_at_ms) == 1
    assert ledger_api.get(f"/v1/accounts/{ALICE}").json()["available"] == "1000"
    post = {
        "transfer_id": new_transfer_id(),
        "phase": "post_pending",
        "pending_id": hold["transfer_id"],
    }
    body = _problem(_post(ledger_api, alice, post), 410, "ledger.pending_expired")
    assert body["item_index"] == 0
    history = ledger_api.get(f"/v1/accounts/{ALICE}/transfers").json()["transfers"]
    assert {t["transfer_id"]: t["pending_status"] for t in history if t["phase"] == "pending"} == {
        hold["transfer_id"]: "expired",
        other["transfer_id"]: "voided",
    }


def test_history_pages_with_a_cursor_and_a_capped_size(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    _, alice, _ = world
    assert _post(ledger_api, alice, *[_item(amount=str(n)) for n in range(1, 8)]).status_code == 201
    seen: list[int] = []
    path = f"/v1/accounts/{ALICE}/transfers?limit=100"
    for _ in range(10):
        page = ledger_api.get(path).json()
        assert len(page["transfers"]) <= PAGE_SIZE_MAX
        seen.extend(t["log_index"] for t in page["transfers"])
        if page["next_cursor"] is None:
            break
        path = f"/v1/accounts/{ALICE}/transfers?limit=100&cursor={page['next_cursor']}"
    assert seen == list(range(7, -1, -1))
    bob_page = ledger_api.get(f"/v1/accounts/{BOB}/transfers?limit=2").json()
    assert [t["amount"] for t in bob_page["transfers"]] == ["7", "6"]
    for bad in ("?cursor=abc", "?cursor=-1", "?limit=0", "?limit=100000"):
        _problem(
            ledger_api.get(f"/v1/accounts/{ALICE}/transfers{bad}"), 422, "protocol.invalid_request"
        )
    _problem(
        ledger_api.get("/v1/accounts/user:nobody:NXC/transfers"), 404, "ledger.unknown_account"
    )


def test_accounts_read_back(
    ledger_api: TestClient, world: tuple[UnitOfWorkFactory, Actor, Actor]
) -> None:
    _problem(ledger_api.get("/v1/accounts/user:nobody:NXC"), 404, "ledger.unknown_account")
    for bad in ("alice", "user:alice:EUR", "user:alice:nxc", "user:" + "a" * 40 + ":NXC"):
        _problem(ledger_api.get(f"/v1/accounts/{bad}"), 422, "protocol.invalid_request")
    unopened = ledger_api.get("/v1/accounts/user:bob:USD").json()
    assert (unopened["balance"], unopened["opened_at_ms"], unopened["asset"]) == ("0", None, "USD")
    issuer = ledger_api.get("/v1/accounts/system:issuance:NXC").json()
    assert (issuer["may_go_negative"], issuer["balance"], issuer["owner"]) == (
        True,
        "-1000",
        "system:issuance",
    )


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
ITEM_KEYS = st.sampled_from(
    [
        "transfer_id",
        "debit_account_id",
        "credit_account_id",
        "amount",
        "phase",
        "pending_id",
        "timeout_s",
        "code",
    ]
)
ITEMS = st.dictionaries(
    ITEM_KEYS, JSON_VALUES | st.sampled_from([ALICE, BOB, "1", "0", "a" * 32]), max_size=8
)
BODIES = JSON_VALUES | st.fixed_dictionaries({"transfers": st.lists(ITEMS, max_size=3)})


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Actor]]:
    root: Path = tmp_path_factory.mktemp("ledger-fuzz")
    app = create_app(
        Settings(data_dir=root, database_url=f"sqlite:///{root}/c.sqlite3"), run_maintenance=False
    )
    with TestClient(app, raise_server_exceptions=False) as api:
        yield api, make_user(api, "fuzzer")


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_junk_transfer_requests_are_refused_cleanly(
    fuzz_world: tuple[TestClient, Actor], body: Any
) -> None:
    api, user = fuzz_world
    response = signed(api, user, "POST", "/v1/transfers", body)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"
        assert "." in response.json()["code"]
    raw = api.post(
        "/v1/transfers", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert raw.status_code == 401
