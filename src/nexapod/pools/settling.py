"""Settle reward epochs through the ledger, and fund the treasury that pays their USDC.

One epoch settles in one transaction: the policy it used is recorded (if it is not
already the active one), every paid node's line is published in the log in chunks,
NXC is minted from ``system:issuance:NXC`` and USDC paid from ``system:treasury:USDC``
(one transfer per user and asset, with an id fixed by the epoch, the user and the
asset), and a ``reward_epoch`` summary entry closes it. Running it again finds the
epoch settled and pays nothing; ``nexapod rewards replay`` recomputes it from the log.

Epochs settle in order, so "paid" has one meaning: every result validated before the
end of the last settled epoch (see :func:`paid_until_ms`, which forfeiture respects).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.ledger.accounts import mint_account_id
from nexapod.ledger.rules import NewTransfer
from nexapod.mesh.store import ResultRow
from nexapod.policy import Policy
from nexapod.policy.service import ensure_policy_recorded
from nexapod.policy.store import PolicyActivationRow
from nexapod.pools import errors
from nexapod.pools.epoch_work import epoch_work
from nexapod.pools.line_entries import encode_line_entries
from nexapod.pools.membership import institutional_map
from nexapod.pools.settle import (
    TREASURY_ACCOUNT,
    NodeWork,
    epoch_bounds_ms,
    epoch_of,
    settle_epoch_lines,
    settlement_transfer_id,
    settlement_transfers,
)
from nexapod.pools.store import RewardEpochRow
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "EPOCHS_PER_CALL_MAX",
    "TRANSFERS_PER_BATCH_MAX",
    "EpochReport",
    "epoch_report",
    "fund_treasury",
    "next_epoch",
    "paid_until_ms",
    "settle_due_epochs",
    "settle_epoch",
    "treasury_micro_usdc",
]

EPOCHS_PER_CALL_MAX = 1000
TRANSFERS_PER_BATCH_MAX = 4000  # each batch appends as many log entries (<= 10,000)


@dataclass(frozen=True)
class EpochReport:
    epoch_index: int
    epoch_s: int
    settled_now: bool  # False: it was settled before, and nothing was paid again
    policy_sha256: str
    nodes_paid: int
    flops_total: int
    nxc_micro_total: int
    usdc_owed_micro_total: int
    usdc_paid_micro_total: int
    usdc_shortfall_micro: int
    treasury_micro_usdc: int
    log_index: int

    @property
    def usdc_scale(self) -> str:
        """The common USDC factor, paid / owed, as exact decimal text ("1" when covered)."""
        if self.usdc_shortfall_micro == 0:
            return "1"
        return f"{self.treasury_micro_usdc}/{self.usdc_owed_micro_total}"


def _report(row: RewardEpochRow, settled_now: bool) -> EpochReport:
    return EpochReport(
        epoch_index=row.epoch_index,
        epoch_s=row.epoch_s,
        settled_now=settled_now,
        policy_sha256=row.policy_sha256,
        nodes_paid=row.nodes_paid,
        flops_total=row.flops_total,
        nxc_micro_total=row.nxc_micro_total,
        usdc_owed_micro_total=row.usdc_owed_micro_total,
        usdc_paid_micro_total=row.usdc_paid_micro_total,
        usdc_shortfall_micro=row.usdc_shortfall_micro,
        treasury_micro_usdc=row.treasury_micro_usdc,
        log_index=row.log_index,
    )


def paid_until_ms(session: Session) -> int:
    """The end of the last settled epoch (0 before the first): work before it is paid."""
    row = session.scalars(
        select(RewardEpochRow).order_by(RewardEpochRow.epoch_index.desc()).limit(1)
    ).first()
    if row is None:
        return 0
    return epoch_bounds_ms(row.epoch_index, row.epoch_s)[1]


def treasury_micro_usdc(uow: UnitOfWork) -> int:
    return ledger.get_account(uow, TREASURY_ACCOUNT).available


def next_epoch(session: Session, epoch_s: int) -> int | None:
    """The first epoch not settled yet that may hold work, or None when there is no work."""
    paid_until = paid_until_ms(session)
    if paid_until:
        return -(-paid_until // (epoch_s * 1000))
    first = session.scalar(
        select(func.min(ResultRow.validated_at_ms)).where(ResultRow.status == "valid")
    )
    return None if first is None else epoch_of(int(first), epoch_s)


def _validated_work(session: Session, policy: Policy, start_ms: int, end_ms: int) -> list[NodeWork]:
    """Per node: validated FLOPs in ``[start, end)``; institutional nodes are not paid."""
    rows = epoch_work(session, start_ms, end_ms)
    institutional = institutional_map(session, policy, {row.username for row in rows})
    return [
        NodeWork(node_id, username, flops, capacity)
        for node_id, username, capacity, flops, pool in rows
        if pool != "institutional" and username not in institutional and flops > 0
    ]


def settle_epoch(
    uow_factory: UnitOfWorkFactory, policy: Policy, epoch_index: int, now_ms: int
) -> EpochReport:
    """Settle one closed epoch (or report it, when it was settled before)."""
    start_ms, end_ms = epoch_bounds_ms(epoch_index, policy.epoch_s)
    with uow_factory() as uow:
        session = uow.session
        log_store.lock_log(session)  # one settler at a time; the check below is then exact
        existing = session.get(RewardEpochRow, epoch_index)
        if existing is not None:
            return _report(existing, settled_now=False)
        if now_ms < end_ms:
            raise errors.epoch_open(epoch_index, end_ms)
        paid_until = paid_until_ms(session)
        if start_ms < paid_until:
            raise errors.epoch_settled_before(epoch_index, paid_until)
        ensure_policy_recorded(session, policy, now_ms)
        policy_log_index = session.scalar(
            select(PolicyActivationRow.log_index)
            .order_by(PolicyActivationRow.activation_id.desc())
            .limit(1)
        )
        assert policy_log_index is not None, "the policy was recorded just now or before"
        work = _validated_work(session, policy, start_ms, end_ms)
        settlement = settle_epoch_lines(epoch_index, work, policy, treasury_micro_usdc(uow))
        batch = settlement_transfers(settlement)
        for offset in range(0, len(batch), TRANSFERS_PER_BATCH_MAX):
            ledger.create_transfers(uow, batch[offset : offset + TRANSFERS_PER_BATCH_MAX], now_ms)
        entries = encode_line_entries(settlement, policy.sha256)
        lines_first_index = log_store.read_tree_size(session)
        for offset in range(0, len(entries), log_store.ENTRIES_PER_APPEND_MAX):
            chunk = entries[offset : offset + log_store.ENTRIES_PER_APPEND_MAX]
            log_store.append_encoded(session, chunk)  # contiguous: the log lock is held
        summary = {
            "epoch": epoch_index,
            "epoch_s": policy.epoch_s,
            "policy_sha256": policy.sha256,
            "policy_log_index": int(policy_log_index),
            "nodes": len(settlement.lines),
            "flops_total": str(settlement.flops_total),
            "nxc_micro_total": str(settlement.nxc_micro_total),
            "usdc_owed_micro_total": str(settlement.usdc_owed_micro_total),
            "usdc_paid_micro_total": str(settlement.usdc_paid_micro_total),
            "usdc_shortfall_micro": str(settlement.usdc_shortfall_micro),
            "treasury_micro_usdc": str(settlement.treasury_micro_usdc),
            "lines_first_index": lines_first_index,
            "lines_entries": len(entries),
            "transfers": len(batch),
            "at_ms": now_ms,
        }
        log_index = log_store.append_entries(session, "reward_epoch", [summary])
        row = RewardEpochRow(
            epoch_index=epoch_index,
            epoch_s=policy.epoch_s,
            policy_sha256=policy.sha256,
            settled_at_ms=now_ms,
            nodes_paid=len(settlement.lines),
            flops_total=settlement.flops_total,
            nxc_micro_total=settlement.nxc_micro_total,
            usdc_owed_micro_total=settlement.usdc_owed_micro_total,
            usdc_paid_micro_total=settlement.usdc_paid_micro_total,
            usdc_shortfall_micro=settlement.usdc_shortfall_micro,
            treasury_micro_usdc=settlement.treasury_micro_usdc,
            log_index=log_index,
        )
        session.add(row)
        session.flush()
        report = _report(row, settled_now=True)
        uow.commit()
    return report


def settle_due_epochs(
    uow_factory: UnitOfWorkFactory,
    policy: Policy,
    now_ms: int,
    epochs_max: int = EPOCHS_PER_CALL_MAX,
) -> list[EpochReport]:
    """Settle every closed epoch after the last settled one, in order (at most epochs_max)."""
    assert 0 < epochs_max <= EPOCHS_PER_CALL_MAX
    with uow_factory() as uow:
        first = next_epoch(uow.session, policy.epoch_s)
    if first is None:
        return []
    last_closed = epoch_of(now_ms, policy.epoch_s) - 1
    return [
        settle_epoch(uow_factory, policy, epoch_index, now_ms)
        for epoch_index in range(first, min(last_closed, first + epochs_max - 1) + 1)
    ]


def epoch_report(uow: UnitOfWork, epoch_index: int) -> EpochReport:
    row = uow.session.get(RewardEpochRow, epoch_index)
    if row is None:
        raise errors.epoch_unknown(epoch_index)
    return _report(row, settled_now=False)


def fund_treasury(
    uow_factory: UnitOfWorkFactory, amount_micro_usdc: int, reference: str, now_ms: int
) -> tuple[str, bool]:
    """Record an external USDC deposit into the reward treasury; (transfer id, created).

    The transfer id is fixed by ``reference`` (the deposit's own id, such as a chain
    transaction hash), so recording the same deposit twice moves it once.
    """
    assert amount_micro_usdc > 0
    transfer_id = settlement_transfer_id("treasury", 0, reference, "USDC")
    with uow_factory() as uow:
        results = ledger.create_transfers(
            uow,
            [
                NewTransfer(
                    transfer_id=transfer_id,
                    debit_account_id=mint_account_id("USDC"),
                    credit_account_id=TREASURY_ACCOUNT,
                    amount=amount_micro_usdc,
                    code="treasury.fund",
                )
            ],
            now_ms,
        )
        created = results[0].status == "created"
        if created:
            log_store.append_entries(
                uow.session,
                "treasury_funded",
                [
                    {
                        "reference": reference,
                        "transfer_id": transfer_id,
                        "amount_micro_usdc": str(amount_micro_usdc),
                        "at_ms": now_ms,
                    }
                ],
            )
        uow.commit()
    return transfer_id, created
