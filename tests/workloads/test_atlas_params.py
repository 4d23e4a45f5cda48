"""AtlasParams: defaults, validation, and the canonical dict form."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nexapod.crypto import canonical_json
from nexapod.errors import WorkloadError
from nexapod.workloads.atlas import AtlasParams


def test_defaults_and_dict_form() -> None:
    params = AtlasParams()
    assert params.to_dict() == {
        "block_size": 2048,
        "embedding_dim": 1024,
        "k": 16,
        "mz_max": "1024.0",
        "mz_min": "0.0",
    }
    assert params.bin_width_mz == 1.0
    canonical_json(params.to_dict())  # no floats: signable


@pytest.mark.parametrize(
    "changes",
    [
        {"embedding_dim": 7},
        {"embedding_dim": 8193},
        {"k": 0},
        {"k": 257},
        {"block_size": 15},
        {"block_size": 65537},
        {"mz_min": 10.0, "mz_max": 10.0},
        {"mz_min": 20.0, "mz_max": 10.0},
        {"mz_max": float("inf")},
        {"mz_min": float("nan")},
        {"mz_min": -1.0},
        {"k": True},
        {"embedding_dim": 1024.0},
    ],
)
def test_invalid_params_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(WorkloadError) as caught:
        AtlasParams(**changes)
    assert caught.value.code == "workload.params_invalid"


def test_integer_mz_bounds_become_floats() -> None:
    params = AtlasParams(mz_min=0, mz_max=2000)
    assert params.to_dict()["mz_max"] == "2000.0"


@given(
    dim=st.integers(8, 8192),
    k=st.integers(1, 256),
    block_size=st.integers(16, 65536),
    mz_min=st.floats(0.0, 5000.0),
    width=st.floats(0.001, 5000.0),
)
def test_dict_round_trip(dim: int, k: int, block_size: int, mz_min: float, width: float) -> None:
    params = AtlasParams(dim, mz_min, mz_min + width, block_size, k)
    data = params.to_dict()
    assert AtlasParams.from_dict(data) == params
    assert AtlasParams.from_dict(data).to_dict() == data


@pytest.mark.parametrize(
    "changes",
    [
        {"extra": 1},
        {"mz_min": 0.0},
        {"mz_min": "0"},
        {"mz_min": "0.00"},
        {"mz_max": "1e3"},
        {"mz_max": "nan"},
        {"mz_max": "inf"},
        {"k": "16"},
        {"k": 16.0},
        {"block_size": False},
    ],
)
def test_from_dict_is_strict(changes: dict[str, Any]) -> None:
    data: dict[str, Any] = {**AtlasParams().to_dict(), **changes}
    with pytest.raises(WorkloadError) as caught:
        AtlasParams.from_dict(data)
    assert caught.value.code == "workload.params_invalid"


def test_from_dict_requires_every_key() -> None:
    data = AtlasParams().to_dict()
    del data["k"]
    with pytest.raises(WorkloadError, match="missing params: k"):
        AtlasParams.from_dict(data)
