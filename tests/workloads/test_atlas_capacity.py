"""The node's capacity benchmark."""

from __future__ import annotations

import pytest

from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import measure_capacity_flops_per_s, unit_flops


def test_capacity_is_a_positive_integer() -> None:
    flops_per_s = measure_capacity_flops_per_s(duration_s=0.05, embedding_dim=64)
    assert isinstance(flops_per_s, int)
    # At least one unit of 1024 x 1024 x 64 within a generous minute; at most 1 PFLOP/s.
    assert unit_flops(1024, 1024, 64) // 60 < flops_per_s < 10**15


@pytest.mark.parametrize(("duration_s", "dim"), [(0.0, 64), (-1.0, 64), (0.1, 4), (1e9, 64)])
def test_bad_arguments_are_refused(duration_s: float, dim: int) -> None:
    with pytest.raises(WorkloadError):
        measure_capacity_flops_per_s(duration_s, dim)
