"""compute_unit against an obviously correct reference and the one-matmul kernel."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import UnitResult, UnitShape, _kernel, compute_unit, unit_shape
from nexapod.workloads.atlas._kernel import (
    _compute_unit_reference,
    _compute_unit_strips,
    desc_key,
    from_desc_key,
)
from nexapod.workloads.atlas._kernel_strips import ColumnTopK, StripBuffers, strip_keys

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


# --- compute_unit (strips of S) against the one-matmul kernel it replaced ---------------
#
# Off-diagonal strips are whole rows of S, 96 rows high, so their bits equal the one-call
# product's and the two kernels must agree exactly on any data. Diagonal units compute
# each pair once from the upper triangle, which may round differently from syrk in the
# last bit: they agree exactly on small-integer blocks (every product is exact, whatever
# the order of summation), and are exact for the product they computed on other data.
# One BLAS thread, as a unit runs in the sandbox: two threads split the product
# differently for one call and for a strip.


def _integer_rows(rng: np.random.Generator, n_rows: int, dim: int, high: int) -> Float32Array:
    return rng.integers(0, high, size=(n_rows, dim)).astype(np.float32)


def _assert_same_result(result: UnitResult, expected: UnitResult) -> None:
    assert np.array_equal(result.row_ids, expected.row_ids)
    assert np.array_equal(result.row_sims, expected.row_sims)
    assert np.array_equal(result.col_ids, expected.col_ids)
    assert np.array_equal(result.col_sims, expected.col_sims)


def _both_kernels(
    block_row: Float32Array,
    block_col: Float32Array,
    shape: UnitShape,
    k: int,
    rows_per_strip: int | None = None,
) -> tuple[UnitResult, UnitResult]:
    with threadpool_limits(limits=1):
        if rows_per_strip is None:
            result = compute_unit(block_row, block_col, shape, k)
        else:
            result = _compute_unit_strips(block_row, block_col, shape, k, rows_per_strip)
        expected = _compute_unit_reference(block_row, block_col, shape, k)
    return result, expected


@pytest.mark.parametrize(
    ("n_rows", "n_cols", "dim", "k", "rows_per_strip"),
    [
        (1000, 300, 48, 16, 96),  # 10 strips, the last one 136 rows (a remainder joins)
        (500, 2048, 64, 16, 192),
        (97, 700, 32, 5, 96),  # one strip: a single-row remainder would go to gemv
        (300, 700, 32, 5, 96),  # three strips, the last one 108 rows
        (300, 40, 16, 39, 96),  # k close to n_cols
        (300, 30, 16, 64, 96),  # k larger than block_col: rows padded
        (400, 300, 24, 256, 96),  # k larger than a strip: no column bound for a while
        (2000, 2048, 32, 16, None),  # compute_unit's own strip height (several strips)
    ],
)
def test_strips_equal_the_one_matmul_kernel_on_random_blocks(
    n_rows: int, n_cols: int, dim: int, k: int, rows_per_strip: int | None
) -> None:
    rng = np.random.default_rng(n_rows + 3 * n_cols + k)
    shape = UnitShape(0, 1, 0, n_rows, n_rows, n_rows + n_cols)
    block_row, block_col = _unit_rows(rng, n_rows, dim), _unit_rows(rng, n_cols, dim)
    _assert_same_result(*_both_kernels(block_row, block_col, shape, k, rows_per_strip))


@pytest.mark.parametrize(("n_rows", "n_cols"), [(100, 8192), (8192, 100)])
def test_edge_units_equal_the_one_matmul_kernel(n_rows: int, n_cols: int) -> None:
    rng = np.random.default_rng(n_rows)
    shape = UnitShape(0, 1, 0, n_rows, 8192, 8192 + n_cols)
    block_row, block_col = _unit_rows(rng, n_rows, 16), _unit_rows(rng, n_cols, 16)
    _assert_same_result(*_both_kernels(block_row, block_col, shape, 16))


def test_synthetic_spectra_equal_the_one_matmul_kernel() -> None:
    from nexapod.workloads.atlas import AtlasParams, synthetic_embeddings

    # Families of similar spectra: many near-ties, candidates clustered in a few rows.
    embeddings = synthetic_embeddings(2600, 7, AtlasParams(embedding_dim=128))
    shape = UnitShape(0, 1, 0, 1300, 1300, 2600)
    block_row, block_col = embeddings[:1300].copy(), embeddings[1300:].copy()
    _assert_same_result(*_both_kernels(block_row, block_col, shape, 16, 96))


@pytest.mark.parametrize("rows_per_strip", [1, 7, 16, 96, 1000])
@pytest.mark.parametrize("diagonal", [False, True])
def test_many_exact_ties_and_duplicates_equal_the_one_matmul_kernel(
    rows_per_strip: int, diagonal: bool
) -> None:
    rng = np.random.default_rng(rows_per_strip)
    # Values 0..2 over 8 dims: similarities are small integers, ties everywhere, and
    # every block holds exact duplicates (rows tiled), so the tie rule decides.
    base = _integer_rows(rng, 40, 8, 3)
    block_row = np.ascontiguousarray(np.tile(base, (6, 1))[rng.permutation(240)])
    if diagonal:
        shape = unit_shape(2, 2, 10_000, 240)
        block_col = block_row
    else:
        block_col = np.ascontiguousarray(np.tile(base[:25], (8, 1)))
        shape = UnitShape(0, 1, 0, 240, 240, 440)
    for k in (1, 16, 100):
        _assert_same_result(*_both_kernels(block_row, block_col, shape, k, rows_per_strip))


@pytest.mark.parametrize("diagonal", [False, True])
def test_rows_that_keep_beating_the_columns_equal_the_one_matmul_kernel(diagonal: bool) -> None:
    # Similarities grow with the row index: every strip beats every column's bound, the
    # worst order for the running column top-k (it must compact, and stay exact).
    rng = np.random.default_rng(11)
    n = 600
    block_row = _integer_rows(rng, n, 6, 2)
    block_row[:, 0] = np.arange(n, dtype=np.float32)
    block_col = _integer_rows(rng, n, 6, 2)
    block_col[:, 0] = 1.0
    if diagonal:
        block_col = block_row
        shape = unit_shape(0, 0, n, n)
    else:
        shape = UnitShape(0, 1, 0, n, n, 2 * n)
    _assert_same_result(*_both_kernels(block_row, block_col, shape, 16, 96))


@pytest.mark.parametrize(("n", "k", "rows_per_strip"), [(300, 16, 96), (250, 40, 96), (60, 80, 7)])
def test_diagonal_unit_is_exact_for_the_product_it_computes(
    n: int, k: int, rows_per_strip: int
) -> None:
    rng = np.random.default_rng(n + k)
    block = _unit_rows(rng, n, 24)
    shape = unit_shape(3, 3, 10_000, n)
    with threadpool_limits(limits=1):
        result = _compute_unit_strips(block, block, shape, k, rows_per_strip)
        products = _diagonal_product(block, rows_per_strip)
        expected = _compute_unit_reference(block, block, shape, k)
    row_ids, row_sims = _reference(products, k, shape.col_start, shape.row_start)
    assert np.array_equal(result.row_ids, row_ids)
    assert np.array_equal(result.row_sims, row_sims)
    assert result.col_ids.shape == (0, k)
    # Against syrk's product: the same lists up to last-bit rounding.
    assert np.allclose(result.row_sims, expected.row_sims, rtol=0.0, atol=1e-6)
    assert np.mean(result.row_ids == expected.row_ids) > 0.99


def _diagonal_product(block: Float32Array, rows_per_strip: int) -> Float32Array:
    """The symmetric product a diagonal unit selects from: strips of the upper triangle."""
    n = block.shape[0]
    products = np.empty((n, n), dtype=np.float32)
    for start, stop in _kernel._strip_bounds(n, rows_per_strip):
        products[start:stop, start:stop] = np.matmul(block[start:stop], block[start:stop].T)
        products[start:stop, stop:] = np.matmul(block[start:stop], block[stop:].T)
    upper = np.triu(np.ones((n, n), dtype=np.bool_), 1)
    products.T[upper] = products[upper]
    return products


def test_strip_rows_are_bits_of_the_one_call_product() -> None:
    # The premise of the exact comparisons above, on this machine's BLAS.
    rng = np.random.default_rng(2)
    block_row, block_col = _unit_rows(rng, 500, 256), _unit_rows(rng, 1500, 256)
    with threadpool_limits(limits=1):
        whole = np.matmul(block_row, block_col.T)
        for start in range(0, 500, 96):
            strip = np.matmul(block_row[start : start + 96], block_col.T)
            assert np.array_equal(strip, whole[start : start + 96])


def test_strip_height_is_a_multiple_of_96_within_the_byte_budget() -> None:
    budget = _kernel._STRIP_BYTES_MAX
    rows_min = _kernel._STRIP_ROWS_MIN
    for width in (100, 2048, 4096, 8192, 65536):
        rows = _kernel._strip_rows(65536, width, budget)
        assert rows % 96 == 0
        assert rows >= rows_min
        assert rows * width * 4 <= max(budget, rows_min * width * 4)
    assert _kernel._strip_rows(50, 2048, budget) == 50  # a small block is one strip


def test_a_unit_never_holds_all_of_s() -> None:
    rng = np.random.default_rng(4)
    n = 4096
    block_row, block_col = _unit_rows(rng, n, 8), _unit_rows(rng, n, 8)
    shape = UnitShape(0, 1, 0, n, n, 2 * n)
    s_bytes = n * n * 4
    tracemalloc.start()
    try:
        compute_unit(block_row, block_col, shape, 16)
        _, peak_bytes = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_bytes < s_bytes // 2


@pytest.mark.parametrize("diagonal", [False, True])
def test_nan_in_a_later_strip_is_refused(diagonal: bool) -> None:
    rng = np.random.default_rng(9)
    block_row, block_col = _unit_rows(rng, 400, 8), _unit_rows(rng, 400, 8)
    block_row[350, 1] = np.nan
    if diagonal:
        shape, block_col = unit_shape(0, 0, 400, 400), block_row
    else:
        shape = UnitShape(0, 1, 0, 400, 400, 800)
    with pytest.raises(WorkloadError) as caught:
        _compute_unit_strips(block_row, block_col, shape, 4, 96)
    assert caught.value.code == "workload.block_malformed"


@given(
    n_rows=st.integers(1, 60),
    n_cols=st.integers(1, 60),
    k=st.integers(1, 20),
    rows_per_strip=st.integers(1, 25),
    high=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_strip_height_equals_the_one_matmul_kernel_on_integer_blocks(
    n_rows: int, n_cols: int, k: int, rows_per_strip: int, high: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    block_row = _integer_rows(rng, n_rows, 4, high)
    block_col = _integer_rows(rng, n_cols, 4, high)
    shape = UnitShape(0, 1, 0, n_rows, n_rows, n_rows + n_cols)
    _assert_same_result(*_both_kernels(block_row, block_col, shape, k, rows_per_strip))
    diagonal = unit_shape(0, 0, n_rows, n_rows)
    _assert_same_result(*_both_kernels(block_row, block_row, diagonal, k, rows_per_strip))


def test_column_top_k_stays_bounded_when_every_strip_beats_it() -> None:
    # Rising rows: each strip beats every column's bound; the keys must still be
    # compacted to k per column, and the final keys be each column's exact top-k.
    rng = np.random.default_rng(8)
    n_rows, n_cols, k = 1920, 700, 4
    rising = np.arange(n_rows, dtype=np.float32)[:, None]
    values = (rising + rng.random((n_rows, n_cols), dtype=np.float32)).astype(np.float32)
    columns = ColumnTopK(n_cols, k)
    buffers = StripBuffers(96, n_cols)
    for start in range(0, n_rows, 96):
        strip = np.ascontiguousarray(values[start : start + 96])
        col_lower = columns.strip_lower(strip, 0)
        _, col_keys = strip_keys(strip, _keep_no_rows, col_lower, start, 0, buffers)
        assert col_keys.shape[0] >= k * n_cols  # every column gains k entries or more
        columns.add(col_keys, n_cols)
        assert columns.n_keys <= columns.n_keys_max
    assert columns.n_compactions > 1
    keys = columns.keys()
    assert keys.shape[0] == n_cols * k
    owners = (keys >> np.uint64(48)).astype(np.int64)
    rows = (keys & np.uint64(0xFFFF)).astype(np.int64)
    assert np.array_equal(owners, np.repeat(np.arange(n_cols), k))
    assert np.array_equal(rows, np.tile(np.arange(n_rows - 1, n_rows - 1 - k, -1), n_cols))


def _keep_no_rows(chunk: Float32Array, first_row: int) -> Float32Array:
    return np.full(chunk.shape[0], np.inf, dtype=np.float32)
