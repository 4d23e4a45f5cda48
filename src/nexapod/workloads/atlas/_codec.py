"""Bytes on the wire: embedding blocks (.npy) and unit results (a fixed binary layout).

Decoders are strict (a node's upload is untrusted input): exact size, shape and dtype,
never pickle, and every neighbour-list rule of ``_lists`` checked, so that what reaches
the merge is well formed. Encoders are deterministic: the same value gives the same bytes.

Unit result layouts, little-endian, after one header::

    magic "NXAU" | format u32 | n_rows u32 | n_cols_listed u32 | k u32

format 2 (what units write: 6 bytes a neighbour)::

    row_sims float32[n_rows * k] | col_sims float32[n_cols_listed * k]
    row_ids uint16[n_rows * k]   | col_ids uint16[n_cols_listed * k]

ids are local: a row list's ids count from the unit's ``col_start``, a column list's from
its ``row_start`` (a block holds at most 65,536 spectra), and a padding slot (past the
list's valid count, which the shape fixes) is 0xFFFF;

format 1 (still read: results stored before format 2; 12 bytes a neighbour)::

    row_ids int64[n_rows * k] | row_sims float32[n_rows * k]
    col_ids int64[n_cols_listed * k] | col_sims float32[n_cols_listed * k]

with global ids and -1 for padding. ``n_cols_listed`` is 0 for a diagonal unit. Rows are
in block order.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._kernel import UnitResult
from nexapod.workloads.atlas._lists import check_neighbour_lists, unit_lists_hold
from nexapod.workloads.atlas._params import K_MAX, K_MIN, SPECTRA_MAX, require_int
from nexapod.workloads.atlas._plan import UnitShape

__all__ = [
    "BLOCK_NORM_TOLERANCE",
    "NPY_HEADER_BYTES_MAX",
    "RESULT_BYTES_MAX",
    "RESULT_FORMAT",
    "decode_block",
    "decode_unit_result",
    "encode_block",
    "encode_unit_result",
    "parse_npy",
]

RESULT_BYTES_MAX = 64 << 20
RESULT_FORMAT = 2  # what encode_unit_result writes by default
NPY_HEADER_BYTES_MAX = 4096
# Rows of a block are unit vectors; float32 rounding moves a norm by ~1e-7.
BLOCK_NORM_TOLERANCE = 1e-3
_MAGIC = b"NXAU"
_HEADER = struct.Struct("<4sIIII")
_ID_BYTES = {1: 8, 2: 2}
_SIM_BYTES = 4
_LOCAL_PAD = 0xFFFF

Float32Array = npt.NDArray[np.float32]


def encode_unit_result(
    result: UnitResult, shape: UnitShape, result_format: int = RESULT_FORMAT
) -> bytes:
    """The result's bytes in a layout of the module docstring (format 2 by default)."""
    n_rows, k = result.row_ids.shape
    n_cols_listed = result.col_ids.shape[0]
    header = _HEADER.pack(_MAGIC, result_format, n_rows, n_cols_listed, k)
    if result_format == 1:
        parts = [
            result.row_ids.astype("<i8", copy=False).tobytes(),
            result.row_sims.astype("<f4", copy=False).tobytes(),
            result.col_ids.astype("<i8", copy=False).tobytes(),
            result.col_sims.astype("<f4", copy=False).tobytes(),
        ]
    else:
        assert result_format == 2
        parts = [
            result.row_sims.astype("<f4", copy=False).tobytes(),
            result.col_sims.astype("<f4", copy=False).tobytes(),
            _local_ids(result.row_ids, shape.col_start).tobytes(),
            _local_ids(result.col_ids, shape.row_start).tobytes(),
        ]
    data = header + b"".join(parts)
    assert len(data) == _result_bytes(result_format, n_rows, n_cols_listed, k)
    return data


def _local_ids(ids: npt.NDArray[np.int64], id_start: int) -> npt.NDArray[np.uint16]:
    local = np.where(ids < 0, _LOCAL_PAD, ids - id_start)
    assert local.size == 0 or (int(local.min()) >= 0 and int(local.max()) <= _LOCAL_PAD)
    return local.astype("<u2")


def _result_bytes(result_format: int, n_rows: int, n_cols_listed: int, k: int) -> int:
    per_neighbour = _ID_BYTES[result_format] + _SIM_BYTES
    return _HEADER.size + (n_rows + n_cols_listed) * k * per_neighbour


def decode_unit_result(
    data: bytes,
    shape: UnitShape,
    k: int,
    n_spectra: int,
    bytes_max: int = RESULT_BYTES_MAX,
) -> UnitResult:
    """Parse and check a unit's result (format 2 or 1); any defect raises
    ``workload.result_malformed``."""
    require_int(k, "k", K_MIN, K_MAX, "params_invalid")
    require_int(n_spectra, "n_spectra", 1, SPECTRA_MAX, "params_invalid")
    if shape.col_stop > n_spectra:
        raise WorkloadError("shape_invalid", f"unit reaches spectrum {shape.col_stop - 1}")
    if len(data) > bytes_max:
        raise WorkloadError("result_malformed", f"{len(data)} bytes, more than {bytes_max}")
    if len(data) < _HEADER.size:
        raise WorkloadError("result_malformed", f"{len(data)} bytes is shorter than a header")
    magic, result_format, n_rows, n_cols_listed, k_listed = _HEADER.unpack_from(data)
    n_cols_expected = 0 if shape.is_diagonal else shape.n_cols
    if magic != _MAGIC or result_format not in _ID_BYTES:
        raise WorkloadError("result_malformed", "not an atlas unit result (magic or format)")
    if (n_rows, n_cols_listed, k_listed) != (shape.n_rows, n_cols_expected, k):
        raise WorkloadError(
            "result_malformed",
            f"header says {n_rows} rows, {n_cols_listed} cols, k={k_listed}; "
            f"expected {shape.n_rows}, {n_cols_expected}, k={k}",
        )
    size_bytes = _result_bytes(result_format, n_rows, n_cols_listed, k)
    if len(data) != size_bytes:
        raise WorkloadError("result_malformed", f"{len(data)} bytes, expected {size_bytes}")
    if result_format == 1:
        result = _decode_format_1(data, n_rows, n_cols_listed, k)
    else:
        result = _decode_format_2(data, shape, n_rows, n_cols_listed, k)
    _check_result(result, shape, k)
    return result


def _decode_format_1(data: bytes, n_rows: int, n_cols_listed: int, k: int) -> UnitResult:
    offset = _HEADER.size
    row_ids = np.frombuffer(data, "<i8", n_rows * k, offset).astype(np.int64).reshape(n_rows, k)
    offset += row_ids.nbytes
    row_sims = np.frombuffer(data, "<f4", n_rows * k, offset).astype(np.float32).reshape(n_rows, k)
    offset += row_sims.nbytes
    count = n_cols_listed * k
    col_ids = np.frombuffer(data, "<i8", count, offset).astype(np.int64).reshape(n_cols_listed, k)
    offset += col_ids.nbytes
    col_sims = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
    offset += col_sims.nbytes
    assert offset == len(data)
    return UnitResult(row_ids, row_sims, col_ids, col_sims.reshape(n_cols_listed, k))


def _decode_format_2(
    data: bytes, shape: UnitShape, n_rows: int, n_cols_listed: int, k: int
) -> UnitResult:
    row_count, col_count = n_rows * k, n_cols_listed * k
    offset = _HEADER.size
    row_sims = np.frombuffer(data, "<f4", row_count, offset).astype(np.float32)
    offset += row_count * _SIM_BYTES
    col_sims = np.frombuffer(data, "<f4", col_count, offset).astype(np.float32)
    offset += col_count * _SIM_BYTES
    row_local = np.frombuffer(data, "<u2", row_count, offset).reshape(n_rows, k)
    offset += row_count * 2
    col_local = np.frombuffer(data, "<u2", col_count, offset).reshape(n_cols_listed, k)
    offset += col_count * 2
    assert offset == len(data)
    row_candidates = shape.n_cols - 1 if shape.is_diagonal else shape.n_cols
    row_ids = _global_ids(row_local, shape.col_start, min(k, row_candidates), "row")
    col_ids = _global_ids(col_local, shape.row_start, min(k, shape.n_rows), "col")
    return UnitResult(
        row_ids, row_sims.reshape(n_rows, k), col_ids, col_sims.reshape(n_cols_listed, k)
    )


def _global_ids(
    local: npt.NDArray[np.uint16], id_start: int, valid_count: int, what: str
) -> npt.NDArray[np.int64]:
    """Global ids of local ones; slots past ``valid_count`` must be padding (0xFFFF), and
    become -1. The range of the valid ones is checked with the rest of the lists."""
    ids = local.astype(np.int64) + id_start
    padding = local[:, valid_count:]
    if padding.size and not bool(np.all(padding == _LOCAL_PAD)):
        raise WorkloadError("result_malformed", f"{what} lists: a padding slot holds an id")
    ids[:, valid_count:] = -1
    return ids


def _check_result(result: UnitResult, shape: UnitShape, k: int) -> None:
    row_candidates = shape.n_cols - 1 if shape.is_diagonal else shape.n_cols
    if unit_lists_hold(
        result.row_ids,
        result.row_sims,
        result.col_ids,
        result.col_sims,
        shape,
        min(k, row_candidates),
        min(k, shape.n_rows),
    ):
        return  # the common case, checked in one pass; otherwise name the first defect
    check_neighbour_lists(
        result.row_ids,
        result.row_sims,
        owner_start=shape.row_start,
        id_start=shape.col_start,
        id_stop=shape.col_stop,
        valid_count=min(k, row_candidates),
        what="row lists",
        code="result_malformed",
    )
    check_neighbour_lists(
        result.col_ids,
        result.col_sims,
        owner_start=shape.col_start,
        id_start=shape.row_start,
        id_stop=shape.row_stop,
        valid_count=min(k, shape.n_rows),
        what="col lists",
        code="result_malformed",
    )


def encode_block(embeddings: Float32Array) -> bytes:
    """.npy (format 1.0) bytes of a float32 C-order [n, d] array."""
    if embeddings.dtype != np.float32 or embeddings.ndim != 2:
        raise WorkloadError("block_malformed", "a block is a 2-D float32 array")
    if embeddings.shape[0] == 0:
        raise WorkloadError("block_malformed", "a block has at least one row")
    buffer = io.BytesIO()
    array = np.ascontiguousarray(embeddings)
    np.lib.format.write_array(buffer, array, version=(1, 0), allow_pickle=False)
    return buffer.getvalue()


def parse_npy(data: bytes, descr: str, what: str, code: str) -> npt.NDArray[np.generic]:
    """A read-only array from .npy bytes: format 1.0, exactly ``descr``, C order, no pickle,
    no trailing bytes."""
    buffer = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buffer)
        if version != (1, 0):
            raise WorkloadError(code, f"{what}: .npy format {version}, expected (1, 0)")
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(
            buffer, max_header_size=NPY_HEADER_BYTES_MAX
        )
    except ValueError as exc:
        raise WorkloadError(code, f"{what}: not a .npy array: {exc}") from exc
    if fortran_order or dtype != np.dtype(descr) or dtype.hasobject:
        raise WorkloadError(code, f"{what}: must be C-order {descr}, got {dtype.str}")
    count = 1
    for extent in shape:
        count *= extent
    if len(data) - buffer.tell() != count * dtype.itemsize:
        raise WorkloadError(code, f"{what}: {len(data)} bytes do not match shape {shape}")
    array = np.frombuffer(data, dtype=dtype, count=count, offset=buffer.tell())
    return array.reshape(shape)


def decode_block(data: bytes, n_rows: int, embedding_dim: int) -> Float32Array:
    """A block of unit-norm float32 rows, shape exactly [n_rows, embedding_dim] (read-only)."""
    expected_bytes = n_rows * embedding_dim * 4
    if len(data) > expected_bytes + NPY_HEADER_BYTES_MAX:
        raise WorkloadError(
            "block_malformed", f"{len(data)} bytes for a {n_rows} x {embedding_dim} block"
        )
    array = parse_npy(data, "<f4", "block", "block_malformed")
    if array.shape != (n_rows, embedding_dim):
        raise WorkloadError(
            "block_malformed", f"block shape {array.shape}, expected ({n_rows}, {embedding_dim})"
        )
    block: Float32Array = array.view(np.float32)
    # One float32 pass (a sandboxed unit decodes two blocks before its kernel starts):
    # float32 sums of 8,192 squares err by 8,192 x 2^-24 (5e-4) at most, inside the tolerance; a
    # NaN or infinity makes its row's norm fail the test (written so that NaN fails it).
    squared_norms = np.einsum("ij,ij->i", block, block)
    off = np.flatnonzero(~(np.abs(squared_norms - 1.0) <= 2 * BLOCK_NORM_TOLERANCE))
    if off.shape[0]:
        if not np.all(np.isfinite(block)):
            raise WorkloadError("block_malformed", "block holds NaN or infinite values")
        raise WorkloadError("block_malformed", f"block row {int(off[0])} is not unit-norm")
    return block
