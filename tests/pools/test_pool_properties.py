"""Property tests of pools and settlement (hypothesis): after any sequence of joins,
leaves, failures, recoveries, write-offs and changes of the jobs' capacity need, the share
cap holds once it binds (stand-ins counted), stand-ins cover what the disruption owes
unless no cold node fits under the cap, none remain once nothing is owed, cold capacity
sits in its band whenever whole volunteers allow it, and every settlement keeps the
ledger balanced. Pure rules throughout: the pool manager's and the ledger's own
arithmetic, in the manager's order."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nexapod.ledger.accounts import may_go_negative, parse_account_id
from nexapod.ledger.rules import Account, apply_batch
from nexapod.policy import default_policy
from nexapod.pools import disruption, rules
from nexapod.pools.disruption import Disruption
from nexapod.pools.rules import Member
from nexapod.pools.settle import NodeWork, settle_epoch_lines, settlement_transfers

POLICY = default_policy()
T = 10**12
USERS = ["whale", "ann", "bob", "cat", "dan", "eve"]
capacities = st.sampled_from([1 * T, 2 * T, 5 * T, 20 * T, 100 * T, 500 * T, 10**18])
needs = st.sampled_from([None, 0, 10 * T, 200 * T, 1000 * T, 10**16])  # None: no job runs


def _account(account_id: str) -> Account:
    ref = parse_account_id(account_id)
    assert ref is not None
    return Account(account_id, ref.asset, ref.owner, may_go_negative(account_id))


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.members: list[Member] = []
        self.now_ms = 0
        self.lost: set[str] = set()  # lost regular hot nodes, still owed
        self.need: int | None = 0  # the running jobs' capacity need; None: no job runs
        self.before_cold_band: list[Member] = []  # the pool once stand-ins were promoted
        self.accounts: dict[str, Account] = {}
        self.epoch = 0
        self.treasury_funded = 0

    # -- the world acts --------------------------------------------------------------
    def _tick(self) -> int:
        self.now_ms += 1000
        return self.now_ms

    def _apply(self, moves: list[rules.Move]) -> None:
        self.members = rules.apply_moves(self.members, moves, self._tick())

    def _disruption(self) -> Disruption:
        if self.need is None:
            return Disruption(0, 0)
        by_id = {m.node_id: m for m in self.members}
        lost = sum(rules.counted_capacity(by_id[n], POLICY) for n in self.lost)
        return Disruption(lost_flops_per_s=lost, need_flops_per_s=self.need)

    def _owed(self) -> int:
        return disruption.stand_ins_owed_flops_per_s(self.members, self._disruption(), POLICY)

    def _manage(self) -> None:
        """The manager's pass, in the service's order (institutions aside)."""
        self.lost = {
            n for n in self.lost if any(m.node_id == n and m.pool == "none" for m in self.members)
        }
        self._apply(disruption.return_stand_ins(self.members, self._owed(), POLICY))
        self._apply(rules.rebalance(self.members, POLICY))
        lost = self._disruption().lost_flops_per_s
        self._apply(disruption.promote_stand_ins(self.members, lost, "failover", POLICY))
        owed = self._owed()
        self._apply(disruption.promote_stand_ins(self.members, owed, "capacity_need", POLICY))
        self.before_cold_band = list(self.members)
        self._apply(rules.manage_cold(self.members, POLICY))

    @rule(
        user=st.sampled_from(USERS),
        capacity=capacities,
        volunteer=st.booleans(),
        warm=st.booleans(),
    )
    def join(self, user: str, capacity: int, volunteer: bool, warm: bool) -> None:
        node_id = f"n{len(self.members):04d}"
        member = Member(node_id, user, "none", capacity, self._tick(), warm, volunteer)
        self.members.append(member)
        if not volunteer:  # volunteers wait for the manager; the others ask for work
            self._apply(rules.admit(member, self.members, {}, POLICY))
            self.no_user_above_the_cap_once_it_binds()  # admission alone keeps the cap
        self._manage()

    @precondition(lambda self: any(m.pool == "hot" for m in self.members))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        hot = [m for m in self.members if m.pool == "hot" and not m.promoted]
        if hot:
            gone = data.draw(st.sampled_from(hot))
            self._apply(
                [
                    rules.Move(
                        gone.node_id, "hot", "warm" if gone.warm_opt_in else "none", "lease_end"
                    )
                ]
            )
        self._manage()

    @precondition(lambda self: any(m.pool == "hot" for m in self.members))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        hot = [m for m in self.members if m.pool == "hot"]
        lost = data.draw(st.sampled_from(hot))
        moves = disruption.lose(self.members, [lost.node_id])
        self._apply(moves)
        if moves[0].reason == "lost":  # a lost stand-in owes nothing of its own
            self.lost.add(lost.node_id)
        self._manage()

    @precondition(lambda self: bool(self.lost))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        node_id = data.draw(st.sampled_from(sorted(self.lost)))
        member = next(m for m in self.members if m.node_id == node_id)
        self._apply(rules.admit(member, self.members, {}, POLICY))
        self._manage()

    @precondition(lambda self: bool(self.lost))
    @rule(data=st.data())
    def write_off(self, data: st.DataObject) -> None:
        """A lost node away past the grace: its capacity is no longer owed."""
        self.lost.discard(data.draw(st.sampled_from(sorted(self.lost))))
        self._manage()

    @rule(need=needs)
    def need_changes(self, need: int | None) -> None:
        """A job with a capacity need starts or ends (None: no job runs at all)."""
        self.need = need
        self._manage()

    @rule(
        flops=st.lists(st.integers(min_value=1, max_value=10**20), min_size=1, max_size=8),
        funding=st.integers(min_value=0, max_value=10**9),
    )
    def settle(self, flops: list[int], funding: int) -> None:
        """An epoch: some hot nodes did validated work; the treasury may fall short."""
        hot = [m for m in self.members if m.pool == "hot"]
        work = [
            NodeWork(m.node_id, m.username, f, m.capacity_flops_per_s)
            for m, f in zip(hot, flops, strict=False)
        ]
        treasury = self.accounts.setdefault(
            "system:treasury:USDC", _account("system:treasury:USDC")
        )
        gateway = self.accounts.setdefault(
            "system:usdc_gateway:USDC", _account("system:usdc_gateway:USDC")
        )
        treasury.credits_posted += funding
        gateway.debits_posted += funding
        settlement = settle_epoch_lines(self.epoch, work, POLICY, treasury.available)
        batch = settlement_transfers(settlement)
        for new in batch:
            for account_id in (new.debit_account_id, new.credit_account_id):
                assert account_id is not None
                self.accounts.setdefault(account_id, _account(account_id))
        apply_batch(batch, self.accounts, {}, self.now_ms, 0)
        assert (
            settlement.usdc_paid_micro_total + settlement.usdc_shortfall_micro
            == settlement.usdc_owed_micro_total
        )
        if settlement.usdc_shortfall_micro:
            assert treasury.available < settlement.usdc_owed_micro_total
        self.epoch += 1

    # -- what must always hold -------------------------------------------------------
    @invariant()
    def no_user_above_the_cap_once_it_binds(self) -> None:
        by_user = rules.hot_capacity_by_user(self.members, POLICY)
        total = sum(by_user.values())
        if rules.share_cap_binds(by_user, POLICY) and total:
            for user, capacity in by_user.items():
                assert Decimal(capacity) <= POLICY.max_user_share * total, (user, by_user)

    @invariant()
    def cold_in_its_band_when_whole_volunteers_allow(self) -> None:
        low, _, high = rules.cold_band(self.members, POLICY)
        cold = [rules.counted_capacity(m, POLICY) for m in self.members if m.pool == "cold"]
        total = sum(cold)
        if total < low:  # then no idle volunteer would fit under the ceiling
            for m in self.members:
                if m.cold_opt_in and m.pool in ("warm", "none"):
                    assert (
                        total + rules.counted_capacity(m, POLICY) > high
                        or rules.counted_capacity(m, POLICY) == 0
                    )
        if total > high > 0:  # then no cold node could leave without going under the floor
            assert all(total - c < low for c in cold)

    @invariant()
    def the_ledger_balances(self) -> None:
        sums: Counter[str] = Counter()
        for account in self.accounts.values():
            sums[account.asset] += account.balance
            if not account.may_go_negative:
                assert account.available >= 0, account
        assert all(total == 0 for total in sums.values()), sums

    @invariant()
    def promoted_nodes_are_hot(self) -> None:
        assert all(m.pool == "hot" for m in self.members if m.promoted)

    @invariant()
    def no_stand_ins_once_nothing_is_owed(self) -> None:
        if self._owed() == 0:
            assert not any(m.promoted for m in self.members)

    @invariant()
    def stand_ins_cover_what_is_owed_unless_no_cold_node_fits(self) -> None:
        pool = self.before_cold_band  # the cold band may add volunteers after promotions
        if not pool:
            return
        owed = disruption.stand_ins_owed_flops_per_s(pool, self._disruption(), POLICY)
        covered = sum(rules.counted_capacity(m, POLICY) for m in pool if m.promoted)
        if covered >= owed:
            return
        by_user = rules.hot_capacity_by_user(pool, POLICY)
        total = sum(by_user.values())
        for m in pool:
            if m.pool == "cold":
                capacity = rules.counted_capacity(m, POLICY)
                assert capacity == 0 or not rules.fits_under_cap(
                    by_user, total, m.username, capacity, POLICY
                )


TestPools = PoolMachine.TestCase
TestPools.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
