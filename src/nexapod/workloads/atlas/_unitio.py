"""The scratch directory a unit runs in: the contract between node agent and sandbox.

    SCRATCH_DIR/unit.json         {"workload": "atlas", "version": 1, "shape": {...},
                                   "params": {...}, "n_spectra": N}
    SCRATCH_DIR/in/block_row.npy  the row block (.npy float32)
    SCRATCH_DIR/in/block_col.npy  the col block (off-diagonal units only)
    SCRATCH_DIR/out/result.bin    written by the unit, atomically (temp file + rename)

The node agent lays it out with :func:`write_unit_input` and collects the result with
:func:`read_unit_output`; the sandboxed unit reads it with :func:`read_unit_input`.
Numbers in unit.json are integers only (the params' floats are decimal strings).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas._codec import RESULT_BYTES_MAX, decode_block
from nexapod.workloads.atlas._params import SPECTRA_MAX, AtlasParams, require_int
from nexapod.workloads.atlas._plan import UnitShape, unit_shape

__all__ = [
    "UNIT_JSON_BYTES_MAX",
    "UNIT_VERSION",
    "UnitInput",
    "read_unit_input",
    "read_unit_output",
    "write_unit_input",
    "write_unit_output",
]

UNIT_VERSION = 1
UNIT_JSON_BYTES_MAX = 64 << 10
_KEYS = {"n_spectra", "params", "shape", "version", "workload"}
_OPTIONAL_KEYS = {"chunk_rows"}  # off-diagonal units computed in row chunks (_checkpoint)
CHECKPOINT_IN = "checkpoint.bin"  # in/: the state to resume from; out/: the latest state
_BLOCK_HEADER_BYTES_MAX = 4096


@dataclass(frozen=True, eq=False)
class UnitInput:
    """Everything a unit computes from; block_col is block_row for a diagonal unit."""

    shape: UnitShape
    params: AtlasParams
    n_spectra: int
    block_row: npt.NDArray[np.float32]
    block_col: npt.NDArray[np.float32]
    chunk_rows: int = 0  # 0: one pass; else rows per chunk, a checkpoint after each


def write_unit_input(
    scratch_dir: Path,
    shape: UnitShape,
    params: AtlasParams,
    n_spectra: int,
    block_row_bytes: bytes,
    block_col_bytes: bytes | None,
) -> None:
    """Lay out ``scratch_dir`` (created if missing) for one unit; ``out/`` is left empty."""
    if shape.is_diagonal != (block_col_bytes is None):
        raise WorkloadError("unit_invalid", "block_col is given exactly for off-diagonal units")
    spec = {
        "workload": "atlas",
        "version": UNIT_VERSION,
        "shape": shape.to_dict(),
        "params": params.to_dict(),
        "n_spectra": n_spectra,
    }
    _check_spec_shape(shape, params, n_spectra)
    (scratch_dir / "in").mkdir(parents=True, exist_ok=True)
    (scratch_dir / "out").mkdir(exist_ok=True)
    (scratch_dir / "unit.json").write_text(json.dumps(spec, sort_keys=True), encoding="utf-8")
    (scratch_dir / "in" / "block_row.npy").write_bytes(block_row_bytes)
    if block_col_bytes is not None:
        (scratch_dir / "in" / "block_col.npy").write_bytes(block_col_bytes)


def _refuse_float(text: str) -> Any:
    raise WorkloadError("unit_invalid", f"unit.json holds a non-integer number: {text}")


def read_unit_input(scratch_dir: Path) -> UnitInput:
    """Parse and check the scratch directory; any defect raises ``workload.unit_invalid``
    (or ``block_malformed`` for a bad block)."""
    spec = _read_spec(scratch_dir / "unit.json")
    params = AtlasParams.from_dict(spec["params"])
    shape = UnitShape.from_dict(spec["shape"])
    n_spectra = require_int(spec["n_spectra"], "n_spectra", 1, SPECTRA_MAX, "unit_invalid")
    _check_spec_shape(shape, params, n_spectra)
    dim = params.embedding_dim
    block_row = decode_block(
        _read_block(scratch_dir, "block_row", shape.n_rows, dim), shape.n_rows, dim
    )
    if shape.is_diagonal:
        block_col = block_row
    else:
        data = _read_block(scratch_dir, "block_col", shape.n_cols, dim)
        block_col = decode_block(data, shape.n_cols, dim)
    chunk_rows = 0
    if "chunk_rows" in spec:
        chunk_rows = require_int(spec["chunk_rows"], "chunk_rows", 96, SPECTRA_MAX, "unit_invalid")
        if chunk_rows % 96 or shape.is_diagonal:
            raise WorkloadError("unit_invalid", "chunk_rows: a multiple of 96, off-diagonal only")
    return UnitInput(shape, params, n_spectra, block_row, block_col, chunk_rows)


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            raw = file.read(UNIT_JSON_BYTES_MAX + 1)
    except OSError as exc:
        raise WorkloadError("unit_invalid", f"cannot read {path.name}: {exc.strerror}") from exc
    if len(raw) > UNIT_JSON_BYTES_MAX:
        raise WorkloadError("unit_invalid", f"unit.json is larger than {UNIT_JSON_BYTES_MAX} bytes")
    try:
        spec = json.loads(raw, parse_float=_refuse_float, parse_constant=_refuse_float)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise WorkloadError("unit_invalid", f"unit.json is not JSON: {exc}") from exc
    if not isinstance(spec, dict) or not _KEYS <= set(spec) <= _KEYS | _OPTIONAL_KEYS:
        raise WorkloadError(
            "unit_invalid",
            f"unit.json must have exactly the keys {sorted(_KEYS)} (and may have "
            f"{sorted(_OPTIONAL_KEYS)})",
        )
    if spec["workload"] != "atlas" or spec["version"] != UNIT_VERSION:
        raise WorkloadError(
            "unit_invalid", f"unit.json is not an atlas unit of version {UNIT_VERSION}"
        )
    return spec


def _check_spec_shape(shape: UnitShape, params: AtlasParams, n_spectra: int) -> None:
    """The shape must be the one the plan derives from (blocks, n_spectra, block_size)."""
    expected = unit_shape(shape.block_row, shape.block_col, n_spectra, params.block_size)
    if shape != expected:
        raise WorkloadError("unit_invalid", f"shape {shape.to_dict()} is not in the job's plan")


def _read_block(scratch_dir: Path, name: str, n_rows: int, embedding_dim: int) -> bytes:
    path = scratch_dir / "in" / f"{name}.npy"
    size_bytes_max = n_rows * embedding_dim * 4 + _BLOCK_HEADER_BYTES_MAX
    try:
        with path.open("rb") as file:
            data = file.read(size_bytes_max + 1)
    except OSError as exc:
        raise WorkloadError("unit_invalid", f"cannot read in/{name}.npy: {exc.strerror}") from exc
    if len(data) > size_bytes_max:
        raise WorkloadError("block_malformed", f"in/{name}.npy is larger than its shape allows")
    return data


def write_unit_output(scratch_dir: Path, data: bytes, name: str = "result.bin") -> None:
    """Write out/<name> atomically: a reader (the node agent) sees all of it or nothing."""
    out_dir = scratch_dir / "out"
    out_dir.mkdir(exist_ok=True)
    temporary = out_dir / f".{name}.{os.getpid()}.tmp"
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, out_dir / name)


def read_unit_output(scratch_dir: Path, bytes_max: int = RESULT_BYTES_MAX) -> bytes:
    """The unit's result bytes; missing or larger than ``bytes_max`` is an error."""
    path = scratch_dir / "out" / "result.bin"
    try:
        with path.open("rb") as file:
            data = file.read(bytes_max + 1)
    except FileNotFoundError as exc:
        raise WorkloadError("result_missing", "the unit wrote no out/result.bin") from exc
    except OSError as exc:
        raise WorkloadError(
            "result_missing", f"cannot read out/result.bin: {exc.strerror}"
        ) from exc
    if len(data) > bytes_max:
        raise WorkloadError("result_malformed", f"out/result.bin is larger than {bytes_max} bytes")
    return data
