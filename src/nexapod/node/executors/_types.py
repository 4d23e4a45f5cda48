"""The executor vocabulary: limits in, an outcome out.

An executor runs one work unit's command in a sandbox and says how it ended. The outcome
names follow the unit exit-code contract (``docs/sandbox.md``): 0 success, 2 bad input,
3 out of memory. Anything else is a failure, told apart by signal where the kernel tells us
(SIGXCPU for CPU time) and by who killed it (our wall-clock kill is a timeout).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

__all__ = [
    "FILE_BYTES_MAX_DEFAULT",
    "PROCESSES_MAX_DEFAULT",
    "TAIL_BYTES_MAX",
    "ExecutionOutcome",
    "ExecutionResult",
    "Executor",
    "SandboxLimits",
]

PROCESSES_MAX_DEFAULT = 64
# RLIMIT_FSIZE: the largest single file a unit may write. Results are far smaller; the bound
# stops a runaway unit from filling the node's disk with one file.
FILE_BYTES_MAX_DEFAULT = 4 * 1024**3
# How much of a unit's stderr (and stdout) we keep: the end, where tracebacks are.
TAIL_BYTES_MAX = 4096
_DESCRIBE_LINE_CHARS_MAX = 200


@dataclass(frozen=True)
class SandboxLimits:
    """What one unit may use. Every limit is required to be positive: there is no "unlimited".

    ``wall_s_max`` is the wall-clock budget from start; the node sets it to the time left on
    the lease, so a unit never outlives its lease.
    """

    memory_bytes_max: int  # RLIMIT_AS of every process of the unit (Docker: --memory)
    cpu_s_max: int  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL one second later
    wall_s_max: float  # the whole process tree is killed when it passes
    processes_max: int = PROCESSES_MAX_DEFAULT  # RLIMIT_NPROC in bwrap, --pids-limit in Docker
    file_bytes_max: int = FILE_BYTES_MAX_DEFAULT  # RLIMIT_FSIZE

    def __post_init__(self) -> None:
        for name in ("memory_bytes_max", "cpu_s_max", "processes_max", "file_bytes_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        wall = self.wall_s_max
        if isinstance(wall, bool) or not isinstance(wall, int | float):
            raise ValueError(f"wall_s_max must be a number of seconds, got {wall!r}")
        if not math.isfinite(wall) or wall <= 0:
            raise ValueError(f"wall_s_max must be positive and finite, got {wall!r}")


class ExecutionOutcome(StrEnum):
    """How a unit ended, in the terms the node reports to the coordinator."""

    OK = "ok"  # exit 0
    FAILED = "failed"  # any other non-zero exit or fatal signal
    BAD_INPUT = "bad_input"  # exit 2
    MEMORY = "memory"  # exit 3, an uncaught MemoryError, or killed by the OOM killer
    CPU_TIME = "cpu_time"  # SIGXCPU (RLIMIT_CPU)
    TIMEOUT = "timeout"  # we killed it at wall_s_max
    SANDBOX_ERROR = "sandbox_error"  # the sandbox failed before the unit's command ran


@dataclass(frozen=True)
class ExecutionResult:
    """The end of one run: bounded, so a chatty unit cannot grow the node's memory."""

    outcome: ExecutionOutcome
    exit_code: int | None  # None when a signal ended it (or it never started)
    wall_s: float
    stderr_tail: str  # the last TAIL_BYTES_MAX bytes of stderr, decoded with replacement
    signal_number: int | None = None  # the fatal signal, when there was one
    stdout_tail: str = ""  # the last TAIL_BYTES_MAX bytes of stdout

    def __post_init__(self) -> None:
        assert self.wall_s >= 0
        assert len(self.stderr_tail) <= TAIL_BYTES_MAX
        assert len(self.stdout_tail) <= TAIL_BYTES_MAX
        assert self.outcome != ExecutionOutcome.OK or self.exit_code == 0
        assert self.exit_code is None or self.signal_number is None

    def describe(self) -> str:
        """One line for a node operator: what happened, after how long, and the last words."""
        after = f"after {self.wall_s:.1f} s"
        how = self._how()
        text = {
            ExecutionOutcome.OK: f"unit finished {after}",
            ExecutionOutcome.FAILED: f"unit failed ({how}) {after}",
            ExecutionOutcome.BAD_INPUT: f"unit rejected its input ({how}) {after}",
            ExecutionOutcome.MEMORY: f"unit ran out of memory ({how}) {after}",
            ExecutionOutcome.CPU_TIME: f"unit used up its CPU-time limit ({how}) {after}",
            ExecutionOutcome.TIMEOUT: f"unit passed its wall-clock limit and was killed {after}",
            ExecutionOutcome.SANDBOX_ERROR: f"the sandbox failed to start {after}",
        }[self.outcome]
        last = _last_line(self.stderr_tail)
        if last and self.outcome != ExecutionOutcome.OK:
            text = f"{text}: {last}"
        assert "\n" not in text
        return text

    def _how(self) -> str:
        if self.signal_number is not None:
            return f"killed by {_signal_name(self.signal_number)}"
        return f"exit code {self.exit_code}"


class Executor(Protocol):
    """Runs a unit's command with ``scratch_dir`` as its only writable place."""

    name: str  # "bwrap" | "docker" | "process"
    isolated: bool  # False only for the process executor
    # Directories beside the scratch that units read at the same path, never write
    # (a node's prepared inputs): bound read-only into every sandbox.
    readable_dirs: tuple[Path, ...]

    def run(
        self,
        argv: Sequence[str],
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult: ...

    def run_module(
        self,
        module: str,
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """Run a workload's unit module (``python -m MODULE SCRATCH_DIR``, or a warm sandbox)."""
        ...

    def close(self) -> None:
        """Release what the executor keeps between units (a warm sandbox)."""
        ...


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1][:_DESCRIBE_LINE_CHARS_MAX]
