"""Transfers at the service layer, on SQLite and PostgreSQL: exact amounts, no overdraft,
refusals that change nothing, idempotent ids, holds, and one log entry per transfer."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.coordinator.context import Context
from nexapod.crypto import canonical_json
from nexapod.ledger import log_store, service
from nexapod.ledger.accounts import may_go_negative
from nexapod.ledger.errors import LedgerError
from nexapod.ledger.merkle import leaf_hash
from nexapod.ledger.rules import (
    TRANSFERS_PER_BATCH_MAX,
    Account,
    NewTransfer,
    Transfer,
    TransferResult,
    apply_batch,
    check_batch,
)
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import fund, ledger_state, make_user, new_transfer_id

ALICE = "user:alice:NXC"
BOB = "user:bob:NXC"
ALICE_USDC = "user:alice:USDC"
ISSUER = "system:issuance:NXC"
NOW_MS = 1_900_000_000_000


@pytest.fixture
def uow_factory(api: TestClient) -> UnitOfWorkFactory:
    """The coordinator's own units of work, with users alice and bob registered."""
    make_user(api, "alice")
    make_user(api, "bob")
    ctx: Context = api.app.state.context  # type: ignore[attr-defined]
    return ctx.uow_factory


def _move(
    uow_factory: UnitOfWorkFactory, *transfers: NewTransfer, now_ms: int = NOW_MS
) -> list[TransferResult]:
    return service.transfer(uow_factory, list(transfers), now_ms)


def _totals(uow_factory: UnitOfWorkFactory, account_id: str) -> tuple[int, int, int, int]:
    with uow_factory() as uow:
        a = service.get_account(uow, account_id)
    return a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted


def _balance(uow_factory: UnitOfWorkFactory, account_id: str) -> tuple[int, int]:
    with uow_factory() as uow:
        a = service.get_account(uow, account_id)
    return a.balance, a.available


def _refused(uow_factory: UnitOfWorkFactory, *transfers: NewTransfer, now_ms: int = NOW_MS) -> Any:
    with pytest.raises(LedgerError) as caught:
        _move(uow_factory, *transfers, now_ms=now_ms)
    return caught.value


def test_amounts_past_2_64_and_2_128_are_exact(uow_factory: UnitOfWorkFactory) -> None:
    big = 2**128 + 12_345
    medium = 2**64 + 7
    fund(uow_factory, ALICE, big)
    (result,) = _move(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, medium))
    assert result.transfer.amount == medium
    assert _totals(uow_factory, ALICE) == (0, medium, 0, big)
    assert _totals(uow_factory, BOB) == (0, 0, 0, medium)
    assert _balance(uow_factory, ALICE) == (big - medium, big - medium)
    assert _balance(uow_factory, ISSUER) == (-big, -big)
    with uow_factory() as uow:
        page = service.list_transfers(uow, BOB, None, 10, 10)
        entry = log_store.read_entries(uow.session, result.transfer.log_index, 2)[0][1]
    assert page.transfers[0].amount == str(medium)
    assert json.loads(entry)["amount"] == str(medium)
    huge = 10**59 + 1  # 60 digits: the largest amounts the ledger takes
    fund(uow_factory, BOB, huge)
    assert _totals(uow_factory, BOB) == (0, 0, 0, medium + huge)


def test_no_account_goes_negative_unless_it_is_an_issuer(uow_factory: UnitOfWorkFactory) -> None:
    fund(uow_factory, ALICE, 10)
    error = _refused(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 11))
    assert error.code == "ledger.insufficient_funds"
    _move(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 6, phase="pending"))
    assert _balance(uow_factory, ALICE) == (10, 4)
    error = _refused(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 5))
    assert error.code == "ledger.insufficient_funds", "pending debits count"
    _move(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 4))
    assert _balance(uow_factory, ALICE) == (6, 0)
    # system accounts that are not issuers are held to zero too
    error = _refused(uow_factory, NewTransfer(new_transfer_id(), "system:treasury:NXC", BOB, 1))
    assert error.code == "ledger.insufficient_funds"
    # issuers and gateways may go negative
    _move(uow_factory, NewTransfer(new_transfer_id(), "system:usdc_gateway:USDC", ALICE_USDC, 5))
    assert _balance(uow_factory, "system:usdc_gateway:USDC") == (-5, -5)
    assert _balance(uow_factory, ISSUER) == (-10, -10)
    with uow_factory() as uow:
        for account_id in (ALICE, BOB, ALICE_USDC, "system:treasury:NXC"):
            assert service.get_account(uow, account_id).available >= 0


def _bad_batches(
    hold_id: str, expired_id: str, posted_id: str, used_id: str
) -> dict[str, list[list[NewTransfer]]]:
    """Batches whose transfer 1 is bad (transfer 0 is fine), by the code they get."""
    ok = NewTransfer(new_transfer_id(), ALICE, BOB, 1)

    def batch(**fields: Any) -> list[NewTransfer]:
        base: dict[str, Any] = {
            "transfer_id": new_transfer_id(),
            "debit_account_id": ALICE,
            "credit_account_id": BOB,
            "amount": 1,
        }
        base.update(fields)
        return [ok._replace(transfer_id=new_transfer_id()), NewTransfer(**base)]

    post = {"phase": "post_pending", "debit_account_id": None, "credit_account_id": None}
    return {
        "unknown_account": [
            batch(credit_account_id="user:nobody:NXC"),
            batch(debit_account_id="system:nothing:NXC"),
        ],
        "malformed_account_id": [
            batch(credit_account_id="alice"),
            batch(credit_account_id="user:alice:EUR"),
            batch(debit_account_id=None),
        ],
        "asset_mismatch": [batch(credit_account_id="user:bob:USDC")],
        "amount_not_positive": [batch(amount=0), batch(amount=-5)],
        "amount_not_integer": [
            batch(amount=1.5),
            batch(amount="5"),
            batch(amount=True),
            batch(amount=None),
        ],
        "amount_too_large": [batch(amount=10**60)],
        "insufficient_funds": [batch(amount=10**6)],
        "same_account": [batch(credit_account_id=ALICE)],
        "malformed_transfer_id": [
            batch(transfer_id="0" * 32),
            batch(transfer_id="AB" * 16),
            batch(transfer_id="ab" * 15),
            batch(transfer_id=7),
        ],
        "duplicate_transfer_id": [[ok, ok]],
        "transfer_id_conflict": [batch(transfer_id=used_id, amount=2)],
        "pending_not_found": [batch(**post, pending_id=new_transfer_id())],
        "transfer_not_pending": [batch(**post, pending_id=used_id)],
        "pending_expired": [batch(**post, pending_id=expired_id)],
        "pending_already_resolved": [batch(**post, pending_id=posted_id)],
        "amount_exceeds_pending": [batch(**post, pending_id=hold_id, amount=4)],
        "pending_amount_mismatch": [batch(**{**post, "phase": "void_pending"}, pending_id=hold_id)],
        "pending_account_mismatch": [
            batch(**{**post, "credit_account_id": ALICE_USDC}, pending_id=hold_id)
        ],
        "pending_id_invalid": [batch(**post), batch(**post, pending_id="xyz")],
        "pending_id_not_allowed": [batch(pending_id=hold_id)],
        "timeout_invalid": [
            batch(timeout_s=5),
            batch(phase="pending", timeout_s=-1),
            batch(phase="pending", timeout_s=10**9),
        ],
        "phase_invalid": [batch(phase="later")],
        "code_invalid": [batch(code="Reward!"), batch(code="")],
    }


def test_every_bad_transfer_is_refused_with_its_code_and_changes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    fund(uow_factory, ALICE, 100)
    hold_id, expired_id, posted_id, used_id = (new_transfer_id() for _ in range(4))
    _move(
        uow_factory,
        NewTransfer(hold_id, ALICE, BOB, 3, phase="pending"),
        NewTransfer(expired_id, ALICE, BOB, 3, phase="pending", timeout_s=60),
        NewTransfer(posted_id, ALICE, BOB, 3, phase="pending"),
        NewTransfer(new_transfer_id(), phase="post_pending", pending_id=posted_id),
        NewTransfer(used_id, ALICE, BOB, 1),
        now_ms=NOW_MS - 120_000,
    )
    for code, batches in _bad_batches(hold_id, expired_id, posted_id, used_id).items():
        for batch in batches:
            before = ledger_state(uow_factory)
            error = _refused(uow_factory, *batch)
            assert error.code == f"ledger.{code}", (code, batch[1], error)
            assert error.extra["item_index"] == 1, (code, error)
            assert 400 <= error.http_status < 500
            assert ledger_state(uow_factory) == before, code
    error = _refused(uow_factory, *[NewTransfer(new_transfer_id(), ALICE, BOB, 1)] * 2)
    assert error.code == "ledger.duplicate_transfer_id"
    too_many = [
        NewTransfer(new_transfer_id(), ALICE, BOB, 1) for _ in range(TRANSFERS_PER_BATCH_MAX + 1)
    ]
    error = _refused(uow_factory, *too_many)
    assert (error.code, error.http_status) == ("ledger.too_many_transfers", 413)


def test_a_repeated_id_answers_with_the_first_result(uow_factory: UnitOfWorkFactory) -> None:
    fund(uow_factory, ALICE, 100)
    transfer = NewTransfer(new_transfer_id(), ALICE, BOB, 30, code="gift")
    (first,) = _move(uow_factory, transfer)
    before = ledger_state(uow_factory)
    (again,) = _move(uow_factory, transfer, now_ms=NOW_MS + 5_000)
    assert again.status == "exists"
    assert again.transfer == first.transfer, "the first result, timestamp and log index too"
    assert ledger_state(uow_factory) == before, "applied once"
    # a retry inside a larger batch: the new transfer is created, the old one exists
    fresh = NewTransfer(new_transfer_id(), ALICE, BOB, 1)
    results = _move(uow_factory, fresh, transfer)
    assert [r.status for r in results] == ["created", "exists"]
    assert results[1].transfer == first.transfer
    for changed in (
        transfer._replace(amount=31),
        transfer._replace(credit_account_id="user:alice:NXC", debit_account_id=BOB),
        transfer._replace(code="other"),
        transfer._replace(phase="pending"),
    ):
        before = ledger_state(uow_factory)
        error = _refused(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 1), changed)
        assert (error.code, error.http_status) == ("ledger.transfer_id_conflict", 409)
        assert error.extra["item_index"] == 1
        assert ledger_state(uow_factory) == before
    # a post that left its fields out matches the stored, resolved transfer
    hold = NewTransfer(new_transfer_id(), ALICE, BOB, 10, phase="pending")
    post = NewTransfer(new_transfer_id(), phase="post_pending", pending_id=hold.transfer_id)
    _move(uow_factory, hold, post)
    (posted,) = _move(uow_factory, post)
    assert posted.status == "exists"
    assert (posted.transfer.amount, posted.transfer.debit_account_id) == (10, ALICE)
    (posted,) = _move(uow_factory, post._replace(amount=10, credit_account_id=BOB))
    assert posted.status == "exists"


def test_a_retry_that_would_overdraw_if_applied_again_still_exists(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Batches are first tried as if all their ids were new; a retried transfer must not
    be charged twice, even where charging it twice would refuse the batch."""
    fund(uow_factory, ALICE, 10)
    spend = NewTransfer(new_transfer_id(), ALICE, BOB, 10)
    (first,) = _move(uow_factory, spend)
    fund(uow_factory, ALICE, 10)
    again = NewTransfer(new_transfer_id(), ALICE, BOB, 10)
    results = _move(uow_factory, spend, again)
    assert [r.status for r in results] == ["exists", "created"]
    assert results[0].transfer == first.transfer
    assert _balance(uow_factory, ALICE) == (0, 0), "the retry moved nothing"
    # and a batch that really overdraws is refused at the transfer that does, all of it
    fund(uow_factory, ALICE, 5)
    before = ledger_state(uow_factory)
    error = _refused(uow_factory, spend, NewTransfer(new_transfer_id(), ALICE, BOB, 6))
    assert (error.code, error.extra["item_index"]) == ("ledger.insufficient_funds", 1)
    assert ledger_state(uow_factory) == before


def test_holds_post_void_and_expire(uow_factory: UnitOfWorkFactory) -> None:
    fund(uow_factory, ALICE, 100)
    hold, void, late = (new_transfer_id() for _ in range(3))
    _move(
        uow_factory,
        NewTransfer(hold, ALICE, BOB, 40, phase="pending", timeout_s=60),
        NewTransfer(void, ALICE, BOB, 20, phase="pending"),
        NewTransfer(late, ALICE, BOB, 10, phase="pending", timeout_s=1),
    )
    assert _totals(uow_factory, ALICE) == (70, 0, 0, 100)
    assert _totals(uow_factory, BOB) == (0, 0, 70, 0)
    assert _balance(uow_factory, ALICE) == (100, 30)
    # a partial post pays 25 and releases the other 15
    (posted,) = _move(
        uow_factory,
        NewTransfer(new_transfer_id(), amount=25, phase="post_pending", pending_id=hold),
        now_ms=NOW_MS + 59_999,
    )
    assert (posted.transfer.amount, posted.transfer.pending_id) == (25, hold)
    assert _totals(uow_factory, ALICE) == (30, 25, 0, 100)
    assert _totals(uow_factory, BOB) == (0, 0, 30, 25)
    (voided,) = _move(
        uow_factory, NewTransfer(new_transfer_id(), phase="void_pending", pending_id=void)
    )
    assert voided.transfer.amount == 20
    assert _totals(uow_factory, ALICE) == (10, 25, 0, 100)
    # the last hold passed its timeout: it cannot be posted, even before expiry ran
    error = _refused(
        uow_factory,
        NewTransfer(new_transfer_id(), phase="post_pending", pending_id=late),
        now_ms=NOW_MS + 1_000,
    )
    assert (error.code, error.http_status) == ("ledger.pending_expired", 410)
    assert service.expire_pending_transfers(uow_factory, NOW_MS + 999) == 0
    tree_size = ledger_state(uow_factory).tree_size
    assert service.expire_pending_transfers(uow_factory, NOW_MS + 1_000) == 1
    assert service.expire_pending_transfers(uow_factory, NOW_MS + 2_000) == 0
    assert _totals(uow_factory, ALICE) == (0, 25, 0, 100)
    assert _totals(uow_factory, BOB) == (0, 0, 0, 25)
    with uow_factory() as uow:
        ((_, entry, _),) = log_store.read_entries(uow.session, tree_size, tree_size + 1)
    assert json.loads(entry) == {
        "kind": "transfer_expired",
        "v": 1,
        "pending_id": late,
        "debit_account_id": ALICE,
        "credit_account_id": BOB,
        "asset": "NXC",
        "amount": "10",
        "timestamp_ms": NOW_MS + 1_000,
    }
    error = _refused(
        uow_factory,
        NewTransfer(new_transfer_id(), phase="post_pending", pending_id=late),
        now_ms=NOW_MS + 3_000,
    )
    assert error.code == "ledger.pending_expired"
    for pending_id in (hold, void):
        error = _refused(
            uow_factory, NewTransfer(new_transfer_id(), phase="void_pending", pending_id=pending_id)
        )
        assert error.code == "ledger.pending_already_resolved"
    with uow_factory() as uow:
        page = service.list_transfers(uow, ALICE, None, 50, 50)
    statuses = {t.transfer_id: t.pending_status for t in page.transfers}
    assert (statuses[hold], statuses[void], statuses[late]) == ("posted", "voided", "expired")


def test_a_hold_made_and_posted_in_one_batch(uow_factory: UnitOfWorkFactory) -> None:
    fund(uow_factory, ALICE, 50)
    hold = new_transfer_id()
    results = _move(
        uow_factory,
        NewTransfer(hold, ALICE, BOB, 50, phase="pending"),
        NewTransfer(new_transfer_id(), phase="post_pending", pending_id=hold, amount=20),
    )
    assert results[0].transfer.pending_status == "posted"
    assert _balance(uow_factory, ALICE) == (30, 30)
    assert _balance(uow_factory, BOB) == (20, 20)


def _check_log(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        tree_size = log_store.read_tree_size(uow.session)
        entries = log_store.read_entries(uow.session, 0, tree_size)
        page = service.list_transfers(uow, BOB, None, 1000, 1000)
    assert [index for index, _, _ in entries] == list(range(tree_size))
    transfers_by_index = {}
    for index, entry, stored_hash in entries:
        assert stored_hash == leaf_hash(entry)
        body = json.loads(entry)
        assert canonical_json(body) == entry
        assert body["v"] == 1
        if body["kind"] == "transfer":
            transfers_by_index[index] = body["transfer_id"]
    assert transfers_by_index == {t.log_index: t.transfer_id for t in page.transfers}


def test_every_transfer_has_exactly_one_log_entry(uow_factory: UnitOfWorkFactory) -> None:
    mint = fund(uow_factory, BOB, 1_000)
    assert mint.transfer.log_index == 0
    batch = [NewTransfer(new_transfer_id(), BOB, ALICE, n) for n in range(1, 21)]
    results = _move(uow_factory, *batch)
    assert [r.transfer.log_index for r in results] == list(range(1, 21))
    _move(uow_factory, *batch[:5])  # retries add nothing
    with pytest.raises(LedgerError):
        _move(uow_factory, NewTransfer(new_transfer_id(), BOB, ALICE, 10**9))
    (last,) = _move(uow_factory, NewTransfer(new_transfer_id(), ALICE, BOB, 3, phase="pending"))
    assert last.transfer.log_index == 21, "a refused batch left no gap"
    with uow_factory() as uow:
        ((_, entry, _),) = log_store.read_entries(uow.session, 21, 22)
    assert json.loads(entry) == {
        "kind": "transfer",
        "v": 1,
        "transfer_id": last.transfer.transfer_id,
        "phase": "pending",
        "debit_account_id": ALICE,
        "credit_account_id": BOB,
        "asset": "NXC",
        "amount": "3",
        "code": "transfer",
        "timeout_s": 0,
        "timestamp_ms": NOW_MS,
    }
    _check_log(uow_factory)


def test_accounts_open_on_first_use_for_registered_users_only(
    api: TestClient, uow_factory: UnitOfWorkFactory
) -> None:
    with uow_factory() as uow:
        fresh = service.get_account(uow, "user:alice:USD")
        assert (fresh.opened_at_ms, fresh.balance) == (None, 0)
        with pytest.raises(LedgerError, match="no account"):
            service.get_account(uow, "user:nobody:USD")
    opened = service.open_account(uow_factory, "user:alice:USD", NOW_MS)
    assert opened.opened_at_ms == NOW_MS
    again = service.open_account(uow_factory, "user:alice:USD", NOW_MS + 1)
    assert again.opened_at_ms == NOW_MS, "idempotent"
    with pytest.raises(LedgerError) as caught:
        service.open_account(uow_factory, "user:nobody:USD", NOW_MS)
    assert caught.value.code == "ledger.unknown_account"
    make_user(api, "carol")
    fund(uow_factory, "user:carol:USD", 250)
    with uow_factory() as uow:
        carol = service.get_account(uow, "user:carol:USD")
    assert (carol.owner, carol.asset, carol.balance) == ("user:carol", "USD", 250)


def test_history_pages_newest_first(uow_factory: UnitOfWorkFactory) -> None:
    fund(uow_factory, ALICE, 1_000)
    _move(uow_factory, *[NewTransfer(new_transfer_id(), ALICE, BOB, i) for i in range(1, 8)])
    _move(uow_factory, NewTransfer(new_transfer_id(), BOB, ALICE, 2))
    seen = []
    cursor = None
    with uow_factory() as uow:
        for _ in range(10):
            page = service.list_transfers(uow, ALICE, cursor, 3, 100)
            seen.extend(t.log_index for t in page.transfers)
            cursor = page.next_cursor
            if cursor is None:
                break
        capped = service.list_transfers(uow, ALICE, None, 100, 2)
        with pytest.raises(LedgerError) as caught:
            service.list_transfers(uow, "user:nobody:NXC", None, 10, 10)
    assert seen == list(range(8, -1, -1)), "the mint, 7 debits and a credit, newest first"
    assert len(capped.transfers) == 2
    assert capped.next_cursor == str(capped.transfers[-1].log_index)
    assert caught.value.http_status == 404


ACCOUNT_IDS = (ISSUER, ALICE, BOB, "system:treasury:NXC")
OPS = st.tuples(
    st.sampled_from(["single", "pending", "post_pending", "void_pending"]),
    st.sampled_from(ACCOUNT_IDS),
    st.sampled_from(ACCOUNT_IDS),
    st.integers(1, 50),
    st.integers(0, 30),  # which earlier transfer a post or void names
    st.booleans(),  # a post's amount left out (the whole hold)
)


def _fresh_accounts() -> dict[str, Account]:
    return {
        account_id: Account(
            account_id, "NXC", account_id.rpartition(":")[0], may_go_negative(account_id)
        )
        for account_id in ACCOUNT_IDS
    }


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(OPS, min_size=1, max_size=4), min_size=1, max_size=12))
def test_applied_batches_keep_the_books_balanced(batches: list[list[Any]]) -> None:
    """Whatever is asked, in whatever order: debits equal credits, holds are counted on
    both sides, no account but the issuer goes negative, and a refused batch is all or
    nothing (rules.apply_batch works on a copy the caller throws away)."""
    accounts = _fresh_accounts()
    stored: dict[str, Transfer] = {}
    ids: list[str] = []
    tree_size = 0
    for ops in batches:
        batch = []
        for phase, debit, credit, amount, earlier, whole in ops:
            tid = new_transfer_id()
            if phase in ("single", "pending"):
                batch.append(NewTransfer(tid, debit, credit, amount, phase=phase))
            else:
                pending_id = ids[earlier % len(ids)] if ids else new_transfer_id()
                post_amount = None if whole or phase == "void_pending" else amount
                batch.append(
                    NewTransfer(tid, amount=post_amount, phase=phase, pending_id=pending_id)
                )
            ids.append(tid)
        trial = copy.deepcopy(accounts)
        try:
            check_batch(batch)
            plan = apply_batch(batch, trial, stored, NOW_MS, tree_size)
        except LedgerError:
            continue
        accounts = trial
        assert [t.log_index for t in plan.created] == list(
            range(tree_size, tree_size + len(plan.created))
        )
        tree_size += len(plan.created)
        for transfer in plan.created:
            stored[transfer.transfer_id] = transfer
        for pending_id, status in plan.resolved.items():
            stored[pending_id] = stored[pending_id]._replace(pending_status=status)
    assert sum(a.balance for a in accounts.values()) == 0
    held = sum(t.amount for t in stored.values() if t.pending_status == "pending")
    assert sum(a.debits_pending for a in accounts.values()) == held
    assert sum(a.credits_pending for a in accounts.values()) == held
    for account in accounts.values():
        assert account.may_go_negative or account.available >= 0
        assert min(account.debits_pending, account.credits_pending) >= 0
