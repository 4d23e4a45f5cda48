"""The rules every top-k neighbour list obeys, checked on everything we decode.

A list is two [owners, k] arrays: int64 global ids and float32 similarities. Entries are
valid neighbours first, then padding (id -1 with similarity -inf); valid entries are
distinct, never the owner itself, inside the allowed id range, finite, within
[-SIM_ABS_MAX, SIM_ABS_MAX] (cosines of unit vectors, plus float32 rounding), and sorted by
similarity descending, ties by smaller id.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._plan import UnitShape

__all__ = ["SIM_ABS_MAX", "check_neighbour_lists", "unit_lists_hold"]

SIM_ABS_MAX = 1.0001

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def check_neighbour_lists(
    ids: Int64Array,
    sims: Float32Array,
    *,
    owner_start: int,
    id_start: int,
    id_stop: int,
    valid_count: int | None,
    what: str,
    code: str,
) -> None:
    """Raise WorkloadError(code) naming the first owner (global id) that breaks a rule.

    Owners are ``owner_start + row``; neighbour ids must lie in [id_start, id_stop);
    ``valid_count``, when given, is the exact number of valid entries per owner.
    """
    assert ids.dtype == np.int64
    assert sims.dtype == np.float32
    assert ids.shape == sims.shape
    assert ids.ndim == 2
    if ids.shape[0] == 0:
        return
    if valid_count is not None and _lists_hold(
        ids, sims, owner_start, id_start, id_stop, valid_count
    ):
        return
    owners = owner_start + np.arange(ids.shape[0], dtype=np.int64)
    fail = _Failer(owners, what, code)
    valid = ids != -1
    fail(np.any(valid == (sims == -np.inf), axis=1), "padding must be id -1 with sim -inf")
    fail(np.any(valid[:, 1:] & ~valid[:, :-1], axis=1), "a neighbour follows padding")
    if valid_count is not None:
        counts = valid.sum(axis=1)
        fail(counts != valid_count, f"must list exactly {valid_count} neighbours")
    in_range = (ids >= id_start) & (ids < id_stop)
    fail(np.any(valid & ~in_range, axis=1), f"a neighbour id outside [{id_start}, {id_stop})")
    fail(np.any(ids == owners[:, None], axis=1), "listed as its own neighbour")
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(sims)
        bounded = np.abs(sims) <= np.float32(SIM_ABS_MAX)
    fail(np.any(valid & ~finite, axis=1), "a similarity is NaN or infinite")
    fail(np.any(valid & ~bounded, axis=1), f"a similarity outside [-{SIM_ABS_MAX}, {SIM_ABS_MAX}]")
    both = valid[:, 1:] & valid[:, :-1]
    left_sims, right_sims = sims[:, :-1], sims[:, 1:]
    left_ids, right_ids = ids[:, :-1], ids[:, 1:]
    ordered = (left_sims > right_sims) | ((left_sims == right_sims) & (left_ids < right_ids))
    fail(np.any(both & ~ordered, axis=1), "not sorted by similarity descending, then id")
    # Sorted ids expose duplicates that sit apart (different sims); padding sorts first.
    by_id = np.sort(ids, axis=1)
    repeated = (by_id[:, 1:] == by_id[:, :-1]) & (by_id[:, 1:] != -1)
    fail(np.any(repeated, axis=1), "a neighbour is listed twice")


def unit_lists_hold(
    row_ids: Int64Array,
    row_sims: Float32Array,
    col_ids: Int64Array,
    col_sims: Float32Array,
    shape: UnitShape,
    row_valid_count: int,
    col_valid_count: int,
) -> bool:
    """Both lists of a unit obey every rule (one pass over both when they are alike).

    Rows list ids of block_col and columns ids of block_row; when both lists hold the
    same number of valid entries they are stacked and checked together, each stacked
    row against its own owner and id range. False means "look closer": the caller then
    runs :func:`check_neighbour_lists` on each list to name the defect.
    """
    if col_ids.shape[0] == 0 or row_valid_count != col_valid_count:
        return _lists_hold(
            row_ids, row_sims, shape.row_start, shape.col_start, shape.col_stop, row_valid_count
        ) and (
            col_ids.shape[0] == 0
            or _lists_hold(
                col_ids, col_sims, shape.col_start, shape.row_start, shape.row_stop, col_valid_count
            )
        )
    ids = np.concatenate((row_ids, col_ids))
    sims = np.concatenate((row_sims, col_sims))
    n_rows = row_ids.shape[0]
    owners = np.concatenate(
        (np.arange(shape.row_start, shape.row_stop), np.arange(shape.col_start, shape.col_stop))
    )
    starts = np.repeat(np.array([shape.col_start, shape.row_start]), (n_rows, col_ids.shape[0]))
    stops = np.repeat(np.array([shape.col_stop, shape.row_stop]), (n_rows, col_ids.shape[0]))
    return _lists_hold_rows(ids, sims, owners, starts, stops, row_valid_count)


def _lists_hold(
    ids: Int64Array,
    sims: Float32Array,
    owner_start: int,
    id_start: int,
    id_stop: int,
    valid_count: int,
) -> bool:
    owners = np.arange(owner_start, owner_start + ids.shape[0], dtype=np.int64)
    starts = np.full(ids.shape[0], id_start, dtype=np.int64)
    stops = np.full(ids.shape[0], id_stop, dtype=np.int64)
    return _lists_hold_rows(ids, sims, owners, starts, stops, valid_count)


def _lists_hold_rows(
    ids: Int64Array,
    sims: Float32Array,
    owners: Int64Array,
    id_starts: Int64Array,
    id_stops: Int64Array,
    valid_count: int,
) -> bool:
    """Every rule at once, in a few whole-array operations (results are checked on the
    coordinator's hot path). False sends the caller to the rule-by-rule pass, which names
    the first owner that breaks a rule; both passes accept exactly the same lists."""
    k = ids.shape[1]
    if not 0 <= valid_count <= k:
        return False
    valid_ids, valid_sims = ids[:, :valid_count], sims[:, :valid_count]
    if valid_count < k and not (
        np.all(ids[:, valid_count:] == -1) and np.all(sims[:, valid_count:] == -np.inf)
    ):
        return False
    if valid_count == 0:
        return True
    if np.any(valid_ids.min(axis=1) < id_starts) or np.any(valid_ids.max(axis=1) >= id_stops):
        return False
    if np.any(valid_ids == owners[:, None]):
        return False
    with np.errstate(invalid="ignore"):
        if not float(np.max(np.abs(valid_sims))) <= SIM_ABS_MAX:  # NaN fails too
            return False
    left_sims, right_sims = valid_sims[:, :-1], valid_sims[:, 1:]
    left_ids, right_ids = valid_ids[:, :-1], valid_ids[:, 1:]
    ordered = (left_sims > right_sims) | ((left_sims == right_sims) & (left_ids < right_ids))
    if not np.all(ordered):
        return False
    by_id = np.sort(valid_ids, axis=1)
    return not np.any(by_id[:, 1:] == by_id[:, :-1])


class _Failer:
    """Raises for the first owner flagged by a rule, naming it by its global id."""

    def __init__(self, owners: Int64Array, what: str, code: str) -> None:
        self.owners = owners
        self.what = what
        self.code = code

    def __call__(self, bad_rows: BoolArray, reason: str) -> None:
        assert bad_rows.shape == self.owners.shape
        rows = np.flatnonzero(bad_rows)
        if rows.shape[0]:
            owner = int(self.owners[rows[0]])
            raise WorkloadError(self.code, f"{self.what}: spectrum {owner}: {reason}")
