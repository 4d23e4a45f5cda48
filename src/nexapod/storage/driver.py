"""The database driver's own cursor, inside a unit of work's transaction.

SQLAlchemy spends some microseconds per row building and converting parameters; on a
path that writes tens of thousands of rows a second (the ledger's commits) that is most
of the time. Such a path may talk to the driver directly, through :func:`driver`, with
prepared row tuples and ``executemany``: the statements run in the session's own
transaction (the one ``BEGIN IMMEDIATE`` opened on SQLite), so they commit or roll back
with everything else the unit of work did.

Only a store module uses this, and only for statements it has measured to matter; SQL
is written once per dialect there (``?`` placeholders for sqlite3, ``%s`` for psycopg).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

__all__ = ["Driver", "driver"]


@dataclass(frozen=True, slots=True)
class Driver:
    """A driver cursor in the session's transaction, and what its SQL must look like."""

    cursor: Any  # sqlite3.Cursor or psycopg.Cursor: DBAPI 2.0
    sqlite: bool  # else PostgreSQL through psycopg 3

    def sql(self, statement: str) -> str:
        """``statement`` written with ``?`` placeholders, in this driver's paramstyle."""
        if self.sqlite:
            return statement
        assert "%" not in statement, "psycopg would read a literal % as a placeholder"
        return statement.replace("?", "%s")


def driver(session: Session) -> Driver:
    """The driver cursor of ``session``'s connection (opening its transaction if needed).

    Whatever the session still holds unflushed is flushed first, so that the driver's
    statements see it.
    """
    session.flush()
    connection = session.connection()
    name = connection.dialect.name
    assert name in ("sqlite", "postgresql"), name
    raw = connection.connection.driver_connection
    assert raw is not None, "a live connection"
    return Driver(raw.cursor(), name == "sqlite")
