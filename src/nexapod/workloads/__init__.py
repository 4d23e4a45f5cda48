"""Scientific workloads: what a work unit computes, and which module runs it.

A workload is a pure-numpy package whose ``unit`` module is the program the node agent
runs inside the sandbox (``python -m <unit_module> SCRATCH_DIR``). This package and its
workload packages import no numpy at load time, so that the unit can limit BLAS threads
before numpy starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from nexapod.errors import WorkloadError

__all__ = ["WORKLOADS", "Workload", "unit_module"]


@dataclass(frozen=True)
class Workload:
    """A workload's name, the version of its unit spec, and its sandbox entry point."""

    name: str
    unit_version: int
    unit_module: str


WORKLOADS: dict[str, Workload] = {
    "atlas": Workload(name="atlas", unit_version=1, unit_module="nexapod.workloads.atlas.unit"),
}
assert all(name == workload.name for name, workload in WORKLOADS.items())


def unit_module(workload_name: str) -> str:
    """The module the sandbox runs for ``workload_name`` (``python -m`` form)."""
    workload = WORKLOADS.get(workload_name)
    if workload is None:
        raise WorkloadError("unknown_workload", f"no workload named {workload_name!r}")
    return workload.unit_module
