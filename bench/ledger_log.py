"""The ledger's log at a million entries: verify it all from tiles, and inclusion proofs.

A SQLite ledger is filled with 1,000,000 logged transfers through ``ledger.service``
(batches of 5,000 between 1,000 funded users), integrated into tiles and a signed
checkpoint by the coordinator's own integrator, then served by a real coordinator process.

1. Verify: ``nexapod ledger verify --url`` in its own process (so its peak memory is its
   own): every entry bundle and tile over HTTP, every leaf and tile rebuilt, every
   transfer replayed, every balance compared. Printed: wall time and peak RSS. Baseline
   in the same run: one process that only reads the same entries from the database and
   SHA-256es them (the floor of any verifier that looks at every byte).
2. Inclusion proofs at the full size: ``log_service.inclusion_proof`` on random leaves
   (tiles read from the database, the proof built and encoded), p50 and p99; and the
   same over HTTP (one connection, sequential), for information.

    python bench/ledger_log.py [--entries 1000000]

Targets (issue 4): verify <= 60 s and <= 500 MB peak; inclusion proof p99 <= 2 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import CoordinatorProcess  # noqa: E402

from nexapod.ledger import service  # noqa: E402
from nexapod.ledger.integrator import integrate_pending  # noqa: E402
from nexapod.ledger.log_key import ensure_log_key, load_log_identity  # noqa: E402
from nexapod.ledger.log_service import inclusion_proof  # noqa: E402
from nexapod.ledger.rules import NewTransfer  # noqa: E402
from nexapod.registry.store import UserRow  # noqa: E402
from nexapod.settings import Settings  # noqa: E402
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory  # noqa: E402

TARGET_VERIFY_S = 60.0
TARGET_VERIFY_MB = 500.0
TARGET_PROOF_P99_MS = 2.0
USERS = 1000
BATCH = 5000
PROOFS = 2000


def _transfer_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(128) | 1:032x}"


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fill(settings: Settings, entries: int) -> None:
    """``entries`` log entries: USERS fundings, then transfers between the users."""
    engine = make_engine(settings.resolved_database_url())
    migrate_to_head(engine)
    uow_factory = unit_of_work_factory(engine)
    rng = random.Random(4)
    names = [f"user{i:04d}" for i in range(USERS)]
    with uow_factory() as uow:
        uow.session.execute(
            insert(UserRow),
            [
                {
                    "username": n,
                    "public_key": f"{n}-key",
                    "registration_document": "{}",
                    "registration_signature": "-",
                    "registration_sha256": "0" * 64,
                    "registered_at_ms": 0,
                }
                for n in names
            ],
        )
        uow.commit()
    now_ms = int(time.time() * 1000)
    funding = [
        NewTransfer(
            f"{rng.getrandbits(128) | 1:032x}", "system:issuance:NXC", f"user:{n}:NXC", 10**12
        )
        for n in names
    ]
    service.transfer(uow_factory, funding, now_ms)
    made = len(funding)
    started = time.perf_counter()
    while made < entries:
        count = min(BATCH, entries - made)
        batch = []
        for _ in range(count):
            debit, credit = rng.sample(names, 2)
            batch.append(
                NewTransfer(
                    _transfer_id(rng),
                    f"user:{debit}:NXC",
                    f"user:{credit}:NXC",
                    rng.randint(1, 1000),
                )
            )
        service.transfer(uow_factory, batch, now_ms)
        made += count
        if made % 100_000 < BATCH:
            rate = (made - USERS) / (time.perf_counter() - started)
            print(f"  filled {made:>9,} entries ({rate:,.0f} transfers/s)", flush=True)
    key_file = settings.resolved_ledger_log_key_file()
    ensure_log_key(key_file)
    identity = load_log_identity(key_file, settings.ledger_log_origin)
    started = time.perf_counter()
    while integrate_pending(uow_factory, identity, now_ms, 200_000) is not None:
        pass
    print(f"  integrated into tiles in {time.perf_counter() - started:.1f} s", flush=True)
    engine.dispose()


def baseline_s(settings: Settings, entries: int) -> tuple[float, float]:
    """Read every entry from the database and hash it: (seconds, peak MB)."""
    code = f"""
import hashlib, resource, sys, time
sys.path.insert(0, {str(ROOT)!r})
from sqlalchemy import select
from nexapod.ledger.store import LOG_ENTRIES
from nexapod.storage import make_engine
engine = make_engine({settings.resolved_database_url()!r})
started = time.perf_counter()
with engine.connect() as connection:
    result = connection.execution_options(stream_results=True, yield_per=10000).execute(
        select(LOG_ENTRIES.c.entry).order_by(LOG_ENTRIES.c.leaf_index))
    count = 0
    for (entry,) in result:
        hashlib.sha256(b"\\0" + entry).digest()
        count += 1
assert count == {entries}, count
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, peak_mb = out.stdout.split()
    return float(seconds), float(peak_mb)


def verify(url: str, vkey: str) -> tuple[float, float, str]:
    """``nexapod ledger verify --url`` in its own process: (seconds, its peak MB, last line)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "nexapod", "ledger", "verify", "--url", url, "--vkey", vkey],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    peak_mb = usage.ru_maxrss / 1024  # this process alone (kilobytes on Linux)
    line = (output.strip().splitlines() or ["(no output)"])[-1]
    assert process.returncode == 0, output
    return seconds, peak_mb, line


def proof_ms(settings: Settings, entries: int) -> list[float]:
    engine = make_engine(settings.resolved_database_url())
    uow_factory = unit_of_work_factory(engine, read_only=True)
    rng = random.Random(9)
    times = []
    for _ in range(PROOFS):
        leaf = rng.randrange(entries)
        started = time.perf_counter()
        with uow_factory() as uow:
            proof = inclusion_proof(uow.session, leaf, None)
        times.append((time.perf_counter() - started) * 1000)
        assert proof.tree_size == entries
    engine.dispose()
    return times


def http_proof_ms(url: str, entries: int) -> list[float]:
    rng = random.Random(10)
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(PROOFS // 4):
            leaf = rng.randrange(entries)
            started = time.perf_counter()
            response = client.get("/v1/ledger/proofs/inclusion", params={"leaf_index": leaf})
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch) / "coordinator"
        settings = Settings(data_dir=data_dir)
        print(f"ledger log: {args.entries:,} entries on SQLite", flush=True)
        fill(settings, args.entries)
        base_s, base_mb = baseline_s(settings, args.entries)
        print(f"  baseline, read + SHA-256 every entry: {base_s:6.1f} s  peak {base_mb:6.0f} MB")
        server = CoordinatorProcess(settings.resolved_database_url(), data_dir)
        try:
            vkey = httpx.get(f"{server.url}/v1/ledger/log/vkey").text.strip()
            seconds, peak_mb, line = verify(server.url, vkey)
            print(
                f"  verify over HTTP, whole log:         {seconds:6.1f} s  peak {peak_mb:6.0f} MB"
            )
            print(f"    {line}")
            print(
                f"    ratio verify/baseline time: {seconds / base_s:.1f}  (targets <= "
                f"{TARGET_VERIFY_S:.0f} s: {_verdict(seconds <= TARGET_VERIFY_S)}, "
                f"<= {TARGET_VERIFY_MB:.0f} MB: {_verdict(peak_mb <= TARGET_VERIFY_MB)})"
            )
            http_times = http_proof_ms(server.url, args.entries)
        finally:
            server.stop()
        times = proof_ms(settings, args.entries)
        p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
        print(
            f"  inclusion proof at {args.entries:,} (service, tiles from SQLite): "
            f"p50 {p50:.2f} ms  p99 {p99:.2f} ms  mean {statistics.mean(times):.2f} ms  "
            f"(target p99 <= {TARGET_PROOF_P99_MS} ms: "
            f"{_verdict(p99 <= TARGET_PROOF_P99_MS)})"
        )
        print(
            f"  inclusion proof over HTTP (one connection): p50 "
            f"{percentile(http_times, 0.5):.2f} ms  p99 {percentile(http_times, 0.99):.2f} ms"
        )


if __name__ == "__main__":
    main()
