"""The Docker executor: for hosts that already run Docker and want image-pinned runtimes.

The container gets no network, a read-only root, the scratch directory as its only
writable mount, no capabilities, no privilege gain, a memory cgroup limit without swap, one
CPU, a pids limit, and the same RLIMIT_CPU/CORE/FSIZE as the other executors. The command
runs as the node's own uid:gid so the files it writes in scratch belong to the node. The
image must contain the Python runtime the command names.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from nexapod.errors import NodeError
from nexapod.node.executors._outcome import classify
from nexapod.node.executors._runtime import (
    check_scratch_dir,
    module_argv,
    readable_dir_paths,
    unit_env,
)
from nexapod.node.executors._supervise import supervise
from nexapod.node.executors._types import ExecutionResult, SandboxLimits

__all__ = ["DOCKER_CALL_S_MAX", "DockerExecutor", "check_docker_engine", "docker_argv"]

DOCKER_CALL_S_MAX = 10.0  # `docker info`, `docker kill`
_DOCKER_RUN_FAILED = 125  # the docker client's own failure, before the container ran
_DOCKER_MESSAGE_CHARS_MAX = 500
_log = logging.getLogger(__name__)


def docker_argv(
    docker_path: str,
    image: str,
    command: Sequence[str],
    *,
    scratch_dir: Path,
    limits: SandboxLimits,
    env: Mapping[str, str],
    container_name: str,
    uid: int,
    gid: int,
    readable_dirs: Sequence[Path] = (),
) -> list[str]:
    """The ``docker run`` command line for ``command``: pure, for tests and for reading."""
    assert scratch_dir.is_absolute()
    assert uid >= 0
    assert gid >= 0
    if not command:
        raise ValueError("the unit's command is empty")
    if not image or image.startswith("-"):
        raise ValueError(f"not a Docker image name: {image!r}")
    for path in (scratch_dir, *readable_dirs):
        if ":" in str(path) or "," in str(path):
            raise ValueError(f"Docker cannot mount a path with ':' or ',': {path}")
    scratch = str(scratch_dir)
    memory = str(limits.memory_bytes_max)
    cpu = limits.cpu_s_max
    args = [
        docker_path,
        "run",
        "--rm",
        "--name",
        container_name,
        "--network",
        "none",
        "--read-only",
        "--memory",
        memory,
        "--memory-swap",
        memory,  # equal to --memory: no swap
        "--cpus",
        "1",
        "--pids-limit",
        str(limits.processes_max),
        "--ulimit",
        f"cpu={cpu}:{cpu + 1}",
        "--ulimit",
        "core=0",
        "--ulimit",
        f"fsize={limits.file_bytes_max}",
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "ALL",
        "-v",
        f"{scratch}:{scratch}:rw",
        *(arg for path in readable_dirs for arg in ("-v", f"{path}:{path}:ro")),
        "-w",
        scratch,
        "--user",
        f"{uid}:{gid}",
    ]
    for name, value in sorted(env.items()):
        args += ["--env", f"{name}={value}"]
    return [*args, image, *command]


def check_docker_engine(docker_path: str) -> None:
    """Raise ``node.executor_unavailable`` unless ``docker info`` reaches an engine."""
    hint = (
        "start the Docker engine (`sudo systemctl start docker`) and make sure your user may "
        "use it (the `docker` group), or pass --executor bwrap"
    )
    try:
        done = subprocess.run(
            [docker_path, "info", "--format", "{{.ServerVersion}}"],
            stdin=subprocess.DEVNULL,
            capture_output=True,  # a few lines at most
            timeout=DOCKER_CALL_S_MAX,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NodeError(
            "executor_unavailable",
            f"`docker info` did not answer within {DOCKER_CALL_S_MAX} s: {hint}",
        ) from exc
    except OSError as exc:
        raise NodeError("executor_unavailable", f"cannot run {docker_path}: {exc}") from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()[:_DOCKER_MESSAGE_CHARS_MAX]
        raise NodeError(
            "executor_unavailable", f"the Docker engine is not reachable ({message}): {hint}"
        )


class DockerExecutor:
    """Runs each unit in a fresh container of ``image``; construction checks the engine."""

    name: str = "docker"
    isolated: bool = True

    def __init__(
        self,
        image: str,
        *,
        docker_path: str | None = None,
        check_engine: bool = True,
        readable_dirs: Sequence[Path] = (),
    ) -> None:
        if not image or image.startswith("-"):
            raise ValueError(f"not a Docker image name: {image!r}")
        found = shutil.which("docker") if docker_path is None else docker_path
        if found is None or not os.access(found, os.X_OK):
            raise NodeError(
                "executor_unavailable",
                "the docker client is not installed: install Docker Engine "
                "(https://docs.docker.com/engine/install/), or pass --executor bwrap",
            )
        self.image = image
        self.docker_path = found
        self.readable_dirs = readable_dir_paths(readable_dirs)
        if check_engine:
            check_docker_engine(found)

    def run(
        self,
        argv: Sequence[str],
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """Run ``argv`` in a new container; at the deadline the container is killed."""
        scratch = check_scratch_dir(scratch_dir)
        container_name = f"nexapod-unit-{secrets.token_hex(8)}"
        command = docker_argv(
            self.docker_path,
            self.image,
            argv,
            scratch_dir=scratch,
            limits=limits,
            env=unit_env(env, scratch),
            container_name=container_name,
            uid=os.getuid(),
            gid=os.getgid(),
            readable_dirs=self.readable_dirs,
        )
        raw = supervise(
            lambda _sync_fd, _info_fd: command,
            cwd=scratch,
            env=None,  # the client needs the node's DOCKER_HOST, HOME, ...
            wall_s_max=limits.wall_s_max,
            on_timeout=lambda _info: self._kill(container_name),
        )
        started = not raw.spawn_error and raw.status != _DOCKER_RUN_FAILED
        return classify(raw, limits, started=started, signal_as_exit_code=True)

    def run_module(
        self,
        module: str,
        scratch_dir: Path,
        limits: SandboxLimits,
        env: Mapping[str, str],
    ) -> ExecutionResult:
        """A new container for every unit."""
        return self.run(module_argv(module, scratch_dir), scratch_dir, limits, env)

    def close(self) -> None:
        """Nothing is kept between units."""

    def _kill(self, container_name: str) -> None:
        """The container is the daemon's child, not ours: killing the client is not enough."""
        try:
            subprocess.run(
                [self.docker_path, "kill", container_name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=DOCKER_CALL_S_MAX,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _log.warning("executor.docker_kill_timeout", extra={"container": container_name})
