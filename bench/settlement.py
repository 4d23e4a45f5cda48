"""Epoch settlement: nodes settled per second, against a plain ledger batch.

For each store (SQLite in a temporary directory; PostgreSQL too when its server binaries
exist, on a throwaway server; or --db URL), --nodes nodes of --users users each get one
validated result in each of two closed epochs (written straight into the store by
``nexapod.pools.synthetic``, outside the clock), and the treasury is funded short before
each, so USDC is scaled. Then ``pools.settling.settle_epoch`` runs for each epoch, timed:
the aggregation of validated FLOPs per node, the exact quotes of every node, the NXC and
USDC transfers (one per user and asset), the per-node lines in the log, and the summary,
in one transaction. The first epoch also opens every user's NXC and USDC accounts, which
happens once in a contributor's life; the second is what every later epoch costs, and is
the one held to the target (both are printed).

The baseline, measured in the same run against the same database, is the part of
settlement no design can avoid: the same number of transfers, of the same kinds, between
the same accounts, as plain ledger batches (``ledger.service.transfer``, 4,000 a
transaction): each user's NXC minted by the issuer and USDC paid by the treasury, with
ids hashed from the user and the asset as settlement's are. The baseline earlier
sessions used (NXC mints only, with sequential ids, which append at the end of the id
index and so cost less) is printed beside it.

    python bench/settlement.py [--nodes 100000] [--users 25000] [--default-gc]

The process's garbage collector is set up as a serving coordinator's is
(``coordinator.server.tune_collector``) before the clock starts, unless --default-gc.

Users default to a quarter of the nodes (BOINC's hosts per user is of that order); the
settlement moves two transfers per paid user, so --users sets the baseline's size.

Target (issue): <= 10 s for 100,000 nodes, and <= 2x the plain batch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, find_postgres_bindir  # noqa: E402

from nexapod.coordinator.server import tune_collector  # noqa: E402
from nexapod.ledger import service as ledger  # noqa: E402
from nexapod.ledger.accounts import mint_account_id, user_account_id  # noqa: E402
from nexapod.ledger.rules import NewTransfer  # noqa: E402
from nexapod.policy import default_policy  # noqa: E402
from nexapod.pools.settle import (  # noqa: E402
    TREASURY_ACCOUNT,
    epoch_bounds_ms,
    settlement_transfer_id,
)
from nexapod.pools.settling import fund_treasury, settle_epoch  # noqa: E402
from nexapod.pools.synthetic import add_nodes, add_users, add_validated_work  # noqa: E402
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory  # noqa: E402

TARGET_S = 10.0
TARGET_RATIO = 2.0
BATCH = 4000
EPOCH = 480_000


def _seed(uow_factory: object, nodes: int, users: int) -> None:
    """Users and nodes, and one validated result per node in each of two epochs."""
    policy = default_policy()
    usernames = [f"u{i:06d}" for i in range(users)]
    node_rows = [
        (f"node{i:07d}", usernames[i % users], 10**9 * (1 + i % 997)) for i in range(nodes)
    ]
    with uow_factory() as uow:  # type: ignore[operator]
        add_users(uow.session, usernames, 0)
        add_nodes(uow.session, node_rows, 0)
        next_unit = 0
        for epoch in (EPOCH - 1, EPOCH):
            start_ms, _ = epoch_bounds_ms(epoch, policy.epoch_s)
            work = [
                (n, u, 10**12 * (1 + (i + epoch) % 3001), start_ms + i % 3_600_000)
                for i, (n, u, _) in enumerate(node_rows)
            ]
            next_unit = add_validated_work(uow.session, work, next_unit)
        uow.commit()


def _plain_batches(uow_factory: Any, batch: list[NewTransfer], now_ms: int) -> float:
    """Wall seconds to move ``batch`` through the ledger, BATCH transfers a transaction."""
    started = time.perf_counter()
    for offset in range(0, len(batch), BATCH):
        ledger.transfer(uow_factory, batch[offset : offset + BATCH], now_ms)
    return time.perf_counter() - started


def run(url: str, nodes: int, users: int, *, default_gc: bool = False) -> dict[str, float]:
    policy = default_policy()
    engine = make_engine(url)
    try:
        migrate_to_head(engine)
        uow_factory = unit_of_work_factory(engine)
        print(f"  seeding {nodes:,} nodes of {users:,} users with validated work…", flush=True)
        _seed(uow_factory, nodes, users)
        fund_treasury(uow_factory, 10**12, "bench", 1)  # one million USDC: short, so scaled
        _, end_ms = epoch_bounds_ms(EPOCH, policy.epoch_s)
        if not default_gc:
            tune_collector()  # as the serving coordinator that settles epochs does

        started = time.perf_counter()
        first = settle_epoch(uow_factory, policy, EPOCH - 1, end_ms)
        first_s = time.perf_counter() - started
        fund_treasury(uow_factory, 10**12, "bench-again", 1)  # short again
        started = time.perf_counter()
        report = settle_epoch(uow_factory, policy, EPOCH, end_ms)
        settle_s = time.perf_counter() - started
        for settled in (first, report):
            assert settled.settled_now and settled.nodes_paid == nodes
        assert report.usdc_shortfall_micro > 0, "the bench's treasury is short on purpose"
        transfers = 2 * users

        # The baseline: the same transfers as a plain ledger batch (each user's NXC minted
        # and USDC paid from the treasury, ids hashed from the user and asset as
        # settlement's are, so they land at random in the id index), 4,000 a transaction.
        fund_treasury(uow_factory, 10**12, "bench-baseline", 1)
        same = [
            NewTransfer(
                settlement_transfer_id("bench", EPOCH, username, asset),
                mint_account_id("NXC") if asset == "NXC" else TREASURY_ACCOUNT,
                user_account_id(username, asset),
                1 + i,
            )
            for i, username in enumerate(f"u{j:06d}" for j in range(users))
            for asset in ("NXC", "USDC")
        ]
        baseline_s = _plain_batches(uow_factory, same, end_ms)
        # Earlier sessions' baseline, for comparison: NXC mints only, with sequential ids
        # (appended at the end of the id index).
        mints = [
            NewTransfer(
                transfer_id=f"{(1 << 127) | i:032x}",
                debit_account_id=mint_account_id("NXC"),
                credit_account_id=user_account_id(f"u{i % users:06d}", "NXC"),
                amount=1 + i,
            )
            for i in range(transfers)
        ]
        mints_s = _plain_batches(uow_factory, mints, end_ms)
    finally:
        engine.dispose()
    return {
        "first_s": first_s,
        "settle_s": settle_s,
        "nodes_per_s": nodes / settle_s,
        "transfers": transfers,
        "baseline_s": baseline_s,
        "ratio": settle_s / baseline_s,
        "mints_s": mints_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=None, help="default: nodes / 4")
    parser.add_argument("--db", help="a database URL instead of the default stores")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's collector settings (a serving coordinator tunes them)",
    )
    args = parser.parse_args()
    users = args.users or max(1, args.nodes // 4)
    stores: list[tuple[str, str]] = []
    server: PostgresServer | None = None
    with tempfile.TemporaryDirectory(prefix="nexapod-bench-settlement-") as scratch:
        if args.db:
            stores.append(("given", args.db))
        else:
            stores.append(("sqlite", f"sqlite:///{scratch}/settlement.sqlite3"))
            bindir = None if args.no_postgres else find_postgres_bindir()
            if bindir is not None:
                server = PostgresServer.start(bindir)
                stores.append(("postgresql", server.create_database("bench_settlement")))
            elif not args.no_postgres:
                print("PostgreSQL server binaries not found: SQLite only")
        try:
            print(f"settle one epoch: {args.nodes:,} nodes, {users:,} users")
            for name, url in stores:
                print(f"{name}:", flush=True)
                f = run(url, args.nodes, users, default_gc=args.default_gc)
                met = f["settle_s"] <= TARGET_S and f["ratio"] <= TARGET_RATIO
                verdict = "met" if met else "MISSED"
                print(
                    f"{name:10} first epoch, opening every user's two accounts: "
                    f"{f['first_s']:.2f} s ({args.nodes / f['first_s']:,.0f} nodes/s)"
                )
                print(
                    f"{name:10} settlement {f['settle_s']:6.2f} s "
                    f"({f['nodes_per_s']:>8,.0f} nodes/s)   baseline: the same "
                    f"{f['transfers']:,.0f} transfers as plain ledger batches "
                    f"{f['baseline_s']:6.2f} s   ratio {f['ratio']:.2f}   "
                    f"target <= {TARGET_S:g} s and <= {TARGET_RATIO:g}x: {verdict}"
                )
                print(
                    f"{name:10} (earlier baseline, NXC mints with sequential ids: "
                    f"{f['mints_s']:.2f} s, ratio {f['settle_s'] / f['mints_s']:.2f})"
                )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
