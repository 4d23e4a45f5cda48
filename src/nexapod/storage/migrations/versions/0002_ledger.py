"""ledger: accounts, transfers, the log and its head

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nexapod.storage.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The system accounts as of this revision (id, may go negative): see nexapod.ledger.accounts.
SYSTEM_ACCOUNTS = [
    ("system:issuance:NXC", True),
    ("system:treasury:NXC", False),
    ("system:treasury:USDC", False),
    ("system:treasury:USD", False),
    ("system:fees:NXC", False),
    ("system:fees:USDC", False),
    ("system:fees:USD", False),
    ("system:escrow:NXC", False),
    ("system:escrow:USDC", False),
    ("system:escrow:USD", False),
    ("system:burn:NXC", False),
    ("system:usdc_gateway:USDC", True),
    ("system:fiat_gateway:USD", True),
]


def upgrade() -> None:
    accounts = op.create_table(
        "ledger_accounts",
        sa.Column("account_id", sa.String(length=48), nullable=False),
        sa.Column("asset", sa.String(length=8), nullable=False),
        sa.Column("owner", sa.String(length=40), nullable=False),
        sa.Column("may_go_negative", sa.Boolean(), nullable=False),
        sa.Column("debits_pending", nexapod.storage.types.ExactInteger(), nullable=False),
        sa.Column("debits_posted", nexapod.storage.types.ExactInteger(), nullable=False),
        sa.Column("credits_pending", nexapod.storage.types.ExactInteger(), nullable=False),
        sa.Column("credits_posted", nexapod.storage.types.ExactInteger(), nullable=False),
        sa.Column("opened_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_ledger_accounts")),
    )
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ledger_accounts_owner"), ["owner"], unique=False)

    op.create_table(
        "ledger_transfers",
        sa.Column("transfer_id", sa.String(length=32), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("debit_account_id", sa.String(length=48), nullable=False),
        sa.Column("credit_account_id", sa.String(length=48), nullable=False),
        sa.Column("asset", sa.String(length=8), nullable=False),
        sa.Column("amount", nexapod.storage.types.ExactInteger(), nullable=False),
        sa.Column("pending_id", sa.String(length=32), nullable=True),
        sa.Column("timeout_s", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("pending_status", sa.String(length=8), nullable=True),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["credit_account_id"],
            ["ledger_accounts.account_id"],
            name=op.f("fk_ledger_transfers_credit_account_id_ledger_accounts"),
        ),
        sa.ForeignKeyConstraint(
            ["debit_account_id"],
            ["ledger_accounts.account_id"],
            name=op.f("fk_ledger_transfers_debit_account_id_ledger_accounts"),
        ),
        sa.PrimaryKeyConstraint("transfer_id", name=op.f("pk_ledger_transfers")),
    )
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_transfers_credit", ["credit_account_id", "log_index"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_transfers_debit", ["debit_account_id", "log_index"], unique=False
        )
        batch_op.create_index(
            "ix_ledger_transfers_expiry",
            ["expires_at_ms"],
            unique=False,
            sqlite_where=sa.text("pending_status = 'pending'"),
            postgresql_where=sa.text("pending_status = 'pending'"),
        )

    op.create_table(
        "ledger_log_entries",
        sa.Column(
            "leaf_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("leaf_index", name=op.f("pk_ledger_log_entries")),
    )
    head = op.create_table(
        "ledger_log_head",
        sa.Column("head_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("head_id", name=op.f("pk_ledger_log_head")),
    )
    op.bulk_insert(head, [{"head_id": 0, "tree_size": 0}])
    op.bulk_insert(
        accounts,
        [
            {
                "account_id": account_id,
                "asset": account_id.rsplit(":", 1)[1],
                "owner": account_id.rsplit(":", 1)[0],
                "may_go_negative": negative,
                "debits_pending": 0,
                "debits_posted": 0,
                "credits_pending": 0,
                "credits_posted": 0,
                "opened_at_ms": 0,
            }
            for account_id, negative in SYSTEM_ACCOUNTS
        ],
    )


def downgrade() -> None:
    op.drop_table("ledger_log_head")
    op.drop_table("ledger_log_entries")
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_expiry")
        batch_op.drop_index("ix_ledger_transfers_debit")
        batch_op.drop_index("ix_ledger_transfers_credit")

    op.drop_table("ledger_transfers")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_accounts_owner"))

    op.drop_table("ledger_accounts")
