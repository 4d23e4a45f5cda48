"""The simulator's steps against the store, each through the real pool, settlement and
ledger code (the parts of the coordinator that decide and pay).

Each step opens its own unit of work and commits once, as the coordinator's use cases
do. What the simulator writes itself is only what real nodes would have caused and
what the store cannot learn otherwise (``nexapod.pools.synthetic``): registrations,
validated results, a lease a failed node let lapse, liveness challenges' outcomes.

    admit           rules.admit for each node asking for work, membership.apply_moves
    manage          membership.manage_pools (idle, write-offs, lost, disruption over,
                    rebalance, failover and capacity need, institutions, cold band)
    settle          settling.settle_epoch, its per-node lines read back from the log
    pay stipends    stipends.pay_stipends
    fund            settling.fund_treasury
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, select

from nexapod.ledger import log_store
from nexapod.ledger import service as ledger
from nexapod.ledger.accounts import mint_account_id
from nexapod.ledger.store import AccountRow
from nexapod.policy import Policy
from nexapod.pools import membership, rules, synthetic
from nexapod.pools.availability import availability_by_node
from nexapod.pools.rules import Member, Move
from nexapod.pools.service import set_preferences, verify_institution
from nexapod.pools.settling import EpochReport, fund_treasury, settle_epoch, treasury_micro_usdc
from nexapod.pools.stipends import StipendReport, pay_stipends
from nexapod.pools.store import StipendRow
from nexapod.protocol.v1 import PoolPreferences
from nexapod.sim.population import NodeSpec
from nexapod.storage import make_engine, migrate_to_head
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = [
    "MOVES_PER_WRITE_MAX",
    "Ledger",
    "NodePay",
    "admit_askers",
    "fund",
    "ledger_state",
    "load_view",
    "manage",
    "opt_out",
    "pay_week",
    "register",
    "settle",
    "throwaway_store",
    "verify",
    "write_challenges",
    "write_lapses",
    "write_work",
]

MOVES_PER_WRITE_MAX = 5000  # membership.apply_moves appends one log entry per move


@dataclass(frozen=True)
class NodePay:
    """What one node was paid by one settlement or stipend: (node, user, NXC, USDC)."""

    node_id: str
    username: str
    nxc_micro: int
    usdc_micro: int


@dataclass(frozen=True)
class Ledger:
    """The ledger at a moment: NXC supply, treasury, and every asset's posted sums."""

    nxc_supply_micro: int
    treasury_micro_usdc: int
    posted_by_asset: dict[str, tuple[int, int]]  # asset -> (debits posted, credits posted)
    balances: dict[str, int]  # account id -> balance


def throwaway_store(directory: Path) -> Engine:
    """A migrated SQLite store in ``directory`` that skips syncing to disk.

    The store is deleted when the run ends, so durability buys nothing; without the
    syncs, each epoch's commits and WAL checkpoints cost memory copies, not disk waits.
    """
    engine = make_engine(f"sqlite:///{directory / 'sim.sqlite3'}")

    @event.listens_for(engine, "connect")
    def _no_sync(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    migrate_to_head(engine)
    return engine


def register(
    uow_factory: UnitOfWorkFactory,
    users: Sequence[str],
    nodes: Sequence[NodeSpec],
    now_ms: int,
) -> list[Member]:
    """New users and nodes (synthetic registrations), then each volunteer's preferences
    through the real ``set_preferences`` (one logged ``pool_preference`` each); returns
    the pool rows that created."""
    with uow_factory() as uow:
        synthetic.add_users(uow.session, users, now_ms)
        synthetic.add_nodes(
            uow.session, [(n.node_id, n.username, n.capacity_flops_per_s) for n in nodes], now_ms
        )
        uow.commit()
    return [
        _prefer(uow_factory, node, node.warm_opt_in, node.cold_opt_in, now_ms)
        for node in nodes
        if node.warm_opt_in or node.cold_opt_in
    ]


def _prefer(
    uow_factory: UnitOfWorkFactory, node: NodeSpec, warm: bool, cold: bool, now_ms: int
) -> Member:
    with uow_factory() as uow:
        view = set_preferences(
            uow, node.node_id, PoolPreferences(warm_opt_in=warm, cold_opt_in=cold), now_ms
        )
    assert view.since_ms is not None, "a preference makes a pool row"
    return Member(
        node_id=node.node_id,
        username=node.username,
        pool=view.pool,
        capacity_flops_per_s=node.capacity_flops_per_s,
        since_ms=view.since_ms,
        warm_opt_in=view.warm_opt_in,
        cold_opt_in=view.cold_opt_in,
        promoted=view.promoted,
    )


def verify(uow_factory: UnitOfWorkFactory, username: str, policy: Policy, now_ms: int) -> None:
    with uow_factory() as uow:
        verify_institution(uow, username, "Simulated Institute", policy, now_ms)


def opt_out(uow_factory: UnitOfWorkFactory, nodes: Iterable[NodeSpec], now_ms: int) -> list[Member]:
    """Nodes leaving for good withdraw from warm and cold (the manager retires hot ones)."""
    return [_prefer(uow_factory, node, False, False, now_ms) for node in nodes]


def load_view(uow_factory: UnitOfWorkFactory) -> dict[str, Member]:
    with uow_factory() as uow:
        return {m.node_id: m for m in membership.load_members(uow.session)}


def admit_askers(
    uow_factory: UnitOfWorkFactory,
    policy: Policy,
    pool: dict[str, Member],
    askers: Sequence[NodeSpec],
    now_ms: int,
    rng: random.Random,
) -> tuple[dict[str, Member], list[Move]]:
    """Nodes asking for work, in random order, through the real admission rule.

    This is ``membership.gate_for_lease`` for many nodes in one transaction: ``pool`` is
    the store's pool (the simulator keeps it, and checks it against the store), and each
    decision is applied to it before the next, exactly as one gate call after another
    would see it, without reading 10^4 rows per call. A user whose node is refused
    (parked in warm for the share cap) stops asking until the next epoch. Returns the
    pool after the admissions, and the moves.
    """
    view = dict(pool)
    with uow_factory() as uow:
        session = uow.session
        log_store.lock_log(session)
        order = list(askers)
        rng.shuffle(order)
        institutional = membership.institutional_map(session, policy, {n.username for n in order})
        refused: set[str] = set()
        moves: list[Move] = []
        members = list(view.values())
        for node in order:
            if node.username in refused:
                continue
            candidate = view.get(node.node_id) or Member(
                node.node_id, node.username, "none", node.capacity_flops_per_s, now_ms
            )
            assert candidate.pool in ("none", "warm"), "only idle nodes ask"
            decided = rules.admit(candidate, members, institutional, policy)
            if not decided or decided[-1].to_pool == "warm":
                refused.add(node.username)
            if not decided:
                continue
            view.setdefault(node.node_id, candidate)
            for member in rules.apply_moves([view[m.node_id] for m in decided], decided, now_ms):
                view[member.node_id] = member
            members = list(view.values())
            moves.extend(decided)
        usernames = {m.node_id: m.username for m in view.values()}
        for start in range(0, len(moves), MOVES_PER_WRITE_MAX):
            membership.apply_moves(
                session, moves[start : start + MOVES_PER_WRITE_MAX], usernames, now_ms
            )
        uow.commit()
    return view, moves


def manage(
    uow_factory: UnitOfWorkFactory,
    policy: Policy,
    now_ms: int,
    idle_s: int,
    lost_s: int,
    write_off_s: int,
    window_s: int,
) -> list[Move]:
    """One pass of the real pool manager, with cold nodes ordered by their availability
    over the last ``window_s`` (the real ``availability_by_node``)."""
    with uow_factory() as uow:
        measured = availability_by_node(uow.session, max(0, now_ms - window_s * 1000), now_ms)
        availability_ppm = {
            node_id: a.answered_in_time * 1_000_000 // a.issued
            for node_id, a in measured.items()
            if a.issued
        }
        moves = membership.manage_pools(
            uow.session,
            policy,
            now_ms,
            idle_s=idle_s,
            lost_s=lost_s,
            write_off_s=write_off_s,
            availability_ppm=availability_ppm,
        )
        uow.commit()
    return moves


def write_lapses(
    uow_factory: UnitOfWorkFactory, lapses: Sequence[tuple[str, str, int, int]], unit_index: int
) -> int:
    with uow_factory() as uow:
        unit_index = synthetic.add_lapsed_leases(uow.session, lapses, unit_index)
        uow.commit()
    return unit_index


def write_work(
    uow_factory: UnitOfWorkFactory, work: Sequence[tuple[str, str, int, int]], unit_index: int
) -> int:
    """Validated results (node, user, flops, validated_at_ms), one transaction."""
    with uow_factory() as uow:
        unit_index = synthetic.add_validated_work(uow.session, work, unit_index)
        uow.commit()
    return unit_index


def write_challenges(
    uow_factory: UnitOfWorkFactory, challenges: Sequence[tuple[str, int, int, bool]]
) -> None:
    if not challenges:
        return
    with uow_factory() as uow:
        synthetic.add_cold_challenges(uow.session, challenges)
        uow.commit()


def settle(
    uow_factory: UnitOfWorkFactory,
    policy: Policy,
    epoch_index: int,
    now_ms: int,
    prune_below_unit: int | None,
) -> tuple[EpochReport, list[NodePay]]:
    """Settle one epoch for real, then read its per-node lines back from the log.

    The lines are what every node was paid; their sums are checked against the epoch's
    report. Settled work below unit index ``prune_below_unit`` is then deleted (see
    ``synthetic.delete_work_before``).
    """
    report = settle_epoch(uow_factory, policy, epoch_index, now_ms)
    assert report.settled_now, "each epoch settles once"
    pays: list[NodePay] = []
    with uow_factory() as uow:
        ((_, raw, _),) = log_store.read_entries(uow.session, report.log_index, report.log_index + 1)
        summary = json.loads(raw)
        assert summary["kind"] == "reward_epoch" and summary["epoch"] == epoch_index
        first, count = int(summary["lines_first_index"]), int(summary["lines_entries"])
        for _, body, _ in log_store.read_entries(uow.session, first, first + count):
            for line in json.loads(body)["lines"]:
                pays.append(NodePay(line[0], line[1], int(line[4]), int(line[6])))
    assert sum(p.nxc_micro for p in pays) == report.nxc_micro_total
    assert sum(p.usdc_micro for p in pays) == report.usdc_paid_micro_total
    if prune_below_unit is not None:
        with uow_factory() as uow:
            synthetic.delete_work_before(uow.session, prune_below_unit)
            uow.commit()
    return report, pays


def pay_week(
    uow_factory: UnitOfWorkFactory, policy: Policy, week: int, now_ms: int
) -> tuple[StipendReport, list[NodePay]]:
    """The week's cold stipends through the real payer, and what each node got."""
    report = pay_stipends(uow_factory, policy, week, now_ms)
    with uow_factory() as uow:
        rows = uow.session.scalars(select(StipendRow).where(StipendRow.period_index == week)).all()
        pays = [NodePay(r.node_id, r.username, r.nxc_micro, r.usdc_micro) for r in rows]
    assert sum(p.nxc_micro for p in pays) == report.nxc_micro_total
    return report, pays


def fund(
    uow_factory: UnitOfWorkFactory, amount_micro_usdc: int, reference: str, now_ms: int
) -> None:
    if amount_micro_usdc > 0:
        fund_treasury(uow_factory, amount_micro_usdc, reference, now_ms)


def ledger_state(uow_factory: UnitOfWorkFactory, *, with_accounts: bool = False) -> Ledger:
    """Supply and treasury (cheap); every account's totals too when asked (the final check)."""
    with uow_factory() as uow:
        issued = ledger.get_account(uow, mint_account_id("NXC")).balance
        treasury = treasury_micro_usdc(uow)
        posted: dict[str, tuple[int, int]] = {}
        balances: dict[str, int] = {}
        if with_accounts:
            for row in uow.session.scalars(select(AccountRow)):
                debits, credits = posted.get(row.asset, (0, 0))
                posted[row.asset] = (debits + row.debits_posted, credits + row.credits_posted)
                balances[row.account_id] = row.credits_posted - row.debits_posted
    assert issued <= 0, "the issuer's balance is minus what it minted"
    return Ledger(-issued, treasury, posted, balances)
