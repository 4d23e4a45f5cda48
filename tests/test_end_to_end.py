"""The whole mesh with real processes: a coordinator, two sandboxed node agents, the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nexapod.cli.node import init_node, register_node
from nexapod.crypto import SigningKey, sha256_hex
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.home import NodeHome
from nexapod.protocol.v1 import JobView, SubmitJobRequest, SyntheticDataset
from nexapod.workloads import atlas
from tests.processes import CoordinatorProcess, wait_until

pytestmark = pytest.mark.slow

PARAMS: dict[str, int | str] = {"block_size": 128, "k": 6, "embedding_dim": 256}
N_SPECTRA = 600  # 5 blocks, 15 units
SEED = 11


@pytest.fixture(params=[1, 2], ids=["1-worker", "2-workers"])
def coordinator(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[CoordinatorProcess]:
    """`nexapod coordinator serve`, alone or as two worker processes on one store."""
    process = CoordinatorProcess(database_url, tmp_path / "coordinator", workers=request.param)
    try:
        yield process
    finally:
        process.stop()


def _node(tmp_path: Path, url: str, index: int, user: str) -> tuple[NodeHome, str]:
    home = NodeHome(tmp_path / f"node{index}")
    init_node(home, fingerprint_salt=f"test-{index}")
    node_id, capacity = register_node(home, url, user, tmp_path / "keys", benchmark_s=0.2)
    assert capacity > 0
    return home, node_id


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nexapod", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_atlas_job_across_sandboxed_node_processes(
    coordinator: CoordinatorProcess, tmp_path: Path
) -> None:
    url = coordinator.url
    homes = [_node(tmp_path, url, 0, "alice"), _node(tmp_path, url, 1, "bob")]
    key = SigningKey.load(tmp_path / "keys" / "users" / "alice.key")
    request = SubmitJobRequest(
        workload="atlas",
        params=PARAMS,
        dataset=SyntheticDataset(kind="synthetic", n_spectra=N_SPECTRA, seed=SEED),
    )
    with CoordinatorClient(url, Signer(key, "user:alice")) as client:
        job = client.submit_job(request)
    assert job.units_total == 15

    logs = [(tmp_path / f"node{i}.log").open("w") for i in range(2)]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nexapod",
                "node",
                "run",
                "--coordinator",
                url,
                "--home",
                str(home.root),
                "--executor",
                "bwrap",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        for (home, _), log in zip(homes, logs, strict=True)
    ]
    try:
        with CoordinatorClient(url) as client:

            def finished() -> JobView | None:
                for process in nodes:
                    assert process.poll() is None, (tmp_path / "node0.log").read_text() + (
                        tmp_path / "node1.log"
                    ).read_text()
                view = client.get_job(job.job_id)
                return view if view.status in ("done", "failed") else None

            done = wait_until(finished, 180, "the job to finish")
    finally:
        for process in nodes:
            process.terminate()
        for process in nodes:
            process.wait(timeout=30)
        for log in logs:
            log.close()
    assert done.status == "done", (tmp_path / "node0.log").read_text()
    assert done.units_done == 15
    assert done.work_flops_done == atlas.job_flops(N_SPECTRA, atlas.AtlasParams(**PARAMS))
    # Two new nodes of two users: every unit is checked (no trust yet), so both compute
    # every unit, agree, and are both credited (docs/validation.md).
    assert [n.verified_flops for n in done.nodes] == [done.work_flops_done] * 2
    assert [n.units_done for n in done.nodes] == [15, 15]
    for process in nodes:
        assert process.returncode == 0, "SIGTERM stops a node cleanly"
    # no request failed on the coordinator's side (two nodes' replicas of one job recorded
    # at once once deadlocked on PostgreSQL and were answered 500)
    assert "request.failed" not in coordinator.log_path.read_text()
    assert (
        "refused unit"
        not in (tmp_path / "node0.log").read_text() + (tmp_path / "node1.log").read_text()
    )
    node0_log = (tmp_path / "node0.log").read_text()
    assert "with the bwrap sandbox" in node0_log

    out = tmp_path / "atlas.npz"
    result = _cli("job", "result", job.job_id, "--coordinator", url, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sha256_hex(out.read_bytes()) == done.product_sha256
    graph = atlas.decode_graph(out.read_bytes())
    params = atlas.AtlasParams(**PARAMS)
    reference = atlas.brute_force_knn(atlas.synthetic_embeddings(N_SPECTRA, SEED, params), 6)
    np.testing.assert_allclose(graph.sims, reference.sims, atol=1e-5)

    # every result is a signed record anyone can check with the node's key
    records = _cli("job", "records", job.job_id, "--coordinator", url)
    assert records.returncode == 0, records.stderr
    assert "30 signed records verified, 30 valid" in records.stdout

    status = _cli("job", "status", job.job_id, "--coordinator", url)
    assert status.returncode == 0
    assert "done, 15/15 units done" in status.stdout

    unknown = _cli("job", "status", "0" * 32, "--coordinator", url)
    assert unknown.returncode == 1
    assert "mesh.job_unknown" in unknown.stderr
