"""The hot kernel: one block pair's similarities and exact top-k in both directions.

One float32 product ``S = block_row @ block_col.T`` does all the FLOPs; the selection
must stay a small fraction of it (bench/kernel.py measures it against the bare matmul
and faiss). A full sort or argpartition of S would cost a quarter of the matmul.

S is never held whole: a node runs one unit per core, S is 64 MiB at 4096 x 4096 and
256 MiB at 8192 x 8192, so every pass over it streams DRAM and two units on one node
fight for the bandwidth (and a fresh process first pays the kernel for zeroing S's
pages). S is computed and selected one row strip at a time, each strip (about
``_STRIP_BYTES_MAX``) still in the shared L3 while it is selected, in chunks that stay
in L2 (``_kernel_strips`` holds the per-strip steps):

1. Rows. A strip holds whole rows. Split a row into G >= k groups (strided columns, so
   numpy reduces over long contiguous runs) and take each group's maximum: the k-th
   largest group maximum ``t`` is a value of k distinct entries, so the row's k-th
   largest entry is >= t and its exact top-k (ties included) lies in ``{S >= t}``,
   typically barely more than k entries.
2. Columns. A column is spread over all strips, so each column's exact top-k over the
   rows seen so far is kept as sort keys. Rows come in index order: a later entry that
   only ties a column's k-th best loses the tie, so a strip offers a column only the
   entries above that k-th best (the first strip uses its own row-group maxima). With
   rows in random order a strip beats it about ``k * strip_rows / rows_seen`` times:
   a few k candidates per column in all, and the keys are compacted to k per column
   whenever they pile up, so memory stays O(n_cols * k) for any order.
3. Order. One mask and one scan per chunk give both directions' candidates; each
   becomes one uint64 key ``owner << 48 | desc(sim) << 16 | other`` (``desc`` maps
   float32 to uint32 so that a larger similarity gives a smaller key), and one sort
   orders them by owner, similarity descending, then index ascending: the contract's
   tie rule, exact.

Strips are whole rows of S and start at multiples of ``_STRIP_ROWS_ALIGN`` = 96 rows: a
BLAS computes a product row with the same instructions wherever a strip starts at a
multiple of its register block (OpenBLAS on Haswell and Zen: 12 rows; 96 is a multiple
of the usual 4, 6, 8, 12, 16, 24, 32 and 48), so the strips are bit for bit the rows of
the one-call product and off-diagonal results equal those of the one-matmul kernel,
``_compute_unit_reference`` (a test checks it). Column tiles would not keep that: a
column's bits depend on how the BLAS partitions the columns. So the one matmul's FLOPs
are done once each, in the same order: no extra multiplies.

Diagonal units compute each pair once, as numpy's syrk does for ``A @ A.T``: strip
``[start, stop)`` covers columns ``start..n`` (its leading square by syrk, the rest by
gemm), the entries ``j <= i`` of the square are set to -inf, a spectrum's neighbours
``j > i`` come from its row and ``i < j`` from its column, and one sort merges the two.
The result is exact for that (symmetric) product; its last bits may differ from those of
one syrk over the block, as they may between two honest nodes (docs/atlas.md). A
spectrum is never its own neighbour.

-0.0 is turned into +0.0 first, so equal similarities always compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._kernel_strips import (
    FINITE_MIN,
    ColumnTopK,
    StripBuffers,
    desc_key,
    from_desc_key,
    row_thresholds,
    strip_keys,
    top_k,
)
from nexapod.workloads.atlas._params import BLOCK_SIZE_MAX, K_MAX, K_MIN, require_int
from nexapod.workloads.atlas._plan import UnitShape

__all__ = ["UnitResult", "compute_unit", "desc_key", "from_desc_key"]

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

# A strip of S is about this many bytes: small enough that two units' strips (and masks)
# stay in a shared 32 MiB L3 while they are selected. But never fewer than
# _STRIP_ROWS_MIN rows: the BLAS repacks all of block_col for every strip (32 MiB at
# 8192 x 1024), and below that the repacking costs more than the cache saves
# (bench/kernel.py; 8192-wide strips are 12 MiB). Heights are multiples of 96.
_STRIP_BYTES_MAX = 8 << 20
_STRIP_ROWS_MIN = 384
_STRIP_ROWS_ALIGN = 96
assert _STRIP_ROWS_MIN % _STRIP_ROWS_ALIGN == 0
_FLOAT32_BYTES = 4
# Reference kernel only (see _compute_unit_reference).
_COL_GROUPS_PER_K = 4
_COL_GROUP_SIZE_MAX = 32
_COMPARE_CHUNK_ROWS = 64


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
    """The unit's exact top-k lists, one cache-sized strip of S at a time (see above).

    For a diagonal unit pass the same block twice; its ``col_ids`` is ``(0, k)``.
    """
    _check_unit(block_row, block_col, shape, k)
    rows_per_strip = _strip_rows(shape.n_rows, shape.n_cols, _STRIP_BYTES_MAX)
    return _compute_unit_strips(block_row, block_col, shape, k, rows_per_strip)


def _strip_rows(n_rows: int, width: int, strip_bytes_max: int) -> int:
    """Rows per strip of a ``n_rows x width`` product: a multiple of 96, or n_rows."""
    assert n_rows >= 1
    assert width >= 1
    rows = strip_bytes_max // (_FLOAT32_BYTES * width)
    rows = max(_STRIP_ROWS_MIN, rows // _STRIP_ROWS_ALIGN * _STRIP_ROWS_ALIGN)
    return min(rows, n_rows)


def _compute_unit_strips(
    block_row: Float32Array, block_col: Float32Array, shape: UnitShape, k: int, rows_per_strip: int
) -> UnitResult:
    """compute_unit on checked blocks with a given strip height (tests vary it).

    Off-diagonal results equal the one-matmul kernel's whatever the height when the
    products are exact (small integers); for other data the height must be a multiple
    of the BLAS's register block (see the module docstring).
    """
    assert 1 <= rows_per_strip <= BLOCK_SIZE_MAX
    assert block_row.shape[0] == shape.n_rows
    strips = _strip_bounds(shape.n_rows, rows_per_strip)
    if shape.is_diagonal:
        row_ids, row_sims = _diagonal_lists(block_row, block_col, shape.row_start, k, strips)
        col_ids = np.empty((0, k), dtype=np.int64)
        col_sims = np.empty((0, k), dtype=np.float32)
        return UnitResult(row_ids, row_sims, col_ids, col_sims)
    return _off_diagonal_unit(block_row, block_col, shape, k, strips)


def _strip_bounds(n_rows: int, rows_per_strip: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each strip, in row order.

    A remainder shorter than half a strip joins the strip before it (one strip less to
    repack block_col for), and so does any remainder under ``min(96, rows_per_strip)``:
    numpy sends a one-row product to gemv, whose bits differ from gemm's.
    """
    starts = list(range(0, n_rows, rows_per_strip))
    rows_min = max(min(_STRIP_ROWS_ALIGN, rows_per_strip), rows_per_strip // 2)
    if len(starts) > 1 and n_rows - starts[-1] < rows_min:
        starts.pop()
    bounds = list(zip(starts, [*starts[1:], n_rows], strict=True))
    assert bounds[0][0] == 0
    assert bounds[-1][1] == n_rows
    return bounds


def _off_diagonal_unit(
    block_row: Float32Array,
    block_col: Float32Array,
    shape: UnitShape,
    k: int,
    strips: list[tuple[int, int]],
) -> UnitResult:
    """Both directions' lists: rows settled strip by strip, columns at the end."""
    n_rows, n_cols = block_row.shape[0], block_col.shape[0]
    assert strips[-1][1] == n_rows
    assert len(strips) <= n_rows
    k_rows, k_cols = min(k, n_cols), min(k, n_rows)
    buffers = StripBuffers(max(stop - start for start, stop in strips), n_cols)
    columns = ColumnTopK(n_cols, k_cols)

    def row_lower(chunk: Float32Array, first_row: int) -> Float32Array:
        return np.maximum(row_thresholds(chunk, k_rows), FINITE_MIN)

    row_parts: list[UInt64Array] = []
    for start, stop in strips:
        strip = buffers.sims(stop - start, n_cols)
        np.matmul(block_row[start:stop], block_col.T, out=strip)
        col_lower = columns.strip_lower(strip, 0)
        row_keys, col_keys = strip_keys(strip, row_lower, col_lower, start, 0, buffers)
        row_parts.append(row_keys)
        columns.add(col_keys, n_cols)
    row_ids, row_sims = top_k(np.concatenate(row_parts), n_rows, k_rows, shape.col_start, k)
    col_ids, col_sims = top_k(columns.keys(), n_cols, k_cols, shape.row_start, k)
    return UnitResult(row_ids, row_sims, col_ids, col_sims)


def _diagonal_lists(
    block_row: Float32Array,
    block_col: Float32Array,
    id_offset: int,
    k: int,
    strips: list[tuple[int, int]],
) -> tuple[Int64Array, Float32Array]:
    """Each spectrum's top-k among the others, from the upper triangle of S only."""
    n = block_row.shape[0]
    assert strips[-1][1] == n
    assert len(strips) <= n
    k_eff = min(k, n - 1)
    if k_eff == 0:
        return top_k(np.empty(0, dtype=np.uint64), n, 0, id_offset, k)
    rows_max = max(stop - start for start, stop in strips)
    buffers = StripBuffers(rows_max, n)
    lower_triangle = np.tri(rows_max, dtype=np.bool_)  # j <= i
    columns = ColumnTopK(n, k_eff)
    parts: list[UInt64Array] = []

    def row_lower(chunk: Float32Array, first_row: int) -> Float32Array:
        return _diagonal_row_lower(chunk, first_row, k_eff)

    for start, stop in strips:
        rows, width = stop - start, n - start
        strip = buffers.sims(rows, width)
        # The leading square by syrk (numpy spots A @ A.T on one array), the rest by gemm.
        np.matmul(block_row[start:stop], block_col[start:stop].T, out=strip[:, :rows])
        if stop < n:
            np.matmul(block_row[start:stop], block_col[stop:].T, out=strip[:, rows:])
        np.copyto(strip[:, :rows], -np.inf, where=lower_triangle[:rows, :rows])
        col_lower = columns.strip_lower(strip, start)
        row_keys, col_keys = strip_keys(strip, row_lower, col_lower, start, start, buffers)
        parts.append(row_keys)
        columns.add(col_keys, width)
    parts.append(columns.keys())
    return top_k(np.concatenate(parts), n, k_eff, id_offset, k)


def _diagonal_row_lower(chunk: Float32Array, first_row: int, k_eff: int) -> Float32Array:
    """Row thresholds of a chunk of a diagonal strip (``first_row``: its first strip row).

    Strip row r has ``width - 1 - r`` entries right of the masked square. A row with
    fewer than k_eff keeps them all (FINITE_MIN leaves out only the masked -inf); the
    others get the group-maxima threshold.
    """
    rows, width = chunk.shape
    assert k_eff >= 1
    assert 0 <= first_row < width
    lower = np.full(rows, FINITE_MIN, dtype=np.float32)
    entries = width - 1 - (first_row + np.arange(rows))
    full = entries >= k_eff
    if np.any(full):
        assert width >= k_eff
        lower[full] = np.maximum(row_thresholds(chunk, k_eff)[full], FINITE_MIN)
    return lower


def _check_unit(block_row: Float32Array, block_col: Float32Array, shape: UnitShape, k: int) -> None:
    require_int(k, "k", K_MIN, K_MAX, "params_invalid")
    _check_block(block_row, shape.n_rows, "block_row")
    _check_block(block_col, shape.n_cols, "block_col")
    if block_row.shape[1] != block_col.shape[1]:
        raise WorkloadError("block_malformed", "blocks differ in embedding_dim")


def _check_block(block: Float32Array, n_rows: int, name: str) -> None:
    if not isinstance(block, np.ndarray) or block.dtype != np.float32 or block.ndim != 2:
        raise WorkloadError("block_malformed", f"{name} must be a 2-D float32 array")
    if block.shape[0] != n_rows:
        raise WorkloadError("block_malformed", f"{name} has {block.shape[0]} rows, not {n_rows}")
    if not block.flags.c_contiguous:
        raise WorkloadError("block_malformed", f"{name} must be C-contiguous")
    assert n_rows <= BLOCK_SIZE_MAX


def _compute_unit_reference(
    block_row: Float32Array, block_col: Float32Array, shape: UnitShape, k: int
) -> UnitResult:
    """The one-matmul kernel compute_unit replaced; for tests and bench/kernel.py only.

    It holds all of S and passes over it several times: group maxima for rows, group
    maxima for columns, two compare passes into one mask, one scan, then a key sort.
    """
    _check_unit(block_row, block_col, shape, k)
    similarities = np.matmul(block_row, block_col.T)
    assert similarities.dtype == np.float32
    assert similarities.flags.c_contiguous
    n_rows, n_cols = similarities.shape
    if shape.is_diagonal:
        np.fill_diagonal(similarities, -np.inf)
    k_rows = min(k, n_cols - 1 if shape.is_diagonal else n_cols)
    row_thresholds_all = row_thresholds(similarities, k_rows)
    col_thresholds = None
    k_cols = min(k, n_rows)
    if not shape.is_diagonal:
        col_thresholds = _reference_col_thresholds(similarities, k_cols)
    flat = _reference_candidates(similarities, row_thresholds_all, col_thresholds)
    major, minor = np.divmod(flat, n_cols)
    values = similarities.ravel()[flat] + np.float32(0.0)
    middle = desc_key(values).astype(np.uint64) << np.uint64(16)
    major_bits, minor_bits = major.astype(np.uint64), minor.astype(np.uint64)
    row_keys = (major_bits << np.uint64(48)) | middle | minor_bits
    row_keys = row_keys[values >= row_thresholds_all[major]]
    row_ids, row_sims = top_k(row_keys, n_rows, k_rows, shape.col_start, k)
    if col_thresholds is None:
        col_ids = np.empty((0, k), dtype=np.int64)
        col_sims = np.empty((0, k), dtype=np.float32)
    else:
        col_keys = (minor_bits << np.uint64(48)) | middle | major_bits
        col_keys = col_keys[values >= col_thresholds[minor]]
        col_ids, col_sims = top_k(col_keys, n_cols, k_cols, shape.row_start, k)
    return UnitResult(row_ids, row_sims, col_ids, col_sims)


def _reference_col_thresholds(similarities: Float32Array, k_eff: int) -> Float32Array:
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


def _reference_candidates(
    similarities: Float32Array,
    row_thresholds_all: Float32Array,
    col_thresholds: Float32Array | None,
) -> Int64Array:
    """Ascending flat positions of S >= its row's threshold or its column's threshold."""
    n_rows, n_cols = similarities.shape
    mask = np.greater_equal(similarities, row_thresholds_all[:, None])
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
