"""The check unit of liveness challenges: exact, deterministic, seed-dependent."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexapod.workloads import atlas
from nexapod.workloads.liveness import (
    CHECK_DIM,
    CHECK_K,
    CHECK_ROWS,
    CHECK_SIMILARITY_MAX,
    CHECK_VALUE_MAX,
    check_answer_sha256,
    check_blocks,
    check_result_bytes,
)

SEEDS = st.binary(min_size=32, max_size=32).map(bytes.hex)
# Published test vectors: an answer that changes breaks every node of an older release,
# so a change here must come with a new CHECK_KIND (docs/cold-challenges.md).
VECTORS = {
    "00" * 32: "f5d27868919aa50910a1e2e137f43aede266041013e0775bf204d88b2d5a2e8a",
    "0123456789abcdef" * 4: "f2c41aeb31de0d3801555640c8f2886180e1659efc9b415b84119bd2a10a9bac",
}


def _independent_result_bytes(seed: str) -> bytes:
    """The check unit in exact int64 arithmetic, without BLAS or the atlas kernel."""
    block_row, block_col = check_blocks(seed)
    sims = block_row.astype(np.int64) @ block_col.astype(np.int64).T
    assert int(sims.max()) <= CHECK_SIMILARITY_MAX

    def top(matrix: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        order = np.lexsort((np.arange(matrix.shape[1])[None, :].repeat(len(matrix), 0), -matrix))
        ids = order[:, :CHECK_K]
        return ids + offset, np.take_along_axis(matrix, ids, axis=1)

    row_ids, row_sims = top(sims, CHECK_ROWS)
    col_ids, col_sims = top(sims.T, 0)
    result = atlas.UnitResult(
        row_ids=row_ids.astype(np.int64),
        row_sims=row_sims.astype(np.float32),
        col_ids=col_ids.astype(np.int64),
        col_sims=col_sims.astype(np.float32),
    )
    shape = atlas.UnitShape(0, 1, 0, CHECK_ROWS, CHECK_ROWS, 2 * CHECK_ROWS)
    return atlas.encode_unit_result(result, shape, result_format=1)


def test_blocks_are_small_integers_from_the_seed() -> None:
    block_row, block_col = check_blocks("ab" * 32)
    for block in (block_row, block_col):
        assert block.dtype == np.float32
        assert block.shape == (CHECK_ROWS, CHECK_DIM)
        assert np.array_equal(block, np.round(block))
        assert float(block.min()) >= 0 and float(block.max()) <= CHECK_VALUE_MAX
    assert not np.array_equal(block_row, block_col)


@settings(max_examples=25, deadline=None)
@given(seed=SEEDS)
def test_the_kernel_gives_the_exact_integer_answer(seed: str) -> None:
    assert check_result_bytes(seed) == _independent_result_bytes(seed)


@settings(max_examples=25, deadline=None)
@given(a=SEEDS, b=SEEDS)
def test_the_answer_is_deterministic_and_changes_with_the_seed(a: str, b: str) -> None:
    assert check_answer_sha256(a) == check_answer_sha256(a)
    if a != b:
        assert check_answer_sha256(a) != check_answer_sha256(b)


def test_the_answer_is_the_sha256_of_the_result_bytes() -> None:
    seed = "cd" * 32
    assert check_answer_sha256(seed) == hashlib.sha256(check_result_bytes(seed)).hexdigest()


@pytest.mark.parametrize(("seed", "answer"), sorted(VECTORS.items()))
def test_published_vectors(seed: str, answer: str) -> None:
    assert check_answer_sha256(seed) == answer


@pytest.mark.parametrize("seed", ["ab" * 31, "AB" * 32, "ab" * 33])
def test_a_malformed_seed_is_a_bug(seed: str) -> None:
    with pytest.raises((AssertionError, ValueError)):
        check_answer_sha256(seed)
