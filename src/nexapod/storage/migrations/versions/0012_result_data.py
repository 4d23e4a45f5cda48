"""mesh: a result's bytes move to their own table, apart from its record

On SQLite a column stored after a megabyte blob is read by walking the blob's overflow
pages, so every read of a result's status or validation time paid for the whole result.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite drops a column by rebuilding the table, which a table referencing it would
    # forbid: the bytes wait in a plain table until the rebuild is done.
    op.create_table(
        "result_data_moving",
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.execute("INSERT INTO result_data_moving (lease_id, data) SELECT lease_id, data FROM results")
    with op.batch_alter_table("results") as batch:
        batch.drop_column("data")
    op.create_table(
        "result_data",
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["lease_id"], ["results.lease_id"]),
        sa.PrimaryKeyConstraint("lease_id"),
    )
    op.execute(
        "INSERT INTO result_data (lease_id, data) SELECT lease_id, data FROM result_data_moving"
    )
    op.drop_table("result_data_moving")


def downgrade() -> None:
    op.create_table(
        "result_data_moving",
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    op.execute(
        "INSERT INTO result_data_moving (lease_id, data) SELECT lease_id, data FROM result_data"
    )
    op.drop_table("result_data")
    with op.batch_alter_table("results") as batch:
        batch.add_column(sa.Column("data", sa.LargeBinary(), nullable=True))
    op.execute(
        sa.text(
            "UPDATE results SET data = COALESCE((SELECT m.data FROM result_data_moving AS m "
            "WHERE m.lease_id = results.lease_id), :empty)"
        ).bindparams(sa.bindparam("empty", b"", type_=sa.LargeBinary()))
    )
    with op.batch_alter_table("results") as batch:
        batch.alter_column("data", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("result_data_moving")
