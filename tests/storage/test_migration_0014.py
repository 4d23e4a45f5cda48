"""Migration 0014 carries a ledger over, both ways, on SQLite and PostgreSQL: a store
written in the old layout (transfers under their text ids, holds in the transfer rows)
reads the same after the upgrade, keeps working (idempotent resends, posting an old
hold, history), and comes back row for row after the downgrade."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from nexapod.crypto import canonical_json
from nexapod.ledger import service
from nexapod.ledger.merkle import leaf_hash
from nexapod.ledger.rules import NewTransfer, Transfer, transfer_entry_body
from nexapod.ledger.store import ACCOUNT_HISTORY, ACCOUNTS, HOLDS, LOG_ENTRIES
from nexapod.storage import make_engine, unit_of_work_factory
from nexapod.storage.migrate import alembic_config
from nexapod.storage.types import ExactInteger

NOW_MS = 1_900_000_000_000
ALICE, BOB = "user:alice:NXC", "user:bob:NXC"
ISSUER = "system:issuance:NXC"
BIG = 2**130 + 7

OLD_ACCOUNTS = sa.table(
    "ledger_accounts",
    sa.column("account_id", sa.String()),
    sa.column("asset", sa.String()),
    sa.column("owner", sa.String()),
    sa.column("may_go_negative", sa.Boolean()),
    sa.column("debits_pending", ExactInteger()),
    sa.column("debits_posted", ExactInteger()),
    sa.column("credits_pending", ExactInteger()),
    sa.column("credits_posted", ExactInteger()),
    sa.column("opened_at_ms", sa.BigInteger()),
)
OLD_TRANSFERS = sa.table(
    "ledger_transfers",
    *(
        sa.column(name, sa.String())
        for name in ("transfer_id", "phase", "debit_account_id", "credit_account_id", "asset")
    ),
    sa.column("amount", ExactInteger()),
    sa.column("pending_id", sa.String()),
    sa.column("timeout_s", sa.BigInteger()),
    sa.column("code", sa.String()),
    sa.column("timestamp_ms", sa.BigInteger()),
    sa.column("log_index", sa.BigInteger()),
    sa.column("pending_status", sa.String()),
    sa.column("expires_at_ms", sa.BigInteger()),
)
OLD_ENTRIES = sa.table(
    "ledger_log_entries",
    sa.column("leaf_index", sa.BigInteger()),
    sa.column("entry", sa.LargeBinary()),
    sa.column("leaf_hash", sa.LargeBinary()),
)
CHECKPOINTS = sa.table(
    "ledger_checkpoints",
    sa.column("tree_size", sa.BigInteger()),
    sa.column("root_hash", sa.LargeBinary()),
    sa.column("note", sa.Text()),
    sa.column("signed_at_ms", sa.BigInteger()),
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        if down:
            command.downgrade(config, revision)
        else:
            command.upgrade(config, revision)


def _old_ledger() -> list[Transfer]:
    """A mint past 2^128, a payment, a hold still pending (with a timeout), a hold posted
    in part, and its post; a pool entry between them that is no transfer."""
    ids = [f"{n:032x}" for n in (0xA1, 0xB2, 0xC3, 0xD4, 0xE5)]
    return [
        Transfer(ids[0], "single", ISSUER, ALICE, "NXC", BIG, None, 0, "mint", NOW_MS, 0),
        Transfer(ids[1], "single", ALICE, BOB, "NXC", 2**64 + 1, None, 0, "transfer", NOW_MS, 1),
        # index 2: the pool entry
        Transfer(
            ids[2],
            "pending",
            ALICE,
            BOB,
            "NXC",
            30,
            None,
            600,
            "transfer",
            NOW_MS,
            3,
            "pending",
            NOW_MS + 600_000,
        ),
        Transfer(ids[3], "pending", ALICE, BOB, "NXC", 50, None, 0, "hold", NOW_MS, 4, "posted"),
        Transfer(ids[4], "post_pending", ALICE, BOB, "NXC", 20, ids[3], 0, "hold", NOW_MS, 5),
    ]


def _write_old_ledger(engine: Engine, transfers: list[Transfer]) -> None:
    pool_entry = canonical_json({"kind": "pool_transition", "v": 1, "node_id": "n1"})
    entries = {2: pool_entry}
    for t in transfers:
        entries[t.log_index] = canonical_json(
            {"kind": "transfer", "v": 1, **transfer_entry_body(t)}
        )
    totals = {ALICE: [50 + 30 - 50, 2**64 + 1 + 20, 0, BIG], BOB: [0, 0, 30, 2**64 + 1 + 20]}
    with engine.begin() as connection:
        connection.execute(
            sa.insert(OLD_ACCOUNTS),
            [
                {
                    "account_id": account_id,
                    "asset": "NXC",
                    "owner": account_id.rpartition(":")[0],
                    "may_go_negative": False,
                    "debits_pending": dp,
                    "debits_posted": dpo,
                    "credits_pending": cp,
                    "credits_posted": cpo,
                    "opened_at_ms": NOW_MS,
                }
                for account_id, (dp, dpo, cp, cpo) in totals.items()
            ],
        )
        connection.execute(
            sa.update(OLD_ACCOUNTS)
            .where(OLD_ACCOUNTS.c.account_id == ISSUER)
            .values(debits_posted=BIG)
        )
        connection.execute(sa.insert(OLD_TRANSFERS), [t._asdict() for t in transfers])
        connection.execute(
            sa.insert(OLD_ENTRIES),
            [
                {"leaf_index": i, "entry": e, "leaf_hash": leaf_hash(e)}
                for i, e in sorted(entries.items())
            ],
        )
        connection.execute(sa.text("UPDATE ledger_log_head SET tree_size = 6"))
        connection.execute(
            sa.insert(CHECKPOINTS),
            [{"tree_size": 4, "root_hash": b"\x00" * 32, "note": "-", "signed_at_ms": NOW_MS}],
        )


def _old_rows(engine: Engine) -> set[tuple[Any, ...]]:
    with engine.connect() as connection:
        return {tuple(row) for row in connection.execute(sa.select(OLD_TRANSFERS))}


def test_a_ledger_is_carried_over_and_back(engine: Engine) -> None:
    _migrate(engine, "0013")
    transfers = _old_ledger()
    _write_old_ledger(engine, transfers)
    before = _old_rows(engine)
    assert len(before) == 5
    _migrate(engine, "head")

    with engine.connect() as connection:
        keys = dict(
            connection.execute(sa.select(ACCOUNTS.c.account_id, ACCOUNTS.c.account_key)).all()
        )
        entries = connection.execute(
            sa.select(
                LOG_ENTRIES.c.leaf_index,
                LOG_ENTRIES.c.transfer_id,
                LOG_ENTRIES.c.debit_key,
                LOG_ENTRIES.c.credit_key,
            ).order_by(LOG_ENTRIES.c.leaf_index)
        ).all()
        holds = set(connection.execute(sa.select(HOLDS)).all())
        indexed = set(connection.execute(sa.select(ACCOUNT_HISTORY)).all())
    assert sorted(keys.values()) == list(range(1, len(keys) + 1)), "keys 1, 2, ..."
    by_index = {t.log_index: t for t in transfers}
    for leaf_index, tid, debit_key, credit_key in entries:
        t = by_index.get(leaf_index)
        if t is None:
            assert (tid, debit_key, credit_key) == (None, None, None), "not a transfer"
        else:
            assert bytes(tid) == bytes.fromhex(t.transfer_id)
            assert (debit_key, credit_key) == (keys[t.debit_account_id], keys[t.credit_account_id])
    assert holds == {(3, "pending", NOW_MS + 600_000), (4, "posted", None)}
    assert indexed == {  # what the checkpoint of size 4 covers; 4 and 5 are the tail
        (keys[account], t.log_index)
        for t in transfers
        if t.log_index < 4
        for account in (t.debit_account_id, t.credit_account_id)
    }

    uow_factory = unit_of_work_factory(engine)
    with uow_factory() as uow:
        alice = service.get_account(uow, ALICE)
        page = service.list_transfers(uow, ALICE, None, 10, 10)
    assert (alice.debits_pending, alice.credits_posted) == (30, BIG)
    assert [t.log_index for t in page.transfers] == [5, 4, 3, 1, 0]
    assert page.transfers[0].pending_id == transfers[3].transfer_id
    resent = NewTransfer(transfers[1].transfer_id, ALICE, BOB, 2**64 + 1)
    (again,) = service.transfer(uow_factory, [resent], NOW_MS + 1)
    assert (again.status, again.transfer) == ("exists", transfers[1])
    post = NewTransfer(f"{0xF6:032x}", phase="post_pending", pending_id=transfers[2].transfer_id)
    (posted,) = service.transfer(uow_factory, [post], NOW_MS + 2)
    assert (posted.status, posted.transfer.amount, posted.transfer.log_index) == ("created", 30, 6)

    _migrate(engine, "0013", down=True)
    after = _old_rows(engine)
    new_post = (
        *(f"{0xF6:032x}", "post_pending", ALICE, BOB, "NXC", 30, transfers[2].transfer_id),
        *(0, "transfer", NOW_MS + 2, 6, None, None),
    )
    hold_now = (*transfers[2][:11], "posted", NOW_MS + 600_000)
    assert after - before == {new_post, hold_now}, "what the service did, nothing else"
    assert before - after == {tuple(transfers[2])}
    _migrate(engine, "head")  # and up again
    with uow_factory() as uow:
        assert [t.log_index for t in service.list_transfers(uow, BOB, None, 10, 10).transfers] == [
            6,
            5,
            4,
            3,
            1,
        ]
