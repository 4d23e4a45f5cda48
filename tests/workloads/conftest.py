"""Shared helpers for the atlas tests: comparing two top-k graphs under float tolerance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

SIM_TOLERANCE = 1e-5

CompareKnn = Callable[..., None]


def assert_same_knn(
    ids: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    ref_ids: npt.NDArray[np.int64],
    ref_sims: npt.NDArray[np.float32],
) -> None:
    """``ids``/``sims`` are [n, k]; the reference has k + 1 columns (one look-ahead).

    Similarities must agree within 1e-5 at every position; wherever the reference's
    similarity drops by more than 1e-5 after position p, the first p + 1 ids must be the
    same set (below that gap, float rounding may legitimately swap neighbours).
    """
    n, k = ids.shape
    assert ref_ids.shape == (n, k + 1)
    valid = ids >= 0
    assert np.array_equal(valid, ref_ids[:, :k] >= 0)
    diff = np.abs(sims.astype(np.float64) - ref_sims[:, :k].astype(np.float64))
    assert float(diff[valid].max(initial=0.0)) <= SIM_TOLERANCE
    gaps = ref_sims[:, :k].astype(np.float64) - ref_sims[:, 1:].astype(np.float64)
    checked = 0
    for row in range(n):
        for p in range(k):
            if ids[row, p] < 0 or gaps[row, p] <= SIM_TOLERANCE:
                continue
            got = set(ids[row, : p + 1].tolist())
            want = set(ref_ids[row, : p + 1].tolist())
            assert got == want, f"spectrum {row}: top-{p + 1} {sorted(got)} != {sorted(want)}"
            checked += 1
    assert checked >= n  # the rule must actually constrain most rows


@pytest.fixture
def same_knn() -> CompareKnn:
    return assert_same_knn
