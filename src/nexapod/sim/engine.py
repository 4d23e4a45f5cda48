"""The simulator's clock: one epoch after another, each the same sequence of events.

Time is simulated (milliseconds, from the first epoch of week ``start_week``), so an
hour-long epoch takes as long as its work on the store. Within epoch ``e`` (starting
at t0):

    t0            settle epoch e-1; on a day's first epoch fund the treasury first,
                  on a week's first pay last week's stipends
    t0 + 1 s      churn: nodes leave for good (opting out), new ones register
    t0 + 2 s      online idle nodes ask for work: the real admission (share cap)
    t0 + 10 min   outages: failing hot nodes let their lease lapse (partial work kept)
    t0 + 15 min   the real pool manager: idle and lost nodes leave hot, cold nodes
                  replace lost capacity, the share-cap rebalance, the cold band
    t0 + 20 min   liveness challenges to cold nodes, answered or not
    t0 + 59:59    working nodes' validated results for the epoch

The manager runs once per epoch here (every few seconds in a coordinator), so nodes
report once per epoch and the idle threshold is longer than the real default (see
:class:`SimConfig`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

from nexapod.policy import Policy, quote
from nexapod.pools import rules
from nexapod.pools.rules import Member, Move
from nexapod.pools.settle import epoch_of
from nexapod.pools.synthetic import set_job_status
from nexapod.sim import steps
from nexapod.sim.population import (
    DOMINANT,
    INSTITUTION,
    NodeSpec,
    PopulationConfig,
    draw_population,
)
from nexapod.sim.record import EpochRecord, SimResult, record_epoch
from nexapod.sim.world import World, WorldConfig, work_pieces
from nexapod.storage.uow import UnitOfWorkFactory

__all__ = ["DAYS_MAX", "SimConfig", "simulate"]

DAYS_MAX = 366
_S = 1000
CHURN_AT_MS = 1 * _S
ADMIT_AT_MS = 2 * _S
FAIL_AT_MS = 600 * _S
MANAGE_AT_MS = 900 * _S
CHALLENGE_AT_MS = 1200 * _S
CHALLENGE_DEADLINE_MS = 60 * _S
WORK_AT_MS = 3599 * _S
LEASE_LAPSE_MS = 60 * _S
CHECK_VIEW_EVERY = 24  # epochs between checks that the simulator's view is the store's


@dataclass(frozen=True)
class SimConfig:
    """One run. ``funding`` is the treasury's daily deposit as a fraction of what the
    previous day's epochs owed in USDC, one fraction per week in turn (some weeks short,
    so the common scaling shows)."""

    days: int
    seed: int
    population: PopulationConfig
    world: WorldConfig = field(default_factory=WorldConfig)
    funding: tuple[Fraction, ...] = (Fraction(5, 4), Fraction(1, 2), Fraction(1), Fraction(1, 4))
    idle_s: int = 1800  # > the gap between a node's last report and the next manager pass
    lost_s: int = 120  # the coordinator's default pool_lost_s
    write_off_s: int = 86_400  # the coordinator's default pool_write_off_s
    start_week: int = 2900  # 2025-08: any week works; epochs and weeks then align
    prune_work: bool = True

    def __post_init__(self) -> None:
        assert 1 <= self.days <= DAYS_MAX
        assert self.funding, "at least one funding ratio"
        assert all(ratio >= 0 for ratio in self.funding)
        assert self.lost_s * _S < MANAGE_AT_MS - FAIL_AT_MS, "a failure is seen as lost"
        assert self.write_off_s > 0
        assert self.idle_s * _S > MANAGE_AT_MS + 3600 * _S - WORK_AT_MS, "busy nodes not idle"


@dataclass
class _Run:
    config: SimConfig
    policy: Policy
    uow_factory: UnitOfWorkFactory
    world: World
    rng: random.Random
    epoch0: int
    result: SimResult
    unit_index: int = 0
    view: dict[str, Member] = field(default_factory=dict)  # the store's pool, kept in step
    first_unit: dict[int, int] = field(default_factory=dict)  # epoch -> its first unit index

    def t0(self, epoch: int) -> int:
        return (self.epoch0 + epoch) * self.policy.epoch_s * _S


def simulate(
    config: SimConfig,
    policy: Policy,
    uow_factory: UnitOfWorkFactory,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> SimResult:
    """Run the whole simulation on a fresh store; the result holds every figure."""
    assert policy.stipend_period_s % policy.epoch_s == 0, "weeks are whole epochs"
    epochs = config.days * 86_400 // policy.epoch_s
    rng = random.Random(config.seed)
    population = draw_population(config.population, rng)
    epoch0 = config.start_week * policy.stipend_period_s // policy.epoch_s
    run = _Run(
        config=config,
        policy=policy,
        uow_factory=uow_factory,
        world=World.start(population, config.population, config.world),
        rng=rng,
        epoch0=epoch0,
        result=SimResult(epochs=epochs, epoch_s=policy.epoch_s, start_ms=0),
    )
    run.result.start_ms = run.t0(0)
    started = time.perf_counter()
    _setup(run, population.usernames, list(population.nodes))
    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        record = _epoch(run, epoch)
        run.result.records.append(record)
        run.result.epoch_wall_s.append(time.perf_counter() - epoch_started)
        if on_epoch is not None:
            on_epoch(record)
    _close(run, epochs)
    run.result.runtime_s = time.perf_counter() - started
    return run.result


def _timed(run: _Run, phase: str, started: float) -> None:
    run.result.phase_s[phase] = run.result.phase_s.get(phase, 0.0) + time.perf_counter() - started


def _setup(run: _Run, usernames: list[str], nodes: list[NodeSpec]) -> None:
    started = time.perf_counter()
    t0 = run.t0(0)
    run.view = {m.node_id: m for m in steps.register(run.uow_factory, usernames, nodes, t0)}
    steps.verify(run.uow_factory, INSTITUTION, run.policy, t0)
    with run.uow_factory() as uow:
        set_job_status(uow.session, INSTITUTION, "running", t0)
        uow.commit()
    estimate = 0
    for node in nodes:
        if node.username != INSTITUTION and not node.cold_opt_in:
            flops = int(node.capacity_flops_per_s * node.utilisation * run.policy.epoch_s)
            estimate += quote(
                flops, node.capacity_flops_per_s, run.policy.epoch_s, run.policy
            ).usdc_micro
    run.result.usdc_owed_estimate_micro = estimate * 86_400 // run.policy.epoch_s
    _timed(run, "setup", started)


def _epoch(run: _Run, epoch: int) -> EpochRecord:
    t0 = run.t0(epoch)
    policy = run.policy
    started = time.perf_counter()
    if epoch > 0:
        if epoch % (86_400 // policy.epoch_s) == 0:
            _fund(run, epoch // (86_400 // policy.epoch_s), t0)
        _settle(run, epoch - 1, t0)
        if t0 % (policy.stipend_period_s * _S) == 0:
            _pay_week(run, epoch_of(t0, policy.stipend_period_s) - 1, t0)
    else:
        _fund(run, 0, t0)
    _timed(run, "settle", started)

    started = time.perf_counter()
    events = run.world.draw(epoch, run.rng)
    leaving = [run.world.specs[node_id] for node_id in events.departures]
    changed = steps.opt_out(run.uow_factory, leaving, t0 + CHURN_AT_MS)
    changed += steps.register(run.uow_factory, events.new_users, events.arrivals, t0 + CHURN_AT_MS)
    run.view.update((m.node_id, m) for m in changed)
    run.world.apply(events, epoch)
    run.first_unit[epoch] = run.unit_index
    _timed(run, "churn", started)

    started = time.perf_counter()
    failed = {node_id for node_id, _ in events.failures}
    askers = [
        run.world.specs[node_id]
        for node_id in run.world.specs
        if (run.world.online(node_id, epoch) or node_id in failed)
        and not run.world.specs[node_id].cold_opt_in
        and _pool(run, node_id) in ("none", "warm")
    ]
    run.view, admitted = steps.admit_askers(
        run.uow_factory, policy, run.view, askers, t0 + ADMIT_AT_MS, run.rng
    )
    _timed(run, "admit", started)

    started = time.perf_counter()
    work = _fail(run, sorted(failed), t0)
    _timed(run, "fail", started)

    started = time.perf_counter()
    managed = steps.manage(
        run.uow_factory,
        policy,
        t0 + MANAGE_AT_MS,
        run.config.idle_s,
        run.config.lost_s,
        run.config.write_off_s,
        policy.stipend_period_s,
    )
    _apply(run, managed, t0 + MANAGE_AT_MS)
    if epoch % CHECK_VIEW_EVERY == 0:
        assert run.view == steps.load_view(run.uow_factory), "the simulator sees the store"
    _timed(run, "manage", started)

    started = time.perf_counter()
    _challenge(run, epoch, t0)
    work.extend(_work(run, epoch, t0))
    run.unit_index = steps.write_work(run.uow_factory, work, run.unit_index)
    _timed(run, "work", started)

    ledger = steps.ledger_state(run.uow_factory)
    return record_epoch(
        epoch, t0, list(run.view.values()), policy, ledger, [*admitted, *managed], DOMINANT
    )


def _pool(run: _Run, node_id: str) -> str:
    member = run.view.get(node_id)
    return "none" if member is None else member.pool


def _apply(run: _Run, moves: list[Move], now_ms: int) -> None:
    for move in moves:
        member = run.view[move.node_id]
        (run.view[move.node_id],) = rules.apply_moves([member], [move], now_ms)


def _fail(run: _Run, failed: list[str], t0: int) -> list[tuple[str, str, int, int]]:
    """Failing working nodes: their work until the failure, and (hot ones) a lapsed lease."""
    at_ms = t0 + FAIL_AT_MS
    work: list[tuple[str, str, int, int]] = []
    lapses: list[tuple[str, str, int, int]] = []
    for node_id in failed:
        member = run.view.get(node_id)
        if member is None or member.pool not in ("hot", "institutional"):
            continue
        work.extend(_node_work(run, member, max(t0, member.since_ms), at_ms - _S))
        if member.pool == "hot":
            lapses.append((node_id, member.username, at_ms - _S // 2, at_ms + LEASE_LAPSE_MS))
    run.unit_index = steps.write_lapses(run.uow_factory, lapses, run.unit_index)
    return work


def _node_work(
    run: _Run, member: Member, start_ms: int, end_ms: int
) -> list[tuple[str, str, int, int]]:
    seconds = (end_ms - start_ms) // _S
    if seconds <= 0:
        return []
    rate = member.capacity_flops_per_s * run.world.utilisation(member.node_id, run.rng)
    flops = int(rate * seconds)
    if flops <= 0:
        return []
    return [(member.node_id, member.username, piece, end_ms) for piece in work_pieces(flops)]


def _work(run: _Run, epoch: int, t0: int) -> list[tuple[str, str, int, int]]:
    """Every online hot or institutional node's validated work since it started this epoch."""
    work: list[tuple[str, str, int, int]] = []
    for node_id, member in run.view.items():
        if member.pool in ("hot", "institutional") and run.world.online(node_id, epoch):
            work.extend(_node_work(run, member, max(t0, member.since_ms), t0 + WORK_AT_MS))
    return work


def _challenge(run: _Run, epoch: int, t0: int) -> None:
    issued = t0 + CHALLENGE_AT_MS
    challenges = [
        (node_id, issued, issued + CHALLENGE_DEADLINE_MS, run.world.answer(node_id, epoch, run.rng))
        for node_id, member in run.view.items()
        if member.pool == "cold"
    ]
    steps.write_challenges(run.uow_factory, challenges)


def _settle(run: _Run, epoch: int, now_ms: int) -> None:
    # keep the settled epoch's work: the manager's idle check reads its leases
    prune = run.first_unit.pop(epoch, None) if run.config.prune_work else None
    report, pays = steps.settle(run.uow_factory, run.policy, run.epoch0 + epoch, now_ms, prune)
    run.result.add_settlement(report, pays)


def _pay_week(run: _Run, week: int, now_ms: int) -> None:
    report, pays = steps.pay_week(run.uow_factory, run.policy, week, now_ms)
    run.result.add_stipends(report, pays)


def _fund(run: _Run, day: int, now_ms: int) -> None:
    """Deposit the day's share of what the last day's epochs owed (the first day: an
    estimate from the population's nominal work, quoted by the real policy)."""
    ratio = run.config.funding[(day // 7) % len(run.config.funding)]
    last_day = run.result.settlements[-(86_400 // run.policy.epoch_s) :]
    owed = (
        sum(r.usdc_owed_micro_total for r in last_day)
        if last_day
        else run.result.usdc_owed_estimate_micro
    )
    amount = owed * ratio.numerator // ratio.denominator
    steps.fund(run.uow_factory, amount, f"sim-day-{day}", now_ms)
    run.result.funded.append((day, amount))


def _close(run: _Run, epochs: int) -> None:
    """Settle the last epoch, pay the last week if it closed, and take the ledger's state."""
    t_end = run.t0(epochs)
    _settle(run, epochs - 1, t_end)
    if t_end % (run.policy.stipend_period_s * _S) == 0:
        _pay_week(run, epoch_of(t_end, run.policy.stipend_period_s) - 1, t_end)
    run.result.ledger = steps.ledger_state(run.uow_factory, with_accounts=True)
    run.result.nodes = {
        node_id: (spec.username, spec.capacity_flops_per_s)
        for node_id, spec in run.world.specs.items()
    }
