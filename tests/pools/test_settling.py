"""Settling epochs through the real ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest

from nexapod.errors import PoolError
from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.policy import default_policy, quote
from nexapod.pools.settle import check_lines, epoch_bounds_ms
from nexapod.pools.settling import (
    fund_treasury,
    paid_until_ms,
    settle_due_epochs,
    settle_epoch,
    treasury_micro_usdc,
)
from nexapod.pools.store import InstitutionRow
from nexapod.storage.uow import UnitOfWorkFactory
from tests.pools.seeding import seed_world

POLICY = default_policy()
EPOCH = 480_000  # an epoch of 3,600 s in late 2024
START_MS, END_MS = epoch_bounds_ms(EPOCH, POLICY.epoch_s)
T = 10**12
NODES = [
    ("n-alice-1", "alice", 10 * T),
    ("n-alice-2", "alice", 600 * T),  # above the node cap: counts as 500 TFLOP/s
    ("n-bob-1", "bob", 2 * T),
    ("n-carol-1", "carol", 50 * T),
]
WORK = [
    ("n-alice-1", 3 * 10**15, START_MS + 10),
    ("n-alice-1", 4 * 10**15, START_MS + 20),
    ("n-alice-2", 5 * 10**18, START_MS + 30),
    ("n-alice-2", 5 * 10**18, START_MS + 31),  # the sum passes 2^63
    ("n-bob-1", 10**15, END_MS - 1),
    ("n-bob-1", 10**15, END_MS),  # the next epoch's
    ("n-carol-1", 7 * 10**16, START_MS - 1),  # the previous epoch's
]


def _balance(uow_factory: UnitOfWorkFactory, account_id: str) -> int:
    with uow_factory() as uow:
        return ledger.get_account(uow, account_id).balance


def _tree_size(uow_factory: UnitOfWorkFactory) -> int:
    with uow_factory() as uow:
        return log_store.read_tree_size(uow.session)


def _entries(uow_factory: UnitOfWorkFactory, start: int, stop: int) -> list[dict[str, object]]:
    with uow_factory() as uow:
        return [json.loads(e) for _, e, _ in log_store.read_entries(uow.session, start, stop)]


def test_an_epoch_mints_nxc_pays_scaled_usdc_once_and_replays_exactly(
    uow_factory: UnitOfWorkFactory,
) -> None:
    seed_world(uow_factory, NODES, WORK)
    expected = {
        "n-alice-1": quote(7 * 10**15, 10 * T, POLICY.epoch_s, POLICY),
        "n-alice-2": quote(10**19, 600 * T, POLICY.epoch_s, POLICY),
        "n-bob-1": quote(10**15, 2 * T, POLICY.epoch_s, POLICY),
    }
    owed = sum(q.usdc_micro for q in expected.values())
    fund_treasury(uow_factory, owed // 2, "deposit-1", START_MS)
    size_before = _tree_size(uow_factory)

    report = settle_epoch(uow_factory, POLICY, EPOCH, END_MS)

    assert report.settled_now and report.nodes_paid == 3
    assert report.usdc_owed_micro_total == owed
    assert report.usdc_paid_micro_total <= owed // 2 < owed
    assert report.usdc_shortfall_micro == owed - report.usdc_paid_micro_total
    assert report.usdc_scale == f"{owed // 2}/{owed}"
    alice_nxc = expected["n-alice-1"].nxc_micro + expected["n-alice-2"].nxc_micro
    assert _balance(uow_factory, "user:alice:NXC") == alice_nxc
    assert _balance(uow_factory, "user:bob:NXC") == expected["n-bob-1"].nxc_micro
    assert _balance(uow_factory, "user:carol:NXC") == 0  # its work was in another epoch
    scaled_bob = expected["n-bob-1"].usdc_micro * (owed // 2) // owed
    assert _balance(uow_factory, "user:bob:USDC") == scaled_bob
    assert _balance(uow_factory, "system:issuance:NXC") == -report.nxc_micro_total
    with uow_factory() as uow:
        assert treasury_micro_usdc(uow) == owed // 2 - report.usdc_paid_micro_total
        assert paid_until_ms(uow.session) == END_MS

    # the log holds the policy, the transfers, the lines and the summary, in that order
    entries = _entries(uow_factory, size_before, _tree_size(uow_factory))
    kinds = [e["kind"] for e in entries]
    assert kinds == [
        "policy_activated",
        "transfer",
        "transfer",
        "transfer",
        "transfer",
        "reward_lines",
        "reward_epoch",
    ]
    summary, lines = entries[-1], entries[-2]
    assert summary["policy_sha256"] == POLICY.sha256 and summary["usdc_shortfall_micro"] == str(
        report.usdc_shortfall_micro
    )
    assert check_lines(summary, [lines], POLICY) == []  # replay from the log: identical

    again = settle_epoch(uow_factory, POLICY, EPOCH, END_MS + 5000)
    assert not again.settled_now and again.nxc_micro_total == report.nxc_micro_total
    assert _balance(uow_factory, "user:alice:NXC") == alice_nxc  # paid once
    assert _tree_size(uow_factory) == size_before + len(entries)


def test_an_open_epoch_is_refused_and_nothing_changes(uow_factory: UnitOfWorkFactory) -> None:
    seed_world(uow_factory, NODES, WORK)
    size = _tree_size(uow_factory)
    with pytest.raises(PoolError) as caught:
        settle_epoch(uow_factory, POLICY, EPOCH, END_MS - 1)
    assert caught.value.code == "pools.epoch_open"
    assert _tree_size(uow_factory) == size
    assert _balance(uow_factory, "user:alice:NXC") == 0


def test_institutions_earn_no_money_and_epochs_settle_in_order(
    uow_factory: UnitOfWorkFactory,
) -> None:
    seed_world(uow_factory, NODES, WORK)
    with uow_factory() as uow:
        uow.session.add(InstitutionRow(username="alice", name="Lab", verified_at_ms=0, log_index=0))
        uow.commit()
    now_ms = END_MS + POLICY.epoch_s * 1000 - 1  # carol's and ours closed, the next not
    reports = settle_due_epochs(uow_factory, POLICY, now_ms)
    assert [r.epoch_index for r in reports] == [EPOCH - 1, EPOCH]
    assert _balance(uow_factory, "user:alice:NXC") == 0
    assert (
        _balance(uow_factory, "user:carol:NXC")
        == quote(7 * 10**16, 50 * T, POLICY.epoch_s, POLICY).nxc_micro
    )
    assert reports[1].nodes_paid == 1  # bob only
    assert settle_due_epochs(uow_factory, POLICY, now_ms) == []  # bob's next epoch is still open
    with pytest.raises(PoolError) as caught:
        settle_epoch(uow_factory, POLICY, EPOCH - 5, now_ms)
    assert caught.value.code == "pools.epoch_settled_before"


def test_a_deposit_is_recorded_once_per_reference(uow_factory: UnitOfWorkFactory) -> None:
    first = fund_treasury(uow_factory, 250_000_000, "0xabc", 1)
    second = fund_treasury(uow_factory, 250_000_000, "0xabc", 2)
    assert first == (first[0], True) and second == (first[0], False)
    with uow_factory() as uow:
        assert treasury_micro_usdc(uow) == 250_000_000
    assert _balance(uow_factory, "system:usdc_gateway:USDC") == -250_000_000
