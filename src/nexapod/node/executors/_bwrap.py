"""The default executor: bubblewrap (bwrap), unprivileged Linux namespaces.

The unit sees a new root with the host's system directories and the Python runtime
read-only, its scratch directory read-write at the same absolute path, and nothing else:
no network (a new network namespace holds only its own loopback), its own PID, IPC, UTS,
cgroup and (where allowed) user namespaces, no capabilities. See ``docs/sandbox.md``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from nexapod.errors import NodeError
from nexapod.node.executors._outcome import classify
from nexapod.node.executors._runtime import (
    check_scratch_dir,
    module_argv,
    python_runtime_paths,
    readable_dir_paths,
    shim_argv,
    shim_started,
    unit_env,
)
from nexapod.node.executors._supervise import KILL_WAIT_S_MAX, supervise, wait_pidfd
from nexapod.node.executors._types import ExecutionOutcome, ExecutionResult, SandboxLimits
from nexapod.node.executors._warm import WORKER_CPU_S_MAX, WarmWorker, WorkerKey

__all__ = [
    "BWRAP_INSTALL_HINT",
    "BwrapExecutor",
    "bwrap_argv",
    "host_system_mounts",
    "kill_sandbox",
]

BWRAP_INSTALL_HINT = (
    "run `sudo apt-get install bubblewrap`, or pass --executor process to run units "
    "without a sandbox (not recommended)"
)
_USERNS_HINT = (
    "bubblewrap needs unprivileged user namespaces: check `sysctl kernel.unprivileged_userns_clone`"
    " and, on Ubuntu 24.04 and later, `sysctl kernel.apparmor_restrict_unprivileged_userns`"
)
# Shown as the host has them: a directory is bound read-only, a symlink (usr-merged
# systems) is recreated as the same symlink.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# The few /etc entries a dynamically linked program and Python's stdlib read. No
# resolv.conf or hosts: there is no network to resolve names on.
ETC_ENTRIES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
)
SANDBOX_HOSTNAME = "nexapod-unit"
_CHILD_PID = re.compile(rb'"child-pid"\s*:\s*([0-9]+)')
_PROBE_LIMITS = SandboxLimits(memory_bytes_max=1024**3, cpu_s_max=10, wall_s_max=10.0)


def host_system_mounts() -> list[str]:
    """bwrap arguments showing this host's system directories read-only."""
    args: list[str] = []
    for name in SYSTEM_DIRS:
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    assert "/usr" in args, "a host without /usr cannot run units"
    return args


def bwrap_argv(
    bwrap_path: str,
    command: Sequence[str],
    scratch_dir: Path,
    env: Mapping[str, str],
    *,
    info_fd: int,
    system_mounts: Sequence[str],
    runtime_paths: Sequence[Path],
) -> list[str]:
    """The full bwrap command line for ``command``: pure, for tests and for reading.

    Order matters to bwrap: mounts apply in sequence, the scratch bind comes after the
    read-only ones (so it wins if nested), and ``--remount-ro /`` comes last, which makes
    the new root's own tmpfs read-only: the unit cannot create /tmp or anything else.
    """
    assert scratch_dir.is_absolute()
    assert command
    assert info_fd >= 0
    args = [
        bwrap_path,
        "--unshare-all",  # user (where allowed), ipc, pid, net, uts, cgroup
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        SANDBOX_HOSTNAME,
        "--info-fd",  # bwrap writes {"child-pid": N} there: see kill_sandbox
        str(info_fd),
        "--clearenv",
    ]
    for name, value in sorted(env.items()):
        args += ["--setenv", name, value]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += system_mounts
    for entry in ETC_ENTRIES:
        args += ["--ro-bind-try", entry, entry]
    for path in runtime_paths:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(scratch_dir.resolve()), str(scratch_dir)]
    # /dev read-only too: its /dev/shm would be a writable tmpfs, memory outside RLIMIT_AS.
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(scratch_dir)]
    args += ["--", *command]
    return args


def kill_sandbox(info: bytes) -> None:
    """Kill the sandbox's PID 1 and wait until every process in the sandbox is gone.

    Killing bwrap alone would leave the sandbox to die a moment later (through
    --die-with-parent); killing PID 1 of the PID namespace makes the kernel kill all the
    others, and PID 1's exit completes only once they are reaped. ``info`` is what bwrap
    wrote to --info-fd; empty when it had not started the sandbox yet.
    """
    match = _CHILD_PID.search(info)
    if match is None:
        return
    try:
        pidfd = os.pidfd_open(int(match.group(1)))
    except ProcessLookupError:
        return  # already gone
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if not wait_pidfd(pidfd, KILL_WAIT_S_MAX):
            raise NodeError(
                "executor_unkillable",
                f"the sandbox did not die within {KILL_WAIT_S_MAX} s of SIGKILL: check the node",
            )
    except ProcessLookupError:
        pass  # it exited between open and signal
    finally:
        os.close(pidfd)


class BwrapExecutor:
    """Runs units in a bubblewrap sandbox; construction checks that one can be built."""

    name: str = "bwrap"
    isolated: bool = True

    def __init__(
        self,
        bwrap_path: str | Path | None = None,
        *,
        probe: bool = True,
        reuse: bool = True,
        readable_dirs: Sequence[Path] = (),
    ) -> None:
        found = shutil.which("bwrap") if bwrap_path is None else str(bwrap_path)
        if found is None or not os.access(found, os.X_OK) or not Path(found).is_file():
            raise NodeError(
                "executor_unavailable",
                f"bubblewrap (bwrap) is not installed: {BWRAP_INSTALL_HINT}",
            )
        self.bwrap_path = found
        self.system_mounts = host_system_mounts()
        self.readable_dirs = readable_dir_paths(readable_dirs)
        # bound read-only at the same path, like the runtime: what units read, never write
        self.runtime_paths = [*python_runtime_paths(), *self.readable_dirs]
        self.reuse = reuse  # keep one sandbox warm between units (see _warm)
        self._worker: WarmWorker | None = None
        self._worker_lock = threading.Lock()
        if probe:
            self._probe()

    def run(
        self,
        argv: Sequence[str],
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """Run ``argv`` in a fresh sandbox whose only writable place is ``scratch_dir``."""
        scratch = check_scratch_dir(scratch_dir)
        sandbox_env = unit_env(env, scratch)
        raw = supervise(
            lambda sync_fd, info_fd: bwrap_argv(
                self.bwrap_path,
                shim_argv(sync_fd, limits, argv, nproc=True),
                scratch,
                sandbox_env,
                info_fd=info_fd,
                system_mounts=self.system_mounts,
                runtime_paths=self.runtime_paths,
            ),
            cwd=scratch,
            env={},
            wall_s_max=limits.wall_s_max,
            on_timeout=kill_sandbox,
        )
        started = not raw.spawn_error and shim_started(raw.sync_bytes)
        return classify(raw, limits, started=started, signal_as_exit_code=True)

    def run_module(
        self,
        module: str,
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """Run a workload's unit module on ``scratch_dir``: in the warm sandbox when reusing.

        The warm sandbox binds the scratch directory's parent (the node's scratch root), so
        every unit directory must sit directly in one root.
        """
        scratch = check_scratch_dir(scratch_dir)
        if not self.reuse:
            return self.run(module_argv(module, scratch), scratch, limits, env)
        key = WorkerKey.of(module, scratch.parent, env, limits)
        with self._worker_lock:
            worker = self._worker
            if worker is None or not worker.alive or worker.key != key:
                if worker is not None:
                    worker.close()
                worker = self._worker = WarmWorker(key, self._launch_argv(key), kill_sandbox)
            return worker.run(scratch, limits)

    def close(self) -> None:
        """Stop the warm sandbox, if one is running."""
        with self._worker_lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None

    def _launch_argv(
        self, key: WorkerKey
    ) -> Callable[[int, int, Path, Sequence[str]], Sequence[str]]:
        """How to start a worker sandbox for ``key``: the limits every unit shares."""
        worker_limits = SandboxLimits(
            memory_bytes_max=key.memory_bytes_max,
            cpu_s_max=WORKER_CPU_S_MAX,  # per unit: the worker lowers its soft limit
            wall_s_max=float(WORKER_CPU_S_MAX),  # per unit: WarmWorker.run's deadline
            processes_max=key.processes_max,
            file_bytes_max=key.file_bytes_max,
        )

        def build(
            sync_fd: int, info_fd: int, scratch_root: Path, command: Sequence[str]
        ) -> Sequence[str]:
            return bwrap_argv(
                self.bwrap_path,
                shim_argv(sync_fd, worker_limits, command, nproc=True),
                scratch_root,
                unit_env(dict(key.env), scratch_root),
                info_fd=info_fd,
                system_mounts=self.system_mounts,
                runtime_paths=self.runtime_paths,
            )

        return build

    def _probe(self) -> None:
        """Start one trivial sandbox, so a broken setup fails at startup, not per unit."""
        with tempfile.TemporaryDirectory(prefix="nexapod-bwrap-probe-") as scratch:
            result = self.run(
                [sys.executable, "-I", "-S", "-c", ""], Path(scratch), _PROBE_LIMITS, {}
            )
        if result.outcome != ExecutionOutcome.OK:
            raise NodeError(
                "executor_unavailable",
                f"bubblewrap is installed but could not start a sandbox ({result.describe()}): "
                f"{_USERNS_HINT}; or pass --executor process to run units without a sandbox "
                "(not recommended)",
            )
