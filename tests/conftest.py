"""Fixtures shared by the whole suite: databases (SQLite and PostgreSQL), settings, apps."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from nexapod.coordinator.app import create_app
from nexapod.settings import Settings
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory
from nexapod.storage.uow import UnitOfWorkFactory
from tests.postgres_server import PostgresServer, find_postgres_bindir

_database_counter = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_postgres_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL's server binaries are missing; CI must install postgresql")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    server = PostgresServer.start(bindir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'coordinator.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{os.getpid()}_{next(_database_counter)}")


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Replication off (quorum 1): tests of other capabilities let one node do a unit;
    the validation tests turn it on with ``validation_quorum=2``."""
    return Settings(data_dir=tmp_path / "data", database_url=database_url, validation_quorum=1)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The coordinator app in-process (maintenance runs explicitly in tests)."""
    app = create_app(settings, run_maintenance=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated store on each backend, for service tests without an app."""
    engine = make_engine(database_url)
    migrate_to_head(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def uow_factory(engine: Engine) -> UnitOfWorkFactory:
    return unit_of_work_factory(engine)
