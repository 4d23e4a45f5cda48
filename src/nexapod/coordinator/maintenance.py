"""The coordinator's background duties: merge finished jobs, expire leases and holds, prune
nonces, issue cold nodes' liveness challenges, and (on its own thread) integrate the
ledger's log into signed checkpoints.

Each duty is idempotent, so several coordinator processes over one database may run
it side by side; a crash in the middle is finished by the next pass.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from nexapod.coordinator.context import Context
from nexapod.errors import RegistryError
from nexapod.ledger import service as ledger
from nexapod.ledger.integrator import integrate_pending
from nexapod.ledger.log_store import read_tree_size
from nexapod.ledger.tile_store import StoredCheckpoint
from nexapod.logs import log_event
from nexapod.mesh import service as mesh
from nexapod.mesh.store import JobRow
from nexapod.pools import challenging
from nexapod.pools.membership import manage_pools
from nexapod.pools.settling import settle_due_epochs
from nexapod.pools.stipends import pay_due_stipends
from nexapod.registry import service as registry
from nexapod.registry import stats

__all__ = [
    "PASS_MS",
    "CheckpointLoop",
    "MaintenanceLoop",
    "integrate_log_once",
    "run_maintenance_once",
]

logger = logging.getLogger("nexapod.coordinator.maintenance")
INTERVAL_S = 1.0
PASS_MS = int(INTERVAL_S * 1000)  # the step of the cold challenges' issuing chance
MERGES_PER_PASS_MAX = 16


def run_maintenance_once(ctx: Context) -> int:
    """One pass of every duty; returns how many jobs it merged."""
    now_ms = ctx.clock_ms()
    with ctx.uow() as uow:
        expired = mesh.expire_overdue_leases(uow, now_ms, ctx.limits.unit_attempts_max)
        uow.commit()
    if expired:
        log_event(logger, "lease.expired", count=expired)
    with ctx.uow() as uow:
        registry.prune_nonces(uow, now_ms)
    voided = ledger.expire_pending_transfers(ctx.uow_factory, now_ms, ctx.read_uow_factory)
    if voided:
        log_event(logger, "ledger.holds_expired", count=voided)
        ctx.entries_to_integrate.set()
    _cold_challenges(ctx)
    _refresh_stats(ctx, now_ms)
    with ctx.read_uow() as uow:
        job_ids = list(
            uow.session.scalars(
                select(JobRow.job_id).where(JobRow.status == "merging").limit(MERGES_PER_PASS_MAX)
            )
        )
    _manage_pools(ctx, now_ms)
    merged = 0
    for job_id in job_ids:
        try:
            if mesh.finalize_job(ctx.read_uow(), ctx.uow(), job_id, ctx.clock_ms):
                merged += 1
                log_event(logger, "job.done", job_id=job_id)
        except IntegrityError:  # another coordinator merged it first
            continue
    return merged


def _manage_pools(ctx: Context, now_ms: int) -> None:
    """The pool manager every ``pools_manage_interval_s``; closed epochs settled as they close."""
    if now_ms < ctx.pools_due_at_ms:
        return
    ctx.pools_due_at_ms = now_ms + int(ctx.settings.pools_manage_interval_s * 1000)
    with ctx.uow() as uow:
        moves = manage_pools(
            uow.session,
            ctx.policy,
            now_ms,
            idle_s=ctx.settings.pool_idle_s,
            lost_s=ctx.settings.pool_lost_s,
            write_off_s=ctx.settings.pool_write_off_s,
        )
        uow.commit()
    if moves:
        log_event(logger, "pools.moved", count=len(moves))
        ctx.entries_to_integrate.set()
    if not ctx.settings.rewards_settle_auto:
        return
    ctx.stipend_week_paid, stipends = pay_due_stipends(
        ctx.uow_factory, ctx.policy, now_ms, ctx.stipend_week_paid
    )
    for paid in stipends:
        if paid.paid_now and paid.nodes:
            log_event(
                logger,
                "stipends.paid",
                week=paid.period_index,
                nodes=paid.nodes,
                nodes_paid=paid.nodes_paid,
            )
            ctx.entries_to_integrate.set()
    for report in settle_due_epochs(ctx.uow_factory, ctx.policy, now_ms):
        if report.settled_now:
            log_event(
                logger,
                "rewards.settled",
                epoch=report.epoch_index,
                nodes=report.nodes_paid,
                usdc_shortfall_micro=str(report.usdc_shortfall_micro),
            )
            ctx.entries_to_integrate.set()


def _cold_challenges(ctx: Context) -> None:
    """Issue this pass's liveness challenges to cold nodes; prune those past retention."""
    schedule = challenging.challenge_schedule(ctx.settings, PASS_MS)
    issued = challenging.issue_due_challenges(ctx.read_uow(), ctx.uow(), schedule, ctx.clock_ms())
    if issued:
        log_event(logger, "challenge.issued", count=issued)
    retention_ms = ctx.settings.cold_challenge_retention_s * 1000
    pruned = challenging.prune_challenges(ctx.read_uow(), ctx.uow(), ctx.clock_ms(), retention_ms)
    if pruned:
        log_event(logger, "challenge.pruned", count=pruned)


def _refresh_stats(ctx: Context, now_ms: int) -> None:
    """Make the leaderboard's snapshot when it is due, so no request waits for it."""
    config = stats.StatsConfig.from_settings(ctx.settings)
    try:
        stats.refresh_if_due(ctx.uow_factory, ctx.read_uow_factory, now_ms, config)
    except RegistryError as exc:  # too many contributors: requests get the same problem
        log_event(logger, "stats.refresh_failed", code=exc.code)


class MaintenanceLoop:
    """Runs :func:`run_maintenance_once` every second, or at once when woken."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexapod-maintenance", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._ctx.jobs_to_merge.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                run_maintenance_once(self._ctx)
            except OperationalError:
                logger.exception("maintenance.failed")
            self._ctx.jobs_to_merge.wait(INTERVAL_S)
            self._ctx.jobs_to_merge.clear()


def integrate_log_once(ctx: Context) -> StoredCheckpoint | None:
    """Integrate what the log gained and sign a checkpoint; None when there was nothing."""
    checkpoint = integrate_pending(
        ctx.uow_factory,
        ctx.log,
        ctx.clock_ms(),
        ctx.settings.ledger_integrate_entries_max,
        read_uow_factory=ctx.read_uow_factory,
    )
    if checkpoint is not None:
        log_event(logger, "ledger.checkpoint", tree_size=checkpoint.tree_size)
    return checkpoint


class CheckpointLoop:
    """Signs a checkpoint every ``ledger_checkpoint_interval_s`` while entries arrive.

    A round that hit ``ledger_integrate_entries_max`` goes again at once, so a backlog
    (after a restart, say) drains without waiting out the interval each time.
    """

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nexapod-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._ctx.entries_to_integrate.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        interval_s = self._ctx.settings.ledger_checkpoint_interval_s
        while not self._stop.is_set():
            backlog = False
            try:
                checkpoint = integrate_log_once(self._ctx)
                backlog = checkpoint is not None and self._behind(checkpoint)
            except (OperationalError, IntegrityError):
                logger.exception("ledger.checkpoint_failed")
            if not backlog:
                self._ctx.entries_to_integrate.wait(interval_s)
                self._ctx.entries_to_integrate.clear()

    def _behind(self, checkpoint: StoredCheckpoint) -> bool:
        with self._ctx.read_uow() as uow:
            return read_tree_size(uow.session) > checkpoint.tree_size
