"""mesh: a partial covering index of valid results by validation time, with their node
and FLOPs, which an epoch's settlement sums per node without reading the results' rows

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_results_valid_work",
        "results",
        ["validated_at_ms", "node_id", "work_flops"],
        sqlite_where=sa.text("status = 'valid'"),
        postgresql_where=sa.text("status = 'valid'"),
    )


def downgrade() -> None:
    op.drop_index("ix_results_valid_work", table_name="results")
