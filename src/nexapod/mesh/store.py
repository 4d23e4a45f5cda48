"""Tables of the mesh: jobs, their input blocks, work units, leases, results, products."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from nexapod.storage.base import Base
from nexapod.storage.types import ExactInteger

__all__ = [
    "BlockRow",
    "CheckpointRow",
    "JobRow",
    "LeaseRow",
    "NodeTrustRow",
    "ProductRow",
    "ResultDataRow",
    "ResultRow",
    "UnitRow",
]


class JobRow(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    workload: Mapped[str] = mapped_column(String(32))
    params_json: Mapped[str] = mapped_column(Text)
    dataset_json: Mapped[str] = mapped_column(Text)
    n_items: Mapped[int] = mapped_column(Integer)
    submitted_by: Mapped[str] = mapped_column(ForeignKey("users.username"))
    status: Mapped[str] = mapped_column(String(16), index=True)
    units_total: Mapped[int] = mapped_column(Integer)
    units_done: Mapped[int] = mapped_column(Integer)
    units_failed: Mapped[int] = mapped_column(Integer)
    work_flops_total: Mapped[int] = mapped_column(ExactInteger())
    work_flops_done: Mapped[int] = mapped_column(ExactInteger())
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    started_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    finished_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The hot capacity the job needs while it runs (the pool manager promotes cold nodes
    # when hot falls below it); None when the submitter stated none. Migration 0013.
    capacity_flops_per_s_min: Mapped[int | None] = mapped_column(ExactInteger(), nullable=True)


class BlockRow(Base):
    """One input block of a job, served to nodes byte for byte."""

    __tablename__ = "job_blocks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id"), primary_key=True)
    block_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)


class UnitRow(Base):
    __tablename__ = "units"

    unit_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id"))
    unit_index: Mapped[int] = mapped_column(Integer)
    spec_json: Mapped[str] = mapped_column(Text)
    inputs_json: Mapped[str] = mapped_column(Text)
    work_flops: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    done_by_node_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # Validation (mesh/validation.py): results still wanted (leased or not), leases out,
    # agreeing results the unit needs (0 until its first result decides), and the
    # result the merge uses once the unit is valid.
    results_wanted: Mapped[int] = mapped_column(Integer, server_default="1")
    leases_active: Mapped[int] = mapped_column(Integer, server_default="0")
    quorum: Mapped[int] = mapped_column(Integer, server_default="0")
    canonical_lease_id: Mapped[str | None] = mapped_column(String(32), nullable=True)

    __table_args__ = (
        Index("ix_units_status_unit_id", "status", "unit_id"),
        Index("uq_units_job_index", "job_id", "unit_index", unique=True),
    )


class LeaseRow(Base):
    __tablename__ = "leases"

    lease_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.unit_id"), index=True)
    job_id: Mapped[str] = mapped_column(String(32))
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    granted_at_ms: Mapped[int] = mapped_column(BigInteger)
    deadline_at_ms: Mapped[int] = mapped_column(BigInteger)
    ended_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    username: Mapped[str | None] = mapped_column(String(32), nullable=True)  # replicas: 1 per user
    spot_check: Mapped[bool] = mapped_column(Boolean, server_default=false())  # answer known
    resumed_from: Mapped[str | None] = mapped_column(String(32), nullable=True)  # checkpoint

    __table_args__ = (
        Index("ix_leases_status_deadline", "status", "deadline_at_ms"),
        Index("ix_leases_unit_username", "unit_id", "username"),
    )


class ResultRow(Base):
    """A signed result uploaded for a lease: the signed record of who computed what."""

    __tablename__ = "results"

    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.lease_id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.unit_id"), index=True)
    job_id: Mapped[str] = mapped_column(String(32), index=True)
    node_id: Mapped[str] = mapped_column(String(40), index=True)
    result_sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    runner_tree_hash: Mapped[str] = mapped_column(String(64))
    work_flops: Mapped[int] = mapped_column(BigInteger)
    compute_ms: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    # pending (awaiting its quorum) | valid (credited) | invalid | forfeited (blacklisted)
    status: Mapped[str] = mapped_column(String(16), server_default="valid")
    validated_at_ms: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)

    __table_args__ = (
        # what an epoch's settlement sums per node, without touching the results' rows
        # (pools/epoch_work.py): valid results by validation time, with node and FLOPs
        Index(
            "ix_results_valid_work",
            "validated_at_ms",
            "node_id",
            "work_flops",
            sqlite_where=text("status = 'valid'"),
            postgresql_where=text("status = 'valid'"),
        ),
    )


class ResultDataRow(Base):
    """The bytes of a result, apart from its record.

    A result is up to megabytes; in the same row as its record, every read of the
    record's later columns (status, validation time) would walk the blob's overflow
    pages on SQLite, and job views, validation and settlement read those columns often.
    """

    __tablename__ = "result_data"

    lease_id: Mapped[str] = mapped_column(ForeignKey("results.lease_id"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class CheckpointRow(Base):
    """The latest signed checkpoint of a lease: a long unit's state after some rows."""

    __tablename__ = "unit_checkpoints"

    lease_id: Mapped[str] = mapped_column(ForeignKey("leases.lease_id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.unit_id"), index=True)
    node_id: Mapped[str] = mapped_column(String(40))
    rows_done: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class NodeTrustRow(Base):
    """A node's record in validation: its run of consecutive valid results."""

    __tablename__ = "node_trust"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.node_id"), primary_key=True)
    valid_streak: Mapped[int] = mapped_column(Integer)
    valid_total: Mapped[int] = mapped_column(BigInteger)
    invalid_total: Mapped[int] = mapped_column(BigInteger)


class ProductRow(Base):
    """A finished job's merged product (for the atlas: the global kNN graph)."""

    __tablename__ = "job_products"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.job_id"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)
