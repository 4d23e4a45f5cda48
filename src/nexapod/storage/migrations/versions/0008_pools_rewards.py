"""pools: membership and transitions, institutions, Atlas++ entitlements, cold liveness
challenges, settled reward epochs (their per-node lines are in the log), and cold stipends

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nexapod.storage.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _exact() -> nexapod.storage.types.ExactInteger:
    return nexapod.storage.types.ExactInteger()


def upgrade() -> None:
    op.create_table(
        "pool_members",
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("pool", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("since_ms", sa.BigInteger(), nullable=False),
        sa.Column("warm_opt_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("cold_opt_in", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("promoted", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.node_id"]),
        sa.PrimaryKeyConstraint("node_id"),
    )
    op.create_index("ix_pool_members_username", "pool_members", ["username"])
    op.create_index("ix_pool_members_pool", "pool_members", ["pool"])
    op.create_table(
        "pool_transitions",
        sa.Column("transition_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("from_pool", sa.String(length=16), nullable=False),
        sa.Column("to_pool", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("transition_id"),
    )
    op.create_index("ix_pool_transitions_node_id", "pool_transitions", ["node_id"])
    op.create_index("ix_pool_transitions_at_ms", "pool_transitions", ["at_ms"])
    op.create_table(
        "institutions",
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("verified_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["users.username"]),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "atlas_entitlements",
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("granted_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["username"], ["users.username"]),
        sa.PrimaryKeyConstraint("username", "kind"),
    )
    op.create_table(
        "cold_challenges",
        sa.Column("challenge_id", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("expected_sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("deadline_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("answered_at_ms", sa.BigInteger(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["node_id"], ["nodes.node_id"]),
        sa.PrimaryKeyConstraint("challenge_id"),
    )
    op.create_index(
        "ix_cold_challenges_node_issued", "cold_challenges", ["node_id", "issued_at_ms"]
    )
    op.create_table(
        "reward_epochs",
        sa.Column("epoch_index", sa.BigInteger(), nullable=False),
        sa.Column("epoch_s", sa.Integer(), nullable=False),
        sa.Column("policy_sha256", sa.String(length=64), nullable=False),
        sa.Column("settled_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("nodes_paid", sa.Integer(), nullable=False),
        sa.Column("flops_total", _exact(), nullable=False),
        sa.Column("nxc_micro_total", _exact(), nullable=False),
        sa.Column("usdc_owed_micro_total", _exact(), nullable=False),
        sa.Column("usdc_paid_micro_total", _exact(), nullable=False),
        sa.Column("usdc_shortfall_micro", _exact(), nullable=False),
        sa.Column("treasury_micro_usdc", _exact(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("epoch_index"),
    )
    op.create_table(
        "cold_stipends",
        sa.Column("period_index", sa.BigInteger(), nullable=False),
        sa.Column("node_id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("cold_s", sa.Integer(), nullable=False),
        sa.Column("challenges", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("nxc_micro", _exact(), nullable=False),
        sa.Column("usdc_micro", _exact(), nullable=False),
        sa.Column("paid_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("period_index", "node_id"),
    )
    op.create_index("ix_results_validated_at_ms", "results", ["validated_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_results_validated_at_ms", table_name="results")
    op.drop_table("cold_stipends")
    op.drop_table("reward_epochs")
    op.drop_index("ix_cold_challenges_node_issued", table_name="cold_challenges")
    op.drop_table("cold_challenges")
    op.drop_table("atlas_entitlements")
    op.drop_table("institutions")
    op.drop_index("ix_pool_transitions_at_ms", table_name="pool_transitions")
    op.drop_index("ix_pool_transitions_node_id", table_name="pool_transitions")
    op.drop_table("pool_transitions")
    op.drop_index("ix_pool_members_pool", table_name="pool_members")
    op.drop_index("ix_pool_members_username", table_name="pool_members")
    op.drop_table("pool_members")
