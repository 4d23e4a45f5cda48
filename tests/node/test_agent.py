"""The node agent against a real coordinator: hostile units fail cleanly and are reported."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexapod.cli.node import init_node, register_node
from nexapod.crypto import SigningKey, sha256_hex
from nexapod.node.agent import AgentConfig, NodeAgent
from nexapod.node.cache import BlockCache
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.executors import make_executor
from nexapod.node.home import NodeHome
from nexapod.protocol.v1 import LeaseGrant, SubmitJobRequest, SyntheticDataset
from tests.processes import CoordinatorProcess

pytestmark = pytest.mark.slow
MIB = 1 << 20


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorProcess]:
    process = CoordinatorProcess(f"sqlite:///{tmp_path}/c.sqlite3", tmp_path / "coordinator")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP server on the host's loopback that records every connection it gets."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    seen: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            seen.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join(timeout=5)
    server.close()


def _agent(tmp_path: Path, url: str, command: list[str], memory_bytes_max: int) -> NodeAgent:
    home = NodeHome(tmp_path / "node")
    init_node(home, fingerprint_salt="agent-test")
    node_id, _ = register_node(home, url, "alice", tmp_path / "keys", benchmark_s=0.2)
    key = home.key()

    def unit_command(_grant: LeaseGrant, _scratch: Path) -> list[str]:
        return command

    home.inputs_dir.mkdir()
    return NodeAgent(
        node_id=node_id,
        key=key,
        runner_tree_hash=home.state()["runner_tree_hash"],
        client=CoordinatorClient(url, Signer(key, f"node:{node_id}")),
        executor=make_executor("bwrap", readable_dirs=[home.inputs_dir]),
        scratch_root=home.scratch_dir,
        cache=BlockCache(home.block_cache_dir, 64 * MIB),
        config=AgentConfig(units_max=1, prefetch_units=0, memory_bytes_max=memory_bytes_max),
        unit_command=unit_command,
        inputs_root=home.inputs_dir,
    )


def _submit(tmp_path: Path, url: str) -> str:
    key = SigningKey.load(tmp_path / "keys" / "users" / "alice.key")
    request = SubmitJobRequest(
        workload="atlas",
        params={"block_size": 64, "k": 4, "embedding_dim": 64},
        dataset=SyntheticDataset(kind="synthetic", n_spectra=100, seed=1),
    )
    with CoordinatorClient(url, Signer(key, "user:alice")) as client:
        return client.submit_job(request).job_id


@pytest.mark.parametrize(
    ("program", "code", "says"),
    [
        (
            "import socket; socket.create_connection(('127.0.0.1', {port}), timeout=3)",
            "failed",
            "Error",
        ),
        ("open('{outside}', 'w').write('escaped')", "failed", "Error"),
        ("import numpy; numpy.ones(1 << 30)", "memory", "memory"),
        ("open('in/block_row.npy', 'r+b').write(b'forged')", "failed", "read-only"),
    ],
    ids=["socket", "write-outside-scratch", "memory", "write-its-input"],
)
def test_hostile_unit_fails_cleanly_and_is_reported(
    coordinator: CoordinatorProcess,
    tmp_path: Path,
    listener: tuple[int, list[object]],
    program: str,
    code: str,
    says: str,
) -> None:
    port, connections = listener
    outside = tmp_path / "escaped.txt"
    command = [sys.executable, "-c", program.format(port=port, outside=outside)]
    agent = _agent(tmp_path, coordinator.url, command, memory_bytes_max=512 * MIB)
    job_id = _submit(tmp_path, coordinator.url)

    summary = agent.run()
    agent.client.close()

    assert summary.units_failed == 1
    assert summary.units_done == 0
    (event,) = summary.events
    assert event.kind == "failed"
    assert says.lower() in event.detail.lower()
    assert connections == []
    assert not outside.exists()
    cached = list((tmp_path / "node" / "cache" / "blocks").iterdir())
    assert cached, "the unit's block came through the cache"
    for block in cached:  # inputs are linked, not copied: the cache must be untouched
        assert sha256_hex(block.read_bytes()) == block.name
    with CoordinatorClient(coordinator.url) as client:
        job = client.get_job(job_id)
    assert job.status == "running"
    assert job.units_leased == 0, "the failed unit went back to the queue"
    (failure,) = job.recent_failures
    assert failure.code == code
    assert failure.node_id == agent.node_id
