"""Ledger throughput: committed, logged transfers per second, against plain inserts.

For each store (SQLite in a temporary directory; PostgreSQL too when its server
binaries exist, on a throwaway server; or --db URL), many user accounts are funded, then
batches of random transfers between them go through ``ledger.service.transfer``: each
batch is checked, its accounts read and locked, applied, and committed with one log
entry per transfer (canonical JSON and leaf hash) in the same transaction. Checkpoints
are on: the log's integrator (tiles, the accounts' history index, a signed checkpoint)
runs whenever a second of ledger time has passed since it last ran, and once more after
the last batch, all on the ledger's clock; so when the clock stops every transfer is
committed, logged, in its accounts' histories and covered by a signed checkpoint.

The baseline, measured in the same run against the same database, is the plain insert
of exactly the rows the ledger stores per transfer: its log entry row (entry bytes, leaf
hash, 16-byte id, the two account keys) and its two account-history rows (sorted), one
transaction per batch, through the database driver's executemany (as the ledger writes
them), into copies of those tables (same columns, keys, foreign keys and indexes). The
rows, entry bytes and hashes included, are built before the clock starts. Ledger and
baseline batches alternate, so both see their tables at the same sizes. The accounts'
totals, which the ledger also updates, and the Merkle tiles (a row per 256 entries) are
the ledger's own work, not in the baseline.

    python bench/ledger.py [--transfers 200000] [--batch 8000] [--accounts 1000] [--default-gc]

Batches default to 8,000 transfers, the most one request may carry
(``TRANSFERS_PER_BATCH_MAX``, as TigerBeetle's clients send up to 8,190 a request):
clients that move money in volume batch it. ``--batch 4000`` gives the smaller batches
earlier sessions measured with.

The process's garbage collector is set up as a serving coordinator's is
(``coordinator.server.tune_collector``) before the clock starts, unless --default-gc. On
SQLite the figures are also given in this process's CPU time, which other work on a
shared machine inflates less than wall time (the target is in wall time).

Target (issue): >= 50,000 transfers/s on SQLite, and >= 0.5 of the baseline.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, Table, func, insert, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, find_postgres_bindir  # noqa: E402

from nexapod.coordinator.server import tune_collector  # noqa: E402
from nexapod.ledger import log_store, service  # noqa: E402
from nexapod.ledger.accounts import mint_account_id, user_account_id  # noqa: E402
from nexapod.ledger.integrator import LogIdentity, integrate_pending  # noqa: E402
from nexapod.ledger.merkle import leaf_hash  # noqa: E402
from nexapod.ledger.note import NoteSigner  # noqa: E402
from nexapod.ledger.rules import TRANSFERS_PER_BATCH_MAX, NewTransfer, Transfer  # noqa: E402
from nexapod.ledger.store import ACCOUNT_HISTORY, ACCOUNTS, LOG_ENTRIES  # noqa: E402
from nexapod.ledger.tile_store import latest_checkpoint  # noqa: E402
from nexapod.ledger.transfer_entry import encode_transfer_entry  # noqa: E402
from nexapod.registry.store import UserRow  # noqa: E402
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory  # noqa: E402
from nexapod.storage.driver import driver  # noqa: E402
from nexapod.storage.uow import UnitOfWorkFactory  # noqa: E402

TARGET_TRANSFERS_PER_S = 50_000
TARGET_RATIO = 0.5
FUNDING = 10**15
CHECKPOINT_INTERVAL_S = 1.0  # the coordinator's ledger_checkpoint_interval_s default
INTEGRATE_ENTRIES_MAX = 200_000  # the coordinator's ledger_integrate_entries_max default
ORIGIN = "bench.example/nexapod-ledger"


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
    """Copies of the log-entry and account-history tables, with every key and index."""
    metadata = MetaData()
    ACCOUNTS.to_metadata(metadata)  # what the copies' foreign keys name (it exists)
    tables = (
        LOG_ENTRIES.to_metadata(metadata, name=f"{prefix}_log_entries"),
        ACCOUNT_HISTORY.to_metadata(metadata, name=f"{prefix}_account_history"),
    )
    for table in tables:
        for index in table.indexes:
            index.name = f"{prefix}_{index.name}"  # type: ignore[assignment]
        for constraint in table.constraints:
            constraint.name = f"{prefix}_{constraint.name}"
    metadata.create_all(engine, tables=list(tables))
    return tables


BaselineBatch = tuple[list[tuple[Any, ...]], list[tuple[int, int]]]


def _baseline_rows(
    batches: list[list[NewTransfer]], keys: dict[str, int], now_ms: int, first_index: int
) -> list[BaselineBatch]:
    """The rows the ledger stores for the same transfers (other ids): entry rows with
    their bytes, leaf hashes and keys, and two history rows each, built before the clock
    starts."""
    rows = []
    index = first_index
    rng = random.Random(99)
    for batch in batches:
        entries, history = [], []
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
            entry = encode_transfer_entry(transfer)
            debit_key, credit_key = keys[new.debit_account_id], keys[new.credit_account_id]
            entries.append(
                (index, entry, leaf_hash(entry), bytes.fromhex(tid), debit_key, credit_key)
            )
            history.extend(((debit_key, index), (credit_key, index)))
            index += 1
        rows.append((entries, sorted(history)))
    return rows


def _baseline_insert(
    uow_factory: UnitOfWorkFactory, tables: tuple[Table, Table], batch: BaselineBatch
) -> None:
    """One batch of baseline rows in one transaction, through the driver's executemany."""
    entries_table, history_table = tables
    entries, history = batch
    with uow_factory() as uow:
        d = driver(uow.session)
        d.cursor.executemany(
            d.sql(
                f"INSERT INTO {entries_table.name} (leaf_index, entry, leaf_hash, transfer_id, "
                "debit_key, credit_key) VALUES (?, ?, ?, ?, ?, ?)"
            ),
            entries,
        )
        d.cursor.executemany(
            d.sql(f"INSERT INTO {history_table.name} (account_key, log_index) VALUES (?, ?)"),
            history,
        )
        uow.commit()


def _integrate(uow_factory: UnitOfWorkFactory, log: LogIdentity) -> None:
    """What the coordinator's checkpoint loop does each second: integrate and sign,
    going again at once while a round hit its entry limit."""
    while integrate_pending(uow_factory, log, _now_ms(), INTEGRATE_ENTRIES_MAX) is not None:
        with uow_factory() as uow:
            checkpoint = latest_checkpoint(uow.session)
            assert checkpoint is not None
            if checkpoint.tree_size == log_store.read_tree_size(uow.session):
                return


class _Stopwatch:
    """Wall time, and this process's CPU time. On SQLite the database works inside this
    process, so the CPU figure is the one that other work on a shared machine cannot
    inflate (the wall figure is the target's)."""

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall_s += time.perf_counter() - wall
            self.cpu_s += time.process_time() - cpu


def run(
    url: str, transfers: int, batch: int, accounts: int, *, default_gc: bool = False
) -> dict[str, float]:
    engine = make_engine(url)
    migrate_to_head(engine)
    uow_factory = unit_of_work_factory(engine)
    log = LogIdentity(ORIGIN, NoteSigner.from_seed(ORIGIN, bytes(range(32))))
    account_ids = _setup(engine, accounts)
    _integrate(uow_factory, log)
    with engine.connect() as connection:
        keys = {
            account_id: key
            for account_id, key in connection.execute(
                select(ACCOUNTS.c.account_id, ACCOUNTS.c.account_key)
            )
        }
    batches = _workload(account_ids, transfers, batch, seed=7)
    baseline = _baseline_rows(batches, keys, _now_ms(), first_index=accounts)
    baseline_tables = _baseline_tables(engine)
    if not default_gc:
        tune_collector()  # as a serving coordinator does once started (both sides gain)
    commits, integration, plain = _Stopwatch(), _Stopwatch(), _Stopwatch()
    integrated_at_s = 0.0
    for ledger_batch, baseline_batch in zip(batches, baseline, strict=True):
        with commits.running():
            service.transfer(uow_factory, ledger_batch, _now_ms())
            _checkpoint(engine)
        if commits.wall_s + integration.wall_s - integrated_at_s >= CHECKPOINT_INTERVAL_S:
            with integration.running():
                _integrate(uow_factory, log)
                _checkpoint(engine)
            integrated_at_s = commits.wall_s + integration.wall_s
        with plain.running():
            _baseline_insert(uow_factory, baseline_tables, baseline_batch)
            _checkpoint(engine)
    with integration.running():  # the last second's transfers, on the ledger's clock
        _integrate(uow_factory, log)
        _checkpoint(engine)
    _check(uow_factory, accounts, transfers)
    with engine.begin() as connection:
        for table in baseline_tables:
            table.drop(connection)
    engine.dispose()
    ledger_s = commits.wall_s + integration.wall_s
    ledger_cpu_s = commits.cpu_s + integration.cpu_s
    return {
        "ledger_per_s": transfers / ledger_s,
        "baseline_per_s": transfers / plain.wall_s,
        "ratio": plain.wall_s / ledger_s,
        "integrate_share": integration.wall_s / ledger_s,
        "ledger_cpu_per_s": transfers / ledger_cpu_s,
        "baseline_cpu_per_s": transfers / plain.cpu_s,
        "cpu_ratio": plain.cpu_s / ledger_cpu_s,
    }


def _check(uow_factory: UnitOfWorkFactory, accounts: int, transfers: int) -> None:
    """Nothing lost: one entry per transfer, all checkpointed and in both accounts'
    histories, and money conserved."""
    with uow_factory() as uow:
        session = uow.session
        tree_size = log_store.read_tree_size(session)
        assert tree_size == accounts + transfers, (tree_size, accounts, transfers)
        count, last = session.execute(
            select(func.count(), func.max(LOG_ENTRIES.c.leaf_index))
        ).one()
        assert count == tree_size, "one entry per transfer"
        assert last == tree_size - 1, "indexes 0 .. tree_size - 1, no gaps"
        checkpoint = latest_checkpoint(session)
        assert checkpoint is not None and checkpoint.tree_size == tree_size, "all signed"
        history = session.execute(select(func.count()).select_from(ACCOUNT_HISTORY)).scalar()
        assert history == 2 * tree_size, "every transfer in both of its accounts' histories"
        totals = session.execute(select(ACCOUNTS.c.credits_posted, ACCOUNTS.c.debits_posted)).all()
        assert sum(c - d for c, d in totals) == 0, "debits equal credits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transfers", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=TRANSFERS_PER_BATCH_MAX)
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--db", help="a database URL instead of the default stores")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's collector settings (a serving coordinator tunes them)",
    )
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
                f"among {args.accounts:,} accounts, checkpoints every "
                f"{CHECKPOINT_INTERVAL_S:g} s of ledger time"
            )
            for name, url in stores:
                figures = run(
                    url, args.transfers, args.batch, args.accounts, default_gc=args.default_gc
                )
                print(
                    f"{name:10} ledger {figures['ledger_per_s']:>10,.0f} transfers/s   "
                    f"baseline (plain inserts) {figures['baseline_per_s']:>10,.0f} transfers/s   "
                    f"ratio {figures['ratio']:.2f}   "
                    f"(integration {100 * figures['integrate_share']:.0f} % of ledger time)"
                )
                if name == "sqlite":
                    print(
                        f"{'':10} in process CPU time: ledger "
                        f"{figures['ledger_cpu_per_s']:>10,.0f} transfers/s   baseline "
                        f"{figures['baseline_cpu_per_s']:>10,.0f} transfers/s   ratio "
                        f"{figures['cpu_ratio']:.2f}"
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
