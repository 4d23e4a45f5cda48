"""Clients racing to spend from one account, on SQLite and PostgreSQL: never an overdraft,
never a lost update, and a log without gaps or duplicates afterwards."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from nexapod.cli.main import app as cli
from nexapod.coordinator.context import Context
from nexapod.crypto import SigningKey, sign_request
from nexapod.errors import NexaPodError
from nexapod.ledger import log_store, service
from nexapod.ledger.merkle import leaf_hash
from nexapod.ledger.rules import NewTransfer
from nexapod.node.client import CoordinatorClient
from nexapod.node.home import user_registration
from nexapod.storage import make_engine, unit_of_work_factory
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import fund, make_user, new_transfer_id
from tests.processes import CoordinatorProcess

ALICE = "user:alice:NXC"
RECIPIENTS = ("bob", "carol", "dave")
THREADS = 8
ATTEMPTS_PER_THREAD = 20
START_BALANCE = 150  # less than the threads try to spend: many attempts must fail


def _check_books(uow_factory: UnitOfWorkFactory, spent: int, received: dict[str, int]) -> None:
    """Balances equal the sum of the successful transfers; the log is gapless."""
    with uow_factory() as uow:
        alice = service.get_account(uow, ALICE)
        recipients = {name: service.get_account(uow, f"user:{name}:NXC") for name in received}
        tree_size = log_store.read_tree_size(uow.session)
        entries = log_store.read_entries(uow.session, 0, tree_size)
    assert alice.debits_pending == 0
    assert alice.debits_posted == spent
    assert alice.available == START_BALANCE - spent >= 0
    for name, account in recipients.items():
        assert account.balance == received[name], name
        assert account.credits_pending == 0
    assert [index for index, _, _ in entries] == list(range(tree_size))
    ids = []
    for _, entry, stored_hash in entries:
        assert stored_hash == leaf_hash(entry)
        body = json.loads(entry)
        ids.append(body["transfer_id"])
    assert len(set(ids)) == len(ids), "each transfer is logged once"


def test_threads_racing_on_one_account_never_overdraw_it(api: TestClient) -> None:
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    for name in ("alice", *RECIPIENTS):
        make_user(api, name)
    fund(ctx.uow_factory, ALICE, START_BALANCE)
    start = threading.Barrier(THREADS)
    lock = threading.Lock()
    received = dict.fromkeys(RECIPIENTS, 0)
    refusals: list[str] = []

    def spender(seed: int) -> int:
        rng = random.Random(seed)
        start.wait()
        spent = 0
        for _ in range(ATTEMPTS_PER_THREAD):
            name = rng.choice(RECIPIENTS)
            amount = rng.randint(1, 3)
            if rng.random() < 0.3:  # a hold, then a partial post
                hold = NewTransfer(
                    new_transfer_id(), ALICE, f"user:{name}:NXC", amount + 1, phase="pending"
                )
                post = NewTransfer(
                    new_transfer_id(),
                    amount=amount,
                    phase="post_pending",
                    pending_id=hold.transfer_id,
                )
                batches = [[hold], [post]]
            else:
                batches = [[NewTransfer(new_transfer_id(), ALICE, f"user:{name}:NXC", amount)]]
            try:
                for batch in batches:
                    service.transfer(ctx.uow_factory, batch, time.time_ns() // 1_000_000)
            except NexaPodError as exc:
                with lock:
                    refusals.append(exc.code)
                continue
            spent += amount
            with lock:
                received[name] += amount
        return spent

    with ThreadPoolExecutor(THREADS) as pool:
        spent = sum(pool.map(spender, range(THREADS)))
    assert refusals, "the race must run dry"
    assert set(refusals) == {"ledger.insufficient_funds"}
    # after the first refusal at most 3 stay available, plus 1 a hold in flight releases
    assert START_BALANCE - 4 <= spent <= START_BALANCE, "it ran nearly dry, never past"
    _check_books(ctx.uow_factory, spent, received)


def _post_transfers(
    http: httpx.Client, key: SigningKey, user: str, items: list[dict[str, object]]
) -> httpx.Response:
    content = json.dumps({"transfers": items}).encode()
    signature = sign_request(
        key,
        key_id=f"user:{user}",
        method="POST",
        path="/v1/transfers",
        body=content,
        timestamp_s=int(time.time()),
    )
    headers = {"content-type": "application/json", **signature.headers()}
    return http.post("/v1/transfers", content=content, headers=headers)


@pytest.fixture
def coordinator(database_url: str, tmp_path: Path) -> Iterator[tuple[CoordinatorProcess, Engine]]:
    process = CoordinatorProcess(database_url, tmp_path / "coordinator", workers=2)
    engine = make_engine(database_url)
    try:
        yield process, engine
    finally:
        process.stop()
        engine.dispose()


@pytest.mark.slow
def test_http_clients_racing_through_two_workers_never_overdraw(
    coordinator: tuple[CoordinatorProcess, Engine],
) -> None:
    process, engine = coordinator
    uow_factory = unit_of_work_factory(engine)
    key = SigningKey.generate()
    with CoordinatorClient(process.url) as client:
        client.register_user(user_registration("alice", key))
        for name in RECIPIENTS:
            client.register_user(user_registration(name, SigningKey.generate()))
    fund(uow_factory, ALICE, START_BALANCE)
    start = threading.Barrier(THREADS)
    lock = threading.Lock()
    received = dict.fromkeys(RECIPIENTS, 0)
    codes: list[str] = []

    def client_loop(seed: int) -> int:
        rng = random.Random(seed)
        spent = 0
        with httpx.Client(base_url=process.url, timeout=30) as http:
            start.wait()
            for _ in range(ATTEMPTS_PER_THREAD // 2):
                items: list[dict[str, object]] = [
                    {
                        "transfer_id": new_transfer_id(),
                        "debit_account_id": ALICE,
                        "credit_account_id": f"user:{rng.choice(RECIPIENTS)}:NXC",
                        "amount": str(rng.randint(1, 3)),
                    }
                    for _ in range(rng.randint(1, 3))
                ]
                response = _post_transfers(http, key, "alice", items)
                if response.status_code != 201:
                    with lock:
                        codes.append(response.json()["code"])
                    continue
                assert {r["status"] for r in response.json()["results"]} == {"created"}
                retry = _post_transfers(http, key, "alice", items)  # a retry applies nothing
                assert retry.status_code == 201, retry.text
                assert retry.json() == {
                    "results": [{**r, "status": "exists"} for r in response.json()["results"]],
                    "receipts": None,
                }
                for item in items:
                    spent += int(str(item["amount"]))
                    with lock:
                        received[str(item["credit_account_id"]).split(":")[1]] += int(
                            str(item["amount"])
                        )
        return spent

    with ThreadPoolExecutor(THREADS) as pool:
        spent = sum(pool.map(client_loop, range(THREADS)))
    assert codes, "the race must run dry"
    assert set(codes) == {"ledger.insufficient_funds"}
    assert spent <= START_BALANCE
    _check_books(uow_factory, spent, received)
    view = httpx.get(f"{process.url}/v1/accounts/{ALICE}", timeout=10).json()
    assert view["available"] == str(START_BALANCE - spent)

    runner = CliRunner()
    shown = runner.invoke(cli, ["ledger", "balance", ALICE, "--coordinator", process.url])
    assert shown.exit_code == 0, shown.output
    assert f"{START_BALANCE - spent}" in shown.output
    assert "available" in shown.output
    listed = runner.invoke(
        cli, ["ledger", "history", ALICE, "--coordinator", process.url, "--limit", "5"]
    )
    assert listed.exit_code == 0, listed.output
    assert "more: --cursor" in listed.output
    missing = runner.invoke(
        cli, ["ledger", "balance", "user:nobody:NXC", "--coordinator", process.url]
    )
    assert missing.exit_code == 1
    assert "ledger.unknown_account" in missing.output
