"""Executors against real bubblewrap and real processes: each test runs a small unit script.

The bwrap tests check what the sandbox promises (docs/sandbox.md): no network, nothing of
the host writable or readable beyond the system and Python runtime, limits that end the unit
with the right outcome, and no process left behind.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from nexapod.errors import NodeError
from nexapod.node.executors import (
    TAIL_BYTES_MAX,
    BwrapExecutor,
    DockerExecutor,
    ExecutionOutcome,
    ExecutionResult,
    Executor,
    ProcessExecutor,
    SandboxLimits,
    docker_argv,
    make_executor,
    python_runtime_paths,
)
from nexapod.node.executors._outcome import classify, split_status
from nexapod.node.executors._supervise import Supervised

GIB = 1024**3
LIMITS = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=20, wall_s_max=30.0)
RUN_S_MAX = 10.0  # a run that should end on a limit of 1-2 s must return well within this


@pytest.fixture(scope="module")
def bwrap() -> BwrapExecutor:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    return BwrapExecutor()


@pytest.fixture()
def process() -> ProcessExecutor:
    return ProcessExecutor()


@pytest.fixture()
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    (path / "in").mkdir(parents=True)
    (path / "out").mkdir()
    return path


def run_unit(
    executor: Executor,
    scratch: Path,
    source: str,
    *,
    limits: SandboxLimits = LIMITS,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> ExecutionResult:
    """Write ``source`` as scratch/unit.py and run ``[python, unit.py, *args]``."""
    script = scratch / "unit.py"
    script.write_text(textwrap.dedent(source))
    return executor.run([sys.executable, str(script), *args], scratch, limits, env or {})


def read_report(scratch: Path) -> dict[str, object]:
    report: dict[str, object] = json.loads((scratch / "out" / "report.json").read_text())
    return report


def live_pids(matches: Callable[[int, bytes, str], bool]) -> list[int]:
    """Pids of processes that are not zombies and match (pid, cmdline, stat line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        state = stat_line.rsplit(")", 1)[1].split()[0]
        if state != "Z" and matches(int(entry.name), cmdline, stat_line):
            found.append(int(entry.name))
    return found


def in_process_group(pgid: int) -> Callable[[int, bytes, str], bool]:
    return lambda _pid, _cmd, stat_line: int(stat_line.rsplit(")", 1)[1].split()[2]) == pgid


def with_marker(marker: str) -> Callable[[int, bytes, str], bool]:
    return lambda _pid, cmdline, _stat: marker.encode() in cmdline


# --- bwrap: the ordinary case ---------------------------------------------------------


def test_bwrap_unit_reads_input_and_its_result_is_visible_on_the_host(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    (scratch / "in" / "numbers.txt").write_text("1 2 3 4\n")
    result = run_unit(
        bwrap,
        scratch,
        """
        import os, sys
        scratch = os.path.dirname(os.path.abspath(__file__))
        numbers = open(os.path.join(scratch, "in", "numbers.txt")).read().split()
        with open(os.path.join(scratch, "out", "result.bin"), "wb") as out:
            out.write(str(sum(int(n) for n in numbers)).encode())
        print("summed", len(numbers), "numbers")
        """,
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    assert result.exit_code == 0
    assert (scratch / "out" / "result.bin").read_bytes() == b"10"
    assert "summed 4 numbers" in result.stdout_tail
    assert result.describe().startswith("unit finished")


def test_bwrap_unit_sees_only_the_env_it_was_given(
    bwrap: BwrapExecutor, scratch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEXAPOD_TEST_HOST_SECRET", "must-not-leak")
    result = run_unit(
        bwrap,
        scratch,
        """
        import json, os
        with open("out/report.json", "w") as out:
            json.dump(dict(os.environ), out)
        """,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    unit_env = read_report(scratch)
    assert unit_env["OMP_NUM_THREADS"] == "1"
    assert unit_env["HOME"] == str(scratch)
    assert unit_env["TMPDIR"] == str(scratch / "tmp")
    assert "NEXAPOD_TEST_HOST_SECRET" not in unit_env
    assert "PYTEST_CURRENT_TEST" not in unit_env


def test_bwrap_unit_has_its_own_pid_namespace(bwrap: BwrapExecutor, scratch: Path) -> None:
    result = run_unit(
        bwrap,
        scratch,
        """
        import json, os
        pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
        with open("out/report.json", "w") as out:
            json.dump({"pid": os.getpid(), "pids": pids}, out)
        """,
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    report = read_report(scratch)
    pids = report["pids"]
    assert isinstance(pids, list)
    assert report["pid"] in pids
    assert len(pids) <= 3  # bwrap's init, the unit, nothing of the host
    assert max(pids) < 10
    assert os.getpid() not in pids or os.getpid() < 10


# --- bwrap: no network ----------------------------------------------------------------


def test_bwrap_unit_cannot_connect_to_a_server_on_host_loopback(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run_unit(
            bwrap,
            scratch,
            f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"leak")
            """,
        )
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing is waiting: the unit never reached us
    assert result.outcome == ExecutionOutcome.FAILED
    assert "ConnectionRefusedError" in result.stderr_tail


def test_process_executor_reaches_host_loopback_so_the_server_test_is_sound(
    process: ProcessExecutor, scratch: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = run_unit(
            process,
            scratch,
            f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"hello")
            """,
        )
        server.settimeout(5)
        connection, _ = server.accept()
        with connection:
            assert connection.recv(16) == b"hello"
    assert result.outcome == ExecutionOutcome.OK, result.describe()


def test_bwrap_unit_has_only_loopback_no_route_and_no_name_resolution(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    result = run_unit(
        bwrap,
        scratch,
        """
        import json, socket
        report = {"interfaces": [name for _, name in socket.if_nameindex()]}
        try:
            socket.getaddrinfo("example.com", 443)
            report["resolve"] = "resolved"
        except socket.gaierror as exc:
            report["resolve"] = "failed: " + str(exc)
        try:
            socket.create_connection(("1.1.1.1", 443), timeout=5)
            report["connect_errno"] = 0
        except OSError as exc:
            report["connect_errno"] = exc.errno
        with open("out/report.json", "w") as out:
            json.dump(report, out)
        """,
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    report = read_report(scratch)
    assert report["interfaces"] == ["lo"]
    assert str(report["resolve"]).startswith("failed")
    assert report["connect_errno"] == errno.ENETUNREACH


# --- bwrap: the host's files ----------------------------------------------------------


@pytest.fixture()
def escape_targets(tmp_path: Path) -> Iterator[list[Path]]:
    """Host paths outside scratch a unit might try to write; removed whatever happens."""
    token = secrets.token_hex(6)
    (tmp_path / "outside").mkdir()
    targets = [
        tmp_path / "outside" / "escape.txt",
        Path.home() / f"nexapod-escape-{token}",
        Path("/tmp") / f"nexapod-escape-{token}",
        Path("/var/tmp") / f"nexapod-escape-{token}",
    ]
    yield targets
    for target in targets:
        target.unlink(missing_ok=True)


def test_bwrap_unit_cannot_write_outside_scratch(
    bwrap: BwrapExecutor, scratch: Path, escape_targets: list[Path]
) -> None:
    result = run_unit(
        bwrap,
        scratch,
        """
        import json, sys
        errors = {}
        for target in sys.argv[1:]:
            try:
                with open(target, "w") as out:
                    out.write("escaped")
                errors[target] = None
            except OSError as exc:
                errors[target] = exc.strerror
        with open("out/report.json", "w") as out:
            json.dump(errors, out)
        """,
        args=[str(target) for target in escape_targets],
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    errors = read_report(scratch)
    assert set(errors) == {str(target) for target in escape_targets}
    assert all(errors.values()), errors  # every write failed inside the sandbox
    assert not [target for target in escape_targets if target.exists()]


def test_bwrap_unit_cannot_read_host_secrets_or_see_the_home_directory(
    bwrap: BwrapExecutor, scratch: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "keys" / "node.key"
    secret.parent.mkdir()
    secret.write_text("private key material")
    home = Path.home()
    result = run_unit(
        bwrap,
        scratch,
        """
        import json, os, sys
        report = {}
        try:
            report["secret"] = open(sys.argv[1]).read()
        except OSError as exc:
            report["secret_error"] = exc.strerror
        try:
            report["home"] = sorted(os.listdir(sys.argv[2]))
        except OSError:
            report["home"] = []
        with open("out/report.json", "w") as out:
            json.dump(report, out)
        """,
        args=[str(secret), str(home)],
    )
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    report = read_report(scratch)
    assert "secret" not in report
    assert report["secret_error"] == "No such file or directory"
    # Only the first steps of the read-only runtime binds that happen to live in home.
    runtime_steps = {
        path.relative_to(home).parts[0] for path in python_runtime_paths() if home in path.parents
    }
    home_entries = report["home"]
    assert isinstance(home_entries, list)
    assert set(home_entries) <= runtime_steps


def test_bwrap_unit_cannot_write_the_python_runtime(bwrap: BwrapExecutor, scratch: Path) -> None:
    runtime = python_runtime_paths()[0]
    result = run_unit(
        bwrap,
        scratch,
        """
        import sys
        open(sys.argv[1] + "/nexapod-escape", "w")
        """,
        args=[str(runtime)],
    )
    assert result.outcome == ExecutionOutcome.FAILED
    assert "Read-only file system" in result.stderr_tail
    assert not (runtime / "nexapod-escape").exists()


# --- bwrap: limits and outcomes -------------------------------------------------------


def test_bwrap_allocation_past_memory_limit_ends_with_memory(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    limits = SandboxLimits(memory_bytes_max=256 * 1024**2, cpu_s_max=20, wall_s_max=30.0)
    result = run_unit(bwrap, scratch, "block = bytearray(1024**3)\n", limits=limits)
    assert result.outcome == ExecutionOutcome.MEMORY
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr_tail
    assert "out of memory" in result.describe()


def test_bwrap_unit_following_the_contract_exits_3_for_memory(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    limits = SandboxLimits(memory_bytes_max=256 * 1024**2, cpu_s_max=20, wall_s_max=30.0)
    source = """
        import sys
        try:
            block = bytearray(1024**3)
        except MemoryError:
            sys.exit(3)
        """
    result = run_unit(bwrap, scratch, source, limits=limits)
    assert result.outcome == ExecutionOutcome.MEMORY
    assert result.exit_code == 3


def test_bwrap_busy_loop_past_cpu_limit_ends_with_cpu_time(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=1, wall_s_max=30.0)
    result = run_unit(bwrap, scratch, "while True:\n    pass\n", limits=limits)
    assert result.outcome == ExecutionOutcome.CPU_TIME
    assert result.signal_number == signal.SIGXCPU
    assert result.wall_s < RUN_S_MAX


def test_bwrap_sleep_past_wall_clock_is_killed_with_its_whole_tree(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    marker = f"nexapod-wall-{secrets.token_hex(6)}"
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=20, wall_s_max=1.0)
    started = time.monotonic()
    result = run_unit(
        bwrap,
        scratch,
        """
        import subprocess, sys, time
        child = "import time; open('out/child', 'w').close(); time.sleep(600)"
        subprocess.Popen([sys.executable, "-c", child, sys.argv[1]])
        time.sleep(600)
        """,
        limits=limits,
        args=[marker],
    )
    elapsed_s = time.monotonic() - started
    assert result.outcome == ExecutionOutcome.TIMEOUT
    assert result.exit_code is None
    assert 1.0 <= result.wall_s < RUN_S_MAX
    assert elapsed_s < RUN_S_MAX
    assert (scratch / "out" / "child").exists()  # the grandchild did start...
    assert live_pids(with_marker(marker)) == []  # ...and nothing is left when run returns
    assert "wall-clock" in result.describe()


def test_bwrap_exit_2_is_bad_input(bwrap: BwrapExecutor, scratch: Path) -> None:
    source = """
        import sys
        print("in/query.mgf: not an MGF file", file=sys.stderr)
        sys.exit(2)
        """
    result = run_unit(bwrap, scratch, source)
    assert result.outcome == ExecutionOutcome.BAD_INPUT
    assert result.exit_code == 2
    assert result.describe().endswith("in/query.mgf: not an MGF file")


def test_bwrap_other_exit_code_is_failed(bwrap: BwrapExecutor, scratch: Path) -> None:
    result = run_unit(bwrap, scratch, "raise RuntimeError('kaboom')\n")
    assert result.outcome == ExecutionOutcome.FAILED
    assert result.exit_code == 1
    assert "RuntimeError: kaboom" in result.describe()


def test_bwrap_output_is_kept_as_a_bounded_tail(bwrap: BwrapExecutor, scratch: Path) -> None:
    source = """
        import sys
        for _ in range(20_000):
            sys.stdout.write("o" * 99 + "\\n")
            sys.stderr.write("e" * 99 + "\\n")
        sys.stdout.write("stdout-end\\n")
        sys.stderr.write("stderr-end\\n")
        """
    result = run_unit(bwrap, scratch, source)
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    assert len(result.stderr_tail) <= TAIL_BYTES_MAX
    assert len(result.stdout_tail) <= TAIL_BYTES_MAX
    assert result.stderr_tail.endswith("stderr-end\n")
    assert result.stdout_tail.endswith("stdout-end\n")


def test_bwrap_command_missing_in_the_sandbox_is_a_sandbox_error(
    bwrap: BwrapExecutor, scratch: Path
) -> None:
    result = bwrap.run(["/nonexistent/unit"], scratch, LIMITS, {})
    assert result.outcome == ExecutionOutcome.SANDBOX_ERROR
    assert "cannot execute /nonexistent/unit" in result.describe()


def test_bwrap_failing_to_build_the_sandbox_is_a_sandbox_error_with_its_message(
    scratch: Path,
) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    broken = BwrapExecutor()
    broken.system_mounts = [*broken.system_mounts, "--ro-bind", "/nonexistent-nexapod", "/x"]
    result = run_unit(broken, scratch, "print('never runs')\n")
    assert result.outcome == ExecutionOutcome.SANDBOX_ERROR
    assert result.exit_code is None
    assert "bwrap: Can't find source path /nonexistent-nexapod" in result.stderr_tail
    assert result.describe().startswith("the sandbox failed to start")


def test_missing_bwrap_is_executor_unavailable_with_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(NodeError) as caught:
        BwrapExecutor(bwrap_path=tmp_path / "no-such-bwrap")
    assert caught.value.code == "node.executor_unavailable"
    assert "sudo apt-get install bubblewrap" in caught.value.detail
    assert "--executor process" in caught.value.detail


# --- process executor -----------------------------------------------------------------


def test_process_executor_runs_a_unit_and_warns_it_is_not_isolated(
    process: ProcessExecutor, scratch: Path
) -> None:
    result = run_unit(process, scratch, "open('out/result.bin', 'wb').write(b'done')\n")
    assert result.outcome == ExecutionOutcome.OK, result.describe()
    assert (scratch / "out" / "result.bin").read_bytes() == b"done"
    assert process.isolated is False
    assert "without a sandbox" in process.warning
    assert "network" in process.warning


def test_process_executor_applies_the_memory_limit(process: ProcessExecutor, scratch: Path) -> None:
    limits = SandboxLimits(memory_bytes_max=256 * 1024**2, cpu_s_max=20, wall_s_max=30.0)
    result = run_unit(process, scratch, "block = bytearray(1024**3)\n", limits=limits)
    assert result.outcome == ExecutionOutcome.MEMORY


def test_process_executor_wall_clock_kills_the_process_group(
    process: ProcessExecutor, scratch: Path
) -> None:
    marker = f"nexapod-wall-{secrets.token_hex(6)}"
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=20, wall_s_max=1.0)
    result = run_unit(
        process,
        scratch,
        """
        import os, subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[1]])
        open("out/pgid", "w").write(str(os.getpgid(0)))
        time.sleep(600)
        """,
        limits=limits,
        args=[marker],
    )
    assert result.outcome == ExecutionOutcome.TIMEOUT
    assert result.wall_s < RUN_S_MAX
    pgid = int((scratch / "out" / "pgid").read_text())
    assert pgid != os.getpgid(0)  # the unit led its own group, not ours
    assert live_pids(in_process_group(pgid)) == []
    assert live_pids(with_marker(marker)) == []


def test_process_executor_busy_loop_ends_with_cpu_time(
    process: ProcessExecutor, scratch: Path
) -> None:
    limits = SandboxLimits(memory_bytes_max=GIB, cpu_s_max=1, wall_s_max=30.0)
    result = run_unit(process, scratch, "while True:\n    pass\n", limits=limits)
    assert result.outcome == ExecutionOutcome.CPU_TIME


# --- docker (no engine here) ----------------------------------------------------------


def test_docker_argv_isolates_network_root_memory_and_mounts_only_scratch(
    scratch: Path,
) -> None:
    limits = SandboxLimits(memory_bytes_max=2 * GIB, cpu_s_max=60, wall_s_max=90.0)
    argv = docker_argv(
        "docker",
        "ghcr.io/nexapod/runner:1",
        ["python", "-m", "nexapod.workloads.atlas.unit", str(scratch)],
        scratch_dir=scratch,
        limits=limits,
        env={"OMP_NUM_THREADS": "1"},
        container_name="nexapod-unit-test",
        uid=1000,
        gid=1000,
    )
    joined = " ".join(argv)
    assert argv[:3] == ["docker", "run", "--rm"]
    assert "--network none" in joined
    assert "--read-only" in argv
    assert f"--memory {2 * GIB}" in joined
    assert f"--memory-swap {2 * GIB}" in joined
    assert f"-v {scratch}:{scratch}:rw" in joined
    assert f"-w {scratch}" in joined
    assert "--cap-drop ALL" in joined
    assert "--security-opt no-new-privileges" in joined
    assert f"--pids-limit {limits.processes_max}" in joined
    assert "--user 1000:1000" in joined
    assert "--ulimit cpu=60:61" in joined
    image_at = argv.index("ghcr.io/nexapod/runner:1")
    assert argv[image_at + 1 :] == ["python", "-m", "nexapod.workloads.atlas.unit", str(scratch)]
    assert len([arg for arg in argv if arg == "-v"]) == 1  # scratch is the only mount


def test_docker_argv_mounts_the_readable_inputs_read_only(tmp_path: Path) -> None:
    scratch, inputs = tmp_path / "scratch", tmp_path / "inputs"
    argv = docker_argv(
        "docker",
        "image",
        ["python"],
        scratch_dir=scratch,
        limits=LIMITS,
        env={},
        container_name="c",
        uid=0,
        gid=0,
        readable_dirs=[inputs],
    )
    mounts = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-v"]
    assert mounts == [f"{scratch}:{scratch}:rw", f"{inputs}:{inputs}:ro"]


def test_docker_argv_refuses_a_scratch_path_docker_would_misparse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot mount"):
        docker_argv(
            "docker",
            "image",
            ["python"],
            scratch_dir=tmp_path / "a:b",
            limits=LIMITS,
            env={},
            container_name="c",
            uid=0,
            gid=0,
        )


def test_docker_without_a_reachable_engine_is_executor_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if shutil.which("docker") is None:
        with pytest.raises(NodeError) as caught:
            DockerExecutor("python:3.11-slim")
        assert "install Docker Engine" in caught.value.detail
    else:
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/nexapod-docker.sock")
        with pytest.raises(NodeError) as caught:
            DockerExecutor("python:3.11-slim")
        assert "systemctl start docker" in caught.value.detail
    assert caught.value.code == "node.executor_unavailable"


# --- the factory ----------------------------------------------------------------------


def test_make_executor_by_name() -> None:
    assert make_executor("process").name == "process"
    with pytest.raises(NodeError) as unknown:
        make_executor("firecracker")
    assert unknown.value.code == "node.executor_unknown"
    with pytest.raises(NodeError) as no_image:
        make_executor("docker")
    assert no_image.value.code == "node.executor_unavailable"


def test_make_executor_bwrap_is_isolated() -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    executor = make_executor("bwrap")
    assert executor.name == "bwrap"
    assert executor.isolated is True


# --- pure parts -----------------------------------------------------------------------


def test_python_runtime_paths_cover_the_interpreter_and_the_package() -> None:
    paths = python_runtime_paths()
    assert len(paths) == len(set(paths))
    assert all(path.is_absolute() and path.is_dir() for path in paths)
    assert Path(sys.base_prefix).resolve() in paths
    assert Path(sys.executable).resolve().parent in paths
    import nexapod

    assert Path(nexapod.__file__).resolve().parent.parent in paths


@pytest.mark.parametrize(
    "fields",
    [
        {"memory_bytes_max": 0},
        {"cpu_s_max": -1},
        {"wall_s_max": 0.0},
        {"wall_s_max": float("inf")},
        {"processes_max": 0},
        {"memory_bytes_max": 1.5},
    ],
)
def test_sandbox_limits_must_be_positive(fields: dict[str, object]) -> None:
    values: dict[str, object] = {"memory_bytes_max": GIB, "cpu_s_max": 1, "wall_s_max": 1.0}
    with pytest.raises(ValueError, match="must be"):
        SandboxLimits(**{**values, **fields})  # type: ignore[arg-type]


def supervised(status: int, *, stderr: bytes = b"", cpu_s: float = 0.0) -> Supervised:
    return Supervised(status, False, 1.5, cpu_s, b"", stderr, b"S")


@pytest.mark.parametrize(
    ("status", "signal_as_exit_code", "expected"),
    [
        (0, True, (0, None)),
        (3, True, (3, None)),
        (152, True, (None, 24)),  # bwrap: child killed by SIGXCPU
        (152, False, (152, None)),
        (-9, False, (None, 9)),
        (-9, True, (None, 9)),  # bwrap itself killed
    ],
)
def test_split_status(
    status: int, signal_as_exit_code: bool, expected: tuple[int | None, int | None]
) -> None:
    assert split_status(status, signal_as_exit_code=signal_as_exit_code) == expected


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (supervised(0), ExecutionOutcome.OK),
        (supervised(1), ExecutionOutcome.FAILED),
        (supervised(2), ExecutionOutcome.BAD_INPUT),
        (supervised(3), ExecutionOutcome.MEMORY),
        (supervised(128 + 24), ExecutionOutcome.CPU_TIME),
        (supervised(128 + 9, cpu_s=20.5), ExecutionOutcome.CPU_TIME),  # RLIMIT_CPU hard limit
        (supervised(128 + 9, cpu_s=0.1), ExecutionOutcome.MEMORY),  # the OOM killer
        (supervised(128 + 11), ExecutionOutcome.FAILED),
        (supervised(1, stderr=b"Traceback ...\nMemoryError\n"), ExecutionOutcome.MEMORY),
        (
            supervised(
                1,
                stderr=b"numpy.core._exceptions._ArrayMemoryError: Unable to allocate 8.0 GiB\n",
            ),
            ExecutionOutcome.MEMORY,
        ),
        (supervised(1, stderr=b"MemoryErrorHandler failed\n"), ExecutionOutcome.FAILED),
    ],
)
def test_classify_follows_the_exit_code_contract(
    run: Supervised, expected: ExecutionOutcome
) -> None:
    result = classify(run, LIMITS, started=True, signal_as_exit_code=True)
    assert result.outcome == expected
    assert "\n" not in result.describe()


def test_classify_our_timeout_wins_over_the_signal_and_not_started_is_sandbox_error() -> None:
    timed_out = Supervised(-9, True, 30.0, 0.0, b"", b"", b"S")
    assert classify(timed_out, LIMITS, started=True, signal_as_exit_code=True).outcome == (
        ExecutionOutcome.TIMEOUT
    )
    not_started = Supervised(1, False, 0.1, 0.0, b"", b"bwrap: No permissions\n", b"")
    result = classify(not_started, LIMITS, started=False, signal_as_exit_code=True)
    assert result.outcome == ExecutionOutcome.SANDBOX_ERROR
    assert result.describe().endswith("bwrap: No permissions")
