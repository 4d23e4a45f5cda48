"""Sandbox entry point: ``python -m nexapod.workloads.atlas.unit SCRATCH_DIR``.

Computes one atlas unit from the scratch directory laid out by ``write_unit_input``
(see ``_unitio``) and writes ``out/result.bin`` atomically.

Exit codes, a contract with the sandbox executor (nexapod.node.executors):

    0  success
    2  bad input: unit.json, a block or the arguments (one line on stderr)
    3  out of memory (one line on stderr)

BLAS threads are limited to ``NEXAPOD_UNIT_THREADS`` (default 1) before numpy is
imported: OpenBLAS, OpenMP and MKL read their thread counts once, when loaded. This
module reads the environment directly because it runs alone in the sandbox, without the
node's Settings; the node agent sets the variable. It imports only the standard library
at the top, so the thread limits are in place before anything loads numpy, and
``nexapod.workloads.atlas`` loads its numpy modules lazily for the same reason.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["EXIT_BAD_INPUT", "EXIT_MEMORY", "EXIT_OK", "THREADS_MAX", "main", "preload"]

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_MEMORY = 3
THREADS_MAX = 256
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _limit_blas_threads() -> str:
    """Set the BLAS thread variables that are unset; return an error message or ''."""
    text = os.environ.get("NEXAPOD_UNIT_THREADS", "1")
    if not text.isdigit() or not 1 <= int(text) <= THREADS_MAX:
        return f"NEXAPOD_UNIT_THREADS must be an integer in [1, {THREADS_MAX}], got {text!r}"
    for name in _THREAD_VARIABLES:
        os.environ.setdefault(name, str(int(text)))
    return ""


def preload() -> None:
    """Load numpy and the kernel once, for a long-lived worker (``nexapod.workloads.worker``).

    The thread limits come first, as in :func:`main`; a bad ``NEXAPOD_UNIT_THREADS`` stops
    the worker before it says it is ready.
    """
    problem = _limit_blas_threads()
    if problem:
        raise SystemExit(f"nexapod unit: {problem}")
    import nexapod.workloads.atlas._codec
    import nexapod.workloads.atlas._kernel
    import nexapod.workloads.atlas._unitio  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Run one unit; return the exit code (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nexapod.workloads.atlas.unit SCRATCH_DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    problem = _limit_blas_threads()
    if problem:
        print(f"nexapod unit: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    scratch_dir = Path(args[0])
    try:
        # Imported here, after the thread limits: these modules import numpy.
        from nexapod.errors import WorkloadError
        from nexapod.workloads.atlas._codec import encode_unit_result
        from nexapod.workloads.atlas._kernel import compute_unit
        from nexapod.workloads.atlas._unitio import read_unit_input, write_unit_output

        try:
            unit = read_unit_input(scratch_dir)
            if unit.chunk_rows:
                result = _compute_chunked(unit, scratch_dir)
            else:
                result = compute_unit(unit.block_row, unit.block_col, unit.shape, unit.params.k)
        except WorkloadError as exc:
            print(f"nexapod unit: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        write_unit_output(scratch_dir, encode_unit_result(result, unit.shape))
    except MemoryError:
        print("nexapod unit: out of memory", file=sys.stderr)
        return EXIT_MEMORY
    return EXIT_OK


def _compute_chunked(unit: Any, scratch_dir: Path) -> Any:
    """The unit in row chunks, from in/checkpoint.bin when the node was given one, with
    the state after each chunk in out/checkpoint.bin for the node agent to upload."""
    from nexapod.errors import WorkloadError
    from nexapod.workloads.atlas._checkpoint import (
        Checkpoint,
        compute_unit_chunked,
        decode_checkpoint,
        encode_checkpoint,
    )
    from nexapod.workloads.atlas._unitio import CHECKPOINT_IN, write_unit_output

    resume = None
    given = scratch_dir / "in" / CHECKPOINT_IN
    if given.is_file():
        try:
            resume = decode_checkpoint(
                given.read_bytes(), unit.shape, unit.params.k, unit.chunk_rows
            )
        except WorkloadError as exc:  # discarded: the unit starts from its first row
            print(f"nexapod unit: checkpoint discarded: {exc}", file=sys.stderr)

    def save(state: Checkpoint) -> None:
        write_unit_output(scratch_dir, encode_checkpoint(state), CHECKPOINT_IN)

    return compute_unit_chunked(
        unit.block_row,
        unit.block_col,
        unit.shape,
        unit.params.k,
        unit.chunk_rows,
        resume=resume,
        on_checkpoint=save,
    )


if __name__ == "__main__":
    sys.exit(main())
