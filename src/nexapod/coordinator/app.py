"""The coordinator's FastAPI application, built from Settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

import nexapod
from nexapod.coordinator.context import Context, mesh_limits, release_policy, system_clock_ms
from nexapod.coordinator.limits import BodySizeLimit
from nexapod.coordinator.maintenance import CheckpointLoop, MaintenanceLoop
from nexapod.coordinator.problems import install_problem_handlers
from nexapod.ledger.api import router as ledger_router
from nexapod.ledger.log_api import router as ledger_log_router
from nexapod.ledger.log_key import ensure_log_key, load_log_identity
from nexapod.mesh.api import router as mesh_router
from nexapod.policy import load_policy
from nexapod.pools.api import router as pools_router
from nexapod.pools.challenges_api import router as challenges_router
from nexapod.registry.api import router as registry_router
from nexapod.registry.releases_api import router as releases_router
from nexapod.registry.stats_api import router as stats_router
from nexapod.settings import Settings
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory

__all__ = ["Health", "create_app"]

logger = logging.getLogger("nexapod.coordinator")


class Health(BaseModel):
    status: str
    version: str
    database: str


def create_app(
    settings: Settings,
    *,
    clock_ms: Callable[[], int] = system_clock_ms,
    run_maintenance: bool = True,
    migrate: bool = True,
) -> FastAPI:
    """Build the app: migrate the store, wire the routers and the error handlers."""
    engine = make_engine(settings.resolved_database_url())
    if migrate:
        migrate_to_head(engine)
    key_file = settings.resolved_ledger_log_key_file()
    ensure_log_key(key_file)
    policy = load_policy(settings.policy_file)  # a bad policy stops the start, naming the key
    uow_factory = unit_of_work_factory(engine)
    ctx = Context(
        settings=settings,
        uow_factory=uow_factory,
        read_uow_factory=unit_of_work_factory(engine, read_only=True),
        limits=mesh_limits(settings, policy),
        log=load_log_identity(key_file, settings.ledger_log_origin),
        releases=release_policy(settings),
        policy=policy,
        clock_ms=clock_ms,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not ctx.releases.enforced:
            logger.warning(
                "releases.not_enforced",
                extra={
                    "detail": "no release_public_keys configured: any runner tree is "
                    "admitted; see docs/releases.md"
                },
            )
        loops: list[MaintenanceLoop | CheckpointLoop] = []
        if run_maintenance:
            loops = [MaintenanceLoop(ctx), CheckpointLoop(ctx)]
        for loop in loops:
            loop.start()
        try:
            yield
        finally:
            for loop in loops:
                loop.stop()
            engine.dispose()

    app = FastAPI(
        title="NexaPod coordinator",
        version=nexapod.__version__,
        summary="Hands out work units of scientific jobs to sandboxed nodes and verifies results.",
        lifespan=lifespan,
    )
    app.state.context = ctx
    install_problem_handlers(app)
    app.include_router(registry_router)
    app.include_router(releases_router)
    app.include_router(mesh_router)
    app.include_router(challenges_router)
    app.include_router(ledger_router)
    app.include_router(ledger_log_router)
    app.include_router(pools_router)
    app.include_router(stats_router)

    @app.get("/v1/health", tags=["operations"])
    def health() -> Health:
        """Liveness, and the baseline of the coordinator benchmark (no database work)."""
        return Health(status="ok", version=nexapod.__version__, database=engine.dialect.name)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodySizeLimit, body_bytes_max=settings.body_bytes_max)
    return app
