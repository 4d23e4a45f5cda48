"""The fallback executor: a plain child process, for hosts without bubblewrap or Docker.

It applies the same rlimits (except RLIMIT_NPROC, which outside a user namespace would
count all of the user's processes) and the same wall-clock kill of the process group, and
runs the unit in its scratch directory with a clean environment. It does not isolate: the
unit can use the network and read and write whatever the node's user can.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexapod.node.executors._outcome import classify
from nexapod.node.executors._runtime import (
    check_scratch_dir,
    module_argv,
    readable_dir_paths,
    shim_argv,
    shim_started,
    unit_env,
)
from nexapod.node.executors._supervise import supervise
from nexapod.node.executors._types import ExecutionResult, SandboxLimits

__all__ = ["PROCESS_WARNING", "ProcessExecutor"]

PROCESS_WARNING = "units run without a sandbox: they can reach the network and your files"

_log = logging.getLogger(__name__)


class ProcessExecutor:
    """Runs units as ordinary child processes; ``warning`` is for the CLI to print."""

    name: str = "process"
    isolated: bool = False

    def __init__(self, *, readable_dirs: Sequence[Path] = ()) -> None:
        self.readable_dirs = readable_dir_paths(readable_dirs)  # the host's files: no binding
        self.warning = PROCESS_WARNING
        _log.warning("executor.unsandboxed", extra={"executor": self.name})

    def run(
        self,
        argv: Sequence[str],
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """Run ``argv`` with ``scratch_dir`` as working directory, HOME and TMPDIR."""
        scratch = check_scratch_dir(scratch_dir)
        raw = supervise(
            lambda sync_fd, _info_fd: shim_argv(sync_fd, limits, argv, nproc=False),
            cwd=scratch,
            env=unit_env(env, scratch),
            wall_s_max=limits.wall_s_max,
        )
        started = not raw.spawn_error and shim_started(raw.sync_bytes)
        return classify(raw, limits, started=started, signal_as_exit_code=False)

    def run_module(
        self,
        module: str,
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """A fresh process for every unit."""
        return self.run(module_argv(module, scratch_dir), scratch_dir, limits, env)

    def close(self) -> None:
        """Nothing is kept between units."""
