"""mesh: a job's capacity need (``jobs.capacity_flops_per_s_min``), which the pool manager
makes up from cold when hot capacity falls below it

Jobs submitted before this revision stated no need: the column is NULL for them, which
is what "no need" means, so their rows carry over unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nexapod.storage.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(
            sa.Column(
                "capacity_flops_per_s_min", nexapod.storage.types.ExactInteger(), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("capacity_flops_per_s_min")
