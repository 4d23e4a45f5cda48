"""A sandbox kept warm between units: one sandboxed worker process, fed units one at a time.

The worker (``nexapod.workloads.worker``) runs inside the same bubblewrap sandbox a fresh
unit would get, with the node's scratch root as its only writable place instead of one
unit's directory. Each unit is one request and one reply over pipes. The guarantees of a
fresh sandbox still hold per unit:

- wall clock: past the unit's ``wall_s_max`` the whole sandbox is killed (TIMEOUT) and the
  next unit starts a new one;
- CPU time: the worker sets its soft RLIMIT_CPU to the time used plus the unit's budget;
- memory, file size, processes: the sandbox's rlimits, the same for every unit, so a unit
  whose limits differ gets a new sandbox;
- any unit that does not end with exit code 0 retires the worker, so a unit that failed
  half-way never shares a process with the next one.

What a warm sandbox gives up, stated in ``docs/sandbox.md``: units of this node that run
one after another share a process (our own signed code, fed data), and the scratch root,
which holds the directories of this node's prefetched units, is writable to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nexapod.errors import NodeError
from nexapod.node.executors._outcome import classify
from nexapod.node.executors._supervise import KILL_WAIT_S_MAX, Supervised, wait_pidfd
from nexapod.node.executors._types import (
    TAIL_BYTES_MAX,
    ExecutionOutcome,
    ExecutionResult,
    SandboxLimits,
)

__all__ = ["WORKER_CPU_S_MAX", "WORKER_MODULE", "WarmWorker", "WorkerKey"]

WORKER_MODULE = "nexapod.workloads.worker"
# The worker's hard RLIMIT_CPU: the sum over every unit it runs. A worker is retired well
# before (UNITS_PER_WORKER_MAX, or when less than a unit's budget is left).
WORKER_CPU_S_MAX = 7 * 24 * 3600
UNITS_PER_WORKER_MAX = 10_000
_LINE_BYTES_MAX = 64 * 1024
_READ_CHUNK_BYTES = 64 * 1024

# (sync_fd, info_fd, scratch_root, command) -> the launcher's argv: the executor's sandbox.
LaunchArgv = Callable[[int, int, Path, Sequence[str]], Sequence[str]]
# Called with what --info-fd carried, to kill a sandbox whose processes left our group.
KillSandbox = Callable[[bytes], None]


@dataclass(frozen=True)
class WorkerKey:
    """Everything a worker is started with: a unit that needs another key needs a new one."""

    module: str
    scratch_root: Path
    env: tuple[tuple[str, str], ...]
    memory_bytes_max: int
    file_bytes_max: int
    processes_max: int

    @classmethod
    def of(
        cls, module: str, scratch_root: Path, env: Mapping[str, str], limits: SandboxLimits
    ) -> WorkerKey:
        return cls(
            module=module,
            scratch_root=scratch_root,
            env=tuple(sorted(env.items())),
            memory_bytes_max=limits.memory_bytes_max,
            file_bytes_max=limits.file_bytes_max,
            processes_max=limits.processes_max,
        )


class _WorkerGoneError(Exception):
    """The worker exited (or was killed at the deadline) instead of answering."""

    def __init__(self, timed_out: bool) -> None:
        super().__init__("worker died" if not timed_out else "worker timed out")
        self.timed_out = timed_out


class WarmWorker:
    """One running worker sandbox. Not thread-safe: the executor serialises its use."""

    def __init__(self, key: WorkerKey, launch_argv: LaunchArgv, kill_sandbox: KillSandbox) -> None:
        self.key = key
        self.units_run = 0
        self._kill_sandbox = kill_sandbox
        self._ready = False
        self._buffer = bytearray()
        self._stderr = bytearray()
        self._sync = bytearray()
        self._info = bytearray()
        self._cpu_s = 0.0
        self._exit_cpu_s = 0.0
        self._eof: set[int] = set()
        sync_read, sync_write = os.pipe()
        info_read, info_write = os.pipe()
        command = [sys.executable, "-m", WORKER_MODULE, key.module]
        try:
            self._proc = subprocess.Popen(
                list(launch_argv(sync_write, info_write, key.scratch_root, command)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=key.scratch_root,
                env={},
                pass_fds=(sync_write, info_write),
                start_new_session=True,
            )
        except OSError as exc:
            os.close(sync_read)
            os.close(info_read)
            raise NodeError("executor_unavailable", f"cannot start the sandbox: {exc}") from exc
        finally:
            os.close(sync_write)
            os.close(info_write)
        self._sync_fd = sync_read
        self._info_fd = info_read
        self._pidfd = os.pidfd_open(self._proc.pid)
        self._status: int | None = None

    @property
    def alive(self) -> bool:
        return self._status is None

    def run(self, scratch_dir: Path, limits: SandboxLimits) -> ExecutionResult:
        """Run one unit in ``scratch_dir`` (a child of the key's scratch root)."""
        assert self.alive
        assert scratch_dir.parent == self.key.scratch_root
        started = time.monotonic()
        deadline = started + limits.wall_s_max
        try:
            if not self._ready:
                ready = json.loads(self._read_line(deadline))
                if ready != {"ready": True}:
                    raise NodeError("sandbox_protocol", "the worker did not say it was ready")
                self._ready = True
            request = {"scratch_dir": str(scratch_dir), "cpu_s_max": limits.cpu_s_max}
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            self._proc.stdin.flush()
            reply = json.loads(self._read_line(deadline))
        except _WorkerGoneError as died:
            return self._death(limits, started, died.timed_out)
        except BrokenPipeError:  # it closed stdin: dying, or dead
            return self._death(limits, started, False)
        except (ValueError, NodeError) as exc:
            return self._broken(f"the worker broke the protocol ({exc})", started)
        try:
            exit_code, cpu_s, stderr_text = _parse_reply(reply)
        except ValueError as exc:
            return self._broken(str(exc), started)
        self.units_run += 1
        unit_cpu_s = cpu_s - self._cpu_s
        self._cpu_s = cpu_s
        stderr_tail = stderr_text.encode(errors="replace")[-TAIL_BYTES_MAX:]
        run = Supervised(
            status=exit_code,
            timed_out=False,
            wall_s=time.monotonic() - started,
            cpu_s=unit_cpu_s,
            stdout_tail=b"",
            stderr_tail=stderr_tail,
            sync_bytes=b"S",
        )
        result = classify(run, limits, started=True, signal_as_exit_code=False)
        worn_out = (
            self.units_run >= UNITS_PER_WORKER_MAX
            or self._cpu_s + 2 * limits.cpu_s_max >= WORKER_CPU_S_MAX
        )
        if exit_code != 0 or worn_out:
            self.close()
        return result

    def close(self) -> None:
        """Kill the sandbox (if still running) and release every descriptor."""
        if self._status is None:
            self._kill()
        for fd in (self._sync_fd, self._info_fd, self._pidfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for stream in (self._proc.stdin, self._proc.stdout, self._proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def _broken(self, detail: str, started: float) -> ExecutionResult:
        """A worker that answered nonsense is killed; the unit counts as failed."""
        self.close()
        return ExecutionResult(
            outcome=ExecutionOutcome.FAILED,
            exit_code=None,
            wall_s=time.monotonic() - started,
            stderr_tail=detail[-TAIL_BYTES_MAX:],
            signal_number=None,
        )

    def _death(self, limits: SandboxLimits, started: float, timed_out: bool) -> ExecutionResult:
        """The outcome of a unit during which the worker died or was killed."""
        if self._status is None:
            self._kill()
        assert self._status is not None
        run = Supervised(
            status=self._status,
            timed_out=timed_out,
            wall_s=time.monotonic() - started,
            cpu_s=max(0.0, self._exit_cpu_s - self._cpu_s),
            stdout_tail=b"",
            stderr_tail=bytes(self._stderr[-TAIL_BYTES_MAX:]),
            sync_bytes=bytes(self._sync),
        )
        result = classify(run, limits, started=bytes(self._sync) == b"S", signal_as_exit_code=True)
        self.close()
        return result

    def _kill(self) -> None:
        """SIGKILL the sandbox's PID 1 and our process group; reap the launcher."""
        self._pump(time.monotonic())  # whatever the info pipe holds names the sandbox
        self._kill_sandbox(bytes(self._info))
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        if not wait_pidfd(self._pidfd, KILL_WAIT_S_MAX):
            raise NodeError(
                "executor_unkillable",
                f"the sandbox did not die within {KILL_WAIT_S_MAX} s of SIGKILL: check the node",
            )
        self._reap()

    def _reap(self) -> None:
        _, wait_status, rusage = os.wait4(self._proc.pid, 0)
        self._proc.returncode = self._status = os.waitstatus_to_exitcode(wait_status)
        self._exit_cpu_s = rusage.ru_utime + rusage.ru_stime

    def _read_line(self, deadline: float) -> bytes:
        """The next reply line; _WorkerGoneError when the worker exits or the deadline passes."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if len(self._buffer) > _LINE_BYTES_MAX:
                raise NodeError("sandbox_protocol", "the worker sent an overlong line")
            if time.monotonic() >= deadline:
                self._kill()
                raise _WorkerGoneError(timed_out=True)
            if self._pump(deadline):
                self._pump(time.monotonic())  # what it wrote before dying
                self._reap()
                raise _WorkerGoneError(timed_out=False)

    def _pump(self, deadline: float) -> bool:
        """Read what is ready (waiting until ``deadline``); True if the worker has exited."""
        assert self._proc.stdout is not None and self._proc.stderr is not None
        sinks = {
            self._proc.stdout.fileno(): self._buffer,
            self._proc.stderr.fileno(): self._stderr,
            self._sync_fd: self._sync,
            self._info_fd: self._info,
        }
        exited = False
        with selectors.DefaultSelector() as selector:
            for fd in sinks:
                if fd not in self._eof:
                    selector.register(fd, selectors.EVENT_READ)
            selector.register(self._pidfd, selectors.EVENT_READ)
            timeout_s = max(0.0, deadline - time.monotonic())
            for key, _ in selector.select(timeout_s):
                if key.fd == self._pidfd:
                    exited = True
                    continue
                chunk = os.read(key.fd, _READ_CHUNK_BYTES)
                if not chunk:
                    self._eof.add(key.fd)
                sink = sinks[key.fd]
                sink += chunk
                if sink is not self._buffer and len(sink) > TAIL_BYTES_MAX:
                    del sink[: len(sink) - TAIL_BYTES_MAX]
        return exited


def _parse_reply(reply: object) -> tuple[int, float, str]:
    """(exit_code, cpu_s, stderr_tail) of a worker's reply, checked."""
    if not isinstance(reply, dict) or set(reply) != {"exit_code", "cpu_s", "stderr_tail"}:
        raise ValueError("the worker's reply is not {exit_code, cpu_s, stderr_tail}")
    exit_code, cpu_s, stderr_tail = reply["exit_code"], reply["cpu_s"], reply["stderr_tail"]
    if isinstance(exit_code, bool) or not isinstance(exit_code, int) or not 0 <= exit_code < 256:
        raise ValueError(f"the worker's exit code is not a byte: {exit_code!r}")
    if isinstance(cpu_s, bool) or not isinstance(cpu_s, int | float) or cpu_s < 0:
        raise ValueError(f"the worker's CPU time is not a number of seconds: {cpu_s!r}")
    if not isinstance(stderr_tail, str):
        raise ValueError("the worker's stderr tail is not text")
    return exit_code, float(cpu_s), stderr_tail
