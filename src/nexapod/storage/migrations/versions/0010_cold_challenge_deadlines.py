"""pools: an index of cold challenges by deadline, for availability over a window of all
nodes and for pruning challenges past their retention

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cold_challenges_deadline_at_ms", "cold_challenges", ["deadline_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_cold_challenges_deadline_at_ms", table_name="cold_challenges")
