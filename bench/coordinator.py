"""Coordinator throughput: simulated nodes lease and submit tiny units over real HTTP.

A real coordinator process (SQLite in a temporary directory, or --db URL) serves many
simulated nodes, each a thread in one of two load-generator processes. Every request
is signed and checked, every result is signed, checked, decoded and stored. Results
are computed before the clock starts, and the load generator is kept light (plain JSON
over httpx, no models), so it spends its time on HTTP and signatures: it shares the two
cores with the coordinator, and its CPU seconds are printed. Nodes lease and submit in
batches (--units-per-request), as a node with units this small would. The baseline,
measured in the same run against the same server with the same concurrency, is the
no-op endpoint GET /v1/health.

    python bench/coordinator.py [--units-per-request 32] [--nodes 16] [--spectra 2048]

Target (issue 3): >= 1,000 units/s on SQLite on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.factories import PROFILE  # noqa: E402

# What is measured is the mesh's own path; replication (quorum 2, docs/validation.md)
# would compute every unit twice by design, so it is off here.
NO_REPLICATION = {"NEXAPOD_VALIDATION_QUORUM": "1"}

from tests.processes import CoordinatorProcess  # noqa: E402

from nexapod.crypto import (  # noqa: E402
    SigningKey,
    b64encode,
    sha256_hex,
    sign_document,
    sign_request,
)
from nexapod.node.client import CoordinatorClient, Signer  # noqa: E402
from nexapod.node.home import node_registration, user_registration  # noqa: E402
from nexapod.protocol.v1 import (  # noqa: E402
    PURPOSE_RESULT,
    SubmitJobRequest,
    SyntheticDataset,
)
from nexapod.workloads import atlas  # noqa: E402

TARGET_UNITS_PER_S = 1000
# A phase during which other processes used more than this many cores is flagged.
OTHER_LOAD_MAX = 0.1
PARAMS: dict[str, int | str] = {"block_size": 16, "k": 4, "embedding_dim": 8}
# each unit's result: the SHA-256 and base64 of its bytes, computed before the clock starts
_RESULTS: dict[tuple[int, int], tuple[str, str]] = {}


def _precompute(n_spectra: int) -> None:
    params = atlas.AtlasParams(**PARAMS)
    embeddings = atlas.synthetic_embeddings(n_spectra, 5, params)
    for shape in atlas.plan_units(n_spectra, params.block_size):
        row = embeddings[shape.row_start : shape.row_stop]
        col = embeddings[shape.col_start : shape.col_stop]
        result = atlas.compute_unit(row, col, shape, params.k)
        data = atlas.encode_unit_result(result, shape)
        _RESULTS[(shape.block_row, shape.block_col)] = (sha256_hex(data), b64encode(data))


def _register(url: str, count: int) -> list[tuple[str, bytes]]:
    nodes = []
    with CoordinatorClient(url) as client:
        user = SigningKey.generate()
        client.register_user(user_registration("bench", user))
        for index in range(count):
            key = SigningKey.generate()
            state = {
                "public_key": key.public_key_b64,
                "profile": PROFILE,
                "fingerprint": sha256_hex(str(index).encode()),
                "runner_tree_hash": "ab" * 32,
            }
            view = client.register_node(node_registration(state, key, "bench", user, 10**12))
            nodes.append((view.node_id, key.seed()))
    return nodes, user  # type: ignore[return-value]


def _post(client: httpx.Client, key: SigningKey, key_id: str, path: str, body: bytes) -> Any:
    """A signed POST, its JSON answer (raises on an error status)."""
    signature = sign_request(
        key, key_id=key_id, method="POST", path=path, body=body, timestamp_s=int(time.time())
    )
    headers = {"content-type": "application/json", **signature.headers()}
    response = client.post(path, content=body, headers=headers)
    response.raise_for_status()
    return response.json()


def _node_loop(url: str, node_id: str, seed: bytes, units_per_request: int, counter: Any) -> None:
    """One simulated node, kept light (plain JSON, no models): what it costs is the load
    generator's, on the same two cores as the coordinator. Every lease request and every
    result is still signed, as a node signs them."""
    key = SigningKey.from_seed(seed)
    key_id = f"node:{node_id}"
    lease_body = json.dumps({"units_max": units_per_request}).encode()
    with httpx.Client(base_url=url, timeout=120) as client:
        while True:
            grants = _post(client, key, key_id, "/v1/leases", lease_body)["leases"]
            if not grants:
                return
            items = []
            for grant in grants:
                shape = grant["unit_spec"]["shape"]
                data_sha256, data_b64 = _RESULTS[(shape["block_row"], shape["block_col"])]
                document = {
                    "node_id": node_id,
                    "job_id": grant["job_id"],
                    "unit_id": grant["unit_id"],
                    "lease_id": grant["lease_id"],
                    "result_sha256": data_sha256,
                    "runner_tree_hash": "ab" * 32,
                    "compute_ms": 1,
                }
                signature = sign_document(key, PURPOSE_RESULT, document)
                items.append({"document": document, "signature": signature, "result_b64": data_b64})
            body = json.dumps({"results": items}).encode()
            acks = _post(client, key, key_id, "/v1/results", body)["acks"]
            assert len(acks) == len(items)
            with counter.get_lock():
                counter.value += len(items)


def _worker(url: str, nodes: list[tuple[str, bytes]], units_per_request: int, counter: Any) -> None:
    threads = [
        threading.Thread(target=_node_loop, args=(url, n, s, units_per_request, counter))
        for n, s in nodes
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _noop_worker(url: str, threads_count: int, duration_s: float, counter: Any) -> None:
    def loop() -> None:
        deadline = time.monotonic() + duration_s
        with httpx.Client(base_url=url, timeout=30) as client:
            while time.monotonic() < deadline:
                client.get("/v1/health").raise_for_status()
                with counter.get_lock():
                    counter.value += 1

    threads = [threading.Thread(target=loop) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a live process and its live descendants (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        pending += [int(child) for child in children]
    return total


def _busy_s() -> float:
    """CPU seconds all processes of the machine have used (Linux /proc/stat)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


@dataclass(frozen=True)
class _Phase:
    """One timed phase: its wall time and who used the CPU meanwhile (seconds)."""

    wall_s: float
    coordinator_cpu_s: float
    generator_cpu_s: float
    other_cpu_s: float


def _run_processes(target: Any, args_per_process: list[tuple[Any, ...]], server_pid: int) -> _Phase:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    coordinator_s, busy_s = _tree_cpu_s(server_pid), _busy_s()
    started = time.perf_counter()
    processes = [multiprocessing.Process(target=target, args=args) for args in args_per_process]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        assert process.exitcode == 0, "a load generator failed"
    wall_s = time.perf_counter() - started
    coordinator_s = _tree_cpu_s(server_pid) - coordinator_s
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    generator_s = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    other_s = max(0.0, _busy_s() - busy_s - coordinator_s - generator_s)
    return _Phase(wall_s, coordinator_s, generator_s, other_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: SQLite in a temporary directory)")
    parser.add_argument("--spectra", type=int, default=2048)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--units-per-request", type=int, default=64)
    parser.add_argument("--processes", type=int, default=2, help="load-generator processes")
    parser.add_argument("--workers", type=int, default=2, help="coordinator worker processes")
    args = parser.parse_args()
    multiprocessing.set_start_method("fork")
    _precompute(args.spectra)
    with tempfile.TemporaryDirectory() as scratch:
        db = args.db or f"sqlite:///{scratch}/bench.sqlite3"
        server = CoordinatorProcess(
            db, Path(scratch) / "coordinator", workers=args.workers, env=NO_REPLICATION
        )
        try:
            nodes, user = _register(server.url, args.nodes)
            request = SubmitJobRequest(
                workload="atlas",
                params=PARAMS,
                dataset=SyntheticDataset(kind="synthetic", n_spectra=args.spectra, seed=5),
            )
            with CoordinatorClient(server.url, Signer(user, "user:bench")) as client:
                job = client.submit_job(request)
            counter = multiprocessing.Value("q", 0)
            shares = [nodes[i :: args.processes] for i in range(args.processes)]
            work = _run_processes(
                _worker,
                [(server.url, share, args.units_per_request, counter) for share in shares],
                server.process.pid,
            )
            elapsed_s = work.wall_s
            with CoordinatorClient(server.url) as client:
                view = client.get_job(job.job_id)
            assert view.units_done == view.units_total == counter.value, "every unit counted once"
            units_per_s = view.units_total / elapsed_s
            requests_per_s = 2 * view.units_total / args.units_per_request / elapsed_s

            noop_counter = multiprocessing.Value("q", 0)
            noop = _run_processes(
                _noop_worker,
                [(server.url, len(share), min(elapsed_s, 10.0), noop_counter) for share in shares],
                server.process.pid,
            )
            noop_per_s = noop_counter.value / noop.wall_s
        finally:
            server.stop()
    print(
        f"coordinator benchmark ({'SQLite' if not args.db else args.db.split(':')[0]}, "
        f"{args.workers} coordinator workers, "
        f"{args.nodes} simulated nodes in {args.processes} processes, "
        f"{args.units_per_request} units per request)"
    )
    print(f"  units leased, signed, verified and stored: {view.units_total} in {elapsed_s:.2f} s")
    print(
        f"  throughput:              {units_per_s:10,.0f} units/s   (target >= "
        f"{TARGET_UNITS_PER_S:,}: {'PASS' if units_per_s >= TARGET_UNITS_PER_S else 'MISS'})"
    )
    print(f"  lease+result requests:   {requests_per_s:10,.0f} requests/s")
    print(f"  baseline no-op GET /v1/health: {noop_per_s:10,.0f} requests/s")
    print(f"  ratio, unit requests to no-op requests: {requests_per_s / noop_per_s:.2f}")
    print(f"  ratio, units to no-op requests:         {units_per_s / noop_per_s:.2f}")
    units = view.units_total
    print(
        f"  CPU per unit: coordinator {work.coordinator_cpu_s / units * 1e3:.3f} ms, "
        f"load generator {work.generator_cpu_s / units * 1e3:.3f} ms"
    )
    for name, phase in (("units", work), ("no-op", noop)):
        other_cores = phase.other_cpu_s / phase.wall_s
        flag = "  (unreliable: the machine was shared)" if other_cores > OTHER_LOAD_MAX else ""
        print(f"  other processes during the {name} phase: {other_cores:.2f} cores{flag}")


if __name__ == "__main__":
    main()
