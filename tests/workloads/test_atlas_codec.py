"""Unit result and block bytes: round trips, determinism, and strict refusals."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import (
    AtlasParams,
    UnitResult,
    UnitShape,
    compute_unit,
    decode_block,
    decode_unit_result,
    encode_block,
    encode_unit_result,
    synthetic_embeddings,
)
from nexapod.workloads.atlas._codec import RESULT_FORMAT

N_SPECTRA = 200
K = 6
OFF_DIAGONAL = UnitShape(0, 1, 0, 64, 64, 128)
DIAGONAL = UnitShape(1, 1, 64, 128, 64, 128)


@pytest.fixture(scope="module")
def embeddings() -> npt.NDArray[np.float32]:
    return synthetic_embeddings(N_SPECTRA, 8, AtlasParams(embedding_dim=128))


def _result(embeddings: npt.NDArray[np.float32], shape: UnitShape) -> UnitResult:
    block_row = embeddings[shape.row_start : shape.row_stop]
    block_col = embeddings[shape.col_start : shape.col_stop]
    return compute_unit(block_row, block_col, shape, K)


SMALL = UnitShape(0, 1, 0, 64, 64, 68)  # 4 candidates: rows list 4, pad 2
BYTES_PER_NEIGHBOUR = {1: 12, 2: 6}


@pytest.mark.parametrize("result_format", [2, 1])
@pytest.mark.parametrize("shape", [OFF_DIAGONAL, DIAGONAL, SMALL])
def test_round_trip_and_determinism(
    embeddings: npt.NDArray[np.float32], shape: UnitShape, result_format: int
) -> None:
    data = encode_unit_result(_result(embeddings, shape), shape, result_format)
    assert data == encode_unit_result(_result(embeddings, shape), shape, result_format)
    decoded = decode_unit_result(data, shape, K, N_SPECTRA)
    assert encode_unit_result(decoded, shape, result_format) == data
    original = _result(embeddings, shape)
    assert np.array_equal(decoded.row_ids, original.row_ids)
    assert np.array_equal(decoded.row_sims, original.row_sims)
    assert np.array_equal(decoded.col_ids, original.col_ids)
    assert np.array_equal(decoded.col_sims, original.col_sims)
    n_cols_listed = 0 if shape.is_diagonal else shape.n_cols
    per_neighbour = BYTES_PER_NEIGHBOUR[result_format]
    assert len(data) == 20 + (shape.n_rows + n_cols_listed) * K * per_neighbour


def test_units_write_format_2() -> None:
    assert RESULT_FORMAT == 2


def _format_2_ids(data: bytes, shape: UnitShape) -> npt.NDArray[np.uint16]:
    """A writable view of a format-2 result's local ids (rows', then columns')."""
    n_cols_listed = 0 if shape.is_diagonal else shape.n_cols
    count = (shape.n_rows + n_cols_listed) * K
    return np.frombuffer(data, "<u2", count, 20 + count * 4).copy()


def _with_ids(data: bytes, shape: UnitShape, ids: npt.NDArray[np.uint16]) -> bytes:
    return data[: len(data) - ids.nbytes] + ids.astype("<u2").tobytes()


@pytest.mark.parametrize(
    ("slot", "local", "reason"),
    [
        (0, 64, "outside \\[64, 128\\)"),  # a row list's id past its block
        (0, 0xFFFF, "outside \\[64, 128\\)"),  # padding where a neighbour must be
        (64 * K, 64, "outside \\[0, 64\\)"),  # a column list's id past its block
    ],
)
def test_format_2_ids_outside_their_block_are_refused(
    embeddings: npt.NDArray[np.float32], slot: int, local: int, reason: str
) -> None:
    data = encode_unit_result(_result(embeddings, OFF_DIAGONAL), OFF_DIAGONAL)
    ids = _format_2_ids(data, OFF_DIAGONAL)
    ids[slot] = local
    with pytest.raises(WorkloadError, match=reason) as caught:
        decode_unit_result(_with_ids(data, OFF_DIAGONAL, ids), OFF_DIAGONAL, K, N_SPECTRA)
    assert caught.value.code == "workload.result_malformed"


def test_format_2_padding_holding_an_id_is_refused(embeddings: npt.NDArray[np.float32]) -> None:
    data = encode_unit_result(_result(embeddings, SMALL), SMALL)
    ids = _format_2_ids(data, SMALL)
    assert ids[K - 1] == 0xFFFF, "the first row lists 4 of its 6 slots"
    ids[K - 1] = 0
    with pytest.raises(WorkloadError, match="a padding slot holds an id") as caught:
        decode_unit_result(_with_ids(data, SMALL, ids), SMALL, K, N_SPECTRA)
    assert caught.value.code == "workload.result_malformed"


Tamper = Callable[[UnitResult], None]


def _swap_first_two(result: UnitResult) -> None:
    result.row_ids[0, [0, 1]] = result.row_ids[0, [1, 0]]
    result.row_sims[0, [0, 1]] = result.row_sims[0, [1, 0]]


def _set(array_name: str, index: tuple[int, int], value: float) -> Tamper:
    def tamper(result: UnitResult) -> None:
        getattr(result, array_name)[index] = value

    return tamper


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_set("row_ids", (3, 2), 5), "outside \\[64, 128\\)"),
        (_set("row_ids", (3, 2), 128), "outside \\[64, 128\\)"),
        (_set("col_ids", (0, 0), 70), "outside \\[0, 64\\)"),
        (_set("row_sims", (1, 0), np.nan), "NaN or infinite"),
        (_set("row_sims", (1, 0), np.inf), "NaN or infinite"),
        (_set("row_sims", (1, 0), 1.01), "outside \\[-1.0001, 1.0001\\]"),
        (_set("col_sims", (2, K - 1), -1.5), "outside \\[-1.0001, 1.0001\\]"),
        (_swap_first_two, "not sorted"),
        (_set("row_ids", (4, K - 1), -1), "padding must be id -1 with sim -inf"),
        (_set("row_sims", (4, K - 1), -np.inf), "padding must be id -1 with sim -inf"),
    ],
)
def test_malformed_off_diagonal_results_are_refused(
    embeddings: npt.NDArray[np.float32], tamper: Tamper, reason: str
) -> None:
    """In format 1, which can spell any id (format 2 cannot spell one below its block)."""
    result = _result(embeddings, OFF_DIAGONAL)
    tamper(result)
    with pytest.raises(WorkloadError, match=reason) as caught:
        decode_unit_result(encode_unit_result(result, OFF_DIAGONAL, 1), OFF_DIAGONAL, K, N_SPECTRA)
    assert caught.value.code == "workload.result_malformed"


def test_a_duplicated_neighbour_is_refused(embeddings: npt.NDArray[np.float32]) -> None:
    result = _result(embeddings, OFF_DIAGONAL)
    # Same id at positions 0 and 2 with the sims still descending: only the id check sees it.
    result.row_ids[0, 2] = result.row_ids[0, 0]
    with pytest.raises(WorkloadError, match="listed twice") as caught:
        decode_unit_result(encode_unit_result(result, OFF_DIAGONAL), OFF_DIAGONAL, K, N_SPECTRA)
    assert caught.value.code == "workload.result_malformed"
    assert "spectrum 0" in caught.value.detail


def test_a_spectrum_as_its_own_neighbour_is_refused(embeddings: npt.NDArray[np.float32]) -> None:
    result = _result(embeddings, DIAGONAL)
    result.row_ids[5, 0] = DIAGONAL.row_start + 5
    with pytest.raises(WorkloadError, match="spectrum 69: listed as its own neighbour"):
        decode_unit_result(encode_unit_result(result, DIAGONAL), DIAGONAL, K, N_SPECTRA)


def test_missing_neighbours_are_refused(embeddings: npt.NDArray[np.float32]) -> None:
    result = _result(embeddings, OFF_DIAGONAL)
    result.row_ids[7, K - 2 :] = -1
    result.row_sims[7, K - 2 :] = -np.inf
    with pytest.raises(WorkloadError, match=f"spectrum 7: must list exactly {K} neighbours"):
        decode_unit_result(encode_unit_result(result, OFF_DIAGONAL, 1), OFF_DIAGONAL, K, N_SPECTRA)


def test_a_neighbour_after_padding_is_refused(embeddings: npt.NDArray[np.float32]) -> None:
    result = compute_unit(embeddings[:64], embeddings[64:68], SMALL, K)
    result.row_ids[0, [3, 4]] = result.row_ids[0, [4, 3]]
    result.row_sims[0, [3, 4]] = result.row_sims[0, [4, 3]]
    with pytest.raises(WorkloadError, match="follows padding"):
        decode_unit_result(encode_unit_result(result, SMALL, 1), SMALL, K, N_SPECTRA)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: data[:-1], "bytes, expected"),
        (lambda data: data + b"\0", "bytes, expected"),
        (lambda data: data[:10], "shorter than a header"),
        (lambda data: b"NXAX" + data[4:], "magic"),
        (lambda data: data[:4] + (3).to_bytes(4, "little") + data[8:], "magic or format"),
        (lambda data: data[:8] + (63).to_bytes(4, "little") + data[12:], "header says 63 rows"),
    ],
)
def test_wrong_bytes_are_refused(
    embeddings: npt.NDArray[np.float32], mangle: Callable[[bytes], bytes], reason: str
) -> None:
    data = mangle(encode_unit_result(_result(embeddings, OFF_DIAGONAL), OFF_DIAGONAL))
    with pytest.raises(WorkloadError, match=reason) as caught:
        decode_unit_result(data, OFF_DIAGONAL, K, N_SPECTRA)
    assert caught.value.code == "workload.result_malformed"


def test_wrong_k_or_shape_is_refused(embeddings: npt.NDArray[np.float32]) -> None:
    data = encode_unit_result(_result(embeddings, OFF_DIAGONAL), OFF_DIAGONAL)
    with pytest.raises(WorkloadError, match=r"k=6; expected .* k=5"):
        decode_unit_result(data, OFF_DIAGONAL, K - 1, N_SPECTRA)
    with pytest.raises(WorkloadError, match="header says 64 rows, 64 cols"):
        decode_unit_result(data, DIAGONAL, K, N_SPECTRA)


def test_oversized_results_are_refused(embeddings: npt.NDArray[np.float32]) -> None:
    data = encode_unit_result(_result(embeddings, OFF_DIAGONAL), OFF_DIAGONAL)
    with pytest.raises(WorkloadError, match="more than 1000") as caught:
        decode_unit_result(data, OFF_DIAGONAL, K, N_SPECTRA, bytes_max=1000)
    assert caught.value.code == "workload.result_malformed"


def test_block_round_trip(embeddings: npt.NDArray[np.float32]) -> None:
    data = encode_block(embeddings[:64])
    assert data == encode_block(embeddings[:64].copy())
    assert data[:6] == b"\x93NUMPY"
    block = decode_block(data, 64, 128)
    assert block.dtype == np.float32
    assert block.flags.c_contiguous
    assert np.array_equal(block, embeddings[:64])


def _npy(array: npt.NDArray[np.generic], version: tuple[int, int] = (1, 0)) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def _unit_block(n_rows: int = 4, dim: int = 8) -> npt.NDArray[np.float32]:
    block = np.zeros((n_rows, dim), dtype=np.float32)
    block[:, 0] = 1.0
    return block


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_npy(_unit_block(3)), "shape \\(3, 8\\)"),
        (_npy(_unit_block(4, 9)), "shape \\(4, 9\\)"),
        (_npy(_unit_block().astype(np.float64)), "C-order <f4"),
        (_npy(_unit_block().astype(">f4")), "C-order <f4"),
        (_npy(np.asfortranarray(_unit_block())), "C-order <f4"),
        (_npy(np.array([{"x": 1}], dtype=object)), "C-order <f4"),
        (_npy(_unit_block(), version=(2, 0)), "format \\(2, 0\\)"),
        (_npy(_unit_block()) + b"\0\0\0\0", "do not match"),
        (_npy(_unit_block())[:-4], "do not match"),
        (b"not an npy file at all", "not a .npy"),
        (_npy(_unit_block() * 2), "row 0 is not unit-norm"),
        (_npy(np.full((4, 8), np.nan, dtype=np.float32)), "NaN"),
    ],
)
def test_malformed_blocks_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(WorkloadError, match=reason) as caught:
        decode_block(data, 4, 8)
    assert caught.value.code == "workload.block_malformed"


def test_encode_block_refuses_other_arrays() -> None:
    with pytest.raises(WorkloadError):
        encode_block(np.zeros((4, 8)))  # type: ignore[arg-type]
