"""mesh: result validation (replicas, quorum, node trust); registry: the blacklist

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(
            sa.Column("results_wanted", sa.Integer(), nullable=False, server_default="1")
        )
        batch.add_column(
            sa.Column("leases_active", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("quorum", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("canonical_lease_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("username", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("spot_check", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index("ix_leases_unit_username", ["unit_id", "username"])
    with op.batch_alter_table("results") as batch:
        batch.add_column(
            sa.Column("status", sa.String(length=16), nullable=False, server_default="valid")
        )
        batch.add_column(sa.Column("validated_at_ms", sa.BigInteger(), nullable=True))
    op.create_table(
        "node_trust",
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("valid_streak", sa.Integer(), nullable=False),
        sa.Column("valid_total", sa.BigInteger(), nullable=False),
        sa.Column("invalid_total", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.node_id"]),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_table(
        "blacklist_entries",
        sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("username", sa.String(length=32), nullable=True),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.Column("listed_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("listed_log_index", sa.BigInteger(), nullable=False),
        sa.Column("lifted_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.Column("lifted_log_index", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("entry_id"),
    )
    op.create_index("ix_blacklist_entries_node_id", "blacklist_entries", ["node_id"])
    op.create_index("ix_blacklist_entries_fingerprint", "blacklist_entries", ["fingerprint"])
    op.create_index("ix_blacklist_entries_username", "blacklist_entries", ["username"])


def downgrade() -> None:
    op.drop_table("blacklist_entries")
    op.drop_table("node_trust")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("validated_at_ms")
        batch.drop_column("status")
    with op.batch_alter_table("leases") as batch:
        batch.drop_index("ix_leases_unit_username")
        batch.drop_column("spot_check")
        batch.drop_column("username")
    with op.batch_alter_table("units") as batch:
        batch.drop_column("canonical_lease_id")
        batch.drop_column("quorum")
        batch.drop_column("leases_active")
        batch.drop_column("results_wanted")
