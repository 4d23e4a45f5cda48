"""What every request handler needs: settings, units of work, limits and the clock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from nexapod.ledger.integrator import LogIdentity
from nexapod.mesh.rules import LeaseTiming
from nexapod.mesh.service import MeshLimits
from nexapod.mesh.validation import ValidationPolicy
from nexapod.policy import Policy, load_policy
from nexapod.registry.releases import ReleasePolicy
from nexapod.settings import Settings
from nexapod.storage.uow import UnitOfWork, UnitOfWorkFactory

__all__ = ["Context", "ContextDep", "mesh_limits", "release_policy", "system_clock_ms"]


def system_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Context:
    """Built once at start-up and shared by every request."""

    settings: Settings
    uow_factory: UnitOfWorkFactory
    read_uow_factory: UnitOfWorkFactory
    limits: MeshLimits
    log: LogIdentity
    releases: ReleasePolicy
    policy: Policy
    clock_ms: Callable[[], int] = system_clock_ms
    jobs_to_merge: threading.Event = field(default_factory=threading.Event)
    entries_to_integrate: threading.Event = field(default_factory=threading.Event)
    pools_due_at_ms: int = 0  # when the maintenance loop next runs the pool manager
    stipend_week_paid: int | None = None  # the last stipend week this process handled

    def uow(self) -> UnitOfWork:
        return self.uow_factory()

    def read_uow(self) -> UnitOfWork:
        return self.read_uow_factory()


def mesh_limits(settings: Settings, policy: Policy | None = None) -> MeshLimits:
    """The mesh's limits; with the economic policy, the pool gate on leases is on."""
    return MeshLimits(
        timing=LeaseTiming(settings.lease_s_min, settings.lease_s_max, settings.lease_slack_factor),
        leases_per_request_max=settings.leases_per_request_max,
        results_per_request_max=settings.results_per_request_max,
        result_bytes_max=settings.result_bytes_max,
        unit_attempts_max=settings.unit_attempts_max,
        dataset_spectra_max=settings.dataset_spectra_max,
        page_size_max=settings.page_size_max,
        validation=ValidationPolicy(
            quorum=settings.validation_quorum,
            results_per_unit_max=settings.validation_results_per_unit_max,
            trusted_after_valid=settings.validation_trusted_after_valid,
            check_floor_ppm=settings.validation_check_floor_ppm,
            spot_check_ppm=settings.validation_spot_check_ppm,
            speedup_max=settings.validation_speedup_max,
            flops_per_s_max=settings.validation_flops_per_s_max,
        ),
        blacklist_user_on_tampering=settings.blacklist_user_on_tampering,
        checkpoint_chunk_flops=settings.checkpoint_chunk_flops,
        checkpoint_bytes_max=settings.checkpoint_bytes_max,
        pool_policy=policy if policy is not None else load_policy(settings.policy_file),
        job_capacity_flops_per_s_max=settings.job_capacity_flops_per_s_max,
    )


def release_policy(settings: Settings) -> ReleasePolicy:
    return ReleasePolicy(
        release_public_keys=frozenset(settings.release_public_keys),
        releases_max=settings.releases_max,
    )


def _context(request: Request) -> Context:
    context: Context = request.app.state.context
    return context


ContextDep = Annotated[Context, Depends(_context)]
