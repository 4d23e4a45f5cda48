"""When two results of the same atlas unit agree: the tolerance of validation by quorum.

Honest nodes on different CPUs, BLAS builds or GPUs sum the same float32 dot products in
different orders, so their similarities differ in the last bits, and a neighbour at the
edge of the top-k (or two neighbours with nearly equal similarity) may come out
differently. Two results agree when, list by list:

- padding (fewer than k candidates) sits at the same places;
- the similarities, position by position, differ by at most ``SIM_TOLERANCE``;
- every neighbour that is clearly inside one list's top-k (similarity more than twice
  ``SIM_TOLERANCE`` above that list's last one) is in the other list too.

Only the order among near-ties and the choice at the boundary may differ; a result with
one wrong neighbour, or one similarity off by more than the tolerance, disagrees.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nexapod.workloads.atlas._kernel import UnitResult

__all__ = ["SIM_TOLERANCE", "lists_agree", "results_agree"]

# float32 rounding of a 1024-term dot product of unit vectors is below 1e-6; a thousand
# times that still separates any real error from honest noise.
SIM_TOLERANCE = 1e-4

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


def results_agree(a: UnitResult, b: UnitResult, sim_tolerance: float = SIM_TOLERANCE) -> bool:
    """True when two decoded results of the same unit agree (see the module docstring)."""
    assert sim_tolerance >= 0
    return lists_agree(a.row_ids, a.row_sims, b.row_ids, b.row_sims, sim_tolerance) and lists_agree(
        a.col_ids, a.col_sims, b.col_ids, b.col_sims, sim_tolerance
    )


def lists_agree(
    ids_a: Int64Array,
    sims_a: Float32Array,
    ids_b: Int64Array,
    sims_b: Float32Array,
    sim_tolerance: float,
) -> bool:
    """Two [owners, k] neighbour lists (checked by the codec) agree within the tolerance."""
    if ids_a.shape != ids_b.shape or sims_a.shape != sims_b.shape or ids_a.shape != sims_a.shape:
        return False
    if ids_a.size == 0:
        return True
    valid = ids_a != -1
    if not np.array_equal(valid, ids_b != -1):
        return False
    if not np.all(np.abs(sims_a[valid].astype(np.float64) - sims_b[valid]) <= sim_tolerance):
        return False
    return _confident_listed(ids_a, sims_a, valid, ids_b, sim_tolerance) and _confident_listed(
        ids_b, sims_b, valid, ids_a, sim_tolerance
    )


def _confident_listed(
    ids: Int64Array,
    sims: Float32Array,
    valid: npt.NDArray[np.bool_],
    other_ids: Int64Array,
    sim_tolerance: float,
) -> bool:
    """Every id clearly in a row's top-k (more than twice the tolerance above the row's
    last similarity, so both sides' rounding cannot move it out) is in the other's row."""
    counts = valid.sum(axis=1)
    last = sims[np.arange(ids.shape[0]), np.maximum(counts - 1, 0)].astype(np.float64)
    confident = valid & (sims.astype(np.float64) > last[:, None] + 2 * sim_tolerance)
    listed = (ids[:, :, None] == other_ids[:, None, :]).any(axis=2)
    return bool(np.all(listed | ~confident))
