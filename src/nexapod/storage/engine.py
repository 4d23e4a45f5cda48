"""Engines for the two supported stores: SQLite (embedded, WAL) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

__all__ = ["READ_ONLY_OPTION", "SQLITE_BUSY_TIMEOUT_MS", "SQLITE_PAGE_BYTES", "make_engine"]

READ_ONLY_OPTION = "nexapod_read_only"

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Page cache per connection, in KiB (SQLite's default is 2 MiB): the ledger's indexes take
# random-key inserts, and once they outgrow the cache every insert costs page reads.
SQLITE_CACHE_KIB = 65_536
# Page size of a new SQLite store (SQLite's default is 4 KiB). A commit writes every page
# it dirtied to the WAL and a checkpoint writes them back, one system call a page; the
# ledger dirties thousands a batch (its entries, and the random-key id index), and with
# 16 KiB pages plain inserts of its rows ran 20 to 30 % faster and the ledger's batches
# about 20 % (bench/README.md). SQLite takes it only when it creates the file: a store
# made before keeps its own (see docs/configuration.md to convert one).
SQLITE_PAGE_BYTES = 16_384
POOL_SIZE = 20


def make_engine(url: str) -> Engine:
    """An engine for ``url``: SQLite in WAL mode, or PostgreSQL through psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        return create_engine(url, pool_size=POOL_SIZE, max_overflow=10, pool_pre_ping=True)
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        pool_size=POOL_SIZE,
        max_overflow=10,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's explicit BEGIN start transactions (pysqlite's own handling
        # defers BEGIN and breaks BEGIN IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # before WAL: new files only
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers queue at BEGIN instead of failing on lock upgrade mid-transaction;
        # read-only units of work take no write lock, so WAL lets them run alongside.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
