"""The atlas job's parameters and the limits they are checked against.

The parameters travel inside signed unit specs, which carry no floats (see
``nexapod.crypto.canonical_json``), so the two m/z bounds are written as the shortest
decimal string that reads back to the same float (``repr``), and parsing refuses any
other spelling: one value, one text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from nexapod.errors import WorkloadError

__all__ = [
    "BLOCK_SIZE_MAX",
    "BLOCK_SIZE_MIN",
    "EMBEDDING_DIM_MAX",
    "EMBEDDING_DIM_MIN",
    "K_MAX",
    "K_MIN",
    "SPECTRA_MAX",
    "AtlasParams",
    "require_int",
]

EMBEDDING_DIM_MIN = 8
EMBEDDING_DIM_MAX = 8192
K_MIN = 1
K_MAX = 256
BLOCK_SIZE_MIN = 16
# Local indices inside a block are packed into 16 bits by the kernel's sort key.
BLOCK_SIZE_MAX = 1 << 16
# Global ids are packed into 32 bits by the merge's sort key; -1 is padding.
SPECTRA_MAX = (1 << 31) - 1

assert EMBEDDING_DIM_MIN <= EMBEDDING_DIM_MAX
assert K_MIN <= K_MAX
assert BLOCK_SIZE_MIN <= BLOCK_SIZE_MAX
assert BLOCK_SIZE_MAX <= SPECTRA_MAX


def require_int(value: object, name: str, value_min: int, value_max: int, code: str) -> int:
    """``value`` if it is a true ``int`` (not ``bool``) in [value_min, value_max], else raise."""
    assert value_min <= value_max
    if isinstance(value, bool) or not isinstance(value, int):
        raise WorkloadError(code, f"{name} must be an integer, got {type(value).__name__}")
    if not value_min <= value <= value_max:
        raise WorkloadError(code, f"{name} must be in [{value_min}, {value_max}], got {value}")
    return value


def _require_float(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkloadError("params_invalid", f"{name} must be a number")
    result = float(value)
    if not math.isfinite(result):
        raise WorkloadError("params_invalid", f"{name} must be finite, got {result}")
    return result


def _parse_decimal(value: object, name: str) -> float:
    """A float written as ``repr(float)``; any other spelling is refused (canonical form)."""
    if not isinstance(value, str):
        raise WorkloadError("params_invalid", f"{name} must be a decimal string")
    try:
        result = float(value)
    except ValueError as exc:
        raise WorkloadError("params_invalid", f"{name} is not a decimal: {value!r}") from exc
    if not math.isfinite(result) or repr(result) != value:
        raise WorkloadError(
            "params_invalid", f"{name} must be written canonically (like '1024.0'): {value!r}"
        )
    return result


@dataclass(frozen=True)
class AtlasParams:
    """Parameters of one atlas job; every field is validated on construction.

    Bins cover [mz_min, mz_max) with ``embedding_dim`` equal-width bins; the job lists the
    ``k`` most similar spectra of every spectrum, ``block_size`` spectra per block.
    """

    embedding_dim: int = 1024
    mz_min: float = 0.0
    mz_max: float = 1024.0
    block_size: int = 2048
    k: int = 16

    FIELDS: ClassVar[tuple[str, ...]] = ("block_size", "embedding_dim", "k", "mz_max", "mz_min")

    def __post_init__(self) -> None:
        dim, dim_min, dim_max = self.embedding_dim, EMBEDDING_DIM_MIN, EMBEDDING_DIM_MAX
        require_int(dim, "embedding_dim", dim_min, dim_max, "params_invalid")
        require_int(self.k, "k", K_MIN, K_MAX, "params_invalid")
        require_int(self.block_size, "block_size", BLOCK_SIZE_MIN, BLOCK_SIZE_MAX, "params_invalid")
        mz_min = _require_float(self.mz_min, "mz_min")
        mz_max = _require_float(self.mz_max, "mz_max")
        if mz_min < 0.0:
            raise WorkloadError("params_invalid", f"mz_min must be >= 0, got {mz_min}")
        if not mz_min < mz_max:
            raise WorkloadError("params_invalid", f"mz_min {mz_min} must be below mz_max {mz_max}")
        # Store true floats so that to_dict() writes '0.0', never '0'.
        object.__setattr__(self, "mz_min", mz_min)
        object.__setattr__(self, "mz_max", mz_max)

    @property
    def bin_width_mz(self) -> float:
        """Width of one m/z bin: (mz_max - mz_min) / embedding_dim."""
        return (self.mz_max - self.mz_min) / self.embedding_dim

    def to_dict(self) -> dict[str, int | str]:
        """Integers and decimal strings only, so the dict can be signed as canonical JSON."""
        return {
            "block_size": self.block_size,
            "embedding_dim": self.embedding_dim,
            "k": self.k,
            "mz_max": repr(self.mz_max),
            "mz_min": repr(self.mz_min),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AtlasParams:
        """The inverse of :meth:`to_dict`; every key is required and no other is accepted."""
        if not isinstance(data, dict):
            raise WorkloadError("params_invalid", "params must be an object")
        keys = set(data)
        unknown = sorted(str(key) for key in keys - set(cls.FIELDS))
        if unknown:
            raise WorkloadError("params_invalid", f"unknown params: {', '.join(unknown)}")
        missing = sorted(set(cls.FIELDS) - keys)
        if missing:
            raise WorkloadError("params_invalid", f"missing params: {', '.join(missing)}")
        for name in ("block_size", "embedding_dim", "k"):
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, int):
                raise WorkloadError("params_invalid", f"{name} must be an integer")
        params = cls(
            embedding_dim=data["embedding_dim"],
            mz_min=_parse_decimal(data["mz_min"], "mz_min"),
            mz_max=_parse_decimal(data["mz_max"], "mz_max"),
            block_size=data["block_size"],
            k=data["k"],
        )
        assert params.to_dict() == data
        return params
