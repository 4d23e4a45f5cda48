"""Start a command, watch it to a deadline, kill its whole process group, keep bounded tails.

Every executor runs its sandbox launcher (bwrap, the shim, the docker client) through
``supervise``. It is the one place that owns the child process, so the guarantees are in one
place too: the child leads a new process group, which is killed with SIGKILL at the deadline
and again when the child exits (no stragglers); stdout and stderr are read as they come and
only their last bytes are kept; every wait has a bound.

Two pipes are handed to the child: ``sync`` for the shim to say "the sandbox is up" (see
``_runtime``), ``info`` for the launcher to say who it started (bwrap's ``--info-fd``).

Linux only: the exit is watched through a pidfd, so there is no polling and no SIGCHLD.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexapod.errors import NodeError
from nexapod.node.executors._types import TAIL_BYTES_MAX

__all__ = ["KILL_WAIT_S_MAX", "ArgvBuilder", "Supervised", "supervise", "wait_pidfd"]

READ_CHUNK_BYTES = 64 * 1024
PIPE_BYTES_MAX = 4096  # sync and info pipes: a few bytes expected
KILL_WAIT_S_MAX = 10.0  # SIGKILL is not catchable; this only covers a process stuck in the kernel
DRAIN_S_MAX = 2.0  # after the exit, how long we read what is left in the pipes

# Given the numbers of the sync and info pipes' write ends (inherited), the argv to start.
ArgvBuilder = Callable[[int, int], Sequence[str]]
# Called at the deadline, before the group kill, with what the info pipe carried so far.
TimeoutHook = Callable[[bytes], None]


@dataclass(frozen=True)
class Supervised:
    """What the kernel told us about one supervised child."""

    status: int  # os.waitstatus_to_exitcode: >= 0 an exit code, < 0 minus the signal
    timed_out: bool  # we killed it at the deadline
    wall_s: float
    cpu_s: float  # user + system time of the child and the descendants it waited for
    stdout_tail: bytes
    stderr_tail: bytes
    sync_bytes: bytes  # what the child wrote to the sync pipe (bounded)
    spawn_error: str = ""  # the child could not be started at all (then status is 127)


class _Tail:
    """The last ``bytes_max`` bytes of a stream."""

    def __init__(self, bytes_max: int) -> None:
        assert bytes_max > 0
        self.bytes_max = bytes_max
        self.data = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.bytes_max:
            del self.data[: len(self.data) - self.bytes_max]
        assert len(self.data) <= self.bytes_max


def supervise(
    build_argv: ArgvBuilder,
    *,
    cwd: Path,
    env: Mapping[str, str] | None,
    wall_s_max: float,
    on_timeout: TimeoutHook | None = None,
) -> Supervised:
    """Run the command to its end or to ``wall_s_max``, whichever comes first.

    ``env=None`` passes the node's own environment (only the docker client wants that).
    ``on_timeout`` runs before the group kill, for sandboxes whose processes are not all in
    our process group (bwrap's PID namespace, a Docker container).
    """
    assert wall_s_max > 0
    assert cwd.is_absolute()
    sync_read, sync_write = os.pipe()
    info_read, info_write = os.pipe()
    try:
        proc = _spawn(build_argv(sync_write, info_write), cwd, env, (sync_write, info_write))
    except BaseException:
        os.close(sync_read)
        os.close(info_read)
        raise
    finally:
        os.close(sync_write)  # the child holds its copies; ours would keep the pipes open
        os.close(info_write)
    if isinstance(proc, str):
        os.close(sync_read)
        os.close(info_read)
        return Supervised(127, False, 0.0, 0.0, b"", b"", b"", spawn_error=proc)
    try:
        return _watch(proc, sync_read, info_read, wall_s_max, on_timeout)
    finally:
        if proc.returncode is None:  # an exception on the way: leave nothing behind
            _kill_group(proc.pid)
            proc.kill()
            proc.wait(timeout=KILL_WAIT_S_MAX)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        os.close(sync_read)
        os.close(info_read)


def wait_pidfd(pidfd: int, timeout_s: float) -> bool:
    """True once the process behind ``pidfd`` has exited, False after ``timeout_s``."""
    assert timeout_s >= 0
    with selectors.DefaultSelector() as selector:
        selector.register(pidfd, selectors.EVENT_READ)
        return bool(selector.select(timeout_s))


def _spawn(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None, pass_fds: tuple[int, ...]
) -> subprocess.Popen[bytes] | str:
    """The started child, or why it could not be started."""
    assert argv, "an empty command"
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=None if env is None else dict(env),
            pass_fds=pass_fds,
            start_new_session=True,
        )
    except OSError as exc:
        return f"cannot start {argv[0]}: {exc}"


def _watch(
    proc: subprocess.Popen[bytes],
    sync_read: int,
    info_read: int,
    wall_s_max: float,
    on_timeout: TimeoutHook | None,
) -> Supervised:
    assert proc.stdout is not None
    assert proc.stderr is not None
    started = time.monotonic()
    tails = {
        proc.stdout.fileno(): _Tail(TAIL_BYTES_MAX),
        proc.stderr.fileno(): _Tail(TAIL_BYTES_MAX),
        sync_read: _Tail(PIPE_BYTES_MAX),
        info_read: _Tail(PIPE_BYTES_MAX),
    }
    pidfd = os.pidfd_open(proc.pid)
    with selectors.DefaultSelector() as selector:
        try:
            for fd in tails:
                selector.register(fd, selectors.EVENT_READ)
            selector.register(pidfd, selectors.EVENT_READ)
            exited = _pump(selector, tails, pidfd, started + wall_s_max)
            ended = time.monotonic()
            if not exited and on_timeout is not None:
                on_timeout(bytes(tails[info_read].data))
            # Kill the group even after a clean exit: a unit's leftover children die with it.
            # The leader is not reaped yet, so its pid (the group id) cannot have been reused.
            _kill_group(proc.pid)
            if not wait_pidfd(pidfd, KILL_WAIT_S_MAX):
                raise NodeError(
                    "executor_unkillable",
                    f"process {proc.pid} did not die within {KILL_WAIT_S_MAX} s of SIGKILL "
                    "(stuck in the kernel, often on a hung network filesystem): check the node",
                )
            _, wait_status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(wait_status)
            selector.unregister(pidfd)
            _drain(selector, tails, time.monotonic() + DRAIN_S_MAX)
        finally:
            os.close(pidfd)
    return Supervised(
        status=proc.returncode,
        timed_out=not exited,
        wall_s=ended - started,
        cpu_s=rusage.ru_utime + rusage.ru_stime,
        stdout_tail=bytes(tails[proc.stdout.fileno()].data),
        stderr_tail=bytes(tails[proc.stderr.fileno()].data),
        sync_bytes=bytes(tails[sync_read].data),
    )


def _pump(
    selector: selectors.BaseSelector, tails: dict[int, _Tail], pidfd: int, deadline: float
) -> bool:
    """Read output until the child exits (True) or the deadline passes (False)."""
    while True:  # bounded by the deadline: each pass reads data or waits out the time left
        timeout_s = deadline - time.monotonic()
        if timeout_s <= 0:
            return False
        for key, _ in selector.select(timeout_s):
            if key.fd == pidfd:
                return True
            _read(selector, key.fd, tails)


def _drain(selector: selectors.BaseSelector, tails: dict[int, _Tail], deadline: float) -> None:
    """Read what is left until every pipe is closed or the deadline passes.

    A process that escaped our process group (possible only without a sandbox) may hold a
    pipe open; the deadline keeps us from waiting on it.
    """
    while selector.get_map():
        timeout_s = deadline - time.monotonic()
        if timeout_s <= 0:
            return
        for key, _ in selector.select(timeout_s):
            _read(selector, key.fd, tails)


def _read(selector: selectors.BaseSelector, fd: int, tails: dict[int, _Tail]) -> None:
    chunk = os.read(fd, READ_CHUNK_BYTES)
    if chunk:
        tails[fd].feed(chunk)
    else:
        selector.unregister(fd)


def _kill_group(pgid: int) -> None:
    assert pgid > 1
    with contextlib.suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(pgid, signal.SIGKILL)
