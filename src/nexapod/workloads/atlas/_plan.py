"""Cutting a job into work units: blocks, block pairs and their exact FLOP counts.

Pure integer arithmetic. Spectra ``0..n_spectra-1`` are cut into consecutive blocks of
``block_size`` (the last one shorter); one unit per unordered block pair (row <= col),
listed row-major over the upper triangle including the diagonal. A unit computes the
full product of its two blocks, so its work is ``unit_flops(n_rows, n_cols, dim)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._params import BLOCK_SIZE_MAX, SPECTRA_MAX, AtlasParams, require_int

__all__ = [
    "CHUNK_ROWS_MULTIPLE",
    "UNITS_MAX",
    "UnitShape",
    "block_ranges",
    "chunk_rows",
    "job_flops",
    "plan_units",
    "unit_flops",
    "unit_shape",
]

# A plan longer than this is refused (about 1,400 blocks): pick a larger block_size.
UNITS_MAX = 1_000_000
# Chunks start at multiples of this many rows, so that a chunk's similarities have the
# bits of one whole-block product (BLAS register blocks divide 96: docs/atlas.md).
CHUNK_ROWS_MULTIPLE = 96


@dataclass(frozen=True)
class UnitShape:
    """Which two blocks a unit pairs, and their global spectrum index ranges."""

    block_row: int
    block_col: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    FIELDS: ClassVar[tuple[str, ...]] = (
        "block_col",
        "block_row",
        "col_start",
        "col_stop",
        "row_start",
        "row_stop",
    )

    def __post_init__(self) -> None:
        for name in self.FIELDS:
            require_int(getattr(self, name), name, 0, SPECTRA_MAX, "shape_invalid")
        if self.block_row > self.block_col:
            raise WorkloadError("shape_invalid", "block_row must be <= block_col")
        if not self.row_start < self.row_stop or not self.col_start < self.col_stop:
            raise WorkloadError("shape_invalid", "block ranges must not be empty")
        if self.is_diagonal and (self.row_start, self.row_stop) != (self.col_start, self.col_stop):
            raise WorkloadError("shape_invalid", "a diagonal unit pairs a block with itself")
        if not self.is_diagonal and self.row_stop > self.col_start:
            raise WorkloadError("shape_invalid", "the row block must end before the col block")

    @property
    def n_rows(self) -> int:
        return self.row_stop - self.row_start

    @property
    def n_cols(self) -> int:
        return self.col_stop - self.col_start

    @property
    def is_diagonal(self) -> bool:
        return self.block_row == self.block_col

    def to_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnitShape:
        """Strict: exactly the six integer fields."""
        if not isinstance(data, dict) or set(data) != set(cls.FIELDS):
            raise WorkloadError("shape_invalid", f"a unit shape has exactly the keys {cls.FIELDS}")
        return cls(**data)


def _check_sizes(n_spectra: int, block_size: int) -> None:
    require_int(n_spectra, "n_spectra", 1, SPECTRA_MAX, "params_invalid")
    require_int(block_size, "block_size", 1, BLOCK_SIZE_MAX, "params_invalid")


def block_ranges(n_spectra: int, block_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] of each block; only the last may be shorter than block_size."""
    _check_sizes(n_spectra, block_size)
    ranges = [
        (start, min(start + block_size, n_spectra)) for start in range(0, n_spectra, block_size)
    ]
    assert ranges[0][0] == 0
    assert ranges[-1][1] == n_spectra
    return ranges


def unit_shape(block_row: int, block_col: int, n_spectra: int, block_size: int) -> UnitShape:
    """The shape of the unit pairing two blocks (how every party derives it)."""
    _check_sizes(n_spectra, block_size)
    n_blocks = -(-n_spectra // block_size)
    if not 0 <= block_row <= block_col < n_blocks:
        raise WorkloadError(
            "shape_invalid", f"blocks ({block_row}, {block_col}) not in a plan of {n_blocks}"
        )
    return UnitShape(
        block_row=block_row,
        block_col=block_col,
        row_start=block_row * block_size,
        row_stop=min((block_row + 1) * block_size, n_spectra),
        col_start=block_col * block_size,
        col_stop=min((block_col + 1) * block_size, n_spectra),
    )


def plan_units(n_spectra: int, block_size: int) -> list[UnitShape]:
    """Every unordered block pair once (row <= col), row-major.

    One spectrum gives one diagonal unit with no candidate: its row is all padding.
    """
    _check_sizes(n_spectra, block_size)
    n_blocks = -(-n_spectra // block_size)
    n_units = n_blocks * (n_blocks + 1) // 2
    if n_units > UNITS_MAX:
        raise WorkloadError(
            "params_invalid", f"{n_units} units, more than {UNITS_MAX}: use a larger block_size"
        )
    units = [
        unit_shape(row, col, n_spectra, block_size)
        for row in range(n_blocks)
        for col in range(row, n_blocks)
    ]
    assert len(units) == n_units
    return units


def unit_flops(n_rows: int, n_cols: int, embedding_dim: int) -> int:
    """Exact work of one unit: ``2 * n_rows * n_cols * embedding_dim``.

    One multiply and one add per term of the similarity product (block_row @ block_col.T).
    The top-k selection is comparisons and is not counted.
    """
    assert n_rows >= 0
    assert n_cols >= 0
    assert embedding_dim >= 0
    return 2 * n_rows * n_cols * embedding_dim


def chunk_rows(shape: UnitShape, embedding_dim: int, chunk_flops: int) -> int:
    """Rows per checkpoint chunk of a unit, or 0 when the unit runs whole.

    A chunk is as many rows as ``chunk_flops`` of work allows (whole multiples of 96, at
    least 96), so a checkpoint comes after a chunk of about that much work whatever the
    unit's shape; a unit that fits in one chunk, a diagonal unit (its kernel computes each
    pair once for both directions, which a split by rows would undo), or ``chunk_flops``
    0 runs whole: checkpointing a unit of seconds costs more than redoing it.
    """
    assert chunk_flops >= 0
    assert embedding_dim > 0
    if chunk_flops == 0 or shape.is_diagonal:
        return 0
    row_flops = unit_flops(1, shape.n_cols, embedding_dim)
    rows = max(1, chunk_flops // row_flops // CHUNK_ROWS_MULTIPLE) * CHUNK_ROWS_MULTIPLE
    assert rows % CHUNK_ROWS_MULTIPLE == 0
    return rows if shape.n_rows > rows else 0


def job_flops(n_spectra: int, params: AtlasParams) -> int:
    """The sum of ``unit_flops`` over ``plan_units(n_spectra, params.block_size)``."""
    dim = params.embedding_dim
    return sum(
        unit_flops(shape.n_rows, shape.n_cols, dim)
        for shape in plan_units(n_spectra, params.block_size)
    )
