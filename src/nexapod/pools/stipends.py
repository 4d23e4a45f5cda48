"""Pay the weekly cold stipends through the ledger, once per node per week.

For a closed week, every node that spent time in cold is paid by
:func:`nexapod.pools.stipend.stipend`: its seconds in cold come from its pool
transitions, its availability from the week's liveness challenges
(``pools.availability``: those whose deadline fell inside the week; answered in time
and right, over issued). NXC is
minted; USDC comes from the treasury, scaled by one common factor when the treasury
is short (as for epochs). Each node's stipend, or its refusal with the reason, is a
``cold_stipend`` entry and a ``cold_stipends`` row; transfer ids are fixed by the week,
the node and the asset, so paying a week again pays nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.ledger.accounts import mint_account_id, user_account_id
from nexapod.ledger.rules import NewTransfer
from nexapod.policy import Policy
from nexapod.pools import errors
from nexapod.pools.availability import Availability, availability_by_node
from nexapod.pools.settle import TREASURY_ACCOUNT, settlement_transfer_id
from nexapod.pools.stipend import Stipend, cold_seconds, stipend
from nexapod.pools.store import PoolMemberRow, PoolTransitionRow, StipendRow
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["STIPEND_CODE", "StipendReport", "pay_due_stipends", "pay_stipends", "week_bounds_ms"]

STIPEND_CODE = "stipend.cold"
NODES_PER_WEEK_MAX = 1_000_000
TRANSFERS_PER_BATCH_MAX = 4000


@dataclass(frozen=True)
class StipendReport:
    period_index: int
    paid_now: bool
    nodes: int
    nodes_paid: int
    nxc_micro_total: int
    usdc_micro_total: int
    usdc_shortfall_micro: int


def week_bounds_ms(period_index: int, policy: Policy) -> tuple[int, int]:
    period_ms = policy.stipend_period_s * 1000
    return period_index * period_ms, (period_index + 1) * period_ms


def _cold_nodes(session: Session, start_ms: int, end_ms: int) -> list[tuple[str, str]]:
    """(node_id, username) of every node in cold at the start or moved in or out during."""
    moved = select(PoolTransitionRow.node_id).where(
        PoolTransitionRow.at_ms >= start_ms,
        PoolTransitionRow.at_ms < end_ms,
        or_(PoolTransitionRow.to_pool == "cold", PoolTransitionRow.from_pool == "cold"),
    )
    rows = session.execute(
        select(PoolMemberRow.node_id, PoolMemberRow.username)
        .where(or_(PoolMemberRow.node_id.in_(moved), PoolMemberRow.pool == "cold"))
        .order_by(PoolMemberRow.node_id)
        .limit(NODES_PER_WEEK_MAX + 1)
    ).all()
    assert len(rows) <= NODES_PER_WEEK_MAX
    return [(node_id, username) for node_id, username in rows]


def _seconds_in_cold(session: Session, node_id: str, start_ms: int, end_ms: int) -> int:
    before = session.scalar(
        select(PoolTransitionRow.to_pool)
        .where(PoolTransitionRow.node_id == node_id, PoolTransitionRow.at_ms < start_ms)
        .order_by(PoolTransitionRow.at_ms.desc(), PoolTransitionRow.transition_id.desc())
        .limit(1)
    )
    changes = session.execute(
        select(PoolTransitionRow.at_ms, PoolTransitionRow.to_pool)
        .where(
            PoolTransitionRow.node_id == node_id,
            PoolTransitionRow.at_ms >= start_ms,
            PoolTransitionRow.at_ms < end_ms,
        )
        .order_by(PoolTransitionRow.at_ms, PoolTransitionRow.transition_id)
    ).all()
    return cold_seconds(before or "none", [(int(a), t) for a, t in changes], start_ms, end_ms)


def pay_stipends(
    uow_factory: UnitOfWorkFactory, policy: Policy, period_index: int, now_ms: int
) -> StipendReport:
    """Pay one closed week's stipends (or report them, when they were paid before)."""
    start_ms, end_ms = week_bounds_ms(period_index, policy)
    with uow_factory() as uow:
        session = uow.session
        log_store.lock_log(session)
        done = session.scalars(
            select(StipendRow).where(StipendRow.period_index == period_index)
        ).all()
        if done:
            return _report(period_index, done, paid_now=False, shortfall=0)
        if now_ms < end_ms:
            raise errors.week_open(period_index, end_ms)
        owed: list[tuple[str, str, int, int, int, Stipend]] = []
        answers = availability_by_node(session, start_ms, end_ms)
        for node_id, username in _cold_nodes(session, start_ms, end_ms):
            cold_s = _seconds_in_cold(session, node_id, start_ms, end_ms)
            seen = answers.get(node_id, Availability(0, 0))
            issued, answered = seen.issued, seen.answered_in_time
            owed.append(
                (
                    node_id,
                    username,
                    cold_s,
                    issued,
                    answered,
                    stipend(cold_s, issued, answered, policy),
                )
            )
        treasury = ledger.get_account(uow, TREASURY_ACCOUNT).available
        usdc_owed = sum(s.usdc_micro for *_, s in owed)
        batch: list[NewTransfer] = []
        rows: list[StipendRow] = []
        bodies = []
        usdc_paid_total = 0
        for node_id, username, cold_s, issued, answered, due in owed:
            usdc = (
                due.usdc_micro if usdc_owed <= treasury else due.usdc_micro * treasury // usdc_owed
            )
            usdc_paid_total += usdc
            for asset, amount in (("NXC", due.nxc_micro), ("USDC", usdc)):
                if amount:
                    batch.append(
                        NewTransfer(
                            transfer_id=settlement_transfer_id(
                                "stipend", period_index, node_id, asset
                            ),
                            debit_account_id=mint_account_id("NXC")
                            if asset == "NXC"
                            else TREASURY_ACCOUNT,
                            credit_account_id=user_account_id(
                                username, "NXC" if asset == "NXC" else "USDC"
                            ),
                            amount=amount,
                            code=STIPEND_CODE,
                        )
                    )
            bodies.append(
                {
                    "period": period_index,
                    "node_id": node_id,
                    "username": username,
                    "cold_s": cold_s,
                    "challenges": issued,
                    "answered": answered,
                    "nxc_micro": str(due.nxc_micro),
                    "usdc_owed_micro": str(due.usdc_micro),
                    "usdc_paid_micro": str(usdc),
                    "note": due.note,
                    "at_ms": now_ms,
                }
            )
            rows.append(
                StipendRow(
                    period_index=period_index,
                    node_id=node_id,
                    username=username,
                    cold_s=cold_s,
                    challenges=issued,
                    answered=answered,
                    nxc_micro=due.nxc_micro,
                    usdc_micro=usdc,
                    paid_at_ms=now_ms,
                    log_index=-1,
                    note=due.note,
                )
            )
        assert usdc_paid_total <= treasury, "the treasury never goes negative"
        for offset in range(0, len(batch), TRANSFERS_PER_BATCH_MAX):
            ledger.create_transfers(uow, batch[offset : offset + TRANSFERS_PER_BATCH_MAX], now_ms)
        if bodies:
            first = log_store.append_entries(session, "cold_stipend", bodies)
            for offset, row in enumerate(rows):
                row.log_index = first + offset
            session.add_all(rows)
        uow.commit()
    return _report(period_index, rows, paid_now=True, shortfall=usdc_owed - usdc_paid_total)


def _report(
    period_index: int, rows: Sequence[StipendRow], *, paid_now: bool, shortfall: int
) -> StipendReport:
    return StipendReport(
        period_index=period_index,
        paid_now=paid_now,
        nodes=len(rows),
        nodes_paid=sum(1 for row in rows if row.nxc_micro or row.usdc_micro),
        nxc_micro_total=sum(row.nxc_micro for row in rows),
        usdc_micro_total=sum(row.usdc_micro for row in rows),
        usdc_shortfall_micro=shortfall,
    )


def pay_due_stipends(
    uow_factory: UnitOfWorkFactory, policy: Policy, now_ms: int, last_paid: int | None
) -> tuple[int | None, list[StipendReport]]:
    """Pay the week that closed last, once; returns the week to remember and the reports.

    The coordinator pays each week as it closes. A week with nobody in cold records
    nothing, so the caller remembers the last week it handled.
    """
    week = now_ms // (policy.stipend_period_s * 1000) - 1
    if week < 0 or week == last_paid:
        return last_paid, []
    return week, [pay_stipends(uow_factory, policy, week, now_ms)]
