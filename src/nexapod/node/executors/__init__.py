"""Sandboxed execution of work units: bubblewrap (default), Docker, or a bare process.

A node runs each leased unit as a command through one ``Executor``; the executor applies
``SandboxLimits`` and maps how the command ended to an ``ExecutionOutcome``. What each
executor isolates, and what none of them does, is in ``docs/sandbox.md``.
"""

from nexapod.node.executors._bwrap import BWRAP_INSTALL_HINT, BwrapExecutor, bwrap_argv
from nexapod.node.executors._docker import DockerExecutor, check_docker_engine, docker_argv
from nexapod.node.executors._factory import EXECUTOR_NAMES, make_executor
from nexapod.node.executors._process import PROCESS_WARNING, ProcessExecutor
from nexapod.node.executors._runtime import python_runtime_paths
from nexapod.node.executors._types import (
    FILE_BYTES_MAX_DEFAULT,
    PROCESSES_MAX_DEFAULT,
    TAIL_BYTES_MAX,
    ExecutionOutcome,
    ExecutionResult,
    Executor,
    SandboxLimits,
)

__all__ = [
    "BWRAP_INSTALL_HINT",
    "BwrapExecutor",
    "DockerExecutor",
    "EXECUTOR_NAMES",
    "ExecutionOutcome",
    "ExecutionResult",
    "Executor",
    "FILE_BYTES_MAX_DEFAULT",
    "PROCESSES_MAX_DEFAULT",
    "PROCESS_WARNING",
    "ProcessExecutor",
    "SandboxLimits",
    "TAIL_BYTES_MAX",
    "bwrap_argv",
    "check_docker_engine",
    "docker_argv",
    "make_executor",
    "python_runtime_paths",
]
