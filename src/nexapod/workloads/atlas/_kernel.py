"""The hot kernel: one block pair's similarities and exact top-k in both directions.

One float32 matmul ``S = block_row @ block_col.T`` does all the FLOPs; the selection
must stay a small fraction of it (bench/kernel.py measures it against the bare matmul
and faiss). A full sort or argpartition of S would cost a quarter of the matmul, so:

1. Threshold. Split each row of S into G >= k groups (strided columns, so numpy reduces
   over long contiguous runs) and take each group's maximum. The k-th largest group
   maximum ``t`` is a value of k distinct entries, so the row's k-th largest entry is
   >= t: every entry of the exact top-k (ties included) is in ``{S >= t}``. Typically
   that set holds barely more than k entries.
2. Candidates. Comparison passes write one byte mask for both directions (entry >= its
   row's threshold, or >= its column's); one scan lists its non-zero positions.
3. Order. Each candidate becomes one uint64 key ``owner << 48 | desc(sim) << 16 | other``
   (local indices fit 16 bits as block_size <= 65536; ``desc`` maps float32 to uint32 so
   that a larger similarity gives a smaller key), and one sort orders candidates by
   owner, similarity descending, then index ascending: the contract's tie rule, exact.

Columns get the same treatment on row groups. -0.0 is turned into +0.0 first, so equal
similarities always compare equal. A diagonal unit masks S's diagonal with -inf: a
spectrum is never its own neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._params import BLOCK_SIZE_MAX, K_MAX, K_MIN, require_int
from nexapod.workloads.atlas._plan import UnitShape

__all__ = ["UnitResult", "compute_unit", "desc_key", "from_desc_key"]

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
UInt32Array = npt.NDArray[np.uint32]
UInt64Array = npt.NDArray[np.uint64]

# Group sizes: G >= 8k (rows) or 4k (columns) groups leave few candidates beyond the
# top-k; the caps keep the group-maximum passes fast (measured on 2048 x 2048 blocks).
_ROW_GROUPS_PER_K = 8
_ROW_GROUP_SIZE_MAX = 16
_COL_GROUPS_PER_K = 4
_COL_GROUP_SIZE_MAX = 32
_COMPARE_CHUNK_ROWS = 64
_LOW16 = np.uint64(0xFFFF)
_LOW31 = np.int32(0x7FFFFFFF)


@dataclass(frozen=True, eq=False)
class UnitResult:
    """Top-k of each spectrum of block_row among block_col, and (off-diagonal) back.

    ids are global spectrum ids (-1 pads rows with fewer than k candidates), sims the
    float32 similarities (-inf pads), each row ordered by similarity descending, then id.
    """

    row_ids: Int64Array
    row_sims: Float32Array
    col_ids: Int64Array
    col_sims: Float32Array

    def __post_init__(self) -> None:
        for ids, sims in ((self.row_ids, self.row_sims), (self.col_ids, self.col_sims)):
            assert ids.dtype == np.int64
            assert sims.dtype == np.float32
            assert ids.ndim == 2
            assert ids.shape == sims.shape
        assert self.row_ids.shape[1] == self.col_ids.shape[1]

    @property
    def k(self) -> int:
        return int(self.row_ids.shape[1])


def compute_unit(
    block_row: Float32Array, block_col: Float32Array, shape: UnitShape, k: int
) -> UnitResult:
    """The unit's exact top-k lists (see the module docstring for how).

    For a diagonal unit pass the same block twice; its ``col_ids`` is ``(0, k)``.
    """
    require_int(k, "k", K_MIN, K_MAX, "params_invalid")
    _check_block(block_row, shape.n_rows, "block_row")
    _check_block(block_col, shape.n_cols, "block_col")
    if block_row.shape[1] != block_col.shape[1]:
        raise WorkloadError("block_malformed", "blocks differ in embedding_dim")
    similarities = np.matmul(block_row, block_col.T)  # the one matmul: all the FLOPs
    assert similarities.dtype == np.float32
    assert similarities.flags.c_contiguous
    n_rows, n_cols = similarities.shape
    if shape.is_diagonal:
        np.fill_diagonal(similarities, -np.inf)  # a spectrum is not its own neighbour
    k_rows = min(k, n_cols - 1 if shape.is_diagonal else n_cols)
    row_thresholds = _row_thresholds(similarities, k_rows)
    col_thresholds = None
    k_cols = min(k, n_rows)
    if not shape.is_diagonal:
        col_thresholds = _col_thresholds(similarities, k_cols)
    flat = _candidates(similarities, row_thresholds, col_thresholds)
    major, minor = np.divmod(flat, n_cols)
    values = similarities.ravel()[flat] + np.float32(0.0)  # -0.0 becomes +0.0
    middle = desc_key(values).astype(np.uint64) << np.uint64(16)
    major_bits, minor_bits = major.astype(np.uint64), minor.astype(np.uint64)
    row_keys = (major_bits << np.uint64(48)) | middle | minor_bits
    row_keys = row_keys[values >= row_thresholds[major]]
    row_ids, row_sims = _top_k(row_keys, n_rows, k_rows, shape.col_start, k)
    if col_thresholds is None:
        col_ids = np.empty((0, k), dtype=np.int64)
        col_sims = np.empty((0, k), dtype=np.float32)
    else:
        col_keys = (minor_bits << np.uint64(48)) | middle | major_bits
        col_keys = col_keys[values >= col_thresholds[minor]]
        col_ids, col_sims = _top_k(col_keys, n_cols, k_cols, shape.row_start, k)
    return UnitResult(row_ids, row_sims, col_ids, col_sims)


def _check_block(block: Float32Array, n_rows: int, name: str) -> None:
    if not isinstance(block, np.ndarray) or block.dtype != np.float32 or block.ndim != 2:
        raise WorkloadError("block_malformed", f"{name} must be a 2-D float32 array")
    if block.shape[0] != n_rows:
        raise WorkloadError("block_malformed", f"{name} has {block.shape[0]} rows, not {n_rows}")
    if not block.flags.c_contiguous:
        raise WorkloadError("block_malformed", f"{name} must be C-contiguous")
    assert n_rows <= BLOCK_SIZE_MAX


def _row_thresholds(similarities: Float32Array, k_eff: int) -> Float32Array:
    """Per row, the k_eff-th largest of its strided column-group maxima."""
    n_rows, n_cols = similarities.shape
    if k_eff == 0:
        return np.full(n_rows, np.inf, dtype=np.float32)
    group_size = min(_ROW_GROUP_SIZE_MAX, max(1, n_cols // (_ROW_GROUPS_PER_K * k_eff)))
    n_groups = n_cols // group_size
    split = group_size * n_groups
    maxima = similarities[:, :split].reshape(n_rows, group_size, n_groups).max(axis=1)
    if split < n_cols:
        rest = similarities[:, split:].max(axis=1, keepdims=True)
        maxima = np.concatenate((maxima, rest), axis=1)
    assert maxima.shape[1] >= k_eff
    kth = maxima.shape[1] - k_eff
    return np.partition(maxima, kth, axis=1)[:, kth]


def _col_thresholds(similarities: Float32Array, k_eff: int) -> Float32Array:
    """Per column, the k_eff-th largest of its strided row-group maxima."""
    n_rows, n_cols = similarities.shape
    assert k_eff >= 1
    group_size = min(_COL_GROUP_SIZE_MAX, max(1, n_rows // (_COL_GROUPS_PER_K * k_eff)))
    n_groups = n_rows // group_size
    split = group_size * n_groups
    maxima = similarities[:split].reshape(group_size, n_groups, n_cols).max(axis=0)
    if split < n_rows:
        rest = similarities[split:].max(axis=0, keepdims=True)
        maxima = np.concatenate((maxima, rest), axis=0)
    assert maxima.shape[0] >= k_eff
    kth = maxima.shape[0] - k_eff
    return np.partition(np.ascontiguousarray(maxima.T), kth, axis=1)[:, kth]


def _candidates(
    similarities: Float32Array,
    row_thresholds: Float32Array,
    col_thresholds: Float32Array | None,
) -> Int64Array:
    """Ascending flat positions of S >= its row's threshold or its column's threshold.

    One mask and one scan serve both directions; each candidate is then sorted into the
    direction(s) whose threshold it reaches.
    """
    n_rows, n_cols = similarities.shape
    mask = np.greater_equal(similarities, row_thresholds[:, None])
    if col_thresholds is not None:
        # numpy compares against a row-broadcast operand much slower than against a
        # same-shape one, so tile the thresholds over a few rows and go chunk by chunk.
        chunk_rows = min(n_rows, _COMPARE_CHUNK_ROWS)
        tiled = np.tile(col_thresholds, (chunk_rows, 1))
        scratch = np.empty((chunk_rows, n_cols), dtype=np.bool_)
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            part = scratch[: stop - start]
            np.greater_equal(similarities[start:stop], tiled[: stop - start], out=part)
            np.logical_or(mask[start:stop], part, out=mask[start:stop])
    return np.flatnonzero(mask)


def _top_k(
    keys: UInt64Array, n_owners: int, k_eff: int, id_offset: int, k: int
) -> tuple[Int64Array, Float32Array]:
    """Global ids and sims [n_owners, k] from candidate keys (owner | desc(sim) | other).

    One sort orders them by owner, similarity descending, then index; each owner keeps
    its first k_eff, the rest of its k slots are padding (-1, -inf).
    """
    ids = np.full((n_owners, k), -1, dtype=np.int64)
    sims = np.full((n_owners, k), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return ids, sims
    keys.sort()
    starts = np.searchsorted(keys, np.arange(n_owners + 1, dtype=np.uint64) << np.uint64(48))
    if int(np.diff(starts).min()) < k_eff:
        raise WorkloadError("block_malformed", "similarities are not finite (NaN in a block?)")
    chosen = keys[starts[:-1, None] + np.arange(k_eff)[None, :]]
    assert np.array_equal(chosen[:, 0] >> np.uint64(48), np.arange(n_owners, dtype=np.uint64))
    ids[:, :k_eff] = (chosen & _LOW16).astype(np.int64) + id_offset
    sims[:, :k_eff] = from_desc_key((chosen >> np.uint64(16)).astype(np.uint32))
    return ids, sims


def desc_key(values: Float32Array) -> UInt32Array:
    """uint32 keys ordered like the float32 values, reversed (larger value, smaller key).

    With i the bits as int32, ``i ^ ((i >> 31) & 0x7FFFFFFF)`` orders like the floats
    (negative floats have their magnitude bits flipped); ``^ 0x7FFFFFFF`` then reverses
    that order as unsigned integers. -0.0 sorts just after +0.0; callers map it to +0.0.
    """
    bits = values.view(np.int32)
    return (bits ^ ((bits >> 31) & _LOW31) ^ _LOW31).view(np.uint32)


def from_desc_key(keys: UInt32Array) -> Float32Array:
    """The inverse of :func:`desc_key`."""
    bits = keys.view(np.int32) ^ _LOW31
    return (bits ^ ((bits >> 31) & _LOW31)).view(np.float32)
