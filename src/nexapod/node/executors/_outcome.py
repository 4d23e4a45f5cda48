"""From what the kernel reported to an ``ExecutionOutcome``: pure, so every rule is tested.

Order matters. Our own wall-clock kill wins (the unit died of SIGKILL because we sent it);
then a sandbox that never ran the unit; then signals; then the exit-code contract
(0 ok, 2 bad input, 3 out of memory); then a MemoryError traceback, which is how a Python
unit that does not follow the contract runs out of its address space.
"""

from __future__ import annotations

import re
import signal

from nexapod.node.executors._supervise import Supervised
from nexapod.node.executors._types import (
    TAIL_BYTES_MAX,
    ExecutionOutcome,
    ExecutionResult,
    SandboxLimits,
)

__all__ = ["EXIT_BAD_INPUT", "EXIT_MEMORY", "classify", "split_status"]

EXIT_BAD_INPUT = 2
EXIT_MEMORY = 3
_SIGNAL_EXIT_BASE = 128  # bwrap and Docker report a child killed by signal N as exit 128 + N
_SIGNAL_NUMBER_MAX = 64
# The last line of a Python traceback for MemoryError or a subclass (numpy's
# _ArrayMemoryError): "MemoryError", "numpy.core._exceptions._ArrayMemoryError: Unable ...".
_MEMORY_ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?\w*MemoryError(?::|$)")


def split_status(status: int, *, signal_as_exit_code: bool) -> tuple[int | None, int | None]:
    """(exit_code, signal_number) from a wait status, one of them None.

    Through bwrap or Docker a unit killed by signal N shows as exit code 128 + N. A unit that
    itself exits with 129..192 reads as killed by a signal: the contract reserves those codes.
    """
    if status < 0:
        return None, -status
    base = _SIGNAL_EXIT_BASE
    if signal_as_exit_code and base < status <= base + _SIGNAL_NUMBER_MAX:
        return None, status - base
    return status, None


def classify(
    run: Supervised, limits: SandboxLimits, *, started: bool, signal_as_exit_code: bool
) -> ExecutionResult:
    """The outcome of one supervised run. ``started``: the unit's command was exec'd."""
    stderr_tail = _decode_tail(run.stderr_tail)
    if run.spawn_error:
        stderr_tail = _decode_tail((stderr_tail + "\n" + run.spawn_error).encode())
    exit_code, signal_number = split_status(run.status, signal_as_exit_code=signal_as_exit_code)
    if run.timed_out:
        exit_code, signal_number = None, signal.SIGKILL.value
    outcome = _outcome(
        run,
        limits,
        started=started,
        exit_code=exit_code,
        signal_number=signal_number,
        stderr_tail=stderr_tail,
    )
    if outcome == ExecutionOutcome.SANDBOX_ERROR:
        exit_code, signal_number = None, None
    return ExecutionResult(
        outcome=outcome,
        exit_code=exit_code,
        wall_s=run.wall_s,
        stderr_tail=stderr_tail,
        signal_number=signal_number,
        stdout_tail=_decode_tail(run.stdout_tail),
    )


def _outcome(
    run: Supervised,
    limits: SandboxLimits,
    *,
    started: bool,
    exit_code: int | None,
    signal_number: int | None,
    stderr_tail: str,
) -> ExecutionOutcome:
    assert (exit_code is None) != (signal_number is None)
    if run.timed_out:
        return ExecutionOutcome.TIMEOUT
    if not started:
        return ExecutionOutcome.SANDBOX_ERROR
    if signal_number == signal.SIGXCPU:
        return ExecutionOutcome.CPU_TIME
    if signal_number == signal.SIGKILL:
        # Not our kill: RLIMIT_CPU's hard limit (the unit ignored SIGXCPU) or the OOM killer.
        if run.cpu_s >= limits.cpu_s_max:
            return ExecutionOutcome.CPU_TIME
        return ExecutionOutcome.MEMORY
    if exit_code == 0:
        return ExecutionOutcome.OK
    if exit_code == EXIT_BAD_INPUT:
        return ExecutionOutcome.BAD_INPUT
    if exit_code == EXIT_MEMORY or _ends_in_memory_error(stderr_tail):
        return ExecutionOutcome.MEMORY
    return ExecutionOutcome.FAILED


def _ends_in_memory_error(stderr_tail: str) -> bool:
    lines = [line for line in stderr_tail.splitlines() if line.strip()]
    return bool(lines) and _MEMORY_ERROR_LINE.match(lines[-1]) is not None


def _decode_tail(data: bytes) -> str:
    """Text of a byte tail; a character cut at the start becomes U+FFFD."""
    text = data[-TAIL_BYTES_MAX:].decode("utf-8", errors="replace")
    return text[-TAIL_BYTES_MAX:]
