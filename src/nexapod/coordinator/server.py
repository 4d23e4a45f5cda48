"""Serving the coordinator: one process, or several worker processes over one database.

One Python process tops out at one core (the GIL), so ``--workers N`` runs N worker
processes. Each binds its own listening socket on the same port with SO_REUSEPORT, and
the kernel spreads new connections evenly across them (a shared accept queue lets one
busy worker take most long-lived node connections). The schema is migrated once,
before any worker starts, so workers never race on a migration. Each worker builds its
app from the same ``NEXAPOD_*`` environment.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType
from typing import Any

import uvicorn

from nexapod.coordinator.app import create_app
from nexapod.coordinator.context import release_policy, system_clock_ms
from nexapod.ledger.log_key import ensure_log_key
from nexapod.protocol.v1 import ReleaseView
from nexapod.registry import releases
from nexapod.settings import Settings
from nexapod.storage import make_engine, migrate_to_head, unit_of_work_factory

__all__ = ["YOUNG_OBJECTS_MAX", "publish_releases", "run_worker", "serve", "tune_collector"]

WORKER_STOP_S_MAX = 30.0


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


YOUNG_OBJECTS_MAX = 50_000
"""Allocations between two collections of the youngest generation (Python's default is
700): more than one ledger batch makes, so a batch's objects mostly die before any
collection sees them, instead of being walked by dozens of young collections each."""


def tune_collector() -> None:
    """Set the garbage collector up for a long-running serving process.

    First, everything that exists once the app is built (modules, the app, table
    metadata and settings: some 300,000 objects) lives as long as the process, and is
    frozen: no full collection walks it again. A ledger batch leaves thousands of
    tracked objects behind (its results are named tuples, which the collector never
    untracks), which triggered a full collection every few batches, each walking the whole
    heap for 120 to 200 ms on the benchmark machine. Then the youngest generation may
    grow to :data:`YOUNG_OBJECTS_MAX` objects. Together they took the collector's time in
    a stream of ledger batches from about 3 us a transfer to nothing measurable
    (bench/README.md).

    Only a process that serves calls this: in a test process, freezing would keep every
    earlier test's garbage alive.
    """
    gc.collect()  # what is garbage already is not frozen
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_OBJECTS_MAX, older, oldest)


def run_worker(settings: Settings, *, host: str, port: int, log_level: str) -> None:
    """One worker: its own SO_REUSEPORT socket, the app without migrations."""
    sock = _listening_socket(host, port)
    config = uvicorn.Config(
        create_app(settings, migrate=False), log_level=log_level, access_log=False
    )
    tune_collector()
    uvicorn.Server(config).run(sockets=[sock])


def publish_releases(
    settings: Settings, manifests: Sequence[Mapping[str, Any]]
) -> list[tuple[ReleaseView, bool]]:
    """Publish signed release manifests before serving (``serve --release-manifest``).

    Each goes through the same use case as ``POST /v1/releases``, so a manifest the
    configured keys do not vouch for stops the start-up with the same error code.
    """
    engine = make_engine(settings.resolved_database_url())
    try:
        migrate_to_head(engine)
        uow_factory = unit_of_work_factory(engine)
        policy = release_policy(settings)
        published = []
        for manifest in manifests:
            with uow_factory() as uow:
                published.append(releases.publish_release(uow, manifest, policy, system_clock_ms()))
    finally:
        engine.dispose()
    assert len(published) == len(manifests)
    return published


def serve(settings: Settings, *, host: str, port: int, workers: int, log_level: str) -> None:
    """Migrate, then serve until interrupted."""
    assert workers >= 1
    engine = make_engine(settings.resolved_database_url())
    migrate_to_head(engine)
    engine.dispose()
    ensure_log_key(settings.resolved_ledger_log_key_file())  # before workers load it
    if workers == 1:
        app = create_app(settings, migrate=False)
        tune_collector()
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    assert port != 0, "workers share one fixed port"
    environment = dict(os.environ)
    for name, value in settings.model_dump(exclude_none=True).items():
        # pydantic-settings reads lists from the environment as JSON
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        environment[f"NEXAPOD_{name.upper()}"] = text
    argv = [
        sys.executable,
        "-m",
        "nexapod",
        "coordinator",
        "worker",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        log_level,
    ]
    children = [subprocess.Popen(argv, env=environment) for _ in range(workers)]
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + WORKER_STOP_S_MAX
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    if not stopping:
        raise SystemExit("a coordinator worker exited; stopping the others")
