"""Epoch settlement: nodes settled per second, against a plain ledger batch.

For each store (SQLite in a temporary directory; PostgreSQL too when its server binaries
exist, on a throwaway server; or --db URL), --nodes nodes of --users users each get one
validated result in one closed epoch (written straight into the store by
``nexapod.pools.synthetic``, outside the clock), and the treasury is funded short, so
USDC is scaled. Then ``pools.settling.settle_epoch`` runs once, timed: the aggregation
of validated FLOPs per node, 60-digit decimal quotes for every node, the NXC and USDC
transfers (one per user and asset), the per-node lines in the log and in
``reward_lines``, and the summary, in one transaction.

The baseline, measured in the same run against the same database, is a plain ledger
batch of the same number of transfers (``ledger.service.transfer`` in batches of 4,000:
NXC minted to the same users' accounts), which is the part of settlement no design can
avoid.

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.postgres_server import PostgresServer, find_postgres_bindir  # noqa: E402

from nexapod.coordinator.server import tune_collector  # noqa: E402
from nexapod.ledger import service as ledger  # noqa: E402
from nexapod.ledger.accounts import mint_account_id, user_account_id  # noqa: E402
from nexapod.ledger.rules import NewTransfer  # noqa: E402
from nexapod.policy import default_policy  # noqa: E402
from nexapod.pools.settle import epoch_bounds_ms  # noqa: E402
from nexapod.pools.settling import fund_treasury, settle_epoch  # noqa: E402
from nexapod.pools.synthetic import add_nodes, add_users, add_validated_work  # noqa: E402
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory  # noqa: E402

TARGET_S = 10.0
TARGET_RATIO = 2.0
BATCH = 4000
EPOCH = 480_000


def _seed(uow_factory: object, nodes: int, users: int) -> None:
    policy = default_policy()
    start_ms, _ = epoch_bounds_ms(EPOCH, policy.epoch_s)
    usernames = [f"u{i:06d}" for i in range(users)]
    node_rows = [
        (f"node{i:07d}", usernames[i % users], 10**9 * (1 + i % 997)) for i in range(nodes)
    ]
    with uow_factory() as uow:  # type: ignore[operator]
        add_users(uow.session, usernames, start_ms)
        add_nodes(uow.session, node_rows, start_ms)
        work = [
            (n, u, 10**12 * (1 + i % 3001), start_ms + i % 3_600_000)
            for i, (n, u, _) in enumerate(node_rows)
        ]
        add_validated_work(uow.session, work, 0)
        uow.commit()


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
        report = settle_epoch(uow_factory, policy, EPOCH, end_ms)
        settle_s = time.perf_counter() - started
        assert report.settled_now and report.nodes_paid == nodes
        assert report.usdc_shortfall_micro > 0, "the bench's treasury is short on purpose"
        transfers = 2 * users

        batch = [
            NewTransfer(
                transfer_id=f"{(1 << 127) | i:032x}",
                debit_account_id=mint_account_id("NXC"),
                credit_account_id=user_account_id(f"u{i % users:06d}", "NXC"),
                amount=1 + i,
            )
            for i in range(transfers)
        ]
        started = time.perf_counter()
        for offset in range(0, transfers, BATCH):
            ledger.transfer(uow_factory, batch[offset : offset + BATCH], end_ms)
        baseline_s = time.perf_counter() - started
    finally:
        engine.dispose()
    return {
        "settle_s": settle_s,
        "nodes_per_s": nodes / settle_s,
        "transfers": transfers,
        "baseline_s": baseline_s,
        "ratio": settle_s / baseline_s,
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
                    f"{name:10} settlement {f['settle_s']:6.2f} s "
                    f"({f['nodes_per_s']:>8,.0f} nodes/s)   baseline: ledger batch of "
                    f"{f['transfers']:,.0f} transfers {f['baseline_s']:6.2f} s   ratio "
                    f"{f['ratio']:.2f}   target <= {TARGET_S:g} s and <= {TARGET_RATIO:g}x: "
                    f"{verdict}"
                )
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    main()
