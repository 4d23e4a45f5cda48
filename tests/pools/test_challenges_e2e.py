"""A real node agent, placed in cold, answers a real coordinator's challenges in time.

The coordinator runs two worker processes, so two maintenance loops issue challenges
side by side over one database (SQLite and PostgreSQL): each node still gets one per
slot, and never two open at once.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from nexapod.cli.node import init_node, register_node
from nexapod.node.home import NodeHome
from nexapod.pools import availability as pool_availability
from nexapod.pools.challenges import Availability
from nexapod.pools.store import ColdChallengeRow, PoolMemberRow
from nexapod.storage import make_engine, unit_of_work_factory
from tests.processes import CoordinatorProcess, wait_until

pytestmark = pytest.mark.slow

INTERVAL_S = 6
DEADLINE_S = 3
ENV = {
    "NEXAPOD_COLD_CHALLENGE_INTERVAL_S": str(INTERVAL_S),
    "NEXAPOD_COLD_CHALLENGE_DEADLINE_S": str(DEADLINE_S),
    "NEXAPOD_COLD_CHALLENGE_POLL_S": "1",
}
PASSED_WANTED = 2
WAIT_S_MAX = 90


def test_a_cold_node_agent_answers_challenges_in_time(database_url: str, tmp_path: Path) -> None:
    coordinator = CoordinatorProcess(database_url, tmp_path / "coordinator", workers=2, env=ENV)
    engine = make_engine(database_url)
    uow_factory = unit_of_work_factory(engine)
    node: subprocess.Popen[bytes] | None = None
    log_path = tmp_path / "node.log"
    try:
        home = NodeHome(tmp_path / "node")
        init_node(home, fingerprint_salt="cold-e2e")
        node_id, _ = register_node(home, coordinator.url, "alice", tmp_path / "keys", 0.2)
        with uow_factory() as uow:
            uow.session.add(
                PoolMemberRow(
                    node_id=node_id,
                    username="alice",
                    pool="cold",
                    reason="opt_in",
                    since_ms=0,
                    log_index=0,
                )
            )
            uow.commit()
        with log_path.open("wb") as log:
            node = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "nexapod",
                    "node",
                    "run",
                    "--coordinator",
                    coordinator.url,
                    "--home",
                    str(home.root),
                    "--executor",
                    "process",
                    "--log-level",
                    "INFO",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

        def passed() -> int | None:
            if node is not None and node.poll() is not None:
                raise AssertionError(f"the node exited:\n{log_path.read_text()}")
            rows = _challenges(uow_factory)
            count = sum(1 for row in rows if row.passed)
            return count if count >= PASSED_WANTED else None

        wait_until(passed, WAIT_S_MAX, f"{PASSED_WANTED} challenges passed")
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=30)
        rows = _challenges(uow_factory)
        assert {row.node_id for row in rows} == {node_id}
        decided = [row for row in rows if row.answered_at_ms is not None]
        assert all(row.passed for row in decided), rows  # every answer was right, in time
        last_deadline_ms = max(row.deadline_at_ms for row in decided)
        with uow_factory() as uow:
            figure = pool_availability.availability(uow.session, node_id, 0, last_deadline_ms + 1)
        assert figure.issued >= PASSED_WANTED
        assert figure == Availability(figure.issued, figure.issued), rows
        for before, after in itertools.pairwise(rows):
            closed_ms = min(before.answered_at_ms or before.deadline_at_ms, before.deadline_at_ms)
            assert after.issued_at_ms >= closed_ms, "two challenges were open at once"
            slots = (
                before.issued_at_ms // (INTERVAL_S * 1000),
                after.issued_at_ms // (INTERVAL_S * 1000),
            )
            assert slots[0] < slots[1], "two challenges in one slot"
        output = log_path.read_text()
        assert "challenge.answered" in output
        assert "liveness challenges answered" in output
    except BaseException:
        print(log_path.read_text() if log_path.exists() else "(no node log)")
        print(coordinator.log_path.read_text()[-5000:])
        raise
    finally:
        if node is not None and node.poll() is None:
            node.kill()
            node.wait(timeout=30)
        coordinator.stop()
        engine.dispose()


def _challenges(uow_factory: Any) -> list[Any]:
    with uow_factory() as uow:
        table = ColdChallengeRow.__table__
        return list(uow.session.execute(select(table).order_by(table.c.issued_at_ms)).all())
