"""The ledger's log table: generic appends in the caller's transaction, gapless indexes,
the schema as migrated, and the system accounts that exist after migration."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, select

from nexapod.crypto import canonical_json
from nexapod.ledger import log_store
from nexapod.ledger.accounts import SYSTEM_ACCOUNTS
from nexapod.ledger.merkle import leaf_hash
from nexapod.ledger.store import ACCOUNTS
from nexapod.storage.models import Base
from nexapod.storage.uow import UnitOfWorkFactory

THREADS = 6
APPENDS_PER_THREAD = 15


def _append(uow_factory: UnitOfWorkFactory, kind: str, bodies: list[dict[str, Any]]) -> int:
    with uow_factory() as uow:
        first = log_store.append_entries(uow.session, kind, bodies)
        uow.commit()
    return first


def _entries(uow_factory: UnitOfWorkFactory) -> list[tuple[int, bytes, bytes]]:
    with uow_factory() as uow:
        size = log_store.read_tree_size(uow.session)
        return log_store.read_entries(uow.session, 0, size)


def test_appends_are_canonical_json_at_the_next_index(uow_factory: UnitOfWorkFactory) -> None:
    assert _append(uow_factory, "pool_transition", []) == 0
    first = _append(
        uow_factory,
        "pool_transition",
        [
            {"node_id": "n1", "from": "warm", "to": "hot", "timestamp_ms": 5},
            {"node_id": "n2", "reason": "caf\u00e9", "flops": str(2**70), "timestamp_ms": 6},
        ],
    )
    assert first == 0
    assert _append(uow_factory, "policy_change", [{"key": "epoch_s", "timestamp_ms": 7}]) == 2
    entries = _entries(uow_factory)
    assert [index for index, _, _ in entries] == [0, 1, 2]
    for _, entry, stored_hash in entries:
        assert canonical_json(json.loads(entry)) == entry
        assert stored_hash == leaf_hash(entry)
    assert entries[0][1] == (
        b'{"from":"warm","kind":"pool_transition","node_id":"n1","timestamp_ms":5,"to":"hot","v":1}'
    )
    assert json.loads(entries[1][1])["reason"] == "caf\u00e9"
    assert json.loads(entries[2][1])["kind"] == "policy_change"


def test_an_append_rolled_back_leaves_no_trace(uow_factory: UnitOfWorkFactory) -> None:
    _append(uow_factory, "event", [{"n": 1}])
    with uow_factory() as uow:
        assert log_store.append_entries(uow.session, "event", [{"n": 2}, {"n": 3}]) == 1
        assert log_store.read_tree_size(uow.session) == 3
        # leaving without commit rolls back
    assert [index for index, _, _ in _entries(uow_factory)] == [0]
    assert _append(uow_factory, "event", [{"n": 4}]) == 1


def test_append_refuses_what_it_owns_and_what_it_cannot_publish(
    uow_factory: UnitOfWorkFactory,
) -> None:
    with uow_factory() as uow:
        with pytest.raises(AssertionError):
            log_store.append_entries(uow.session, "event", [{"kind": "x"}])
        with pytest.raises(AssertionError):
            log_store.append_entries(uow.session, "Bad Kind", [{"n": 1}])
        with pytest.raises(ValueError, match="float"):
            log_store.append_entries(uow.session, "event", [{"ratio": 0.5}])
        with pytest.raises(AssertionError):
            log_store.append_entries(uow.session, "event", [{"blob": "x" * 70_000}])
    assert _entries(uow_factory) == []


def test_concurrent_appenders_leave_no_gap_and_no_duplicate(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Each thread has its own connection; PostgreSQL serialises through the advisory lock."""
    start = threading.Barrier(THREADS)

    def appender(thread: int) -> list[int]:
        start.wait()
        firsts = []
        for n in range(APPENDS_PER_THREAD):
            bodies = [{"thread": thread, "n": n, "part": part} for part in range(2)]
            firsts.append(_append(uow_factory, "event", bodies))
        return firsts

    with ThreadPoolExecutor(THREADS) as pool:
        firsts = [first for result in pool.map(appender, range(THREADS)) for first in result]
    size = THREADS * APPENDS_PER_THREAD * 2
    assert sorted(firsts) == list(range(0, size, 2))
    entries = _entries(uow_factory)
    assert [index for index, _, _ in entries] == list(range(size))
    bodies = [json.loads(entry) for _, entry, _ in entries]
    assert {(b["thread"], b["n"], b["part"]) for b in bodies} == {
        (t, n, p) for t in range(THREADS) for n in range(APPENDS_PER_THREAD) for p in range(2)
    }
    for first in firsts:  # the two entries of one append are adjacent
        assert bodies[first]["part"] == 0
        assert bodies[first + 1]["part"] == 1
        assert bodies[first]["n"] == bodies[first + 1]["n"]


def test_the_lock_key_is_the_documented_one() -> None:
    assert log_store.LOG_LOCK_KEY == int.from_bytes(b"NXLEDGER", "big") == 0x4E584C4544474552


def test_system_accounts_exist_after_migration(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        rows = uow.session.execute(
            select(ACCOUNTS.c.account_id, ACCOUNTS.c.may_go_negative, ACCOUNTS.c.credits_posted)
        ).all()
        assert log_store.read_tree_size(uow.session) == 0
    assert {account_id: negative for account_id, negative, _ in rows} == SYSTEM_ACCOUNTS
    assert all(credits == 0 for _, _, credits in rows)


def test_the_migration_builds_the_tables_the_models_describe(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
