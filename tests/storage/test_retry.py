"""A transaction PostgreSQL aborts to break a real deadlock is run again, and succeeds."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from nexapod.storage import make_engine
from nexapod.storage.retry import is_transient, retrying_transient
from tests.postgres_server import PostgresServer

_counter = itertools.count()


@pytest.fixture
def pg_engine(postgres_server: PostgresServer) -> Iterator[Engine]:
    url = postgres_server.create_database(f"retry_{os.getpid()}_{next(_counter)}")
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE cells (id INTEGER PRIMARY KEY, n INTEGER)"))
        connection.execute(text("INSERT INTO cells VALUES (1, 0), (2, 0)"))
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.mark.parametrize("through", ["sqlalchemy", "driver"])
def test_a_deadlock_victim_is_run_again_and_both_writers_land(
    pg_engine: Engine, through: str
) -> None:
    """Through SQLAlchemy, and through the driver's own cursor (as ``storage.driver``'s
    users write), whose errors reach the caller unwrapped."""
    both_hold_their_first_row = threading.Barrier(2)
    attempts = {"forward": 0, "backward": 0}

    def writer(name: str, first: int, second: int) -> None:
        def attempt() -> None:
            attempts[name] += 1
            with pg_engine.begin() as connection:

                def bump(cell: int) -> None:
                    if through == "sqlalchemy":
                        statement = text("UPDATE cells SET n = n + 1 WHERE id = :i")
                        connection.execute(statement, {"i": cell})
                    else:
                        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
                        cursor.execute("UPDATE cells SET n = n + 1 WHERE id = %s", (cell,))

                bump(first)
                if attempts[name] == 1:  # the first time, make sure the two cross
                    both_hold_their_first_row.wait(timeout=30)
                bump(second)

        retrying_transient(attempt)

    threads = [
        threading.Thread(target=writer, args=("forward", 1, 2)),
        threading.Thread(target=writer, args=("backward", 2, 1)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(attempts.values()) == [1, 2], "one was the deadlock's victim, once"
    with pg_engine.connect() as connection:
        cells = dict(connection.execute(text("SELECT id, n FROM cells")).all())
    assert cells == {1: 2, 2: 2}, "each writer's two updates landed exactly once"


def test_other_errors_are_not_retried(pg_engine: Engine) -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        with pg_engine.begin() as connection:
            connection.execute(text("INSERT INTO cells VALUES (1, 0)"))  # a duplicate key

    with pytest.raises(IntegrityError) as caught:
        retrying_transient(attempt)

    assert calls == [1]
    assert not is_transient(caught.value)


def test_a_locked_sqlite_store_is_not_a_transient_abort() -> None:
    """SQLite has no deadlock victims (writers queue at BEGIN IMMEDIATE): nothing to retry."""
    error = DBAPIError("BEGIN IMMEDIATE", None, Exception("database is locked"))
    assert not is_transient(error)
