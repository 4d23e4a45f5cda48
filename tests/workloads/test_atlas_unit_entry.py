"""The sandbox entry point run as a real process on a laid-out scratch directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from nexapod.errors import WorkloadError
from nexapod.workloads import unit_module
from nexapod.workloads.atlas import (
    AtlasParams,
    UnitShape,
    compute_unit,
    encode_block,
    encode_unit_result,
    read_unit_output,
    synthetic_embeddings,
    unit_shape,
    write_unit_input,
)

N_SPECTRA = 700
PARAMS = AtlasParams(embedding_dim=256, block_size=256, k=8)


@pytest.fixture(scope="module")
def embeddings() -> npt.NDArray[np.float32]:
    return synthetic_embeddings(N_SPECTRA, 17, PARAMS)


def _run(scratch_dir: Path, threads: str = "1") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NEXAPOD_UNIT_THREADS": threads}
    return subprocess.run(
        [sys.executable, "-m", unit_module("atlas"), str(scratch_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _lay_out(scratch_dir: Path, shape: UnitShape, embeddings: npt.NDArray[np.float32]) -> None:
    row_bytes = encode_block(embeddings[shape.row_start : shape.row_stop])
    col_bytes = None
    if not shape.is_diagonal:
        col_bytes = encode_block(embeddings[shape.col_start : shape.col_stop])
    write_unit_input(scratch_dir, shape, PARAMS, N_SPECTRA, row_bytes, col_bytes)


@pytest.mark.parametrize(("block_row", "block_col"), [(0, 2), (1, 1), (2, 2)])
def test_subprocess_gives_the_in_process_bytes(
    tmp_path: Path, embeddings: npt.NDArray[np.float32], block_row: int, block_col: int
) -> None:
    shape = unit_shape(block_row, block_col, N_SPECTRA, PARAMS.block_size)
    _lay_out(tmp_path, shape, embeddings)
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    block_r = embeddings[shape.row_start : shape.row_stop]
    block_c = embeddings[shape.col_start : shape.col_stop]
    # The unit ran with one BLAS thread; OpenBLAS rounds some products differently with
    # more threads, so compare like with like.
    with threadpool_limits(1):
        expected = encode_unit_result(compute_unit(block_r, block_c, shape, PARAMS.k), shape)
    assert read_unit_output(tmp_path) == expected
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["result.bin"]


def test_layout_is_as_specified(tmp_path: Path, embeddings: npt.NDArray[np.float32]) -> None:
    shape = unit_shape(0, 1, N_SPECTRA, PARAMS.block_size)
    _lay_out(tmp_path, shape, embeddings)
    spec = json.loads((tmp_path / "unit.json").read_text())
    assert spec == {
        "workload": "atlas",
        "version": 1,
        "shape": shape.to_dict(),
        "params": PARAMS.to_dict(),
        "n_spectra": N_SPECTRA,
    }
    assert (tmp_path / "in" / "block_row.npy").is_file()
    assert (tmp_path / "in" / "block_col.npy").is_file()
    assert (tmp_path / "out").is_dir()


def _spec(scratch_dir: Path) -> dict[str, object]:
    spec: dict[str, object] = json.loads((scratch_dir / "unit.json").read_text())
    return spec


@pytest.mark.parametrize(
    "mangle",
    [
        lambda spec: "{not json",
        lambda spec: json.dumps({**spec, "workload": "folding"}),
        lambda spec: json.dumps({**spec, "version": 2}),
        lambda spec: json.dumps({**spec, "extra": 1}),
        lambda spec: json.dumps({**spec, "n_spectra": 700.0}),
        lambda spec: json.dumps({**spec, "n_spectra": 300}),  # shape no longer in the plan
        lambda spec: json.dumps({**spec, "params": {**spec["params"], "k": 0}}),
        lambda spec: json.dumps({**spec, "shape": {**spec["shape"], "row_stop": 255}}),
        lambda spec: json.dumps([spec]),
    ],
)
def test_bad_unit_json_exits_2(
    tmp_path: Path, embeddings: npt.NDArray[np.float32], mangle: object
) -> None:
    _lay_out(tmp_path, unit_shape(0, 1, N_SPECTRA, PARAMS.block_size), embeddings)
    assert callable(mangle)
    (tmp_path / "unit.json").write_text(mangle(_spec(tmp_path)))
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "workload." in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "result.bin").exists()


def test_missing_or_bad_blocks_exit_2(tmp_path: Path, embeddings: npt.NDArray[np.float32]) -> None:
    _lay_out(tmp_path, unit_shape(0, 1, N_SPECTRA, PARAMS.block_size), embeddings)
    (tmp_path / "in" / "block_col.npy").unlink()
    assert _run(tmp_path).returncode == 2
    (tmp_path / "in" / "block_col.npy").write_bytes(encode_block(embeddings[:10]))
    done = _run(tmp_path)
    assert done.returncode == 2
    assert "block_malformed" in done.stderr


def test_missing_directory_and_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert _run(tmp_path / "absent").returncode == 2
    done = subprocess.run(
        [sys.executable, "-m", unit_module("atlas")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "usage" in done.stderr


def test_bad_thread_count_exits_2(tmp_path: Path, embeddings: npt.NDArray[np.float32]) -> None:
    _lay_out(tmp_path, unit_shape(0, 0, N_SPECTRA, PARAMS.block_size), embeddings)
    done = _run(tmp_path, threads="zero")
    assert done.returncode == 2
    assert "NEXAPOD_UNIT_THREADS" in done.stderr


def test_blas_threads_are_limited_before_numpy_loads() -> None:
    probe = (
        "import os, sys\n"
        "for name in ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS'):\n"
        "    os.environ.pop(name, None)\n"
        "os.environ['NEXAPOD_UNIT_THREADS'] = '1'\n"
        "from nexapod.workloads.atlas import unit\n"
        "assert 'numpy' not in sys.modules\n"
        "assert unit._limit_blas_threads() == ''\n"
        "from threadpoolctl import threadpool_info\n"
        "import numpy as np\n"
        "np.ones((64, 64)) @ np.ones((64, 64))\n"
        "blas = [p for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print(os.environ['OPENBLAS_NUM_THREADS'], [p['num_threads'] for p in blas])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "1 [1]"


def test_write_unit_input_checks_the_blocks_against_the_shape(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as caught:
        write_unit_input(tmp_path, unit_shape(0, 1, 700, 256), PARAMS, 700, b"x", None)
    assert caught.value.code == "workload.unit_invalid"
    with pytest.raises(WorkloadError):
        write_unit_input(tmp_path, unit_shape(1, 1, 700, 256), PARAMS, 700, b"x", b"y")


def test_read_unit_output_without_result(tmp_path: Path) -> None:
    with pytest.raises(WorkloadError) as caught:
        read_unit_output(tmp_path)
    assert caught.value.code == "workload.result_missing"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "result.bin").write_bytes(b"x" * 11)
    with pytest.raises(WorkloadError) as caught:
        read_unit_output(tmp_path, bytes_max=10)
    assert caught.value.code == "workload.result_malformed"
