"""Migrations that move data carry it over, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Connection, MetaData, Table, text

from nexapod.storage import make_engine, migrate_to_head
from nexapod.storage.migrate import alembic_config


def _upgrade_to(database_url: str, revision: str) -> None:
    engine = make_engine(database_url)
    try:
        config = alembic_config(database_url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _insert(connection: Connection, table_name: str, values: dict[str, Any]) -> None:
    """Insert a row into a table as it stands at this revision (reflected), giving every
    other required column a plain value of its type."""
    table = Table(table_name, MetaData(), autoload_with=connection)
    row = dict(values)
    for column in table.columns:
        if column.name in row or column.nullable or column.server_default is not None:
            continue
        python_type = column.type.python_type
        row[column.name] = {str: "x", int: 1, bytes: b"", bool: False}.get(python_type, 1)
    connection.execute(table.insert(), [row])


def test_result_bytes_move_to_their_own_table(database_url: str) -> None:
    """0012: every result's bytes land in result_data, byte for byte, and the record stays."""
    _upgrade_to(database_url, "0011")
    engine = make_engine(database_url)
    payloads = {"a" * 32: b"\x00\x01result-a", "b" * 32: bytes(range(256)) * 40}
    try:
        with engine.begin() as connection:
            _insert(connection, "users", {"username": "ann"})
            _insert(connection, "nodes", {"node_id": "n1", "username": "ann"})
            _insert(connection, "jobs", {"job_id": "j1", "submitted_by": "ann"})
            _insert(connection, "units", {"unit_id": 1, "job_id": "j1", "unit_index": 0})
            for lease_id, data in payloads.items():
                _insert(
                    connection,
                    "leases",
                    {"lease_id": lease_id, "unit_id": 1, "job_id": "j1", "node_id": "n1"},
                )
                _insert(
                    connection,
                    "results",
                    {
                        "lease_id": lease_id,
                        "unit_id": 1,
                        "job_id": "j1",
                        "node_id": "n1",
                        "work_flops": 8,
                        "data": data,
                        "status": "valid",
                    },
                )
        migrate_to_head(engine)
        with engine.connect() as connection:
            moved = dict(connection.execute(text("SELECT lease_id, data FROM result_data")).all())
            records = connection.execute(
                text("SELECT lease_id, status, work_flops FROM results ORDER BY lease_id")
            ).all()
        assert {lease_id: bytes(data) for lease_id, data in moved.items()} == payloads
        assert [tuple(row) for row in records] == [("a" * 32, "valid", 8), ("b" * 32, "valid", 8)]
    finally:
        engine.dispose()


def test_result_bytes_move_back_on_downgrade(database_url: str) -> None:
    """0012 down: the bytes return to their records."""
    _upgrade_to(database_url, "0012")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            _insert(connection, "users", {"username": "ann"})
            _insert(connection, "nodes", {"node_id": "n1", "username": "ann"})
            _insert(connection, "jobs", {"job_id": "j1", "submitted_by": "ann"})
            _insert(connection, "units", {"unit_id": 1, "job_id": "j1", "unit_index": 0})
            for lease_id in ("a" * 32, "b" * 32):
                _insert(
                    connection,
                    "leases",
                    {"lease_id": lease_id, "unit_id": 1, "job_id": "j1", "node_id": "n1"},
                )
                _insert(
                    connection,
                    "results",
                    {"lease_id": lease_id, "unit_id": 1, "job_id": "j1", "node_id": "n1"},
                )
            _insert(connection, "result_data", {"lease_id": "a" * 32, "data": b"\x07bytes"})
        config = alembic_config(database_url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0011")
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT lease_id, data FROM results")).all()
        assert {lease_id: bytes(data) for lease_id, data in rows} == {
            "a" * 32: b"\x07bytes",
            "b" * 32: b"",
        }
    finally:
        engine.dispose()
