"""stats: the leaderboard's hourly snapshots (a header per snapshot, a line per contributor)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nexapod.storage.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _exact() -> nexapod.storage.types.ExactInteger:
    return nexapod.storage.types.ExactInteger()


def upgrade() -> None:
    op.create_table(
        "stats_snapshots",
        sa.Column("snapshot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("generated_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("recent_half_life_s", sa.Integer(), nullable=False),
        sa.Column("users_total", sa.Integer(), nullable=False),
        sa.Column("verified_flops_total", _exact(), nullable=False),
        sa.PrimaryKeyConstraint("snapshot_id"),
    )
    op.create_table(
        "stats_entries",
        sa.Column("snapshot_id", sa.BigInteger(), nullable=False),
        sa.Column("row_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("verified_flops", _exact(), nullable=False),
        sa.Column("recent_avg_flops_per_day", _exact(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["snapshot_id"], ["stats_snapshots.snapshot_id"]),
        sa.PrimaryKeyConstraint("snapshot_id", "row_index"),
    )
    op.create_index(
        "uq_stats_entries_snapshot_username",
        "stats_entries",
        ["snapshot_id", "username"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_stats_entries_snapshot_username", table_name="stats_entries")
    op.drop_table("stats_entries")
    op.drop_table("stats_snapshots")
