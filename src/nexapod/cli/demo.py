"""``nexapod demo``: a coordinator and several sandboxed node agents build an atlas.

Everything is real: the coordinator and each node agent are separate processes that
talk over HTTP on 127.0.0.1, every unit runs in the sandbox, every request and result
is signed, and the store is the embedded SQLite database in the demo's directory. The
installed package is signed as a runner release with a release key made for the demo,
and the coordinator admits only that release (docs/releases.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from nexapod.cli._common import console, err_console, fail, reporting_errors
from nexapod.cli.demo_rewards import (
    DEMO_COORDINATOR_ENV,
    await_settlement,
    demo_policy,
    fund_demo_treasury,
    report_leaderboard,
    report_rewards,
)
from nexapod.cli.node import init_node, register_node
from nexapod.crypto import (
    ManifestVerdict,
    ReleaseManifest,
    SigningKey,
    package_root,
    package_tree_hash,
    parse_manifest_json,
    verify_manifest,
)
from nexapod.node.client import CoordinatorClient, Signer
from nexapod.node.home import NodeHome
from nexapod.protocol.v1 import JobView, SubmitJobRequest, SyntheticDataset

__all__ = ["demo"]

USERS = ("alice", "bob", "carol")
STARTUP_S_MAX = 60.0
DEFAULT_SPECTRA = 24_000
POLL_S = 0.25
LEDGER_WAIT_S_MAX = 10.0


@dataclass
class DemoProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


def demo(
    nodes: Annotated[int, typer.Option(help="Node agents to start.", min=1, max=32)] = 4,
    spectra: Annotated[
        int, typer.Option(help="Synthetic spectra in the atlas job.", min=2, max=2_000_000)
    ] = DEFAULT_SPECTRA,
    serve: Annotated[bool, typer.Option(help="Keep the coordinator up afterwards.")] = False,
    port: Annotated[int, typer.Option(help="Coordinator port (0: pick a free one).")] = 0,
    executor: Annotated[str, typer.Option(help="Sandbox of the nodes.")] = "bwrap",
    workdir: Annotated[
        Path | None, typer.Option(help="Directory for the store, keys and logs.")
    ] = None,
    timeout_s: Annotated[float, typer.Option(help="Give up after this long.", min=1)] = 1800,
) -> None:
    """Run an atlas job across node agents on this machine and show who computed what."""
    from nexapod.node.executors import make_executor

    with reporting_errors():
        sandbox = make_executor(executor)  # fails early, with what to do, when bwrap is missing
        warning = getattr(sandbox, "warning", None)
        if warning:
            err_console.print(f"[bold yellow]warning:[/bold yellow] {warning}")
        root = workdir or Path(tempfile.mkdtemp(prefix="nexapod-demo-"))
        root.mkdir(parents=True, exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        port = port or _free_port()
        url = f"http://127.0.0.1:{port}"
        processes: list[DemoProcess] = []
        try:
            console.print(f"[bold]NexaPod demo[/bold] in {root}", highlight=False)
            release_key, manifest_path, manifest = _make_release(root)
            policy_path = demo_policy(root)
            processes.append(
                _start_coordinator(root, port, release_key, manifest_path, policy_path)
            )
            _wait_healthy(url, processes[0])
            console.print(f"coordinator up at {url} (SQLite store in {root / 'coordinator'})")
            fund_demo_treasury(root)
            console.print(
                f"release enforcement on: runner release {manifest.version} (tree "
                f"{manifest.tree_hash[:16]}…, {len(manifest.files)} files) signed with the "
                "demo's release key",
                highlight=False,
            )
            node_ids = _register_nodes(root, url, nodes)
            for index, node_id in enumerate(node_ids):
                processes.append(_start_node(root, url, index, executor))
                del node_id
            job = _submit(root, url, spectra)
            console.print(
                f"job {job.job_id}: {job.n_items} spectra, {job.units_total} work units, "
                f"{job.work_flops_total / 1e12:.2f} TFLOP",
                highlight=False,
            )
            job = _follow(url, job, node_ids, processes, timeout_s)
            _report(url, job)
            report_rewards(url, await_settlement(url, job), USERS)
            report_leaderboard(url, job)
            _ledger(url)
            if serve:
                console.print(f"[bold]serving[/bold] at {url} (Ctrl-C to stop)")
                for proc in processes[1:]:
                    _stop(proc)
                processes[0].process.wait()
        finally:
            for proc in reversed(processes):
                _stop(proc)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(
    name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None
) -> DemoProcess:
    log = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=None if env is None else {**os.environ, **env},
    )
    return DemoProcess(name, process, log)


def _make_release(root: Path) -> tuple[SigningKey, Path, ReleaseManifest]:
    """A release key for this demo (kept in its directory) and the installed package signed."""
    import nexapod
    from nexapod.cli.release import sign_release_tree

    directory = root / "release"
    key_path = directory / "release.key"
    if key_path.exists():
        key = SigningKey.load(key_path)
    else:
        key = SigningKey.generate()
        key.save(key_path)
    manifest_path = directory / "manifest.json"
    if manifest_path.exists():  # a demo run again in its directory: the same release, if any
        earlier = parse_manifest_json(manifest_path.read_bytes())
        if (
            earlier.tree_hash == package_tree_hash()
            and verify_manifest(earlier, {key.public_key_b64}) is ManifestVerdict.OK
        ):
            return key, manifest_path, earlier
    manifest = sign_release_tree(
        key, package_root(), nexapod.__version__, manifest_path, int(time.time())
    )
    return key, manifest_path, manifest


def _start_coordinator(
    root: Path, port: int, release_key: SigningKey, manifest_path: Path, policy_path: Path
) -> DemoProcess:
    argv = [
        sys.executable,
        "-m",
        "nexapod",
        "coordinator",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(root / "coordinator"),
        "--release-key",
        release_key.public_key_b64,
        "--release-manifest",
        str(manifest_path),
    ]
    return _spawn(
        "coordinator",
        argv,
        root / "logs" / "coordinator.log",
        env={"NEXAPOD_POLICY_FILE": str(policy_path), **DEMO_COORDINATOR_ENV},
    )


def _start_node(root: Path, url: str, index: int, executor: str) -> DemoProcess:
    argv = [
        sys.executable,
        "-m",
        "nexapod",
        "node",
        "run",
        "--coordinator",
        url,
        "--home",
        str(root / f"node{index}"),
        "--executor",
        executor,
    ]
    return _spawn(f"node{index}", argv, root / "logs" / f"node{index}.log")


def _wait_healthy(url: str, coordinator: DemoProcess) -> None:
    deadline = time.monotonic() + STARTUP_S_MAX
    with CoordinatorClient(url, retries_max=0, timeout_s=2) as client:
        while time.monotonic() < deadline:
            if coordinator.process.poll() is not None:
                fail(f"the coordinator exited; see {coordinator.log.name}")
            try:
                client.health()
                return
            except Exception:
                time.sleep(0.2)
    fail(f"the coordinator did not answer within {STARTUP_S_MAX:g} s; see {coordinator.log.name}")


def _register_nodes(root: Path, url: str, count: int) -> list[str]:
    node_ids = []
    with console.status("registering nodes (each measures its capacity)…"):
        for index in range(count):
            home = NodeHome(root / f"node{index}")
            init_node(home, force=True, fingerprint_salt=f"demo-node-{index}")
            user = USERS[index % len(USERS)]
            node_id, capacity = register_node(home, url, user, root / "keys", benchmark_s=0.5)
            console.print(
                f"  node{index} {node_id[:12]} for {user}: {capacity / 1e9:.1f} GFLOP/s",
                highlight=False,
            )
            node_ids.append(node_id)
    return node_ids


def _submit(root: Path, url: str, spectra: int) -> JobView:
    key = SigningKey.load(root / "keys" / "users" / f"{USERS[0]}.key")
    request = SubmitJobRequest(
        workload="atlas",
        params={},
        dataset=SyntheticDataset(kind="synthetic", n_spectra=spectra, seed=7),
    )
    with (
        console.status(f"embedding {spectra} synthetic spectra and planning the job…"),
        CoordinatorClient(url, Signer(key, f"user:{USERS[0]}")) as client,
    ):
        return client.submit_job(request)


def _follow(
    url: str, job: JobView, node_ids: list[str], processes: list[DemoProcess], timeout_s: float
) -> JobView:
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    deadline = time.monotonic() + timeout_s
    with CoordinatorClient(url) as client, Progress(*columns, console=console) as progress:
        overall = progress.add_task("[bold]atlas job", total=job.units_total, info="")
        per_node = {
            node_id: progress.add_task(f"  node{i} {node_id[:8]}", total=job.units_total, info="")
            for i, node_id in enumerate(node_ids)
        }
        while job.status not in ("done", "failed"):
            if time.monotonic() > deadline:
                fail(f"the job did not finish in {timeout_s:g} s; logs are in the demo directory")
            for proc in processes:
                if proc.process.poll() is not None:
                    fail(f"{proc.name} exited early; see {proc.log.name}")
            time.sleep(POLL_S)
            job = client.get_job(job.job_id)
            status = (
                "merging the atlas…"
                if job.status == "merging"
                else (f"{job.work_flops_done / 1e12:.2f}/{job.work_flops_total / 1e12:.2f} TFLOP")
            )
            progress.update(overall, completed=job.units_done, info=status)
            for node in job.nodes:
                if node.node_id in per_node:
                    progress.update(
                        per_node[node.node_id],
                        completed=node.units_done,
                        info=f"{node.verified_flops / 1e12:.2f} TFLOP verified",
                    )
    if job.status == "failed":
        fail(f"the job failed ({job.units_failed} units failed); logs are in the demo directory")
    return job


def _report(url: str, job: JobView) -> None:
    assert job.started_at_ms is not None and job.finished_at_ms is not None
    wall_s = max(0.001, (job.finished_at_ms - job.started_at_ms) / 1000)
    table = Table(title="verified work per node")
    for column in ("node", "user", "units", "verified FLOPs", "compute s"):
        table.add_column(column, justify="right" if column != "user" else "left")
    for node in job.nodes:
        table.add_row(
            node.node_id[:12],
            node.username,
            str(node.units_done),
            f"{node.verified_flops:,}",
            f"{node.compute_ms / 1000:.1f}",
        )
    console.print(table)
    console.print(
        f"job wall time {wall_s:.1f} s, {job.work_flops_done:,} FLOPs verified, "
        f"achieved {job.work_flops_done / wall_s / 1e9:.1f} GFLOP/s across the mesh",
        highlight=False,
    )
    results = sum(node.units_done for node in job.nodes)
    console.print(
        f"validation: {results} valid results for {job.units_done} units "
        f"({results / max(job.units_done, 1):.2f} per unit: new nodes are checked by a "
        "replica on another user's node until they earn trust; docs/validation.md)",
        highlight=False,
    )
    sample = job.n_items // 2
    with CoordinatorClient(url) as client:
        neighbours = client.get_neighbours(job.job_id, sample)
    console.print(f"[bold]atlas sample:[/bold] spectrum {sample} and its nearest neighbours")
    for neighbour in neighbours.neighbours[:8]:
        console.print(
            f"  spectrum {neighbour.spectrum_index:>7}  cosine {neighbour.similarity}",
            highlight=False,
        )
    console.print(f"atlas product sha256 {job.product_sha256}", highlight=False)


def _ledger(url: str) -> None:
    """The ledger's newest signed checkpoint, and the independent verifier run on it."""
    from nexapod.ledger.note import parse_vkey
    from nexapod.ledger.verifier import HttpSource, LogVerificationError, verify_log

    source = HttpSource(url)
    deadline = time.monotonic() + LEDGER_WAIT_S_MAX
    while True:  # the coordinator signs its first checkpoint within a second of start
        response = source.try_get("/v1/ledger/log/checkpoint")
        if response.status_code == 200 or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    vkey = source.get("/v1/ledger/log/vkey").text.strip()
    console.print(f"[bold]ledger checkpoint[/bold] (verifier key {vkey}):", highlight=False)
    console.print(source.checkpoint().rstrip("\n"), highlight=False, markup=False)
    try:
        report = verify_log(source, parse_vkey(vkey))
    except LogVerificationError as exc:
        fail(f"the ledger did not verify: {exc}")
    finally:
        source.close()
    console.print(f"ledger verifier: {report.line()}", highlight=False, markup=False)


def _stop(proc: DemoProcess) -> None:
    if proc.process.poll() is None:
        proc.process.terminate()
        try:
            proc.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.process.kill()
            proc.process.wait(timeout=15)
    proc.log.close()
