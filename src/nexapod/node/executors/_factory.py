"""Executor by name, as the CLI's ``--executor`` option gives it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nexapod.errors import NodeError
from nexapod.node.executors._bwrap import BwrapExecutor
from nexapod.node.executors._docker import DockerExecutor
from nexapod.node.executors._process import ProcessExecutor
from nexapod.node.executors._types import Executor

__all__ = ["EXECUTOR_NAMES", "make_executor"]

EXECUTOR_NAMES = ("bwrap", "docker", "process")


def make_executor(
    name: str,
    *,
    docker_image: str | None = None,
    sandbox_reuse: bool = True,
    readable_dirs: Sequence[Path] = (),
) -> Executor:
    """The executor called ``name``, checked to work on this host.

    ``sandbox_reuse`` keeps one bubblewrap sandbox warm between units (see ``_warm``);
    False starts a fresh sandbox for every unit. ``readable_dirs`` are bound read-only
    into every sandbox, at the same path (the node's prepared inputs).

    Raises ``node.executor_unavailable`` (with what to do next) when it cannot run here and
    ``node.executor_unknown`` for a name that is not one of ``EXECUTOR_NAMES``.
    """
    if name == "bwrap":
        return BwrapExecutor(reuse=sandbox_reuse, readable_dirs=readable_dirs)
    if name == "process":
        return ProcessExecutor(readable_dirs=readable_dirs)
    if name == "docker":
        if not docker_image:
            raise NodeError(
                "executor_unavailable",
                "the docker executor needs an image: pass --docker-image IMAGE",
            )
        return DockerExecutor(docker_image, readable_dirs=readable_dirs)
    raise NodeError(
        "executor_unknown",
        f"unknown executor {name!r}: choose one of {', '.join(EXECUTOR_NAMES)}",
    )
