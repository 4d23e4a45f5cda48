"""The kernel's selection, one row strip of S at a time (see ``_kernel`` for the plan).

A strip is ``rows x width`` similarities that are still in the shared L3 when they are
selected, and :func:`strip_keys` reads it in chunks that stay in L2 through all their
passes, so each entry leaves L3 once:

- rows: each strip row's exact threshold comes from the strip alone (group maxima, as
  the module docstring of ``_kernel`` explains), since the strip holds the whole row;
- columns: :class:`ColumnTopK` keeps every column's exact top-k over the rows seen so
  far as sort keys, so a strip only has to beat each column's current k-th best.

Sort keys are one uint64 per candidate, ``owner << 48 | desc(sim) << 16 | other`` (local
indices fit 16 bits as block_size <= 65536), so one sort orders candidates by owner,
similarity descending, then index ascending: the contract's tie rule, exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._params import BLOCK_SIZE_MAX, K_MAX

__all__ = [
    "FINITE_MIN",
    "ColumnTopK",
    "RowLower",
    "StripBuffers",
    "column_bound",
    "desc_key",
    "from_desc_key",
    "row_thresholds",
    "strip_keys",
    "top_k",
]

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]
UInt32Array = npt.NDArray[np.uint32]
UInt64Array = npt.NDArray[np.uint64]
BoolArray = npt.NDArray[np.bool_]
# A chunk's inclusive row thresholds: (chunk of a strip, index of its first strip row).
RowLower = Callable[[Float32Array, int], Float32Array]

# Group sizes: G >= 8k groups leave few candidates beyond a row's top-k; the cap keeps
# the group-maximum pass fast (measured on 2048 x 2048 blocks). A strip's column bound
# takes G = 2k row groups: about 20 candidates per column for k = 16 (G = 4k: 18, at
# twice the partition's cost), and it only serves the strips before the running bound.
_ROW_GROUPS_PER_K = 8
_ROW_GROUP_SIZE_MAX = 16
_COL_GROUPS_PER_K = 2
# A column accumulator compacts once it holds this many keys per column's k (and at
# least _COL_KEYS_MIN): often enough to keep memory O(n_cols * k), rarely enough that
# the sorts stay a small part of the selection.
_COL_KEYS_PER_K = 3
_COL_KEYS_MIN = 1 << 16
# A strip is selected in chunks of about this many bytes of similarities (at least
# _CHUNK_ROWS_MIN rows): with its two masks it stays in a 1 MiB L2 through its passes.
_CHUNK_BYTES_MAX = 512 << 10
_CHUNK_ROWS_MIN = 8
_FLOAT32_BYTES = 4
_LOW16 = np.uint64(0xFFFF)
_LOW31 = np.int32(0x7FFFFFFF)
_SHIFT_OWNER = np.uint64(48)
_SHIFT_SIM = np.uint64(16)
# The lowest threshold a candidate may meet: every finite similarity reaches it, -inf
# (a masked entry) does not.
FINITE_MIN = np.float32(-np.finfo(np.float32).max)

assert BLOCK_SIZE_MAX <= 1 << 16  # local indices fit the keys' 16-bit fields


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


def _key_sims(keys: UInt64Array) -> Float32Array:
    """The similarities packed in keys (the uint32 cast keeps the low 32 bits)."""
    return from_desc_key((keys >> _SHIFT_SIM).astype(np.uint32))


def _owner_starts(keys: UInt64Array, n_owners: int) -> Int64Array:
    """Where each owner's run begins in sorted keys, plus the end: ``n_owners + 1``."""
    owners = np.arange(n_owners + 1, dtype=np.uint64) << _SHIFT_OWNER
    return np.searchsorted(keys, owners).astype(np.int64)


def top_k(
    keys: UInt64Array, n_owners: int, k_eff: int, id_offset: int, k: int
) -> tuple[Int64Array, npt.NDArray[np.float32]]:
    """Global ids and sims [n_owners, k] from candidate keys (owner | desc(sim) | other).

    One sort orders them by owner, similarity descending, then index; each owner keeps
    its first k_eff, the rest of its k slots are padding (-1, -inf). An owner with fewer
    than k_eff candidates can only come from NaN, which compares false everywhere.
    """
    ids = np.full((n_owners, k), -1, dtype=np.int64)
    sims = np.full((n_owners, k), -np.inf, dtype=np.float32)
    if k_eff == 0:
        return ids, sims
    keys.sort()
    starts = _owner_starts(keys, n_owners)
    if int(np.diff(starts).min()) < k_eff:
        raise WorkloadError("block_malformed", "similarities are not finite (NaN in a block?)")
    chosen = keys[starts[:-1, None] + np.arange(k_eff)[None, :]]
    assert np.array_equal(chosen[:, 0] >> _SHIFT_OWNER, np.arange(n_owners, dtype=np.uint64))
    ids[:, :k_eff] = (chosen & _LOW16).astype(np.int64) + id_offset
    sims[:, :k_eff] = _key_sims(chosen)
    return ids, sims


def row_thresholds(similarities: Float32Array, k_eff: int) -> Float32Array:
    """Per row, the k_eff-th largest of its strided column-group maxima.

    The groups are disjoint, so k_eff of the row's entries reach the result: every entry
    of the row's exact top-k_eff (ties included) is >= it.
    """
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


def column_bound(strip: Float32Array, k_eff: int) -> Float32Array:
    """Per column, a lower bound of its k_eff-th largest entry in the strip (or -inf).

    The k_eff-th largest of strided row-group maxima; -inf when the strip has fewer than
    k_eff groups. The column's final k-th best is at least its k-th best in any strip.
    """
    n_rows, width = strip.shape
    assert k_eff >= 1
    assert width >= 1
    group_size = max(1, n_rows // (_COL_GROUPS_PER_K * k_eff))
    n_groups = n_rows // group_size
    if n_groups < k_eff:
        return np.full(width, -np.inf, dtype=np.float32)
    maxima = strip[: group_size * n_groups].reshape(group_size, n_groups, width).max(axis=0)
    kth = n_groups - k_eff
    # Partitioning contiguous rows is about twice as fast as strided columns.
    return np.partition(np.ascontiguousarray(maxima.T), kth, axis=1)[:, kth]


class StripBuffers:
    """A strip's similarities and one chunk's two masks, allocated once per unit.

    Reuse is the point: a unit touches ``rows_max * width_max`` floats of scratch however
    large S is, and the pages are faulted in once.
    """

    def __init__(self, rows_max: int, width_max: int) -> None:
        assert rows_max >= 1
        assert width_max >= 1
        self.size_max = rows_max * width_max
        self.chunk_rows = max(_CHUNK_ROWS_MIN, _CHUNK_BYTES_MAX // (_FLOAT32_BYTES * width_max))
        self._sims = np.empty(self.size_max, dtype=np.float32)
        chunk_size = min(rows_max, self.chunk_rows) * width_max
        self._mask = np.empty(chunk_size, dtype=np.bool_)
        self._scratch = np.empty(chunk_size, dtype=np.bool_)

    def sims(self, rows: int, width: int) -> Float32Array:
        """A C-contiguous ``rows x width`` view, the matmul's ``out``."""
        assert rows * width <= self.size_max
        return self._sims[: rows * width].reshape(rows, width)

    def masks(self, rows: int, width: int) -> tuple[BoolArray, BoolArray]:
        """Two masks for one chunk of at most ``chunk_rows`` rows."""
        assert rows <= self.chunk_rows
        size = rows * width
        assert size <= self._mask.shape[0]
        return self._mask[:size].reshape(rows, width), self._scratch[:size].reshape(rows, width)


def strip_keys(
    strip: Float32Array,
    row_lower: RowLower,
    col_lower: Float32Array,
    row_offset: int,
    col_offset: int,
    buffers: StripBuffers,
) -> tuple[UInt64Array, UInt64Array]:
    """Row and column sort keys of the strip's entries that reach their lower bounds.

    ``row_lower(chunk, first_row)`` gives a chunk's row thresholds and ``col_lower``
    [width] the columns'; both are inclusive (entry >= bound). The strip is read chunk
    by chunk, each small enough to stay in L2 through its passes (group maxima, two
    compares, one scan), so every entry comes from the shared L3 once. Offsets turn strip
    positions into the unit's local indices.
    """
    rows, width = strip.shape
    assert col_lower.shape == (width,)
    flat_parts: list[Int64Array] = []
    lower_parts: list[Float32Array] = []
    for start in range(0, rows, buffers.chunk_rows):
        stop = min(start + buffers.chunk_rows, rows)
        chunk = strip[start:stop]
        lower = row_lower(chunk, start)
        assert lower.shape == (stop - start,)
        mask, scratch = buffers.masks(stop - start, width)
        np.greater_equal(chunk, col_lower[None, :], out=mask)
        np.greater_equal(chunk, lower[:, None], out=scratch)
        np.logical_or(mask, scratch, out=mask)
        flat_parts.append(np.flatnonzero(mask) + start * width)
        lower_parts.append(lower)
    flat = np.concatenate(flat_parts)
    row_lower_all = np.concatenate(lower_parts)
    major, minor = np.divmod(flat, width)
    values = strip.ravel()[flat] + np.float32(0.0)  # -0.0 becomes +0.0
    middle = desc_key(values).astype(np.uint64) << _SHIFT_SIM
    major_bits = (major + row_offset).astype(np.uint64)
    minor_bits = (minor + col_offset).astype(np.uint64)
    row_keys = ((major_bits << _SHIFT_OWNER) | middle | minor_bits)[values >= row_lower_all[major]]
    col_keys = ((minor_bits << _SHIFT_OWNER) | middle | major_bits)[values >= col_lower[minor]]
    return row_keys, col_keys


class ColumnTopK:
    """Every column's exact top-k over the rows seen so far, kept as sort keys.

    Rows arrive in increasing index order, so once a column holds k entries a later
    entry that only ties its k-th best loses the tie (larger index): only values above
    the k-th best can still enter. ``lower`` is that bound as an inclusive threshold
    (the next float32 up), ``FINITE_MIN`` while a column holds fewer than k entries.
    The bound only rises, and keys below it are dropped whenever the accumulator
    compacts, so memory stays O(n_cols * k) whatever the data.
    """

    def __init__(self, n_cols: int, k_eff: int) -> None:
        assert 1 <= n_cols <= BLOCK_SIZE_MAX
        assert 1 <= k_eff <= K_MAX
        self.n_cols = n_cols
        self.k_eff = k_eff
        self.lower = np.full(n_cols, FINITE_MIN, dtype=np.float32)
        self.n_keys_max = max(_COL_KEYS_PER_K * k_eff * n_cols, _COL_KEYS_MIN)
        self.n_compactions = 0
        self._parts: list[UInt64Array] = []
        self._n_keys = 0
        self._weak = True  # no strip seen yet: the strip's own group bound helps

    @property
    def n_keys(self) -> int:
        """Keys held now: at most ``n_keys_max`` between strips."""
        return self._n_keys

    def strip_lower(self, strip: Float32Array, col_offset: int) -> Float32Array:
        """Inclusive thresholds for the strip's columns ``col_offset ..``.

        While the running bounds are weak (first strip, or the last strip brought many
        keys), the strip's own group bound is folded in: one extra pass over the strip
        instead of many candidates.
        """
        width = strip.shape[1]
        lower = self.lower[col_offset : col_offset + width]
        assert lower.shape == (width,)
        if not self._weak:
            return lower
        return np.maximum(lower, column_bound(strip, self.k_eff))

    def add(self, keys: UInt64Array, width: int) -> None:
        """Keys (column | desc(sim) | row) of one strip; compact when over the budget."""
        assert keys.dtype == np.uint64
        # Beating an exact bound more than k times per column: rows are not in random
        # order (a rising run), so the next strip folds in its own group bound too.
        self._weak = self.n_compactions > 0 and keys.shape[0] > self.k_eff * width
        self._parts.append(keys)
        self._n_keys += keys.shape[0]
        # The first strip sets the bounds: without them the second would be all keys.
        if self.n_compactions == 0 or self._n_keys > self.n_keys_max:
            self._compact()
        assert self._n_keys <= self.n_keys_max

    def keys(self) -> UInt64Array:
        """All kept keys, sorted: each column's top-k (fewer if it has fewer entries)."""
        self._compact()
        assert len(self._parts) == 1
        return self._parts[0]

    def _compact(self) -> None:
        """Keep each column's first k_eff keys in sorted order; raise its bound if full."""
        keys = np.concatenate(self._parts) if self._parts else np.empty(0, dtype=np.uint64)
        keys.sort()
        starts = _owner_starts(keys, self.n_cols)
        counts = np.diff(starts)
        kept_counts = np.minimum(counts, self.k_eff)
        kept_starts = np.cumsum(kept_counts) - kept_counts
        shift = np.repeat(starts[:-1] - kept_starts, kept_counts)
        kept = keys[np.arange(shift.shape[0]) + shift]
        full = np.flatnonzero(counts >= self.k_eff)
        kth = _key_sims(keys[starts[full] + self.k_eff - 1])
        lower = np.nextafter(kth, np.float32(np.inf))
        assert np.all(lower >= self.lower[full])  # a bound never falls
        self.lower[full] = lower
        self._parts = [kept]
        self._n_keys = kept.shape[0]
        self.n_compactions += 1
        assert self._n_keys <= self.n_cols * self.k_eff
