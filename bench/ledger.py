"""Ledger throughput: committed, logged transfers per second, against plain inserts.

For each store (SQLite in a temporary directory; PostgreSQL too when its server
binaries exist, on a throwaway server; or --db URL), many user accounts are funded, then
batches of random transfers between them go through ``ledger.service.transfer``: each
batch is checked, its accounts read and locked, applied, and committed with one log
entry per transfer (canonical JSON and leaf hash) in the same transaction.

The baseline, measured in the same run against the same database, is the plain bulk
insert of the same rows (a transfer row and a log-entry row per transfer, the entry
bytes and hashes computed before the clock starts), one transaction per batch, into
copies of the two tables (same columns, keys, foreign keys and indexes). Ledger and
baseline batches alternate, so both see their tables at the same sizes, and neither's
rows land among the other's.

    python bench/ledger.py [--transfers 200000] [--batch 4000] [--accounts 1000]

On SQLite it also prints a ceiling: the same rows written through sqlite3's own
executemany into a third copy of the tables (no SQLAlchemy, no checks, no accounts
updated), the most any Python code could write them into this schema on this machine.

Target (issue): >= 50,000 transfers/s on SQLite, and >= 0.5 of the baseline.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, MetaData, Table, func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, find_postgres_bindir  # noqa: E402

from nexapod.crypto import canonical_json  # noqa: E402
from nexapod.ledger import log_store, service  # noqa: E402
from nexapod.ledger.accounts import mint_account_id, user_account_id  # noqa: E402
from nexapod.ledger.merkle import leaf_hash  # noqa: E402
from nexapod.ledger.rules import NewTransfer, Transfer, transfer_entry_body  # noqa: E402
from nexapod.ledger.store import ACCOUNTS, LOG_ENTRIES, TRANSFERS  # noqa: E402
from nexapod.registry.store import UserRow  # noqa: E402
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory  # noqa: E402
from nexapod.storage.uow import UnitOfWorkFactory  # noqa: E402

TARGET_TRANSFERS_PER_S = 50_000
TARGET_RATIO = 0.5
FUNDING = 10**15


def _ids(rng: random.Random, count: int) -> list[str]:
    return [f"{rng.getrandbits(128) | 1:032x}" for _ in range(count)]


def _setup(engine: Engine, accounts: int) -> list[str]:
    """Register users and fund one NXC account each from the issuer."""
    uow_factory = unit_of_work_factory(engine)
    names = [f"user{i:05d}" for i in range(accounts)]
    with uow_factory() as uow:
        uow.session.execute(
            insert(UserRow),
            [
                {
                    "username": name,
                    "public_key": f"{name}-key",
                    "registration_document": "{}",
                    "registration_signature": "-",
                    "registration_sha256": "0" * 64,
                    "registered_at_ms": 0,
                }
                for name in names
            ],
        )
        uow.commit()
    account_ids = [user_account_id(name, "NXC") for name in names]
    rng = random.Random(1)
    funding = [
        NewTransfer(tid, mint_account_id("NXC"), account_id, FUNDING)
        for tid, account_id in zip(_ids(rng, accounts), account_ids, strict=True)
    ]
    service.transfer(uow_factory, funding, _now_ms())
    return account_ids


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _workload(
    account_ids: list[str], transfers: int, batch: int, seed: int
) -> list[list[NewTransfer]]:
    rng = random.Random(seed)
    ids = _ids(rng, transfers)
    items = []
    for tid in ids:
        debit, credit = rng.sample(account_ids, 2)
        items.append(NewTransfer(tid, debit, credit, rng.randint(1, 10**6)))
    return [items[i : i + batch] for i in range(0, len(items), batch)]


def _checkpoint(engine: Engine) -> None:
    """On SQLite, move the WAL into the database now, so that each side pays for writing
    back its own pages (SQLite's automatic checkpoint would bill whichever commit happens
    to cross the WAL's threshold, here nearly always the same side)."""
    if engine.dialect.name == "sqlite":
        connection = engine.raw_connection()  # outside a transaction, as a checkpoint must be
        try:
            connection.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            connection.close()


def _baseline_tables(engine: Engine, prefix: str = "bench") -> tuple[Table, Table]:
    """Copies of the transfers and log-entry tables, with every index and constraint."""
    metadata = MetaData()
    ACCOUNTS.to_metadata(metadata)  # what the copies' foreign keys name (it exists)
    tables = (
        TRANSFERS.to_metadata(metadata, name=f"{prefix}_transfers"),
        LOG_ENTRIES.to_metadata(metadata, name=f"{prefix}_log_entries"),
    )
    for table in tables:
        for index in table.indexes:
            index.name = f"{prefix}_{index.name}"  # type: ignore[assignment]
        for constraint in table.constraints:
            constraint.name = f"{prefix}_{constraint.name}"
    metadata.create_all(engine, tables=list(tables))
    return tables


def _raw_insert(
    engine: Engine,
    tables: tuple[Table, Table],
    transfer_rows: list[dict[str, object]],
    entry_rows: list[dict[str, object]],
) -> None:
    """The same rows through sqlite3's own executemany, one transaction: the most any
    Python code can write these rows into this schema (no SQLAlchemy, no checks)."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        for table, rows in zip(tables, (transfer_rows, entry_rows), strict=True):
            names = [column.name for column in table.columns]
            marks = ", ".join("?" * len(names))
            sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
            cursor.executemany(sql, [tuple(row[name] for name in names) for row in rows])
        cursor.execute("COMMIT")
    finally:
        connection.close()


def _baseline_rows(
    batches: list[list[NewTransfer]], now_ms: int, first_index: int
) -> list[tuple[list[dict[str, object]], list[dict[str, object]]]]:
    """The rows the ledger writes for the same transfers (other ids), entry bytes and
    leaf hashes included, built before the clock starts."""
    rows = []
    index = first_index
    rng = random.Random(99)
    for batch in batches:
        transfers, entries = [], []
        for new, tid in zip(batch, _ids(rng, len(batch)), strict=True):
            assert new.debit_account_id is not None and new.credit_account_id is not None
            assert new.amount is not None
            transfer = Transfer(
                tid,
                "single",
                new.debit_account_id,
                new.credit_account_id,
                "NXC",
                new.amount,
                None,
                0,
                new.code,
                now_ms,
                index,
            )
            body = {"kind": "transfer", "v": 1, **transfer_entry_body(transfer)}
            entry = canonical_json(body)
            transfers.append(transfer._asdict())
            entries.append({"leaf_index": index, "entry": entry, "leaf_hash": leaf_hash(entry)})
            index += 1
        rows.append((transfers, entries))
    return rows


def run(url: str, transfers: int, batch: int, accounts: int) -> dict[str, float]:
    engine = make_engine(url)
    migrate_to_head(engine)
    uow_factory = unit_of_work_factory(engine)
    account_ids = _setup(engine, accounts)
    batches = _workload(account_ids, transfers, batch, seed=7)
    baseline = _baseline_rows(batches, _now_ms(), first_index=accounts)
    baseline_transfers, baseline_entries = _baseline_tables(engine)
    sqlite = engine.dialect.name == "sqlite"
    raw_tables = _baseline_tables(engine, "raw") if sqlite else None
    raw_rows = _baseline_rows(batches, _now_ms(), first_index=accounts) if sqlite else []
    ledger_s = baseline_s = raw_s = 0.0
    for index, (ledger_batch, (transfer_rows, entry_rows)) in enumerate(
        zip(batches, baseline, strict=True)
    ):
        started = time.perf_counter()
        service.transfer(uow_factory, ledger_batch, _now_ms())
        _checkpoint(engine)
        ledger_s += time.perf_counter() - started
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(insert(baseline_transfers), transfer_rows)
            connection.execute(insert(baseline_entries), entry_rows)
        _checkpoint(engine)
        baseline_s += time.perf_counter() - started
        if raw_tables is not None:
            raw_transfers, raw_entries = raw_rows[index]
            started = time.perf_counter()
            _raw_insert(engine, raw_tables, _amounts_as_text(raw_transfers), raw_entries)
            _checkpoint(engine)
            raw_s += time.perf_counter() - started
    _check(uow_factory, accounts, transfers)
    with engine.begin() as connection:
        for table in (baseline_transfers, baseline_entries, *(raw_tables or ())):
            table.drop(connection)
    engine.dispose()
    return {
        "ledger_per_s": transfers / ledger_s,
        "baseline_per_s": transfers / baseline_s,
        "ratio": baseline_s / ledger_s,
        "raw_per_s": transfers / raw_s if raw_s else 0.0,
    }


def _amounts_as_text(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{**row, "amount": str(row["amount"])} for row in rows]


def _check(uow_factory: UnitOfWorkFactory, accounts: int, transfers: int) -> None:
    """Nothing lost: the log has one entry per transfer, and money is conserved."""
    with uow_factory() as uow:
        session = uow.session
        tree_size = log_store.read_tree_size(session)
        assert tree_size == accounts + transfers, (tree_size, accounts, transfers)
        count, last = session.execute(
            select(func.count(), func.max(LOG_ENTRIES.c.leaf_index))
        ).one()
        assert count == tree_size, "one entry per transfer"
        assert last == tree_size - 1, "indexes 0 .. tree_size - 1, no gaps"
        totals = session.execute(select(ACCOUNTS.c.credits_posted, ACCOUNTS.c.debits_posted)).all()
        assert sum(c - d for c, d in totals) == 0, "debits equal credits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=4_000)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--db", help="a database URL instead of the default stores")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    stores: list[tuple[str, str]] = []
    server: PostgresServer | None = None
    with tempfile.TemporaryDirectory(prefix="nexapod-bench-ledger-") as scratch:
        if args.db:
            stores.append(("given", args.db))
        else:
            stores.append(("sqlite", f"sqlite:///{scratch}/ledger.sqlite3"))
            bindir = None if args.no_postgres else find_postgres_bindir()
            if bindir is not None:
                server = PostgresServer.start(bindir)
                stores.append(("postgresql", server.create_database("bench_ledger")))
            elif not args.no_postgres:
                print("PostgreSQL server binaries not found: SQLite only")
        try:
            print(
                f"{args.transfers:,} transfers in batches of {args.batch:,} "
                f"among {args.accounts:,} accounts"
            )
            for name, url in stores:
                figures = run(url, args.transfers, args.batch, args.accounts)
                print(
                    f"{name:10} ledger {figures['ledger_per_s']:>10,.0f} transfers/s   "
                    f"baseline (plain inserts) {figures['baseline_per_s']:>10,.0f} transfers/s   "
                    f"ratio {figures['ratio']:.2f}"
                )
                if name == "sqlite":
                    print(
                        f"{'':10} ceiling: the same rows through sqlite3's executemany, no "
                        f"SQLAlchemy: {figures['raw_per_s']:>10,.0f} transfers/s"
                    )
                    met = (
                        figures["ledger_per_s"] >= TARGET_TRANSFERS_PER_S
                        and figures["ratio"] >= TARGET_RATIO
                    )
                    print(
                        f"{'':10} target >= {TARGET_TRANSFERS_PER_S:,}/s and ratio >= "
                        f"{TARGET_RATIO}: {'met' if met else 'MISSED'}"
                    )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
