"""mesh: signed checkpoints of long units, and which checkpoint a lease resumed from

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_checkpoints",
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("unit_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("rows_done", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("received_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["lease_id"], ["leases.lease_id"]),
        sa.ForeignKeyConstraint(["unit_id"], ["units.unit_id"]),
        sa.PrimaryKeyConstraint("lease_id"),
    )
    op.create_index("ix_unit_checkpoints_unit_id", "unit_checkpoints", ["unit_id"])
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("resumed_from", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("resumed_from")
    op.drop_index("ix_unit_checkpoints_unit_id", table_name="unit_checkpoints")
    op.drop_table("unit_checkpoints")
