"""The node's capacity benchmark: the real kernel on random unit vectors, timed.

A node's advertised FLOP/s must be what it delivers on atlas units, so this runs
``compute_unit`` itself (matmul and selection) on an off-diagonal pair of blocks and
counts ``unit_flops`` per call. It uses whatever BLAS threads the process has.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._kernel import compute_unit
from nexapod.workloads.atlas._params import EMBEDDING_DIM_MAX, EMBEDDING_DIM_MIN, require_int
from nexapod.workloads.atlas._plan import UnitShape, unit_flops

__all__ = ["CAPACITY_BLOCK_SIZE", "CAPACITY_DURATION_S_MAX", "measure_capacity_flops_per_s"]

CAPACITY_BLOCK_SIZE = 1024
CAPACITY_K = 16
CAPACITY_DURATION_S_MAX = 600.0
CAPACITY_CALLS_MAX = 100_000
_SEED = 0x4E58  # fixed: every node measures the same work


def _unit_vectors(
    rng: np.random.Generator, n_rows: int, embedding_dim: int
) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((n_rows, embedding_dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def measure_capacity_flops_per_s(duration_s: float = 1.0, embedding_dim: int = 1024) -> int:
    """Achieved FLOP/s of ``compute_unit`` over about ``duration_s`` (one untimed warm-up).

    At least one timed call is made, so a very short duration still returns a measure.
    """
    if not 0.0 < duration_s <= CAPACITY_DURATION_S_MAX:
        raise WorkloadError(
            "params_invalid", f"duration_s must be in (0, {CAPACITY_DURATION_S_MAX}]"
        )
    require_int(
        embedding_dim, "embedding_dim", EMBEDDING_DIM_MIN, EMBEDDING_DIM_MAX, "params_invalid"
    )
    rng = np.random.default_rng(_SEED)
    size = CAPACITY_BLOCK_SIZE
    block_row = _unit_vectors(rng, size, embedding_dim)
    block_col = _unit_vectors(rng, size, embedding_dim)
    shape = UnitShape(
        block_row=0, block_col=1, row_start=0, row_stop=size, col_start=size, col_stop=2 * size
    )
    flops_per_call = unit_flops(size, size, embedding_dim)
    compute_unit(block_row, block_col, shape, CAPACITY_K)  # warm-up: page faults, caches
    calls = 0
    started_s = time.perf_counter()
    elapsed_s = 0.0
    while calls < CAPACITY_CALLS_MAX and (calls == 0 or elapsed_s < duration_s):
        compute_unit(block_row, block_col, shape, CAPACITY_K)
        calls += 1
        elapsed_s = time.perf_counter() - started_s
    assert calls >= 1
    assert elapsed_s > 0.0
    return max(1, int(calls * flops_per_call / elapsed_s))
