"""Weekly cold stipends through the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from nexapod.errors import PoolError
from nexapod.ledger import service as ledger
from nexapod.policy import default_policy
from nexapod.pools.membership import apply_moves
from nexapod.pools.rules import Move
from nexapod.pools.settling import fund_treasury
from nexapod.pools.stipends import pay_due_stipends, pay_stipends, week_bounds_ms
from nexapod.pools.store import ColdChallengeRow, StipendRow
from nexapod.storage.uow import UnitOfWorkFactory
from tests.pools.seeding import seed_world

POLICY = default_policy()
WEEK = 2900
START, END = week_bounds_ms(WEEK, POLICY)
DAY_MS = 86_400_000
T = 10**12


def _move(uow_factory: UnitOfWorkFactory, move: Move, owner: str, at_ms: int) -> None:
    with uow_factory() as uow:
        apply_moves(uow.session, [move], {move.node_id: owner}, at_ms)
        uow.commit()


def _challenges(uow_factory: UnitOfWorkFactory, node_id: str, answered: list[bool]) -> None:
    with uow_factory() as uow:
        for i, ok in enumerate(answered):
            at = START + (i + 1) * 3_600_000
            uow.session.add(
                ColdChallengeRow(
                    challenge_id=f"{node_id[:8]}{i:024d}",
                    node_id=node_id,
                    seed="0" * 64,
                    expected_sha256="0" * 64,
                    issued_at_ms=at - 60_000,
                    deadline_at_ms=at,
                    answered_at_ms=at - 1000 if ok else None,
                    passed=ok,
                )
            )
        uow.commit()


def _balance(uow_factory: UnitOfWorkFactory, account_id: str) -> int:
    with uow_factory() as uow:
        return ledger.get_account(uow, account_id).balance


def test_a_week_pays_by_time_in_cold_and_availability_once(uow_factory: UnitOfWorkFactory) -> None:
    nodes = [
        ("c-full", "ann", T),
        ("c-half", "ben", T),
        ("c-flaky", "cid", T),
        ("c-late", "dee", T),
    ]
    seed_world(uow_factory, nodes, [], now_ms=START - DAY_MS)
    for node_id, owner, _ in nodes:
        _move(uow_factory, Move(node_id, "none", "cold", "cold_band"), owner, START - DAY_MS)
    # ben's node spends half the week promoted to hot (paid at the hot rate instead)
    _move(
        uow_factory,
        Move("c-half", "cold", "hot", "failover", promoted=True),
        "ben",
        START + 2 * DAY_MS,
    )
    _move(
        uow_factory,
        Move("c-half", "hot", "cold", "disruption_over"),
        "ben",
        START + 5 * DAY_MS + DAY_MS // 2,
    )
    _challenges(uow_factory, "c-full", [True] * 10)
    _challenges(uow_factory, "c-half", [True] * 9 + [False])  # 0.9: just enough
    _challenges(uow_factory, "c-flaky", [True] * 8 + [False] * 2)  # 0.8: nothing
    fund_treasury(uow_factory, 10**9, "seed", START)

    with pytest.raises(PoolError) as caught:
        pay_stipends(uow_factory, POLICY, WEEK, END - 1)
    assert caught.value.code == "pools.week_open"

    report = pay_stipends(uow_factory, POLICY, WEEK, END)
    assert (report.nodes, report.nodes_paid, report.usdc_shortfall_micro) == (4, 2, 0)
    assert _balance(uow_factory, "user:ann:NXC") == 5_000_000
    assert _balance(uow_factory, "user:ann:USDC") == 10_000_000
    # ben: 3.5 of 7 days in cold, availability 0.9: (5 NXC, 9.5 USDC) / 2
    assert _balance(uow_factory, "user:ben:NXC") == 2_500_000
    assert _balance(uow_factory, "user:ben:USDC") == 4_750_000
    assert _balance(uow_factory, "user:cid:NXC") == 0
    assert _balance(uow_factory, "user:dee:NXC") == 0  # no challenge: no evidence
    with uow_factory() as uow:
        notes = {row.node_id: row.note for row in uow.session.query(StipendRow)}
    assert "below" in notes["c-flaky"] and "no liveness challenge" in notes["c-late"]

    again = pay_stipends(uow_factory, POLICY, WEEK, END + 10)
    assert not again.paid_now and again.nxc_micro_total == report.nxc_micro_total
    assert _balance(uow_factory, "user:ann:NXC") == 5_000_000  # paid once
    week, reports = pay_due_stipends(uow_factory, POLICY, END + 10, None)
    assert week == WEEK and not reports[0].paid_now
    assert pay_due_stipends(uow_factory, POLICY, END + 20, WEEK) == (WEEK, [])


def test_a_short_treasury_scales_every_stipend_alike(uow_factory: UnitOfWorkFactory) -> None:
    nodes = [("c-a", "ann", T), ("c-b", "ben", T)]
    seed_world(uow_factory, nodes, [], now_ms=START - DAY_MS)
    for node_id, owner, _ in nodes:
        _move(uow_factory, Move(node_id, "none", "cold", "cold_band"), owner, START - DAY_MS)
        _challenges(uow_factory, node_id, [True] * 4)
    fund_treasury(uow_factory, 5_000_000, "short", START)  # half of the 20 USDC owed
    report = pay_stipends(uow_factory, POLICY, WEEK, END)
    assert report.usdc_micro_total == 5_000_000 and report.usdc_shortfall_micro == 15_000_000
    assert _balance(uow_factory, "user:ann:USDC") == 2_500_000
    assert _balance(uow_factory, "user:ann:NXC") == 5_000_000  # NXC is minted in full
