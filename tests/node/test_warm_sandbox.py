"""The warm bubblewrap sandbox: one sandboxed worker fed units, with per-unit guarantees.

A test module (``hostile_unit``, written into the scratch root and put on PYTHONPATH)
does what its unit's ``mode.txt`` says, so each test drives the real worker in the real
sandbox through ``BwrapExecutor.run_module``.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nexapod.node.executors import BwrapExecutor, ExecutionOutcome, ExecutionResult, SandboxLimits
from nexapod.node.executors._warm import WarmWorker
from nexapod.workloads import atlas
from nexapod.workloads.atlas._unitio import write_unit_input

GIB = 1024**3
LIMITS = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=20, wall_s_max=30.0)

HOSTILE = """
import os, signal, socket, sys, time
calls = 0  # module state: survives between units only in a reused process

def main(argv):
    global calls
    calls += 1
    scratch = argv[0]
    mode = open(os.path.join(scratch, "mode.txt")).read().strip()
    out = os.path.join(scratch, "out.txt")
    if mode == "ok":
        open(out, "w").write(f"{calls} {os.getpid()}")
        return 0
    if mode == "exit7":
        print("giving up", file=sys.stderr)
        return 7
    if mode == "alloc":
        blob = bytearray(4 * 1024**3)
        return 0
    if mode == "spin":
        while True:
            pass
    if mode == "sleep":
        time.sleep(3600)
    if mode == "socket":
        socket.create_connection(("1.1.1.1", 53), timeout=2)
        return 0
    if mode == "write_home":
        open("/root/nexapod-escape.txt", "w").write("x")
        return 0
    if mode == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if mode == "print":
        print("a unit printing to stdout must not break the protocol")
        open(out, "w").write("printed")
        return 0
    raise ValueError(f"unknown mode {mode}")
"""


@pytest.fixture()
def bwrap() -> Iterator[BwrapExecutor]:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    executor = BwrapExecutor()
    try:
        yield executor
    finally:
        executor.close()


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A node's scratch root with the hostile module in it."""
    path = tmp_path / "scratch"
    (path / "lib").mkdir(parents=True)
    (path / "lib" / "hostile_unit.py").write_text(textwrap.dedent(HOSTILE))
    return path


def run(
    executor: BwrapExecutor,
    root: Path,
    mode: str,
    *,
    limits: SandboxLimits = LIMITS,
    name: str | None = None,
    env_extra: dict[str, str] | None = None,
) -> tuple[ExecutionResult, Path]:
    scratch = root / (name or mode)
    scratch.mkdir()
    (scratch / "mode.txt").write_text(mode)
    env = {"PYTHONPATH": str(root / "lib"), **(env_extra or {})}
    return executor.run_module("hostile_unit", scratch, limits, env), scratch


def current_worker(executor: BwrapExecutor) -> WarmWorker | None:
    return executor._worker


def test_units_reuse_one_sandboxed_process(bwrap: BwrapExecutor, root: Path) -> None:
    first, scratch1 = run(bwrap, root, "ok", name="a")
    second, scratch2 = run(bwrap, root, "ok", name="b")
    assert first.outcome == second.outcome == ExecutionOutcome.OK
    calls1, pid1 = (scratch1 / "out.txt").read_text().split()
    calls2, pid2 = (scratch2 / "out.txt").read_text().split()
    assert (calls1, calls2) == ("1", "2")  # the module stayed loaded
    assert pid1 == pid2
    worker = current_worker(bwrap)
    assert worker is not None and worker.units_run == 2


def test_a_failed_unit_retires_the_worker(bwrap: BwrapExecutor, root: Path) -> None:
    run(bwrap, root, "ok", name="before")
    failed, _ = run(bwrap, root, "exit7")
    assert failed.outcome == ExecutionOutcome.FAILED
    assert failed.exit_code == 7
    assert "giving up" in failed.stderr_tail
    after, scratch = run(bwrap, root, "ok", name="after")
    assert after.outcome == ExecutionOutcome.OK
    assert (scratch / "out.txt").read_text().split()[0] == "1"  # a fresh process


def test_wall_clock_kills_the_sandbox_and_the_next_unit_gets_a_new_one(
    bwrap: BwrapExecutor, root: Path
) -> None:
    run(bwrap, root, "ok", name="before")
    old = current_worker(bwrap)
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=20, wall_s_max=1.5)
    result, _ = run(bwrap, root, "sleep", limits=limits)
    assert result.outcome == ExecutionOutcome.TIMEOUT
    assert 1.5 <= result.wall_s < 10
    assert old is not None and not old.alive
    after, scratch = run(bwrap, root, "ok", name="after")
    assert after.outcome == ExecutionOutcome.OK
    assert (scratch / "out.txt").read_text().split()[0] == "1"


def test_cpu_time_limit_is_per_unit(bwrap: BwrapExecutor, root: Path) -> None:
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=1, wall_s_max=20.0)
    for index in range(3):  # earlier units' CPU time is not charged to the next
        ok, _ = run(bwrap, root, "ok", limits=limits, name=f"ok{index}")
        assert ok.outcome == ExecutionOutcome.OK
    result, _ = run(bwrap, root, "spin", limits=limits)
    assert result.outcome == ExecutionOutcome.CPU_TIME
    assert result.wall_s < 10


def test_memory_limit(bwrap: BwrapExecutor, root: Path) -> None:
    result, _ = run(bwrap, root, "alloc")
    assert result.outcome == ExecutionOutcome.MEMORY
    worker = current_worker(bwrap)
    assert worker is not None and not worker.alive  # retired: its heap may be in any state


def test_no_network_and_nothing_writable_outside_the_scratch_root(
    bwrap: BwrapExecutor, root: Path
) -> None:
    network, _ = run(bwrap, root, "socket")
    assert network.outcome == ExecutionOutcome.FAILED
    assert "OSError" in network.stderr_tail or "Network is unreachable" in network.stderr_tail
    escape, _ = run(bwrap, root, "write_home")
    assert escape.outcome == ExecutionOutcome.FAILED
    assert not Path("/root/nexapod-escape.txt").exists()


def test_a_crash_is_a_failure_with_its_signal(bwrap: BwrapExecutor, root: Path) -> None:
    result, _ = run(bwrap, root, "segfault")
    assert result.outcome == ExecutionOutcome.FAILED
    assert result.signal_number == 11


def test_stdout_of_a_unit_does_not_reach_the_protocol(bwrap: BwrapExecutor, root: Path) -> None:
    result, scratch = run(bwrap, root, "print")
    assert result.outcome == ExecutionOutcome.OK
    assert (scratch / "out.txt").read_text() == "printed"
    again, _ = run(bwrap, root, "ok", name="again")
    assert again.outcome == ExecutionOutcome.OK


def test_other_environment_starts_another_worker(bwrap: BwrapExecutor, root: Path) -> None:
    run(bwrap, root, "ok", name="a")
    first = current_worker(bwrap)
    _, scratch = run(bwrap, root, "ok", name="b", env_extra={"NEXAPOD_UNIT_THREADS": "2"})
    assert first is not None and not first.alive
    assert (scratch / "out.txt").read_text().split()[0] == "1"


def test_close_leaves_no_sandbox_running(bwrap: BwrapExecutor, root: Path) -> None:
    run(bwrap, root, "ok")
    worker = current_worker(bwrap)
    assert worker is not None and worker.alive
    bwrap.close()
    assert not worker.alive
    assert worker._proc.poll() is not None


def test_an_atlas_unit_gives_the_same_bytes_warm_and_fresh(tmp_path: Path) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    params = atlas.AtlasParams(block_size=256)
    embeddings = atlas.synthetic_embeddings(512, 3, params)
    shape = next(s for s in atlas.plan_units(512, 256) if not s.is_diagonal)
    blocks = (atlas.encode_block(embeddings[:256]), atlas.encode_block(embeddings[256:]))
    outputs = []
    for reuse in (True, False):
        executor = BwrapExecutor(reuse=reuse, probe=False)
        try:
            for index in range(2):
                scratch = tmp_path / f"root-{reuse}" / f"unit{index}"
                write_unit_input(scratch, shape, params, 512, *blocks)
                result = executor.run_module(
                    "nexapod.workloads.atlas.unit", scratch, LIMITS, {"NEXAPOD_UNIT_THREADS": "1"}
                )
                assert result.outcome == ExecutionOutcome.OK, result.describe()
                outputs.append((scratch / "out" / "result.bin").read_bytes())
        finally:
            executor.close()
    assert len(set(outputs)) == 1
    decoded = atlas.decode_unit_result(outputs[0], shape, params.k, 512)
    expected = atlas.compute_unit(embeddings[:256], embeddings[256:], shape, params.k)
    assert np.array_equal(decoded.row_ids, expected.row_ids)
