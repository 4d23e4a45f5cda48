"""A unit computed in row chunks, with the state between chunks as a checkpoint.

A long off-diagonal unit can be cut into chunks of whole rows. After rows [0, r) the
state is exact and small: the final top-k lists of those rows, and each column's top-k
among those rows. The next chunk computes rows [r, r') with the same kernel and merges
its column lists into the state (the top-k of a union is the top-k of the two top-ks),
so a node that picks the state up computes exactly what the first node would have.

BLAS sums a product row in a different order for a matrix of another height, so the
chunk boundaries are part of the unit (``chunk_bounds``): a chunked unit is bit for bit
the same whether it ran in one go or was resumed, on the same kind of machine; against
the unchunked kernel it agrees within the validation tolerance (last bits of float32).

Diagonal units are not chunked: their kernel computes each pair once for both
directions, which a split by rows would undo (and they are half as long).

Checkpoint bytes, little-endian (strict to decode, like a unit result)::

    magic "NXAC" | format u32 = 1 | rows_done u32 | n_rows u32 | n_cols u32 | k u32
    row_ids int64[rows_done * k] | row_sims float32[rows_done * k]
    col_ids int64[n_cols * k] | col_sims float32[n_cols * k]
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._kernel import UnitResult, compute_unit
from nexapod.workloads.atlas._lists import check_neighbour_lists
from nexapod.workloads.atlas._plan import UnitShape

__all__ = [
    "CHUNK_ROWS_ALIGN",
    "Checkpoint",
    "advance",
    "chunk_bounds",
    "compute_unit_chunked",
    "decode_checkpoint",
    "encode_checkpoint",
    "finish",
    "start",
]

CHUNK_ROWS_ALIGN = 96  # the kernel's strip alignment: chunks start where strips may
_MAGIC = b"NXAC"
_FORMAT = 1
_HEADER = struct.Struct("<4sIIIII")
_NO_ID = np.iinfo(np.int64).max  # sorts padding after every real id

Float32Array = npt.NDArray[np.float32]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Checkpoint:
    """Rows [0, rows_done) done: their lists, and every column's top-k among them."""

    shape: UnitShape
    k: int
    rows_done: int
    row_ids: Int64Array  # [rows_done, k]
    row_sims: Float32Array
    col_ids: Int64Array  # [n_cols, k]
    col_sims: Float32Array

    def __post_init__(self) -> None:
        assert not self.shape.is_diagonal, "diagonal units are not chunked"
        assert 0 <= self.rows_done <= self.shape.n_rows
        assert self.row_ids.shape == self.row_sims.shape == (self.rows_done, self.k)
        assert self.col_ids.shape == self.col_sims.shape == (self.shape.n_cols, self.k)


def chunk_bounds(n_rows: int, chunk_rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each chunk: ``chunk_rows`` (a multiple of the alignment) each,
    the last one taking the remainder."""
    assert n_rows >= 1
    assert chunk_rows >= CHUNK_ROWS_ALIGN and chunk_rows % CHUNK_ROWS_ALIGN == 0
    starts = list(range(0, n_rows, chunk_rows))
    return [(a, min(a + chunk_rows, n_rows)) for a in starts]


def start(shape: UnitShape, k: int) -> Checkpoint:
    """The state before any row: no row lists, every column list empty (padding)."""
    return Checkpoint(
        shape,
        k,
        0,
        np.empty((0, k), np.int64),
        np.empty((0, k), np.float32),
        np.full((shape.n_cols, k), -1, np.int64),
        np.full((shape.n_cols, k), -np.inf, np.float32),
    )


def advance(
    state: Checkpoint, block_row: Float32Array, block_col: Float32Array, stop: int
) -> Checkpoint:
    """Compute rows [rows_done, stop) and fold them into the state."""
    shape = state.shape
    assert state.rows_done < stop <= shape.n_rows
    a = state.rows_done
    sub = UnitShape(
        shape.block_row,
        shape.block_col,
        shape.row_start + a,
        shape.row_start + stop,
        shape.col_start,
        shape.col_stop,
    )
    part = compute_unit(block_row[a:stop], block_col, sub, state.k)
    col_ids, col_sims = _merge_top_k(
        state.col_ids, state.col_sims, part.col_ids, part.col_sims, state.k
    )
    return Checkpoint(
        shape,
        state.k,
        stop,
        np.vstack([state.row_ids, part.row_ids]),
        np.vstack([state.row_sims, part.row_sims]),
        col_ids,
        col_sims,
    )


def finish(state: Checkpoint) -> UnitResult:
    """The unit's result once every row is done."""
    assert state.rows_done == state.shape.n_rows, "rows left"
    return UnitResult(state.row_ids, state.row_sims, state.col_ids, state.col_sims)


def compute_unit_chunked(
    block_row: Float32Array,
    block_col: Float32Array,
    shape: UnitShape,
    k: int,
    chunk_rows: int,
    resume: Checkpoint | None = None,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
) -> UnitResult:
    """The unit chunk by chunk, from ``resume`` if given; ``on_checkpoint`` sees the
    state after every chunk but the last."""
    state = resume if resume is not None else start(shape, k)
    bounds = chunk_bounds(shape.n_rows, chunk_rows)
    if state.rows_done not in {a for a, _ in bounds} | {shape.n_rows}:
        raise WorkloadError("checkpoint_invalid", f"{state.rows_done} is not a chunk boundary")
    for a, stop in bounds:
        if a < state.rows_done:
            continue
        state = advance(state, block_row, block_col, stop)
        if on_checkpoint is not None and stop < shape.n_rows:
            on_checkpoint(state)
    return finish(state)


def _merge_top_k(
    ids_a: Int64Array, sims_a: Float32Array, ids_b: Int64Array, sims_b: Float32Array, k: int
) -> tuple[Int64Array, Float32Array]:
    """Each row's top-k of two lists, similarity descending then id ascending (the
    kernel's order), padding (-1, -inf) last."""
    ids = np.concatenate([ids_a, ids_b], axis=1)
    sims = np.concatenate([sims_a, sims_b], axis=1)
    order = np.lexsort((np.where(ids < 0, _NO_ID, ids), -sims.astype(np.float64)), axis=1)
    top = order[:, :k]
    return np.take_along_axis(ids, top, 1), np.take_along_axis(sims, top, 1)


def encode_checkpoint(state: Checkpoint) -> bytes:
    shape = state.shape
    header = _HEADER.pack(_MAGIC, _FORMAT, state.rows_done, shape.n_rows, shape.n_cols, state.k)
    return b"".join(
        [
            header,
            state.row_ids.astype("<i8").tobytes(),
            state.row_sims.astype("<f4").tobytes(),
            state.col_ids.astype("<i8").tobytes(),
            state.col_sims.astype("<f4").tobytes(),
        ]
    )


def decode_checkpoint(data: bytes, shape: UnitShape, k: int, chunk_rows: int) -> Checkpoint:
    """Parse and check a checkpoint of this unit; any defect raises
    ``workload.checkpoint_invalid`` (an upload is untrusted input)."""
    if shape.is_diagonal:
        raise WorkloadError("checkpoint_invalid", "diagonal units have no checkpoints")
    if len(data) < _HEADER.size:
        raise WorkloadError("checkpoint_invalid", "shorter than a header")
    magic, version, rows_done, n_rows, n_cols, k_listed = _HEADER.unpack_from(data)
    if magic != _MAGIC or version != _FORMAT:
        raise WorkloadError("checkpoint_invalid", "not an atlas checkpoint (magic or format)")
    if (n_rows, n_cols, k_listed) != (shape.n_rows, shape.n_cols, k):
        raise WorkloadError("checkpoint_invalid", "not a checkpoint of this unit")
    if rows_done == 0 or rows_done not in {stop for _, stop in chunk_bounds(n_rows, chunk_rows)}:
        raise WorkloadError("checkpoint_invalid", f"{rows_done} rows is not a chunk boundary")
    if rows_done == n_rows:
        raise WorkloadError("checkpoint_invalid", "a finished unit is a result, not a checkpoint")
    size = _HEADER.size + 12 * k * (rows_done + n_cols)
    if len(data) != size:
        raise WorkloadError("checkpoint_invalid", f"{len(data)} bytes, expected {size}")
    offset = _HEADER.size
    parts: list[npt.NDArray[np.generic]] = []
    for count, dtype in ((rows_done, "<i8"), (rows_done, "<f4"), (n_cols, "<i8"), (n_cols, "<f4")):
        array = np.frombuffer(data, dtype, count * k, offset)
        offset += array.nbytes
        parts.append(array.reshape(count, k))
    row_ids, row_sims, col_ids, col_sims = (
        parts[0].astype(np.int64),
        parts[1].astype(np.float32),
        parts[2].astype(np.int64),
        parts[3].astype(np.float32),
    )
    check_neighbour_lists(
        row_ids,
        row_sims,
        owner_start=shape.row_start,
        id_start=shape.col_start,
        id_stop=shape.col_stop,
        valid_count=min(k, n_cols),
        what="checkpoint rows",
        code="checkpoint_invalid",
    )
    check_neighbour_lists(
        col_ids,
        col_sims,
        owner_start=shape.col_start,
        id_start=shape.row_start,
        id_stop=shape.row_start + rows_done,
        valid_count=min(k, rows_done),
        what="checkpoint columns",
        code="checkpoint_invalid",
    )
    return Checkpoint(shape, k, rows_done, row_ids, row_sims, col_ids, col_sims)
