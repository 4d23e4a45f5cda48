"""Serving the coordinator: one process, or several uvicorn workers over one database.

Workers are separate processes (the GIL caps one process at one core); each builds its
own app from the same ``NEXAPOD_*`` environment. The schema is migrated once, before
any worker starts, so workers never race on a migration.
"""

from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI

from nexapod.coordinator.app import create_app
from nexapod.settings import Settings
from nexapod.storage import make_engine, migrate_to_head

__all__ = ["serve", "worker_app"]


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn factory); the schema is already current."""
    return create_app(Settings(), migrate=False)


def serve(settings: Settings, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Migrate, then serve until interrupted."""
    assert workers >= 1
    engine = make_engine(settings.resolved_database_url())
    migrate_to_head(engine)
    engine.dispose()
    if workers == 1:
        app = create_app(settings, migrate=False)
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    # Workers rebuild Settings from the environment: hand them these exact values.
    for name, value in settings.model_dump(exclude_none=True).items():
        os.environ[f"NEXAPOD_{name.upper()}"] = str(value)
    uvicorn.run(
        "nexapod.coordinator.server:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
    )
