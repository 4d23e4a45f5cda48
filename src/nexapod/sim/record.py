"""What the simulator records: one :class:`EpochRecord` per epoch, and the run's totals.

Records are computed from the pool as the store holds it after the manager's pass (the
simulator's view, checked against the store), with the real rules' own measures:
``hot_capacity_by_user`` for the share cap (promoted cold stand-ins counted, as the cap
counts them) and ``cold_band`` for the band (of regular hot capacity, stand-ins aside).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from nexapod.policy import Policy
from nexapod.pools import rules
from nexapod.pools.rules import Member, Move
from nexapod.pools.settling import EpochReport
from nexapod.pools.stipends import StipendReport
from nexapod.sim.steps import Ledger, NodePay

__all__ = ["EpochRecord", "SimResult", "record_epoch"]


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 0 .. epochs - 1, from the start of the run
    at_ms: int
    pool_nodes: dict[str, int]
    pool_capacity_flops_per_s: dict[str, int]  # counted as the cap counts (node cap)
    promoted_nodes: int
    hot_users: int
    share_cap_binds: bool
    hot_capacity_flops_per_s: int  # not counting promoted nodes (the cold band's base)
    dominant_hot_flops_per_s: int
    dominant_share: Fraction  # of hot capacity, as the cap measures it (stand-ins counted)
    dominant_share_with_promoted: Fraction  # its share of every node serving in hot (the same)
    dominant_parked: int  # its nodes in warm
    cold_flops_per_s: int
    cold_band_flops_per_s: tuple[int, int, int]  # low, target, high (floored)
    treasury_micro_usdc: int
    nxc_supply_micro: int
    moves: dict[str, int]  # by reason, this epoch (admissions and the manager's pass)

    @property
    def cold_in_band(self) -> bool:
        low, _, high = self.cold_band_flops_per_s
        return low <= self.cold_flops_per_s <= high


def _share(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def record_epoch(
    epoch: int,
    at_ms: int,
    members: Sequence[Member],
    policy: Policy,
    ledger: Ledger,
    moves: Sequence[Move],
    dominant: str,
) -> EpochRecord:
    """The figures of one epoch, from the pool after the manager's pass."""
    nodes: Counter[str] = Counter()
    capacity: Counter[str] = Counter()
    serving: Counter[str] = Counter()  # every hot node, promoted or not
    for member in members:
        counted = rules.counted_capacity(member, policy)
        nodes[member.pool] += 1
        capacity[member.pool] += counted
        if member.pool == "hot":
            serving[member.username] += counted
    by_user = rules.hot_capacity_by_user(members, policy)
    cap_total = sum(by_user.values())
    hot_total = sum(
        rules.counted_capacity(m, policy) for m in members if m.pool == "hot" and not m.promoted
    )
    low, target, high = rules.cold_band(members, policy)
    return EpochRecord(
        epoch=epoch,
        at_ms=at_ms,
        pool_nodes={pool: nodes[pool] for pool in rules.POOLS},
        pool_capacity_flops_per_s={pool: capacity[pool] for pool in rules.POOLS},
        promoted_nodes=sum(1 for m in members if m.promoted),
        hot_users=len(by_user),
        share_cap_binds=rules.share_cap_binds(by_user, policy),
        hot_capacity_flops_per_s=hot_total,
        dominant_hot_flops_per_s=by_user.get(dominant, 0),
        dominant_share=_share(by_user.get(dominant, 0), cap_total),
        dominant_share_with_promoted=_share(serving[dominant], sum(serving.values())),
        dominant_parked=sum(1 for m in members if m.username == dominant and m.pool == "warm"),
        cold_flops_per_s=capacity["cold"],
        cold_band_flops_per_s=(int(low), int(target), int(high)),
        treasury_micro_usdc=ledger.treasury_micro_usdc,
        nxc_supply_micro=ledger.nxc_supply_micro,
        moves=dict(sorted(Counter(m.reason for m in moves).items())),
    )


@dataclass
class SimResult:
    """Everything a run produced; the report is built from it."""

    epochs: int
    epoch_s: int
    start_ms: int
    records: list[EpochRecord] = field(default_factory=list)
    settlements: list[EpochReport] = field(default_factory=list)
    stipends: list[StipendReport] = field(default_factory=list)
    reward_by_node: dict[str, tuple[int, int]] = field(default_factory=dict)  # NXC, USDC
    stipend_by_node: dict[str, tuple[int, int]] = field(default_factory=dict)
    funded: list[tuple[int, int]] = field(default_factory=list)  # (day, micro-USDC)
    usdc_owed_estimate_micro: int = 0  # the first day's, before any epoch settled
    nodes: dict[str, tuple[str, int]] = field(default_factory=dict)  # id -> user, capacity
    ledger: Ledger | None = None
    runtime_s: float = 0.0
    phase_s: dict[str, float] = field(default_factory=dict)
    epoch_wall_s: list[float] = field(default_factory=list)  # wall time of each epoch

    def add_settlement(self, report: EpochReport, pays: Sequence[NodePay]) -> None:
        self.settlements.append(report)
        _accumulate(self.reward_by_node, pays)

    def add_stipends(self, report: StipendReport, pays: Sequence[NodePay]) -> None:
        self.stipends.append(report)
        _accumulate(self.stipend_by_node, pays)


def _accumulate(totals: dict[str, tuple[int, int]], pays: Sequence[NodePay]) -> None:
    for pay in pays:
        nxc, usdc = totals.get(pay.node_id, (0, 0))
        totals[pay.node_id] = (nxc + pay.nxc_micro, usdc + pay.usdc_micro)
