"""ledger: a transfer is its log entry (with its 16-byte id and account keys); holds apart

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

Before: ``ledger_transfers`` held every field of a transfer under its 32-character id,
with two (account id, log index) indexes written by every commit, beside the transfer's
log entry. After: a transfer's fields are its log entry, whose row in
``ledger_log_entries`` also holds the transfer's id as 16 bytes (unique) and its two
accounts' keys; ``ledger_accounts`` gains ``account_key`` (1, 2, ... in the order the
accounts opened); the state of holds moves to ``ledger_holds``; ``ledger_account_history``
(account key, log index) is filled for the entries the newest checkpoint covers, and the
integrator indexes later ones (``nexapod.ledger.history``).

Existing data is carried over in both directions: the downgrade rebuilds the old rows
from the log entries, which hold every field.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

import nexapod.storage.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ROWS_PER_CHUNK = 5_000  # rows read and written per round trip while copying
_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _old_transfers(name: str) -> sa.Table:
    """The 0002 layout of ``ledger_transfers`` (under ``name``)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("transfer_id", sa.String(32), primary_key=True),
        sa.Column("phase", sa.String(16)),
        sa.Column("debit_account_id", sa.String(48)),
        sa.Column("credit_account_id", sa.String(48)),
        sa.Column("asset", sa.String(8)),
        sa.Column("amount", nexapod.storage.types.ExactInteger()),
        sa.Column("pending_id", sa.String(32)),
        sa.Column("timeout_s", sa.BigInteger()),
        sa.Column("code", sa.String(32)),
        sa.Column("timestamp_ms", sa.BigInteger()),
        sa.Column("log_index", sa.BigInteger()),
        sa.Column("pending_status", sa.String(8)),
        sa.Column("expires_at_ms", sa.BigInteger()),
    )


def _new_transfers(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("log_index", _ROW_ID, primary_key=True, autoincrement=False),
        sa.Column("transfer_id", sa.LargeBinary(16)),
        sa.Column("debit_key", sa.BigInteger()),
        sa.Column("credit_key", sa.BigInteger()),
        sa.Column("pending_status", sa.String(8)),
        sa.Column("expires_at_ms", sa.BigInteger()),
    )


_ACCOUNTS = sa.table(
    "ledger_accounts",
    sa.column("account_id", sa.String()),
    sa.column("opened_at_ms", sa.BigInteger()),
    sa.column("account_key", sa.BigInteger()),
)
_ENTRIES = sa.table(
    "ledger_log_entries",
    sa.column("leaf_index", sa.BigInteger()),
    sa.column("entry", sa.LargeBinary()),
    sa.column("transfer_id", sa.LargeBinary()),
    sa.column("debit_key", sa.BigInteger()),
    sa.column("credit_key", sa.BigInteger()),
)
_HOLDS = sa.table(
    "ledger_holds",
    sa.column("log_index", sa.BigInteger()),
    sa.column("pending_status", sa.String()),
    sa.column("expires_at_ms", sa.BigInteger()),
)


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("ledger_accounts", sa.Column("account_key", sa.BigInteger(), nullable=True))
    _give_account_keys(bind)
    staged = _new_transfers("ledger_transfers_staged_new")
    staged.create(bind)
    _stage_transfers(bind, staged)
    with op.batch_alter_table("ledger_transfers", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_transfers_expiry")
        batch_op.drop_index("ix_ledger_transfers_debit")
        batch_op.drop_index("ix_ledger_transfers_credit")
    op.drop_table("ledger_transfers")
    # No table refers to ledger_accounts now, so SQLite may rebuild it with the new key.
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.alter_column("account_key", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_ledger_accounts_account_key"), ["account_key"]
        )
    with op.batch_alter_table("ledger_log_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transfer_id", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column("debit_key", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("credit_key", sa.BigInteger(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_log_entries_credit_key_ledger_accounts"),
            "ledger_accounts",
            ["credit_key"],
            ["account_key"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_ledger_log_entries_debit_key_ledger_accounts"),
            "ledger_accounts",
            ["debit_key"],
            ["account_key"],
        )
    op.execute(
        "UPDATE ledger_log_entries SET transfer_id = s.transfer_id, debit_key = s.debit_key, "
        "credit_key = s.credit_key FROM ledger_transfers_staged_new AS s "
        "WHERE s.log_index = ledger_log_entries.leaf_index"
    )
    with op.batch_alter_table("ledger_log_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_log_entries_transfer_id", ["transfer_id"], unique=True)
    _create_holds()
    op.execute(
        "INSERT INTO ledger_holds (log_index, pending_status, expires_at_ms) "
        "SELECT log_index, pending_status, expires_at_ms FROM ledger_transfers_staged_new "
        "WHERE pending_status IS NOT NULL"
    )
    staged.drop(bind)
    op.create_table(
        "ledger_account_history",
        sa.Column("account_key", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("log_index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("account_key", "log_index", name=op.f("pk_ledger_account_history")),
        sqlite_with_rowid=False,
    )
    _index_checkpointed_history(bind)


def _give_account_keys(bind: sa.engine.Connection) -> None:
    """Keys 1, 2, ... in the order the accounts opened (ties by id)."""
    ids = bind.execute(
        sa.select(_ACCOUNTS.c.account_id).order_by(_ACCOUNTS.c.opened_at_ms, _ACCOUNTS.c.account_id)
    ).scalars()
    rows = [{"b_id": account_id, "b_key": key} for key, account_id in enumerate(ids, start=1)]
    if rows:
        bind.execute(
            sa.update(_ACCOUNTS)
            .where(_ACCOUNTS.c.account_id == sa.bindparam("b_id"))
            .values(account_key=sa.bindparam("b_key")),
            rows,
        )


def _stage_transfers(bind: sa.engine.Connection, staged: sa.Table) -> None:
    """Every old transfer as a new row, a chunk at a time in id order."""
    old = _old_transfers("ledger_transfers")
    keys = dict(bind.execute(sa.select(_ACCOUNTS.c.account_id, _ACCOUNTS.c.account_key)).all())
    last = ""
    while True:
        rows = bind.execute(
            sa.select(
                old.c.transfer_id,
                old.c.log_index,
                old.c.debit_account_id,
                old.c.credit_account_id,
                old.c.pending_status,
                old.c.expires_at_ms,
            )
            .where(old.c.transfer_id > last)
            .order_by(old.c.transfer_id)
            .limit(ROWS_PER_CHUNK)
        ).all()
        if not rows:
            return
        bind.execute(
            sa.insert(staged),
            [
                {
                    "log_index": log_index,
                    "transfer_id": bytes.fromhex(transfer_id),
                    "debit_key": keys[debit],
                    "credit_key": keys[credit],
                    "pending_status": status,
                    "expires_at_ms": expires_at_ms,
                }
                for transfer_id, log_index, debit, credit, status, expires_at_ms in rows
            ],
        )
        last = rows[-1][0]


def _create_holds() -> None:
    op.create_table(
        "ledger_holds",
        sa.Column("log_index", _ROW_ID, autoincrement=False, nullable=False),
        sa.Column("pending_status", sa.String(length=8), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("log_index", name=op.f("pk_ledger_holds")),
    )
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_holds_expiry",
            ["expires_at_ms"],
            unique=False,
            sqlite_where=sa.text("pending_status = 'pending'"),
            postgresql_where=sa.text("pending_status = 'pending'"),
        )


def _index_checkpointed_history(bind: sa.engine.Connection) -> None:
    """History rows for the transfers the newest checkpoint covers (the integrator's
    invariant: the index covers exactly the checkpointed entries)."""
    covered = bind.execute(sa.text("SELECT max(tree_size) FROM ledger_checkpoints")).scalar()
    bind.execute(
        sa.text(
            "INSERT INTO ledger_account_history (account_key, log_index) "
            "SELECT account_key, log_index FROM ("
            " SELECT debit_key AS account_key, leaf_index AS log_index FROM ledger_log_entries"
            "  WHERE leaf_index < :stop AND debit_key IS NOT NULL"
            " UNION ALL"
            " SELECT credit_key AS account_key, leaf_index AS log_index FROM ledger_log_entries"
            "  WHERE leaf_index < :stop AND credit_key IS NOT NULL"
            ") AS sides ORDER BY account_key, log_index"
        ),
        {"stop": 0 if covered is None else int(covered)},
    )


def downgrade() -> None:
    bind = op.get_bind()
    staged = _old_transfers("ledger_transfers_staged_old")
    staged.create(bind)
    _unstage_transfers(bind, staged)
    op.drop_table("ledger_account_history")
    with op.batch_alter_table("ledger_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_holds_expiry")
    op.drop_table("ledger_holds")
    with op.batch_alter_table("ledger_log_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_log_entries_transfer_id")
    with op.batch_alter_table("ledger_log_entries", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_log_entries_debit_key_ledger_accounts"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_ledger_log_entries_credit_key_ledger_accounts"), type_="foreignkey"
        )
        batch_op.drop_column("credit_key")
        batch_op.drop_column("debit_key")
        batch_op.drop_column("transfer_id")
    with op.batch_alter_table("ledger_accounts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_ledger_accounts_account_key"), type_="unique")
        batch_op.drop_column("account_key")
    _create_old_transfers()
    columns = ", ".join(column.name for column in staged.columns)
    op.execute(
        f"INSERT INTO ledger_transfers ({columns}) "
        f"SELECT {columns} FROM ledger_transfers_staged_old"
    )
    staged.drop(bind)


def _unstage_transfers(bind: sa.engine.Connection, staged: sa.Table) -> None:
    """Every transfer rebuilt in the old layout from its log entry, in log order."""
    ids = dict(bind.execute(sa.select(_ACCOUNTS.c.account_key, _ACCOUNTS.c.account_id)).all())
    after = -1
    while True:
        rows = bind.execute(
            sa.select(
                _ENTRIES.c.leaf_index,
                _ENTRIES.c.debit_key,
                _ENTRIES.c.credit_key,
                _HOLDS.c.pending_status,
                _HOLDS.c.expires_at_ms,
                _ENTRIES.c.entry,
            )
            .select_from(_ENTRIES.outerjoin(_HOLDS, _HOLDS.c.log_index == _ENTRIES.c.leaf_index))
            .where(_ENTRIES.c.leaf_index > after, _ENTRIES.c.transfer_id.is_not(None))
            .order_by(_ENTRIES.c.leaf_index)
            .limit(ROWS_PER_CHUNK)
        ).all()
        if not rows:
            return
        old_rows = []
        for log_index, debit_key, credit_key, status, expires_at_ms, entry in rows:
            body = json.loads(bytes(entry))
            assert body["kind"] == "transfer"
            assert body["debit_account_id"] == ids[debit_key]
            assert body["credit_account_id"] == ids[credit_key]
            old_rows.append(
                {
                    "transfer_id": body["transfer_id"],
                    "phase": body["phase"],
                    "debit_account_id": body["debit_account_id"],
                    "credit_account_id": body["credit_account_id"],
                    "asset": body["asset"],
                    "amount": int(body["amount"]),
                    "pending_id": body.get("pending_id"),
                    "timeout_s": body.get("timeout_s", 0),
                    "code": body["code"],
                    "timestamp_ms": body["timestamp_ms"],
                    "log_index": log_index,
                    "pending_status": status,
                    "expires_at_ms": expires_at_ms,
                }
            )
        bind.execute(sa.insert(staged), old_rows)
        after = rows[-1][0]


def _create_old_transfers() -> None:
    """``ledger_transfers`` as revision 0002 made it."""
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
