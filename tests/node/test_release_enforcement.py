"""Signed releases end to end: a coordinator process enforcing them, node agents checking
themselves, and `nexapod node run` refusing a modified runner (real processes, real HTTP)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from nexapod.cli.node import init_node, register_node
from nexapod.crypto import (
    ReleaseManifest,
    SigningKey,
    format_manifest,
    package_root,
    package_tree_hash,
)
from nexapod.errors import NodeError
from nexapod.node.agent import AgentConfig, NodeAgent
from nexapod.node.cache import BlockCache
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.executors import make_executor
from nexapod.node.home import NodeHome
from nexapod.node.release_check import RunnerRelease, obtain_release
from nexapod.protocol.v1 import LeaseGrant, SubmitJobRequest, SyntheticDataset
from tests.factories import copy_package, sign_tree
from tests.processes import CoordinatorProcess, free_port

pytestmark = pytest.mark.slow
MIB = 1 << 20


@dataclass(frozen=True)
class World:
    """A coordinator trusting one release key, with two releases published at start-up:
    the installed package and a copy of it (one file more), which tests may tamper with."""

    coordinator: CoordinatorProcess
    key: SigningKey
    copy_root: Path
    copy_manifest: ReleaseManifest
    manifests_dir: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    key = SigningKey.generate()
    copy_root = copy_package(tmp_path / "site" / "nexapod")
    (copy_root / "COPY.txt").write_text("a copy of the release, for tests\n")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    installed = sign_tree(key, package_root(), "installed")
    copy_manifest = sign_tree(key, copy_root, "copy")
    (manifests / "installed.json").write_bytes(format_manifest(installed))
    (manifests / "copy.json").write_bytes(format_manifest(copy_manifest))
    coordinator = CoordinatorProcess(
        f"sqlite:///{tmp_path}/c.sqlite3",
        tmp_path / "coordinator",
        extra_args=[
            "--release-key",
            key.public_key_b64,
            "--release-manifest",
            str(manifests / "installed.json"),
            "--release-manifest",
            str(manifests / "copy.json"),
        ],
    )
    try:
        yield World(coordinator, key, copy_root, copy_manifest, manifests)
    finally:
        coordinator.stop()


def _nexapod(
    *args: str, cwd: Path, pythonpath: Path | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "nexapod", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_the_coordinator_published_both_releases_and_enforces(world: World) -> None:
    listing = httpx.get(f"{world.coordinator.url}/v1/releases", timeout=10).json()
    assert listing["enforced"] is True
    assert listing["release_public_keys"] == [world.key.public_key_b64]
    assert {r["version"] for r in listing["releases"]} == {"installed", "copy"}
    assert "release enforcement on" in world.coordinator.log_path.read_text()


def test_node_run_refuses_a_modified_runner_tree(world: World, tmp_path: Path) -> None:
    """`nexapod node run` from a copy of the package: it runs as the release, and refuses
    to run once one of its files changes, naming the file; a re-registration of the
    modified runner is refused by the coordinator."""
    site = world.copy_root.parent
    url = world.coordinator.url
    home = ["--home", str(tmp_path / "node")]
    probe = subprocess.run(
        [sys.executable, "-c", "import nexapod; print(nexapod.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=60,
    )
    assert probe.stdout.strip() == str(world.copy_root / "__init__.py")

    init = _nexapod("node", "init", *home, "--fingerprint-salt", "release-test", cwd=tmp_path,
                    pythonpath=site)  # fmt: skip
    assert init.returncode == 0, init.stderr
    register = _nexapod(
        "node", "register", "--coordinator", url, "--user", "alice", *home,
        "--keys-dir", str(tmp_path / "keys"), "--benchmark-s", "0.1",
        cwd=tmp_path, pythonpath=site,
    )  # fmt: skip
    assert register.returncode == 0, register.stderr
    run = ["node", "run", "--coordinator", url, *home, "--executor", "process"]
    ok = _nexapod(*run, "--idle-exit-s", "0.5", cwd=tmp_path, pythonpath=site)
    assert ok.returncode == 0, ok.stderr
    assert "runner is release copy" in ok.stdout
    assert "checked against its signed manifest" in ok.stdout

    with (world.copy_root / "node" / "agent.py").open("a") as file:
        file.write("\n# an operator's local patch\n")
    refused = _nexapod(*run, "--idle-exit-s", "0.5", cwd=tmp_path, pythonpath=site)
    assert refused.returncode == 1
    assert "node.runner_modified" in refused.stderr
    assert "changed: node/agent.py" in refused.stderr
    assert "running for" not in refused.stdout, "nothing ran"

    again = _nexapod(
        "node", "register", "--coordinator", url, "--user", "alice", *home,
        "--keys-dir", str(tmp_path / "keys"), "--benchmark-s", "0.1",
        cwd=tmp_path, pythonpath=site,
    )  # fmt: skip
    assert again.returncode == 1
    assert "registry.runner_not_released" in again.stderr
    assert "install a signed release" in again.stderr


def test_the_node_verifies_the_manifest_it_is_given(world: World, tmp_path: Path) -> None:
    url = world.coordinator.url
    copy_hash = world.copy_manifest.tree_hash
    with CoordinatorClient(url) as client:
        setup = obtain_release(client, root=world.copy_root, runner_tree_hash=copy_hash)
        assert setup.release is not None
        assert setup.release.manifest == world.copy_manifest

        stranger = sign_tree(SigningKey.generate(), world.copy_root, "stranger")
        path = tmp_path / "stranger.json"
        path.write_bytes(format_manifest(stranger))
        with pytest.raises(NodeError) as unknown:
            obtain_release(
                client,
                root=world.copy_root,
                runner_tree_hash=copy_hash,
                manifest_path=path,
                release_keys=[world.key.public_key_b64],
            )
        assert unknown.value.code == "node.release_key_unknown"

        with pytest.raises(NodeError) as mismatch:
            obtain_release(
                client,
                root=world.copy_root,
                runner_tree_hash=copy_hash,
                manifest_path=world.manifests_dir / "installed.json",
            )
        assert mismatch.value.code == "node.release_mismatch"
        assert "nexapod node register" in mismatch.value.detail

        with pytest.raises(NodeError) as unreleased:
            obtain_release(client, root=world.copy_root, runner_tree_hash="12" * 32)
        assert unreleased.value.code == "node.runner_not_released"


def test_a_workload_modified_mid_session_stops_the_node(world: World, tmp_path: Path) -> None:
    """The first unit runs; the workload changes while it runs; the next one is not run,
    goes back to the queue, and the agent stops with the file named."""
    url = world.coordinator.url
    home = NodeHome(tmp_path / "node")
    init_node(home, fingerprint_salt="mid-session")
    node_id, _ = register_node(home, url, "alice", tmp_path / "keys", benchmark_s=0.2)
    assert home.state()["runner_tree_hash"] == package_tree_hash()
    key = home.key()
    kernel = world.copy_root / "workloads" / "atlas" / "_kernel.py"
    commands: list[int] = []

    def unit_command(grant: LeaseGrant, _scratch: Path) -> list[str]:
        commands.append(grant.unit_id)
        kernel.write_bytes(kernel.read_bytes() + b"\n# changed while a unit runs\n")
        return [sys.executable, "-c", "pass"]  # no result: this unit fails and is reported

    user_key = SigningKey.load(tmp_path / "keys" / "users" / "alice.key")
    request = SubmitJobRequest(
        workload="atlas",
        params={"block_size": 64, "k": 4, "embedding_dim": 64},
        dataset=SyntheticDataset(kind="synthetic", n_spectra=100, seed=1),
    )
    with CoordinatorClient(url, Signer(user_key, "user:alice")) as client:
        job_id = client.submit_job(request).job_id
    agent = NodeAgent(
        node_id=node_id,
        key=key,
        runner_tree_hash=home.state()["runner_tree_hash"],
        client=CoordinatorClient(url, Signer(key, f"node:{node_id}")),
        executor=make_executor("process"),
        scratch_root=home.scratch_dir,
        cache=BlockCache(home.block_cache_dir, 64 * MIB),
        config=AgentConfig(units_max=3, prefetch_units=0),
        unit_command=unit_command,
        release=RunnerRelease(world.copy_root, world.copy_manifest),
    )
    with pytest.raises(NodeError) as stopped:
        agent.run()
    agent.client.close()
    assert stopped.value.code == "node.workload_modified"
    assert "changed: workloads/atlas/_kernel.py" in stopped.value.detail
    assert len(commands) == 1, "only the unit leased before the change ran"
    with CoordinatorClient(url) as client:
        job = client.get_job(job_id)
    assert job.units_leased == 0, "both units went back to the queue"
    assert job.units_done == 0
    codes = sorted(failure.code for failure in job.recent_failures)
    assert codes == ["no_result", "workload_modified"]


def test_without_release_keys_the_node_warns_and_runs(tmp_path: Path) -> None:
    coordinator = CoordinatorProcess(f"sqlite:///{tmp_path}/c.sqlite3", tmp_path / "coordinator")
    try:
        assert "no release keys configured" in coordinator.log_path.read_text()
        with CoordinatorClient(coordinator.url) as client:
            setup = obtain_release(client, root=package_root(), runner_tree_hash="12" * 32)
            assert setup.release is None
            assert setup.warning is not None
            assert "does not enforce signed releases" in setup.warning
            with pytest.raises(NodeError) as refused:  # the operator asked for a check
                obtain_release(
                    client,
                    root=package_root(),
                    runner_tree_hash="12" * 32,
                    release_keys=[SigningKey.generate().public_key_b64],
                )
            assert refused.value.code == "node.runner_not_released"
    finally:
        coordinator.stop()


def test_serve_refuses_to_start_with_a_manifest_it_does_not_trust(tmp_path: Path) -> None:
    manifest = sign_tree(SigningKey.generate(), package_root(), "untrusted")
    path = tmp_path / "untrusted.json"
    path.write_bytes(format_manifest(manifest))
    result = _nexapod(
        "coordinator", "serve", "--data-dir", str(tmp_path / "data"),
        "--port", str(free_port()), "--release-manifest", str(path),
        cwd=tmp_path, timeout_s=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "registry.release_key_unknown" in result.stderr


def test_release_keys_reach_every_worker(tmp_path: Path) -> None:
    key = SigningKey.generate()
    coordinator = CoordinatorProcess(
        f"sqlite:///{tmp_path}/c.sqlite3",
        tmp_path / "coordinator",
        workers=2,
        extra_args=["--release-key", key.public_key_b64],
    )
    try:
        for _ in range(6):  # new connections spread over both workers
            listing = httpx.get(f"{coordinator.url}/v1/releases", timeout=10).json()
            assert listing["enforced"] is True
            assert listing["release_public_keys"] == [key.public_key_b64]
    finally:
        coordinator.stop()
