"""A unit in row chunks: resumed from a checkpoint it is bit for bit the uninterrupted
chunked run, and it agrees with the one-pass kernel; checkpoints decode strictly."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import (
    AtlasParams,
    UnitShape,
    compute_unit,
    encode_unit_result,
    results_agree,
    synthetic_embeddings,
)
from nexapod.workloads.atlas._checkpoint import (
    Checkpoint,
    compute_unit_chunked,
    decode_checkpoint,
    encode_checkpoint,
)

K = 8
CHUNK = 192
SHAPE = UnitShape(0, 1, 0, 500, 500, 1000)  # 500 rows: chunks 192, 192, 116


@pytest.fixture(scope="module")
def blocks() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    embeddings = synthetic_embeddings(1000, 4, AtlasParams(embedding_dim=256))
    return embeddings[0:500], embeddings[500:1000]


def test_resumed_is_bit_for_bit_the_uninterrupted_run(
    blocks: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    block_row, block_col = blocks
    saved: list[bytes] = []
    whole = compute_unit_chunked(
        block_row,
        block_col,
        SHAPE,
        K,
        CHUNK,
        on_checkpoint=lambda s: saved.append(encode_checkpoint(s)),
    )
    assert len(saved) == 2, "after each chunk but the last"
    for data in saved:  # another node picks up each checkpoint
        state = decode_checkpoint(data, SHAPE, K, CHUNK)
        resumed = compute_unit_chunked(block_row, block_col, SHAPE, K, CHUNK, resume=state)
        assert encode_unit_result(resumed, SHAPE) == encode_unit_result(whole, SHAPE)


def test_chunked_agrees_with_the_one_pass_kernel(
    blocks: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    block_row, block_col = blocks
    chunked = compute_unit_chunked(block_row, block_col, SHAPE, K, CHUNK)
    one_pass = compute_unit(block_row, block_col, SHAPE, K)
    np.testing.assert_array_equal(chunked.row_ids, one_pass.row_ids)
    assert results_agree(chunked, one_pass)


def _first_checkpoint(blocks: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]) -> bytes:
    saved: list[Checkpoint] = []
    compute_unit_chunked(*blocks, SHAPE, K, CHUNK, on_checkpoint=saved.append)
    return encode_checkpoint(saved[0])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d[:-4], "bytes"),
        (lambda d: b"NXAX" + d[4:], "magic"),
        (lambda d: d[:8] + (100).to_bytes(4, "little") + d[12:], "chunk boundary"),
        (lambda d: d[:28] + (10**6).to_bytes(8, "little") + d[36:], "checkpoint rows"),
    ],
)
def test_a_damaged_checkpoint_is_refused(
    blocks: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
    edit,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    data = _first_checkpoint(blocks)
    with pytest.raises(WorkloadError) as refused:
        decode_checkpoint(edit(data), SHAPE, K, CHUNK)
    assert refused.value.code == "workload.checkpoint_invalid"
    assert message in refused.value.detail


def test_a_checkpoint_of_another_unit_is_refused(
    blocks: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]],
) -> None:
    data = _first_checkpoint(blocks)
    other = UnitShape(0, 2, 0, 500, 1000, 1400)
    with pytest.raises(WorkloadError, match="not a checkpoint of this unit"):
        decode_checkpoint(data, other, K, CHUNK)
