"""The atlas's agreement rule: honest float noise agrees, any real error disagrees."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from nexapod.workloads.atlas import (
    SIM_TOLERANCE,
    AtlasParams,
    UnitResult,
    UnitShape,
    compute_unit,
    results_agree,
    synthetic_embeddings,
)

K = 6
OFF_DIAGONAL = UnitShape(0, 1, 0, 64, 64, 128)


@pytest.fixture(scope="module")
def result() -> UnitResult:
    embeddings: npt.NDArray[np.float32] = synthetic_embeddings(
        128, 8, AtlasParams(embedding_dim=128)
    )
    return compute_unit(embeddings[0:64], embeddings[64:128], OFF_DIAGONAL, K)


def _copy(result: UnitResult) -> UnitResult:
    return UnitResult(
        result.row_ids.copy(), result.row_sims.copy(), result.col_ids.copy(), result.col_sims.copy()
    )


def test_a_result_agrees_with_itself(result: UnitResult) -> None:
    assert results_agree(result, _copy(result))


def test_similarities_within_the_tolerance_agree(result: UnitResult) -> None:
    noisy = _copy(result)
    rng = np.random.default_rng(1)
    noise = rng.uniform(-SIM_TOLERANCE / 4, SIM_TOLERANCE / 4, noisy.row_sims.shape)
    noisy.row_sims[:] = (noisy.row_sims + noise).astype(np.float32)
    assert results_agree(result, noisy)


def test_a_near_tie_in_another_order_agrees(result: UnitResult) -> None:
    swapped = _copy(result)
    row = 3
    swapped.row_ids[row, [0, 1]] = swapped.row_ids[row, [1, 0]]  # as if sims 0 and 1 were tied
    swapped.row_sims[row, 1] = swapped.row_sims[row, 0]
    tied = _copy(result)
    tied.row_sims[row, 1] = tied.row_sims[row, 0]
    assert results_agree(tied, swapped)


def test_a_different_last_neighbour_at_a_tie_agrees(result: UnitResult) -> None:
    a, b = _copy(result), _copy(result)
    row = 5
    a.row_sims[row, K - 1] = a.row_sims[row, K - 2]
    b.row_sims[row, K - 1] = b.row_sims[row, K - 2]
    b.row_ids[row, K - 1] = 127 if a.row_ids[row, K - 1] != 127 else 126  # another candidate
    assert results_agree(a, b)


def test_one_wrong_neighbour_disagrees(result: UnitResult) -> None:
    wrong = _copy(result)
    listed = set(wrong.row_ids[0].tolist())
    wrong.row_ids[0, 0] = next(i for i in range(64, 128) if i not in listed)
    assert not results_agree(result, wrong)
    assert not results_agree(wrong, result)


def test_a_similarity_off_by_more_than_the_tolerance_disagrees(result: UnitResult) -> None:
    off = _copy(result)
    off.col_sims[2, 0] += np.float32(SIM_TOLERANCE * 3)
    assert not results_agree(result, off)


def test_random_results_disagree(result: UnitResult) -> None:
    rng = np.random.default_rng(2)
    forged = _copy(result)
    forged.row_ids[:] = np.sort(rng.choice(np.arange(64, 128), (64, K)), axis=1)
    assert not results_agree(result, forged)
