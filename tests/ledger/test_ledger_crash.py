"""Crash safety: a real coordinator under transfer load, killed with SIGKILL, restarted.

Clients post signed batches over HTTP; at random moments the coordinator process is
killed (no shutdown of any kind) and started again on the same store and key. Batches
whose answer was lost are sent again with the same ids. In the end every acknowledged
transfer is in the ledger exactly once, with exactly one log entry; balances are what
the acknowledged transfers make them; and the independent verifier, run with a witness
after every restart, accepts the log each time, so no checkpoint was ever rewritten.
On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select

from nexapod.crypto import SigningKey, sign_request
from nexapod.ledger.log_store import read_tree_size
from nexapod.ledger.note import parse_vkey
from nexapod.ledger.store import LOG_ENTRIES
from nexapod.ledger.verifier import HttpSource, verify_log
from nexapod.node.home import user_registration
from nexapod.storage import make_engine, unit_of_work_factory
from tests.factories import fund, new_transfer_id
from tests.processes import CoordinatorProcess

KILLS = 3
CLIENTS = 2
BATCH = 25
START_NXC = 10**15


def post_batch(url: str, key: SigningKey, batch: list[dict[str, str]]) -> httpx.Response:
    content = json.dumps({"transfers": batch}).encode()
    signature = sign_request(
        key,
        key_id="user:alice",
        method="POST",
        path="/v1/transfers",
        body=content,
        timestamp_s=int(time.time()),
    )
    headers = {"content-type": "application/json", **signature.headers()}
    return httpx.post(f"{url}/v1/transfers", content=content, headers=headers, timeout=30)


def new_batch(rng: random.Random) -> list[dict[str, str]]:
    return [
        {
            "transfer_id": new_transfer_id(),
            "debit_account_id": "user:alice:NXC",
            "credit_account_id": "user:bob:NXC",
            "amount": str(rng.randint(1, 10**6)),
        }
        for _ in range(BATCH)
    ]


class Load:
    """Clients posting batches until the coordinator dies under them."""

    def __init__(self, key: SigningKey, seed: int) -> None:
        self.key = key
        self.rng = random.Random(seed)
        self.acknowledged: dict[str, int] = {}
        self.unanswered: list[list[dict[str, str]]] = []
        self.lock = threading.Lock()

    def run(self, url: str) -> None:
        while True:
            with self.lock:
                batch = new_batch(self.rng)
            try:
                response = post_batch(url, self.key, batch)
            except httpx.TransportError:
                with self.lock:
                    self.unanswered.append(batch)
                return
            assert response.status_code == 201, response.text
            self.record(batch, response)

    def record(self, batch: list[dict[str, str]], response: httpx.Response) -> None:
        statuses = [r["status"] for r in response.json()["results"]]
        assert set(statuses) <= {"created", "exists"}
        with self.lock:
            for item in batch:
                self.acknowledged[item["transfer_id"]] = int(item["amount"])

    def resend(self, url: str) -> None:
        """Batches whose answer was lost: the same ids again, applied once at most."""
        with self.lock:
            batches, self.unanswered = self.unanswered, []
        for batch in batches:
            response = post_batch(url, self.key, batch)
            assert response.status_code == 201, response.text
            self.record(batch, response)


def test_sigkill_under_transfer_load_loses_and_doubles_nothing(
    database_url: str, tmp_path: Path
) -> None:
    data_dir = tmp_path / "coordinator"
    server = CoordinatorProcess(database_url, data_dir)
    engine = make_engine(database_url)
    uow_factory = unit_of_work_factory(engine)
    try:
        keys = {name: SigningKey.generate() for name in ("alice", "bob")}
        for name, key in keys.items():
            registration = user_registration(name, key).model_dump()
            assert httpx.post(f"{server.url}/v1/users", json=registration).status_code == 201
        fund(uow_factory, "user:alice:NXC", START_NXC)
        vkey = httpx.get(f"{server.url}/v1/ledger/log/vkey").text.strip()
        verifier = parse_vkey(vkey)
        witness = tmp_path / "witness"
        load = Load(keys["alice"], seed=7)
        rng = random.Random(11)
        for _ in range(KILLS):
            clients = [
                threading.Thread(target=load.run, args=(server.url,)) for _ in range(CLIENTS)
            ]
            for client in clients:
                client.start()
            time.sleep(rng.uniform(0.5, 2.0))
            server.kill()
            for client in clients:
                client.join(timeout=60)
                assert not client.is_alive()
            server = CoordinatorProcess(database_url, data_dir)
            assert httpx.get(f"{server.url}/v1/ledger/log/vkey").text.strip() == vkey
            load.resend(server.url)
            verify_log(HttpSource(server.url), verifier, witness_file=witness)
        assert len(load.acknowledged) >= KILLS * BATCH, "the load ran between kills"
        report = verify_log(HttpSource(server.url), verifier, witness_file=witness)
        with uow_factory() as uow:
            session = uow.session
            stored = Counter(
                bytes(tid).hex()
                for tid in session.execute(
                    select(LOG_ENTRIES.c.transfer_id).where(
                        LOG_ENTRIES.c.transfer_id.in_([bytes.fromhex(t) for t in load.acknowledged])
                    )
                ).scalars()
            )
            transfers_total = session.execute(
                select(func.count()).where(LOG_ENTRIES.c.transfer_id.is_not(None))
            ).scalar()
            entries = [bytes(e) for e in session.execute(select(LOG_ENTRIES.c.entry)).scalars()]
            tree_size = read_tree_size(session)
        assert set(stored) == set(load.acknowledged) and set(stored.values()) == {1}
        assert transfers_total == len(load.acknowledged) + 1  # and the funding transfer
        logged = Counter(json.loads(e).get("transfer_id") for e in entries)
        assert all(logged[tid] == 1 for tid in load.acknowledged)
        assert tree_size == len(entries) == transfers_total == report.tree_size
        bob = httpx.get(f"{server.url}/v1/accounts/user:bob:NXC").json()
        assert int(bob["credits_posted"]) == sum(load.acknowledged.values())
        alice = httpx.get(f"{server.url}/v1/accounts/user:alice:NXC").json()
        assert int(alice["balance"]) == START_NXC - sum(load.acknowledged.values())
    finally:
        server.stop()
        engine.dispose()
