"""New SQLite stores get large pages; a store made before keeps its own and still works."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import text

from nexapod.storage import make_engine, migrate_to_head
from nexapod.storage.engine import SQLITE_PAGE_BYTES


def _page_size(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA page_size").fetchone()[0])
    finally:
        connection.close()


def test_a_new_store_is_made_with_large_pages_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    migrate_to_head(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()
    assert SQLITE_PAGE_BYTES == 16_384
    assert _page_size(path) == SQLITE_PAGE_BYTES


def test_a_store_made_with_small_pages_keeps_them_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA page_size=4096")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE kept (n INTEGER)")
    connection.execute("INSERT INTO kept VALUES (7)")
    connection.commit()
    connection.close()
    engine = make_engine(f"sqlite:///{path}")
    migrate_to_head(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT n FROM kept")).scalar() == 7
    engine.dispose()
    assert _page_size(path) == 4096
