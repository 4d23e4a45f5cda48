"""Migrations carry data over, on SQLite and PostgreSQL: a job stored before revision 0012
(jobs' capacity need) reads back unchanged after it, with no need, and back down again."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from nexapod.mesh.store import JobRow
from nexapod.storage import make_engine, unit_of_work_factory
from nexapod.storage.migrate import alembic_config

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


def _migrate(database_url: str, revision: str, *, down: bool = False) -> None:
    engine = make_engine(database_url)
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
    engine.dispose()


def test_jobs_carry_over_revision_0012_without_a_capacity_need(database_url: str) -> None:
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
