"""Faults with real processes: a job finishes, identical to a fault-free run, counted once.

Each test runs a coordinator and three sandboxed node agents of three users (every unit
is replicated: nobody is trusted yet), and breaks something mid-job: a node killed with
SIGKILL, a node that hangs (SIGSTOP past its leases' deadlines, then SIGCONT), the
network between a node and the coordinator cut and restored, and the coordinator itself
killed with SIGKILL and restarted on the same store. The job must finish with a merged
atlas byte for byte equal to the fault-free run's, each unit counted once, and no node
credited twice for one unit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nexapod.cli.node import init_node, register_node
from nexapod.crypto import SigningKey
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.home import NodeHome
from nexapod.protocol.v1 import JobView, SubmitJobRequest, SyntheticDataset
from nexapod.workloads import atlas
from tests.processes import NO_SHARE_CAP_POLICY, CoordinatorProcess, wait_until
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

SEED = 5


@dataclass(frozen=True)
class JobShape:
    params: dict[str, int | str]
    n_spectra: int
    units: int


# 6 blocks: 21 units (tens of ms each), each computed by two users' nodes
STANDARD = JobShape({"block_size": 512, "k": 8, "embedding_dim": 512}, 3072, 21)
# 3 blocks: 6 units, the 3 off-diagonal ones about a second each, in 32 chunks
LONG = JobShape({"block_size": 3072, "k": 8, "embedding_dim": 1024}, 9216, 6)
USERS = ("alice", "bob", "carol")
# Short leases, so that lost work comes back within seconds; and units in 96-row chunks
# (the FLOPs of 96 rows of STANDARD's units: 512-row blocks in 6 chunks each, and LONG's
# 3072-row blocks, whose rows are 12 times the work, in chunks of the least, 96), with a
# checkpoint after each.
ENV = {
    "NEXAPOD_POLICY_FILE": str(NO_SHARE_CAP_POLICY),
    "NEXAPOD_LEASE_S_MIN": "3",
    "NEXAPOD_LEASE_S_MAX": "4",
    "NEXAPOD_CHECKPOINT_CHUNK_FLOPS": str(96 * 2 * 512 * 512),
}
JOB_S_MAX = 150


@dataclass
class Mesh:
    root: Path
    coordinator: CoordinatorProcess
    database: Path
    shape: JobShape
    homes: list[NodeHome] = field(default_factory=list)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    job_id: str = ""

    def start_node(self, index: int, url: str | None = None) -> subprocess.Popen[bytes]:
        log = (self.root / f"node{index}.log").open("ab")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nexapod",
                "node",
                "run",
                "--coordinator",
                url or self.coordinator.url,
                "--home",
                str(self.homes[index].root),
                "--executor",
                "bwrap",
                "--checkpoint-interval-s",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.nodes.append(process)
        return process

    def job(self) -> JobView:
        with CoordinatorClient(self.coordinator.url, retries_max=20) as client:
            return client.get_job(self.job_id)

    def wait_for(self, condition: Callable[[JobView], bool], what: str) -> JobView:
        def check() -> JobView | None:
            view = self.job()
            return view if condition(view) else None

        return wait_until(check, JOB_S_MAX, what)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


@contextmanager
def _mesh(tmp_path: Path, shape: JobShape = STANDARD) -> Iterator[Mesh]:
    """A coordinator, three registered nodes (not started) and a submitted job."""
    database = tmp_path / "coordinator.sqlite3"
    coordinator = CoordinatorProcess(f"sqlite:///{database}", tmp_path / "coordinator", env=ENV)
    mesh = Mesh(tmp_path, coordinator, database, shape)
    try:
        for index, user in enumerate(USERS):
            home = NodeHome(tmp_path / f"node{index}")
            init_node(home, fingerprint_salt=f"fault-{index}")
            register_node(home, coordinator.url, user, tmp_path / "keys", benchmark_s=0.2)
            mesh.homes.append(home)
        key = SigningKey.load(tmp_path / "keys" / "users" / "alice.key")
        request = SubmitJobRequest(
            workload="atlas",
            params=shape.params,
            dataset=SyntheticDataset(kind="synthetic", n_spectra=shape.n_spectra, seed=SEED),
        )
        with CoordinatorClient(coordinator.url, Signer(key, "user:alice")) as client:
            mesh.job_id = client.submit_job(request).job_id
        yield mesh
    finally:
        for process in mesh.nodes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(timeout=30)
        mesh.coordinator.stop()


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with _mesh(tmp_path) as built:
        yield built


def _finish(mesh: Mesh) -> JobView:
    try:
        done = mesh.wait_for(lambda v: v.status in ("done", "failed"), "the job to finish")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{mesh.logs()}") from None
    assert done.status == "done", mesh.logs()
    return done


def _check_counted_once(mesh: Mesh, done: JobView) -> None:
    shape = mesh.shape
    assert done.units_done == done.units_total == shape.units
    params = atlas.AtlasParams(**shape.params)
    assert done.work_flops_done == atlas.job_flops(shape.n_spectra, params)
    with sqlite3.connect(f"file:{mesh.database}?mode=ro", uri=True) as db:
        twice = db.execute(
            "SELECT unit_id, node_id, count(*) FROM results WHERE status = 'valid' "
            "GROUP BY unit_id, node_id HAVING count(*) > 1"
        ).fetchall()
        per_unit = db.execute(
            "SELECT count(DISTINCT unit_id) FROM results WHERE status = 'valid'"
        ).fetchone()
        credited = db.execute(
            "SELECT coalesce(sum(work_flops), 0) FROM results WHERE status = 'valid'"
        ).fetchone()
    assert twice == [], "a node is credited once per unit"
    assert per_unit == (shape.units,)
    assert sum(n.verified_flops for n in done.nodes) == credited[0]


@pytest.fixture(scope="module")
def fault_free_sha(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The product of the same job with nothing broken."""
    return _fault_free(tmp_path_factory.mktemp("fault-free"), STANDARD)


@pytest.fixture(scope="module")
def long_fault_free_sha(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _fault_free(tmp_path_factory.mktemp("long-fault-free"), LONG)


def _fault_free(root: Path, shape: JobShape) -> str:
    with _mesh(root, shape) as reference:
        for index in range(len(USERS)):
            reference.start_node(index)
        done = _finish(reference)
        _check_counted_once(reference, done)
        assert done.product_sha256 is not None
        return done.product_sha256


def _leases_lost(mesh: Mesh, index: int) -> int:
    """Leases of node ``index`` that ended without a result (the fault really hit work)."""
    node_id = mesh.homes[index].state()["node_id"]
    with sqlite3.connect(f"file:{mesh.database}?mode=ro", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM leases WHERE node_id = ? AND (status IN ('expired', 'failed')"
            " OR (status = 'active' AND deadline_at_ms < ?))",
            (node_id, time.time_ns() // 1_000_000),
        ).fetchone()
    return int(count)


def _holding(mesh: Mesh, index: int) -> bool:
    node_id = mesh.homes[index].state()["node_id"]
    with sqlite3.connect(f"file:{mesh.database}?mode=ro", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM leases WHERE node_id = ? AND status = 'active'", (node_id,)
        ).fetchone()
    return int(count) > 0


def _freeze_holding(
    mesh: Mesh, index: int, freeze: Callable[[], None], thaw: Callable[[], None]
) -> None:
    """Freeze node ``index`` (stop it, or cut its network) at a moment it holds a lease,
    checked after the freeze settled, so that the fault surely strands work."""
    for _ in range(50):
        wait_until(lambda: _holding(mesh, index), 30, f"node {index} to hold a lease")
        freeze()
        time.sleep(0.3)  # a request already at the coordinator finishes
        if _holding(mesh, index):
            return
        thaw()
    raise AssertionError(f"node {index} never held a lease when frozen\n{mesh.logs()}")


def _holding_checkpointed(mesh: Mesh, index: int) -> bool:
    """Node ``index`` holds a lease of which the coordinator keeps a checkpoint."""
    node_id = mesh.homes[index].state()["node_id"]
    with sqlite3.connect(f"file:{mesh.database}?mode=ro", uri=True) as db:
        (count,) = db.execute(
            "SELECT count(*) FROM leases l JOIN unit_checkpoints c ON c.lease_id = l.lease_id "
            "WHERE l.node_id = ? AND l.status = 'active'",
            (node_id,),
        ).fetchone()
    return int(count) > 0


def _progressed(view: JobView) -> bool:
    return sum(n.units_done for n in view.nodes) >= 2


def test_a_node_killed_mid_job(mesh: Mesh, fault_free_sha: str) -> None:
    victim = mesh.start_node(0)
    for index in (1, 2):
        mesh.start_node(index)
    mesh.wait_for(_progressed, "the first results")
    _freeze_holding(
        mesh,
        0,
        lambda: victim.send_signal(signal.SIGSTOP),
        lambda: victim.send_signal(signal.SIGCONT),
    )
    victim.kill()  # SIGKILL: its leases and the unit it runs are simply lost
    victim.wait(timeout=10)
    done = _finish(mesh)
    assert _leases_lost(mesh, 0) >= 1, "the killed node held work"
    assert done.product_sha256 == fault_free_sha
    _check_counted_once(mesh, done)


def test_a_node_that_hangs_past_its_deadlines(mesh: Mesh, fault_free_sha: str) -> None:
    for index in range(3):
        mesh.start_node(index)
    mesh.wait_for(_progressed, "the first results")
    hung = mesh.nodes[1]
    _freeze_holding(
        mesh, 1, lambda: hung.send_signal(signal.SIGSTOP), lambda: hung.send_signal(signal.SIGCONT)
    )
    time.sleep(6)  # its leases (at most 4 s) expire and go to the others
    hung.send_signal(signal.SIGCONT)  # its late results are refused, and it carries on
    done = _finish(mesh)
    assert _leases_lost(mesh, 1) >= 1, "the hung node's leases expired"
    assert done.product_sha256 == fault_free_sha
    _check_counted_once(mesh, done)
    assert hung.poll() is None, "a refused late result does not stop the node"


def test_the_network_between_a_node_and_the_coordinator_drops(
    mesh: Mesh, fault_free_sha: str
) -> None:
    with TcpProxy("127.0.0.1", mesh.coordinator.port) as proxy:
        cut_off = mesh.start_node(2, url=proxy.url)
        for index in (0, 1):
            mesh.start_node(index)
        mesh.wait_for(_progressed, "the first results")
        _freeze_holding(mesh, 2, proxy.cut, proxy.restore)
        time.sleep(6)
        proxy.restore()
        done = _finish(mesh)
        assert cut_off.poll() is None, "the node waits the outage out: " + mesh.logs()
    assert _leases_lost(mesh, 2) >= 1, "the cut-off node's leases expired"
    assert done.product_sha256 == fault_free_sha
    _check_counted_once(mesh, done)


def test_the_coordinator_killed_and_restarted_mid_job(mesh: Mesh, fault_free_sha: str) -> None:
    for index in range(3):
        mesh.start_node(index)
    mesh.wait_for(_progressed, "the first results")
    port = mesh.coordinator.port
    mesh.coordinator.kill()
    mesh.coordinator.stop()
    time.sleep(1)
    mesh.coordinator = CoordinatorProcess(
        f"sqlite:///{mesh.database}", mesh.root / "coordinator", env=ENV, port=port
    )
    done = _finish(mesh)
    assert done.product_sha256 == fault_free_sha
    _check_counted_once(mesh, done)
    assert all(node.poll() is None for node in mesh.nodes), mesh.logs()
    assert os.path.exists(mesh.database)


def test_a_unit_lost_mid_way_resumes_from_its_checkpoint_on_another_node(
    tmp_path: Path, long_fault_free_sha: str
) -> None:
    with _mesh(tmp_path, LONG) as mesh:
        _resume_after_kill(mesh, long_fault_free_sha)


def _resume_after_kill(mesh: Mesh, fault_free_sha: str) -> None:
    victim = mesh.start_node(0)  # alone at first: the others join once it is gone
    for _ in range(50):  # SIGKILL the node while it is half-way through a unit
        wait_until(lambda: _holding_checkpointed(mesh, 0), 60, "a checkpoint of a held lease")
        victim.send_signal(signal.SIGSTOP)
        time.sleep(0.3)
        if _holding_checkpointed(mesh, 0):
            break
        victim.send_signal(signal.SIGCONT)
    else:
        raise AssertionError("node 0 never held a checkpointed lease when stopped")
    victim.kill()
    victim.wait(timeout=10)
    for index in (1, 2):
        mesh.start_node(index)
    done = _finish(mesh)
    assert done.product_sha256 == fault_free_sha, "resumed work is bit for bit the same"
    _check_counted_once(mesh, done)
    with sqlite3.connect(f"file:{mesh.database}?mode=ro", uri=True) as db:
        resumed = db.execute(
            "SELECT l.lease_id, r.status FROM leases l JOIN results r ON r.lease_id = l.lease_id "
            "WHERE l.resumed_from IS NOT NULL"
        ).fetchall()
    assert resumed, "another node finished a unit from the killed node's checkpoint"
    assert {status for _, status in resumed} == {"valid"}
