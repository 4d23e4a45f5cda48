"""What a Python unit needs from the host, and the shim that applies limits before the unit.

The shim is a few lines of Python run with ``python -I -S -c`` as the sandbox's command. It
sets the rlimits, tells the node through the sync pipe that the sandbox is up, and execs the
unit. Doing this inside the sandbox rather than in a ``preexec_fn`` has three reasons:

* ``preexec_fn`` is not safe in a threaded program such as the node agent;
* RLIMIT_NPROC counts every process of the user on the host, so set before bwrap it would
  stop bwrap itself; set inside bwrap's new user namespace it counts only the unit's;
* the byte on the sync pipe separates "bwrap could not build the sandbox" (no byte) from
  "the unit failed" (byte sent), without parsing bwrap's messages.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexapod.node.executors._types import SandboxLimits

__all__ = [
    "SHIM_EXEC_FAILED",
    "SHIM_STARTED",
    "check_scratch_dir",
    "module_argv",
    "python_runtime_paths",
    "readable_dir_paths",
    "scratch_tmp_dir",
    "shim_argv",
    "shim_started",
    "unit_env",
]

SHIM_STARTED = b"S"  # limits applied, about to exec the unit
SHIM_EXEC_FAILED = b"E"  # exec of the unit's command failed (it is not in the sandbox)
ENV_VARS_MAX = 256
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"

# argv: -c FD AS_BYTES CPU_S FSIZE_BYTES NPROC -- COMMAND...   (NPROC 0: leave it alone)
# A limit is never raised above the hard limit we inherited: that would fail for non-root.
_SHIM = """\
import os, resource, sys
def cap(kind, soft, hard):
    old = resource.getrlimit(kind)[1]
    if old != resource.RLIM_INFINITY:
        soft, hard = min(soft, old), min(hard, old)
    resource.setrlimit(kind, (soft, hard))
fd = int(sys.argv[1])
memory, cpu, fsize, nproc = (int(v) for v in sys.argv[2:6])
assert sys.argv[6] == "--"
cap(resource.RLIMIT_AS, memory, memory)
cap(resource.RLIMIT_CPU, cpu, cpu + 1)
cap(resource.RLIMIT_FSIZE, fsize, fsize)
cap(resource.RLIMIT_CORE, 0, 0)
if nproc > 0:
    cap(resource.RLIMIT_NPROC, nproc, nproc)
os.write(fd, b"S")
os.set_inheritable(fd, False)
try:
    os.execvp(sys.argv[7], sys.argv[7:])
except OSError as exc:
    message = f"cannot execute {sys.argv[7]}: {exc}"
    os.write(fd, b"E" + message.encode(errors="replace")[:1000])
    print("nexapod shim: " + message, file=sys.stderr)
    sys.exit(127)
"""


def python_runtime_paths() -> list[Path]:
    """The host directories a Python unit reads: interpreter, standard library, packages.

    The sandbox binds these read-only at the same paths. The list is the interpreter's
    prefixes, the directory of the real executable, and the directory holding the
    ``nexapod`` package (an editable install lives outside site-packages). Resolved,
    deduplicated, existing only.
    """
    candidates = [
        Path(sys.prefix),
        Path(sys.base_prefix),
        Path(sys.exec_prefix),
        Path(sys.base_exec_prefix),
        Path(sys.executable).resolve().parent,
        _package_dir().parent,
    ]
    paths: list[Path] = []
    for candidate in candidates:
        path = candidate.resolve()
        if path.is_dir() and path not in paths:
            paths.append(path)
    assert paths, "the running interpreter has no directory on disk"
    assert all(path.is_absolute() for path in paths)
    return paths


def _package_dir() -> Path:
    """The installed ``nexapod`` package, found from this file (the node may not import it)."""
    package = Path(__file__).resolve().parents[2]
    assert package.name == "nexapod"
    assert (package / "__init__.py").is_file()
    return package


def shim_argv(
    sync_fd: int, limits: SandboxLimits, command: Sequence[str], *, nproc: bool
) -> list[str]:
    """The command that applies ``limits`` and then execs ``command``.

    ``nproc=False`` leaves RLIMIT_NPROC alone: outside a user namespace it would count (and
    cap) all of the user's processes on the host.
    """
    assert sync_fd >= 0
    if not command or not command[0]:
        raise ValueError("the unit's command is empty")
    processes_max = limits.processes_max if nproc else 0
    return [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _SHIM,
        str(sync_fd),
        str(limits.memory_bytes_max),
        str(limits.cpu_s_max),
        str(limits.file_bytes_max),
        str(processes_max),
        "--",
        *command,
    ]


def module_argv(module: str, scratch_dir: Path) -> list[str]:
    """The command that runs a workload's unit module in a fresh process."""
    return [sys.executable, "-m", module, str(scratch_dir)]


def shim_started(sync_bytes: bytes) -> bool:
    """True when the shim ran and the unit's command was exec'd."""
    return sync_bytes == SHIM_STARTED


def unit_env(env: Mapping[str, str], scratch_dir: Path) -> dict[str, str]:
    """The unit's whole environment: ``env`` plus PATH, and HOME and TMPDIR in scratch.

    PATH, HOME and TMPDIR are always ours, so a unit's temporary files land in the one
    writable place. Nothing else of the node's environment reaches the unit.
    """
    assert scratch_dir.is_absolute()
    if len(env) > ENV_VARS_MAX:
        raise ValueError(f"more than {ENV_VARS_MAX} environment variables for a unit")
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"not an environment variable name: {name!r}")
        if "\0" in value:
            raise ValueError(f"environment variable {name} contains a NUL byte")
    result = dict(env)
    result["PATH"] = f"{Path(sys.executable).parent}:{_SYSTEM_PATH}"
    result["HOME"] = str(scratch_dir)
    result["TMPDIR"] = str(scratch_tmp_dir(scratch_dir))
    return result


def scratch_tmp_dir(scratch_dir: Path) -> Path:
    """Where TMPDIR points: inside scratch, created by the executor before the run."""
    return scratch_dir / "tmp"


def readable_dir_paths(dirs: Sequence[Path]) -> tuple[Path, ...]:
    """Directories units may read (bound read-only): absolute, existing, never ``/``."""
    paths = []
    for directory in dirs:
        path = directory.resolve()
        if not path.is_dir():
            raise ValueError(f"readable directory {path} does not exist")
        if path == Path("/"):
            raise ValueError("a readable directory cannot be /")
        paths.append(path)
    return tuple(paths)


def check_scratch_dir(scratch_dir: Path) -> Path:
    """The scratch directory as an absolute path, after checking it can be the sandbox's."""
    path = scratch_dir.absolute()
    if not path.is_dir():
        raise ValueError(f"scratch directory {path} does not exist")
    if path.resolve() == Path("/"):
        raise ValueError("the scratch directory cannot be /")
    scratch_tmp_dir(path).mkdir(exist_ok=True)
    return path
