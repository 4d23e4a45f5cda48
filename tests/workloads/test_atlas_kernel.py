"""compute_unit against an obviously correct reference on the same float32 product."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import UnitResult, UnitShape, compute_unit, unit_shape
from nexapod.workloads.atlas._kernel import desc_key, from_desc_key

Float32Array = npt.NDArray[np.float32]


def _unit_rows(rng: np.random.Generator, n_rows: int, dim: int) -> Float32Array:
    rows = rng.standard_normal((n_rows, dim)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def _reference(
    products: Float32Array, k: int, id_offset: int, self_offset: int | None
) -> tuple[npt.NDArray[np.int64], Float32Array]:
    """Full sort of every row by (similarity desc, id asc), self excluded, -1/-inf padded."""
    n_rows, n_cols = products.shape
    ids = np.full((n_rows, k), -1, dtype=np.int64)
    sims = np.full((n_rows, k), -np.inf, dtype=np.float32)
    candidate_ids = id_offset + np.arange(n_cols)
    for row in range(n_rows):
        keep = candidate_ids != (self_offset + row if self_offset is not None else -1)
        row_ids, row_sims = candidate_ids[keep], products[row, keep] + np.float32(0.0)
        order = np.lexsort((row_ids, -row_sims))[:k]
        ids[row, : order.shape[0]] = row_ids[order]
        sims[row, : order.shape[0]] = row_sims[order]
    return ids, sims


def _check_against_reference(
    block_row: Float32Array, block_col: Float32Array, shape: UnitShape, k: int
) -> UnitResult:
    result = compute_unit(block_row, block_col, shape, k)
    products = np.matmul(block_row, block_col.T)  # the same float32 product as the kernel
    self_offset = shape.row_start if shape.is_diagonal else None
    row_ids, row_sims = _reference(products, k, shape.col_start, self_offset)
    assert np.array_equal(result.row_ids, row_ids)
    assert np.array_equal(result.row_sims, row_sims)
    if shape.is_diagonal:
        assert result.col_ids.shape == (0, k)
        assert result.col_sims.shape == (0, k)
    else:
        col_ids, col_sims = _reference(products.T.copy(), k, shape.row_start, None)
        assert np.array_equal(result.col_ids, col_ids)
        assert np.array_equal(result.col_sims, col_sims)
    return result


@pytest.mark.parametrize(
    ("n_rows", "n_cols", "dim", "k"),
    [(100, 77, 32, 7), (64, 64, 16, 1), (300, 1000, 24, 3), (1000, 300, 24, 16), (37, 5, 8, 16)],
)
def test_off_diagonal_unit_matches_a_full_sort(n_rows: int, n_cols: int, dim: int, k: int) -> None:
    rng = np.random.default_rng(n_rows * 7 + n_cols)
    shape = UnitShape(0, 1, 0, n_rows, n_rows, n_rows + n_cols)
    _check_against_reference(_unit_rows(rng, n_rows, dim), _unit_rows(rng, n_cols, dim), shape, k)


@pytest.mark.parametrize(("n_rows", "k"), [(200, 5), (50, 49), (17, 16), (5, 16), (2, 1)])
def test_diagonal_unit_never_lists_a_spectrum_itself(n_rows: int, k: int) -> None:
    block = _unit_rows(np.random.default_rng(n_rows), n_rows, 12)
    shape = unit_shape(1, 1, 10_000, n_rows)
    result = _check_against_reference(block, block, shape, k)
    own = shape.row_start + np.arange(n_rows)[:, None]
    assert not np.any(result.row_ids == own)
    assert int(np.sum(result.row_ids >= 0)) == n_rows * min(k, n_rows - 1)


def test_fewer_candidates_than_k_are_padded() -> None:
    rng = np.random.default_rng(3)
    shape = UnitShape(0, 1, 0, 4, 4, 7)
    result = _check_against_reference(_unit_rows(rng, 4, 8), _unit_rows(rng, 3, 8), shape, 5)
    assert np.all(result.row_ids[:, 3:] == -1)
    assert np.all(result.row_sims[:, 3:] == -np.inf)
    assert np.all(result.col_ids[:, :4] >= 0)
    assert np.all(result.col_ids[:, 4] == -1)


def test_a_single_spectrum_has_no_neighbour() -> None:
    block = _unit_rows(np.random.default_rng(0), 1, 8)
    result = compute_unit(block, block, unit_shape(0, 0, 1, 16), 4)
    assert result.row_ids.tolist() == [[-1, -1, -1, -1]]
    assert np.all(result.row_sims == -np.inf)


def test_ties_go_to_the_smaller_global_id() -> None:
    rng = np.random.default_rng(5)
    # Small integers: every product is exact whatever the summation order, so the
    # columns, three vectors repeated, tie exactly (normalised vectors would not: BLAS
    # may round the same dot product differently in different columns).
    base = rng.integers(0, 4, size=(3, 16)).astype(np.float32)
    block_col = np.ascontiguousarray(np.tile(base, (20, 1)))
    block_row = rng.integers(0, 4, size=(30, 16)).astype(np.float32)
    shape = UnitShape(0, 1, 0, 30, 100, 160)
    result = _check_against_reference(block_row, block_col, shape, 8)
    for row in range(30):
        scores = block_row[row] @ base.T
        if np.sum(scores == scores.max()) > 1:
            continue  # two base vectors tie: covered by the reference comparison
        best = int(np.argmax(scores))
        # The 8 best are the first 8 copies of the best vector: ids 100 + best + 3 * i.
        assert result.row_ids[row].tolist() == [100 + best + 3 * i for i in range(8)]


def test_negative_zero_counts_as_zero() -> None:
    block_row = np.array([[1.0, 0.0]], dtype=np.float32)
    block_col = np.array([[0.0, 1.0], [-0.0, -0.0], [0.0, 1.0]], dtype=np.float32)
    result = compute_unit(block_row, block_col, UnitShape(0, 1, 0, 1, 1, 4), 3)
    assert result.row_ids.tolist() == [[1, 2, 3]]
    assert not np.any(np.signbit(result.row_sims))


def test_exact_on_synthetic_spectra_with_remainder_groups() -> None:
    from nexapod.workloads.atlas import AtlasParams, synthetic_embeddings

    embeddings = synthetic_embeddings(1300, 4, AtlasParams(embedding_dim=256))
    shape = UnitShape(0, 1, 0, 290, 290, 1300)
    _check_against_reference(embeddings[:290], embeddings[290:], shape, 10)


def test_non_finite_blocks_are_refused() -> None:
    rng = np.random.default_rng(1)
    block_row = _unit_rows(rng, 40, 8)
    block_row[3, 2] = np.nan
    with pytest.raises(WorkloadError) as caught:
        compute_unit(block_row, _unit_rows(rng, 40, 8), UnitShape(0, 1, 0, 40, 40, 80), 4)
    assert caught.value.code == "workload.block_malformed"


@pytest.mark.parametrize(
    "block_col",
    [
        np.zeros((40, 8), dtype=np.float64),
        np.zeros((39, 8), dtype=np.float32),
        np.zeros((40, 9), dtype=np.float32),
        np.zeros((8, 40), dtype=np.float32).T,
    ],
)
def test_blocks_of_the_wrong_kind_are_refused(block_col: npt.NDArray[np.generic]) -> None:
    block_row = np.zeros((40, 8), dtype=np.float32)
    with pytest.raises(WorkloadError) as caught:
        compute_unit(block_row, block_col, UnitShape(0, 1, 0, 40, 40, 80), 4)  # type: ignore[arg-type]
    assert caught.value.code == "workload.block_malformed"


@given(
    values=st.lists(
        st.floats(allow_nan=False, width=32).filter(
            lambda v: not (v == 0.0 and math.copysign(1, v) < 0)
        ),
        min_size=1,
        max_size=50,
    )
)
def test_desc_key_reverses_float_order(values: list[float]) -> None:
    floats = np.array(values, dtype=np.float32)
    keys = desc_key(floats)
    assert np.array_equal(from_desc_key(keys), floats)
    by_key = floats[np.argsort(keys, kind="stable")]
    assert np.array_equal(by_key, np.sort(floats)[::-1])
