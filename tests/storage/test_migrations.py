"""Migrations carry data over, on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Connection, MetaData, Table, text

from nexapod.mesh.store import JobRow
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory
from nexapod.storage.migrate import alembic_config


def _migrate(database_url: str, revision: str, *, down: bool = False) -> None:
    """Upgrade (or downgrade) a store to ``revision``."""
    engine = make_engine(database_url)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
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


def _seed_results(connection: Connection, results: dict[str, dict[str, Any]]) -> None:
    """A user, a node, a job and a unit, and one lease and result per entry of
    ``results`` (lease id -> the result's own columns)."""
    _insert(connection, "users", {"username": "ann"})
    _insert(connection, "nodes", {"node_id": "n1", "username": "ann"})
    _insert(connection, "jobs", {"job_id": "j1", "submitted_by": "ann"})
    _insert(connection, "units", {"unit_id": 1, "job_id": "j1", "unit_index": 0})
    for lease_id, columns in results.items():
        owner = {"lease_id": lease_id, "unit_id": 1, "job_id": "j1", "node_id": "n1"}
        _insert(connection, "leases", owner)
        _insert(connection, "results", {**owner, **columns})


def test_result_bytes_move_to_their_own_table(database_url: str) -> None:
    """0012: every result's bytes land in result_data, byte for byte, and the record stays."""
    _migrate(database_url, "0011")
    engine = make_engine(database_url)
    payloads = {"a" * 32: b"\x00\x01result-a", "b" * 32: bytes(range(256)) * 40}
    try:
        with engine.begin() as connection:
            _seed_results(
                connection,
                {
                    lease_id: {"work_flops": 8, "data": data, "status": "valid"}
                    for lease_id, data in payloads.items()
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
    _migrate(database_url, "0012")
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            _seed_results(connection, {"a" * 32: {}, "b" * 32: {}})
            _insert(connection, "result_data", {"lease_id": "a" * 32, "data": b"\x07bytes"})
        _migrate(database_url, "0011", down=True)
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT lease_id, data FROM results")).all()
        assert {lease_id: bytes(data) for lease_id, data in rows} == {
            "a" * 32: b"\x07bytes",
            "b" * 32: b"",
        }
    finally:
        engine.dispose()


_USER = (
    "INSERT INTO users (username, public_key, registration_document, registration_signature,"
    " registration_sha256, registered_at_ms) VALUES ('alice', 'k', 'd', 's', :h, 1)"
)
_JOB = (
    "INSERT INTO jobs (job_id, workload, params_json, dataset_json, n_items, submitted_by,"
    " status, units_total, units_done, units_failed, work_flops_total, work_flops_done,"
    " created_at_ms) VALUES (:job_id, 'atlas', '{}', '{}', 7, 'alice', 'running', 3, 1, 0,"
    " :total, :done, 5)"
)
JOB_ID = "a" * 32
TOTAL = 2**70  # exact past 64 bits, as ExactInteger stores it


def test_jobs_carry_over_revision_0013_without_a_capacity_need(database_url: str) -> None:
    """0013 (jobs' capacity need): a job stored before reads back unchanged after it, with
    no need, and back down again."""
    _migrate(database_url, "0011")
    engine = make_engine(database_url)
    exact = str if engine.dialect.name == "sqlite" else int  # ExactInteger's storage
    with engine.begin() as connection:
        connection.execute(text(_USER), {"h": "0" * 64})
        connection.execute(
            text(_JOB), {"job_id": JOB_ID, "total": exact(TOTAL), "done": exact(TOTAL // 3)}
        )
    _migrate(database_url, "head")
    with unit_of_work_factory(engine)() as uow:
        job = uow.session.get(JobRow, JOB_ID)
        assert job is not None
        assert (job.status, job.work_flops_total, job.work_flops_done) == (
            "running",
            TOTAL,
            TOTAL // 3,
        )
        assert job.capacity_flops_per_s_min is None
        job.capacity_flops_per_s_min = 10**20
        uow.commit()
    with unit_of_work_factory(engine)() as uow:
        job = uow.session.get(JobRow, JOB_ID)
        assert job is not None and job.capacity_flops_per_s_min == 10**20
    engine.dispose()
    _migrate(database_url, "0011", down=True)
    engine = make_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT job_id, n_items FROM jobs")).all()
    engine.dispose()
    assert [tuple(row) for row in rows] == [(JOB_ID, 7)]
