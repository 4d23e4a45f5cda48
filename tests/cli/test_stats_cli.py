"""`nexapod user status`, `nexapod leaderboard` and `nexapod stats export` against a real
coordinator process, as a contributor types them."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete
from typer.testing import CliRunner

from nexapod.cli.main import app as cli
from nexapod.cli.stats import format_flops
from nexapod.crypto import SigningKey
from nexapod.node.client import CoordinatorClient
from nexapod.node.home import node_registration, user_registration
from nexapod.protocol.v1 import STATS_CSV_COLUMNS, LeaderboardPage, StatsExport, UserStatus
from nexapod.registry.stats_store import StatsEntryRow, StatsSnapshotRow
from nexapod.storage import make_engine, unit_of_work_factory
from nexapod.storage.uow import UnitOfWorkFactory
from tests.factories import PROFILE, fund
from tests.processes import CoordinatorProcess
from tests.registry.credits import credit

runner = CliRunner()
BIG = 2**63 - 1


@pytest.fixture
def coordinator(database_url: str, tmp_path: Path) -> Iterator[tuple[str, UnitOfWorkFactory]]:
    process = CoordinatorProcess(database_url, tmp_path / "coordinator")
    engine = make_engine(database_url)
    try:
        yield process.url, unit_of_work_factory(engine)
    finally:
        process.stop()
        engine.dispose()


def _register(url: str, username: str, fingerprint: str) -> str:
    user_key, node_key = SigningKey.generate(), SigningKey.generate()
    state = {
        "public_key": node_key.public_key_b64,
        "profile": PROFILE,
        "fingerprint": fingerprint,
        "runner_tree_hash": "ab" * 32,
    }
    with CoordinatorClient(url) as client:
        client.register_user(user_registration(username, user_key))
        node = client.register_node(node_registration(state, node_key, username, user_key, 10**12))
    return node.node_id


def _forget_snapshots(uow_factory: UnitOfWorkFactory) -> None:
    with uow_factory() as uow:
        uow.session.execute(delete(StatsEntryRow))
        uow.session.execute(delete(StatsSnapshotRow))
        uow.commit()


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.output


@pytest.mark.slow
def test_status_leaderboard_and_export(
    coordinator: tuple[str, UnitOfWorkFactory], tmp_path: Path
) -> None:
    url, uow_factory = coordinator
    alice = _register(url, "alice", "a1" * 32)
    bob = _register(url, "bob", "b2" * 32)
    now_ms = time.time_ns() // 1_000_000
    for _ in range(3):
        credit(uow_factory, alice, "alice", BIG, now_ms)
    credit(uow_factory, bob, "bob", 10**15, now_ms)
    fund(uow_factory, "user:alice:NXC", 2**64 + 5)

    code, out = _invoke("user", "status", "alice", "--coordinator", url)
    assert code == 0, out
    assert "not yet on the leaderboard" in out, "the start-up snapshot predates alice"
    _forget_snapshots(uow_factory)  # as if the hour had passed

    code, out = _invoke("user", "status", "alice", "--coordinator", url, "--json")
    assert code == 0, out
    status = UserStatus.model_validate_json(out)
    assert status.verified_flops == str(3 * BIG)
    assert status.ranking is not None and status.ranking.rank == 1
    assert [(b.asset, b.balance) for b in status.balances] == [
        ("NXC", str(2**64 + 5)),
        ("USDC", "0"),
        ("USD", "0"),
    ]
    code, out = _invoke("user", "status", "alice", "--coordinator", url)
    assert code == 0, out
    assert "rank 1 of 2" in out
    assert "18,446,744,073,709.551621 NXC" in out
    assert format_flops(3 * BIG) in out
    code, out = _invoke("user", "status", "nobody", "--coordinator", url)
    assert code == 1
    assert "registry.user_unknown" in out

    code, out = _invoke("leaderboard", "--coordinator", url, "--limit", "1", "--json")
    assert code == 0, out
    page = LeaderboardPage.model_validate_json(out)
    assert [(e.rank, e.username) for e in page.entries] == [(1, "alice")]
    code, out = _invoke("leaderboard", "--coordinator", url)
    assert code == 0, out
    assert out.index("alice") < out.index("bob")
    assert "2 contributors" in out

    code, out = _invoke("stats", "export", "--coordinator", url, "--out", str(tmp_path / "out"))
    assert code == 0, out
    assert "2 contributors" in out
    document = StatsExport.model_validate_json((tmp_path / "out" / "stats.json").read_bytes())
    assert document.snapshot.snapshot_id == page.snapshot.snapshot_id
    with (tmp_path / "out" / "stats.csv").open(newline="") as file:
        rows = list(csv.reader(file))
    assert tuple(rows[0]) == STATS_CSV_COLUMNS
    assert rows[1:] == [[str(v) for v in e.model_dump().values()] for e in document.entries]
    assert rows[1][:3] == ["1", "alice", str(3 * BIG)]
    assert (
        json.loads((tmp_path / "out" / "stats.json").read_text())["entries"][1]["username"] == "bob"
    )


def test_flops_read_with_three_figures_and_a_prefix() -> None:
    assert format_flops(0) == "0 FLOP"
    assert format_flops(999) == "999 FLOP"
    assert format_flops(1000) == "1 kFLOP"
    assert format_flops(1_234_567, "FLOP/s") == "1.23 MFLOP/s"
    assert format_flops(999_600_000) == "1,000 MFLOP"
    assert format_flops(3 * (2**63 - 1)) == "27.7 EFLOP"
    assert format_flops(10**27) == "1,000 YFLOP"
