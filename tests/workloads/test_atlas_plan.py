"""Blocks, units and FLOP counts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import (
    AtlasParams,
    UnitShape,
    block_ranges,
    chunk_rows,
    job_flops,
    plan_units,
    unit_flops,
    unit_shape,
)


@given(block_size=st.integers(1, 700), n_blocks=st.integers(1, 40), tail=st.integers(0, 699))
def test_units_cover_every_unordered_pair_once(block_size: int, n_blocks: int, tail: int) -> None:
    n_spectra = (n_blocks - 1) * block_size + 1 + tail % block_size
    ranges = block_ranges(n_spectra, block_size)
    assert len(ranges) == n_blocks
    # Blocks tile 0..n_spectra without gap or overlap; only the last may be short.
    assert [stop - start for start, stop in ranges[:-1]] == [block_size] * (n_blocks - 1)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    units = plan_units(n_spectra, block_size)
    pairs = [(u.block_row, u.block_col) for u in units]
    assert pairs == sorted(pairs)  # row-major
    assert set(pairs) == {(r, c) for r in range(n_blocks) for c in range(r, n_blocks)}
    assert len(pairs) == n_blocks * (n_blocks + 1) // 2
    for unit in units:
        assert (unit.row_start, unit.row_stop) == ranges[unit.block_row]
        assert (unit.col_start, unit.col_stop) == ranges[unit.block_col]


@settings(deadline=None)
@given(n_spectra=st.integers(1, 120), block_size=st.integers(1, 50))
def test_every_spectrum_pair_is_in_exactly_one_unit(n_spectra: int, block_size: int) -> None:
    cover = [[0] * n_spectra for _ in range(n_spectra)]
    for unit in plan_units(n_spectra, block_size):
        for i in range(unit.row_start, unit.row_stop):
            for j in range(unit.col_start, unit.col_stop):
                if unit.is_diagonal and j < i:
                    continue  # the diagonal unit's product is symmetric: count each pair once
                cover[i][j] += 1
    assert all(cover[i][j] == 1 for i in range(n_spectra) for j in range(i, n_spectra))


@pytest.mark.parametrize(
    ("n_spectra", "block_size", "n_units"),
    [(1, 2048, 1), (5, 2048, 1), (2048, 2048, 1), (2049, 2048, 3), (300, 64, 15), (6000, 1024, 21)],
)
def test_awkward_sizes(n_spectra: int, block_size: int, n_units: int) -> None:
    units = plan_units(n_spectra, block_size)
    assert len(units) == n_units
    assert units[-1].col_stop == n_spectra


def test_one_spectrum_is_one_diagonal_unit() -> None:
    (unit,) = plan_units(1, 16)
    assert unit.is_diagonal
    assert (unit.n_rows, unit.n_cols) == (1, 1)


@pytest.mark.parametrize(("n_spectra", "block_size"), [(0, 16), (-1, 16), (10, 0), (10, 65537)])
def test_bad_sizes_are_refused(n_spectra: int, block_size: int) -> None:
    with pytest.raises(WorkloadError) as caught:
        plan_units(n_spectra, block_size)
    assert caught.value.code == "workload.params_invalid"


def test_unit_flops_is_exact() -> None:
    assert unit_flops(2048, 2048, 1024) == 2 * 2048 * 2048 * 1024 == 8_589_934_592
    assert unit_flops(3, 5, 7) == 210
    assert unit_flops(0, 5, 7) == 0
    big = unit_flops(65536, 65536, 8192)
    assert big == 2 * 65536 * 65536 * 8192
    assert isinstance(big, int)


@given(n_spectra=st.integers(1, 20_000), block_size=st.integers(256, 4096))
def test_job_flops_is_the_sum_of_unit_flops(n_spectra: int, block_size: int) -> None:
    params = AtlasParams(embedding_dim=256, block_size=block_size)
    total = sum(unit_flops(u.n_rows, u.n_cols, 256) for u in plan_units(n_spectra, block_size))
    assert job_flops(n_spectra, params) == total
    # Diagonal units compute their whole square, off-diagonal pairs are computed once:
    # between half and all of the n x n product.
    assert 2 * n_spectra * n_spectra * 256 >= total >= n_spectra * n_spectra * 256


def test_shape_dict_round_trip_and_strictness() -> None:
    shape = unit_shape(1, 3, 1000, 256)
    assert shape.to_dict() == {
        "block_col": 3,
        "block_row": 1,
        "col_start": 768,
        "col_stop": 1000,
        "row_start": 256,
        "row_stop": 512,
    }
    assert UnitShape.from_dict(shape.to_dict()) == shape
    assert (shape.n_rows, shape.n_cols, shape.is_diagonal) == (256, 232, False)


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": 0},
        {"row_start": "256"},
        {"row_start": 256.0},
        {"block_row": 4},  # row after col
        {"row_stop": 256},  # empty
        {"row_stop": 800},  # overlaps the col block
        {"block_row": True},
    ],
)
def test_shape_from_dict_is_strict(changes: dict[str, Any]) -> None:
    data: dict[str, Any] = {**unit_shape(1, 3, 1000, 256).to_dict(), **changes}
    with pytest.raises(WorkloadError) as caught:
        UnitShape.from_dict(data)
    assert caught.value.code == "workload.shape_invalid"


def test_diagonal_shape_pairs_a_block_with_itself() -> None:
    with pytest.raises(WorkloadError, match="diagonal"):
        UnitShape(block_row=2, block_col=2, row_start=0, row_stop=5, col_start=5, col_stop=10)


OFF_4096 = UnitShape(0, 1, 0, 4096, 4096, 8192)


@pytest.mark.parametrize(
    ("shape", "dim", "chunk_flops", "rows"),
    [
        (OFF_4096, 1024, 10**12, 0),  # 34 GFLOP: one chunk, runs whole
        (OFF_4096, 1024, 96 * 2 * 4096 * 1024, 96),  # exactly 96 rows' work
        (OFF_4096, 1024, 97 * 2 * 4096 * 1024, 96),  # rounded down to a multiple of 96
        (OFF_4096, 1024, 1536 * 2 * 4096 * 1024, 1536),
        (OFF_4096, 1024, 1, 96),  # never less than 96 rows
        (OFF_4096, 1024, 4224 * 2 * 4096 * 1024, 0),  # a chunk (44 x 96 rows) holds it all
        (OFF_4096, 1024, 0, 0),  # checkpoints off
        (UnitShape(0, 0, 0, 4096, 0, 4096), 1024, 1, 0),  # diagonal units run whole
    ],
)
def test_chunk_rows_follow_the_work_of_a_row(
    shape: UnitShape, dim: int, chunk_flops: int, rows: int
) -> None:
    assert chunk_rows(shape, dim, chunk_flops) == rows


@given(
    n_rows=st.integers(1, 65536),
    n_cols=st.integers(1, 65536),
    dim=st.integers(8, 8192),
    chunk_flops=st.integers(1, 10**15),
)
def test_a_chunk_is_whole_multiples_of_96_rows_and_shorter_than_its_unit(
    n_rows: int, n_cols: int, dim: int, chunk_flops: int
) -> None:
    shape = UnitShape(0, 1, 0, n_rows, n_rows, n_rows + n_cols)
    rows = chunk_rows(shape, dim, chunk_flops)
    assert rows == 0 or (rows % 96 == 0 and 96 <= rows < n_rows)
    row_flops = unit_flops(1, n_cols, dim)
    if rows > 96:
        assert rows * row_flops <= chunk_flops, "no chunk past the work asked for"
    if rows == 0:
        assert n_rows <= max(96, chunk_flops // row_flops // 96 * 96)
