"""Account histories on SQLite and PostgreSQL: indexed by the integrator, read with the
tail it has not reached, never stale, never twice, and bounded."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from nexapod.coordinator.context import Context
from nexapod.coordinator.maintenance import integrate_log_once
from nexapod.ledger import history, log_store, service
from nexapod.ledger.errors import LedgerError
from nexapod.ledger.rules import NewTransfer
from nexapod.ledger.store import ACCOUNT_HISTORY, ACCOUNTS
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import fund, make_user, new_transfer_id

ALICE = "user:alice:NXC"
BOB = "user:bob:NXC"
CAROL = "user:carol:NXC"
NOW_MS = 1_900_000_000_000


@pytest.fixture
def ctx(api: TestClient) -> Context:
    for name in ("alice", "bob", "carol"):
        make_user(api, name)
    context: Context = api.app.state.context  # type: ignore[attr-defined]
    return context


def _pay(uow_factory: UnitOfWorkFactory, pairs: list[tuple[str, str]]) -> list[int]:
    batch = [NewTransfer(new_transfer_id(), debit, credit, 1) for debit, credit in pairs]
    return [r.transfer.log_index for r in service.transfer(uow_factory, batch, NOW_MS)]


def _history(uow_factory: UnitOfWorkFactory, account_id: str, size: int) -> list[int]:
    """Every page of the account's history, cursor after cursor."""
    seen: list[int] = []
    cursor = None
    with uow_factory() as uow:
        for _ in range(100):
            page = service.list_transfers(uow, account_id, cursor, size, 100)
            seen.extend(t.log_index for t in page.transfers)
            assert all(
                account_id in (t.debit_account_id, t.credit_account_id) for t in page.transfers
            )
            cursor = page.next_cursor
            if cursor is None:
                return seen
    raise AssertionError("the pages never ended")


def test_pages_read_the_index_and_the_tail_alike(ctx: Context) -> None:
    uow_factory = ctx.uow_factory
    fund(uow_factory, ALICE, 1_000)  # index 0
    indexed = _pay(uow_factory, [(ALICE, BOB), (BOB, CAROL), (ALICE, CAROL)] * 3)
    integrate_log_once(ctx)
    tail = _pay(uow_factory, [(CAROL, ALICE), (ALICE, BOB), (BOB, CAROL)] * 2)
    touching = {
        ALICE: [0, *(i for n, i in enumerate(indexed) if n % 3 != 1)],
        BOB: [i for n, i in enumerate(indexed) if n % 3 != 2],
    }
    touching[ALICE] += [i for n, i in enumerate(tail) if n % 3 != 2]
    touching[BOB] += [i for n, i in enumerate(tail) if n % 3 != 0]
    for account_id, expected in touching.items():
        newest_first = sorted(expected, reverse=True)
        for size in (1, 2, 4, 50):
            assert _history(uow_factory, account_id, size) == newest_first, (account_id, size)
    integrate_log_once(ctx)  # now all indexed: the same pages
    for account_id, expected in touching.items():
        assert _history(uow_factory, account_id, 3) == sorted(expected, reverse=True)


def test_the_integrator_indexes_exactly_what_its_checkpoint_covers(ctx: Context) -> None:
    uow_factory = ctx.uow_factory
    fund(uow_factory, ALICE, 100)
    _pay(uow_factory, [(ALICE, BOB)] * 5)
    with uow_factory() as uow:  # nothing indexed at commit
        assert uow.session.scalar(select(func.count()).select_from(ACCOUNT_HISTORY)) == 0
    checkpoint = integrate_log_once(ctx)
    assert checkpoint is not None and checkpoint.tree_size == 6
    with uow_factory() as uow:
        rows = uow.session.execute(select(ACCOUNT_HISTORY)).all()
        keys = dict(
            uow.session.execute(select(ACCOUNTS.c.account_id, ACCOUNTS.c.account_key)).all()
        )
        assert sorted(rows) == sorted(
            [(keys["system:issuance:NXC"], 0), (keys[ALICE], 0)]
            + [(keys[account], i) for i in range(1, 6) for account in (ALICE, BOB)]
        )
        # integrating the same entries again (a rebuild of tiles and checkpoints from the
        # log) finds them indexed already and adds nothing
        assert history.index_history(uow.session, 0, 6) == 0


def test_accounts_get_the_next_keys_in_the_order_they_open(ctx: Context) -> None:
    uow_factory = ctx.uow_factory
    with uow_factory() as uow:
        before = uow.session.scalar(select(func.max(ACCOUNTS.c.account_key)))
    assert before is not None
    fund(uow_factory, CAROL, 1)
    service.open_account(uow_factory, "user:bob:USD", NOW_MS)
    service.open_account(uow_factory, "user:bob:USD", NOW_MS)  # already open: no new key
    with uow_factory() as uow:
        keys = dict(
            uow.session.execute(select(ACCOUNTS.c.account_id, ACCOUNTS.c.account_key)).all()
        )
    assert (keys[CAROL], keys["user:bob:USD"]) == (before + 1, before + 2)
    assert len(set(keys.values())) == len(keys)


def test_a_tail_longer_than_its_limit_is_refused_not_scanned(
    ctx: Context, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    uow_factory = ctx.uow_factory
    fund(uow_factory, ALICE, 100)
    _pay(uow_factory, [(ALICE, BOB)] * 4)
    monkeypatch.setattr(history, "HISTORY_TAIL_ENTRIES_MAX", 3)
    with uow_factory() as uow, pytest.raises(LedgerError) as caught:
        service.list_transfers(uow, ALICE, None, 10, 10)
    assert (caught.value.code, caught.value.http_status) == ("ledger.history_behind", 503)
    response = api.get(f"/v1/accounts/{ALICE}/transfers")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "ledger.history_behind"
    integrate_log_once(ctx)  # caught up: served again
    with uow_factory() as uow:
        page = service.list_transfers(uow, ALICE, None, 10, 10)
        assert log_store.read_tree_size(uow.session) == 5
    assert [t.log_index for t in page.transfers] == [4, 3, 2, 1, 0]
